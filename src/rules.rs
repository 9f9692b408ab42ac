//! Rules: which parsed lines are events. A rule looks for a literal
//! (`contains`) and/or a bytes regex in one field, optionally filtered by
//! status and method. The [`RuleSet`] also finds candidate lines in a whole
//! chunk with one `memmem`/Aho-Corasick scan, so lines that cannot match any
//! rule are never parsed.

use crate::parse::Record;
use crate::parse::access::{Field, Needs};
use crate::template::Template;
use aho_corasick::AhoCorasick;
use memchr::memmem::Finder;

/// Threshold, window and cooldown of one rule: how its windows count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Events in the window that raise an alert (≥ 1).
    pub threshold: u32,
    /// Window length in seconds (≥ 1).
    pub window: u32,
    /// Seconds after an alert during which the key does not alert again.
    pub cooldown: u32,
}

/// The field a rule looks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldSel {
    /// The request line `GET /path?q HTTP/1.1`.
    Request,
    /// The method.
    Method,
    /// The path without query.
    Path,
    /// The query string.
    Query,
    /// The status, as three digits.
    Status,
    /// The User-Agent header.
    UserAgent,
    /// The Referer header.
    Referer,
    /// The whole line.
    Line,
}

impl FieldSel {
    /// From its configuration name.
    pub fn from_name(s: &str) -> Option<FieldSel> {
        Some(match s {
            "request" => FieldSel::Request,
            "method" => FieldSel::Method,
            "path" => FieldSel::Path,
            "query" => FieldSel::Query,
            "status" => FieldSel::Status,
            "user_agent" => FieldSel::UserAgent,
            "referer" => FieldSel::Referer,
            "line" => FieldSel::Line,
            _ => return None,
        })
    }
}

/// One detection rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Field looked in.
    pub field: FieldSel,
    contains: Option<String>,
    finder: Option<Finder<'static>>,
    regex: Option<regex::bytes::Regex>,
    status: Vec<u16>,
    methods: Vec<Vec<u8>>,
    /// Threshold, window, cooldown.
    pub spec: WindowSpec,
    /// Alert message template.
    pub message: Template,
}

impl Rule {
    /// Builds a rule from validated parts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        field: FieldSel,
        contains: Option<String>,
        regex: Option<regex::bytes::Regex>,
        status: Vec<u16>,
        methods: Vec<Vec<u8>>,
        spec: WindowSpec,
        message: Template,
    ) -> Rule {
        let finder = contains.as_ref().map(|c| Finder::new(c.as_bytes()).into_owned());
        Rule { name, field, contains, finder, regex, status, methods, spec, message }
    }

    /// What the rule looks for, for messages (`{target}`).
    pub fn target(&self) -> String {
        match (&self.contains, &self.regex) {
            (Some(c), _) => c.clone(),
            (None, Some(r)) => r.as_str().to_string(),
            (None, None) if !self.status.is_empty() => format!("status {:?}", self.status),
            (None, None) => "any request".to_string(),
        }
    }

    /// Whether a parsed line is an event of this rule.
    ///
    /// # Performance
    /// No allocation; one `memmem` search and at most one regex search.
    pub fn matches(&self, rec: &Record<'_>, line: &[u8]) -> bool {
        if !self.status.is_empty() && !rec.status.is_some_and(|s| self.status.contains(&s)) {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == rec.method()) {
            return false;
        }
        let digits;
        let text: &[u8] = match self.field {
            FieldSel::Request => rec.request.unwrap_or(b""),
            FieldSel::Method => rec.method(),
            FieldSel::Path => rec.path(),
            FieldSel::Query => rec.query(),
            FieldSel::Status => match rec.status {
                Some(s) => {
                    digits = [
                        (s / 100 % 10) as u8 + b'0',
                        (s / 10 % 10) as u8 + b'0',
                        (s % 10) as u8 + b'0',
                    ];
                    &digits
                }
                None => b"",
            },
            FieldSel::UserAgent => rec.user_agent.unwrap_or(b""),
            FieldSel::Referer => rec.referer.unwrap_or(b""),
            FieldSel::Line => line,
        };
        self.finder.as_ref().is_none_or(|f| f.find(text).is_some())
            && self.regex.as_ref().is_none_or(|r| r.is_match(text))
    }
}

/// How candidate lines are found in a chunk.
#[derive(Debug, Clone)]
enum Prefilter {
    /// Some rule has no literal: every line is a candidate.
    Every,
    /// One literal shared by all rules.
    One(Box<Finder<'static>>),
    /// Several literals, one per rule at least.
    Many(AhoCorasick),
}

/// The configured rules with their chunk-level prefilter.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// The rules, in configuration order (an event names its rule by index).
    pub rules: Vec<Rule>,
    prefilter: Prefilter,
}

impl RuleSet {
    /// Builds the set and its prefilter.
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let literals: Option<Vec<&str>> = rules.iter().map(|r| r.contains.as_deref()).collect();
        let prefilter = match literals {
            Some(mut l) if !l.is_empty() => {
                l.sort_unstable();
                l.dedup();
                if l.len() == 1 {
                    Prefilter::One(Box::new(Finder::new(l[0].as_bytes()).into_owned()))
                } else {
                    AhoCorasick::new(&l).map_or(Prefilter::Every, Prefilter::Many)
                }
            }
            _ => Prefilter::Every,
        };
        RuleSet { rules, prefilter }
    }

    /// The fields the rules look at, so parsing can stop after them.
    pub fn needs(&self) -> Needs {
        self.rules.iter().fold(Needs::BASE, |mut n, r| {
            n = match r.field {
                FieldSel::Request | FieldSel::Method | FieldSel::Path | FieldSel::Query => {
                    n.with(Field::Request)
                }
                FieldSel::Status => n.with(Field::Status),
                FieldSel::UserAgent => n.with(Field::UserAgent),
                FieldSel::Referer => n.with(Field::Referer),
                FieldSel::Line => n,
            };
            if !r.status.is_empty() {
                n = n.with(Field::Status);
            }
            if !r.methods.is_empty() {
                n = n.with(Field::Request);
            }
            n
        })
    }

    /// Calls `f(index, start, end)` for each line of `chunk` that may match
    /// a rule, in order: `index` counts the lines before it in the chunk, and
    /// `end` excludes the newline. Returns the number of lines in the chunk.
    ///
    /// # Performance
    /// One pass: with a literal, a SIMD search for it, with newlines counted
    /// only between hits; without one, a `memchr` per line.
    pub fn for_each_candidate(&self, chunk: &[u8], mut f: impl FnMut(u64, usize, usize)) -> u64 {
        let line_end =
            |from: usize| memchr::memchr(b'\n', &chunk[from..]).map_or(chunk.len(), |i| from + i);
        let (mut at, mut index) = (0usize, 0u64);
        loop {
            let hit = match &self.prefilter {
                Prefilter::Every => (at < chunk.len()).then_some(at),
                Prefilter::One(fd) => fd.find(&chunk[at..]).map(|i| at + i),
                Prefilter::Many(ac) => ac.find(&chunk[at..]).map(|m| at + m.start()),
            };
            let Some(hit) = hit else { break };
            let start = match memchr::memrchr(b'\n', &chunk[at..hit]) {
                Some(i) => {
                    index += bytecount::count(&chunk[at..at + i + 1], b'\n') as u64;
                    at + i + 1
                }
                None => at,
            };
            let end = line_end(hit);
            f(index, start, end);
            index += 1;
            at = end + 1;
            if at >= chunk.len() {
                return index;
            }
        }
        let unterminated = at < chunk.len() && chunk.last() != Some(&b'\n');
        index + bytecount::count(&chunk[at..], b'\n') as u64 + u64::from(unterminated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::time::Zone;
    use crate::parse::{ClientSource, Format, Parser};

    fn rule(field: FieldSel, contains: Option<&str>, regex: Option<&str>) -> Rule {
        Rule::new(
            "r".into(),
            field,
            contains.map(String::from),
            regex.map(|r| regex::bytes::Regex::new(r).unwrap()),
            vec![],
            vec![],
            WindowSpec { threshold: 1, window: 1, cooldown: 0 },
            Template::parse("{client}", &["client"], crate::template::Mode::Text).unwrap(),
        )
    }

    const LINE: &[u8] = br#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "POST /login?u=today_download HTTP/1.1" 403 1 "http://x/today_download" "ua""#;

    fn rec() -> Record<'static> {
        let p = Parser::new(
            Format::from_spec("combined", None).unwrap(),
            Zone::Utc,
            1_700_000_000,
            ClientSource::default(),
        );
        p.parse(LINE).unwrap()
    }

    #[test]
    fn fields_select_what_is_searched() {
        let r = rec();
        assert!(rule(FieldSel::Request, Some("today_download"), None).matches(&r, LINE));
        assert!(rule(FieldSel::Query, Some("today_download"), None).matches(&r, LINE));
        assert!(!rule(FieldSel::Path, Some("today_download"), None).matches(&r, LINE));
        assert!(rule(FieldSel::Path, None, Some("^/login$")).matches(&r, LINE));
        assert!(rule(FieldSel::Status, Some("403"), None).matches(&r, LINE));
        assert!(rule(FieldSel::Method, Some("POST"), None).matches(&r, LINE));
        assert!(rule(FieldSel::UserAgent, Some("ua"), None).matches(&r, LINE));
        assert!(!rule(FieldSel::UserAgent, Some("today"), None).matches(&r, LINE));
        let mut s = rule(FieldSel::Line, None, None);
        s.status = vec![404];
        assert!(!s.matches(&r, LINE));
        s.status = vec![403];
        s.methods = vec![b"GET".to_vec()];
        assert!(!s.matches(&r, LINE));
    }

    #[test]
    fn candidates_are_lines_holding_a_literal() {
        let chunk = b"a x\nb\nc xx\nd\nx";
        let collect = |set: &RuleSet| {
            let mut v = Vec::new();
            let n = set.for_each_candidate(chunk, |i, s, e| v.push((i, &chunk[s..e])));
            assert_eq!(n, 5, "line count");
            v.into_iter()
                .map(|(i, l)| {
                    assert_eq!(
                        chunk.split(|&c| c == b'\n').nth(i as usize),
                        Some(l),
                        "index of line"
                    );
                    l
                })
                .collect::<Vec<_>>()
        };
        let one = RuleSet::new(vec![rule(FieldSel::Line, Some("x"), None)]);
        assert_eq!(collect(&one), vec![&b"a x"[..], b"c xx", b"x"]);
        let many = RuleSet::new(vec![
            rule(FieldSel::Line, Some("x"), None),
            rule(FieldSel::Line, Some("d"), None),
        ]);
        assert_eq!(collect(&many), vec![&b"a x"[..], b"c xx", b"d", b"x"]);
        let every = RuleSet::new(vec![rule(FieldSel::Line, None, Some("b"))]);
        assert_eq!(collect(&every).len(), 5);
    }
}
