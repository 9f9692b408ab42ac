//! Rules: which parsed lines are events. A rule looks for a literal
//! (`contains`) and/or a bytes regex in one field, optionally filtered by
//! status and method. The [`RuleSet`] also finds candidate lines in a whole
//! chunk with one `memmem`/Aho-Corasick scan, so lines that cannot match any
//! rule are never parsed.

use crate::parse::Record;
use crate::parse::access::{Field, Needs};
use crate::parse::client::{AddrSet, Key};
use crate::parse::normalize::{Normalized, decode_into, decode_pair};
use crate::template::{Template, sanitize};
use aho_corasick::AhoCorasick;
use memchr::memmem::Finder;
use std::borrow::Cow;

/// Threshold, window and cooldown of one rule: how its windows count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// Events in the window that raise an alert (≥ 1).
    pub threshold: u32,
    /// Window length in seconds (≥ 1).
    pub window: u32,
    /// Seconds after an alert during which the key does not alert again.
    pub cooldown: u32,
    /// Count distinct values of a field (`distinct = "path"`), not events.
    pub distinct: bool,
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
    /// The virtual host (`%v`, `%V`), where the format logs one.
    Vhost,
    /// The authenticated user (`%u`; `-` when none).
    User,
    /// The Host header (`%{Host}i`).
    Host,
    /// Another header the format logs (`header:Name`), by its slot.
    Header(u8),
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
            "vhost" => FieldSel::Vhost,
            "user" => FieldSel::User,
            "host" => FieldSel::Host,
            "line" => FieldSel::Line,
            _ => return None,
        })
    }

    /// The field's raw bytes in a line, for the fields that are text of the
    /// request (`None` for `status` and `line`, and where the line has none).
    fn text<'a>(self, rec: &Record<'a>) -> Option<&'a [u8]> {
        match self {
            FieldSel::Request => rec.request,
            FieldSel::Method => rec.request.map(|_| rec.method()),
            FieldSel::Path => rec.request.map(|_| rec.path()),
            FieldSel::Query => rec.request.map(|_| rec.query()),
            FieldSel::UserAgent => rec.user_agent,
            FieldSel::Referer => rec.referer,
            FieldSel::Vhost => rec.vhost,
            FieldSel::User => rec.user,
            FieldSel::Host => rec.host,
            FieldSel::Header(k) => rec.headers.get(usize::from(k)).copied().flatten(),
            FieldSel::Status | FieldSel::Line => None,
        }
    }

    /// The parser fields this one is read from.
    fn needs(self, n: Needs) -> Needs {
        match self {
            FieldSel::Request | FieldSel::Method | FieldSel::Path | FieldSel::Query => {
                n.with(Field::Request)
            }
            FieldSel::Status => n.with(Field::Status),
            FieldSel::UserAgent => n.with(Field::UserAgent),
            FieldSel::Referer => n.with(Field::Referer),
            FieldSel::Vhost => n.with(Field::VHost),
            FieldSel::User => n.with(Field::User),
            FieldSel::Host => n.with(Field::HostHeader),
            FieldSel::Header(k) => n.with(Field::header(k)),
            FieldSel::Line => n,
        }
    }
}

/// One part of a rule's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart {
    /// The client address (its IPv6 prefix where configured).
    Client,
    /// A text field; a line where it is absent, empty or `-` is no event.
    Field(FieldSel),
}

/// What a rule is made of, as the configuration gives it.
#[derive(Debug, Clone)]
pub struct RuleDef {
    /// Unique name.
    pub name: String,
    /// Field looked in.
    pub field: FieldSel,
    /// A literal the field must hold.
    pub contains: Option<String>,
    /// A bytes regex the field must match.
    pub regex: Option<String>,
    /// Only lines with one of these statuses (empty: any).
    pub status: Vec<u16>,
    /// Only these methods, upper case (empty: any).
    pub methods: Vec<Vec<u8>>,
    /// Threshold, window, cooldown.
    pub spec: WindowSpec,
    /// Alert message template.
    pub message: Template,
    /// Clients this rule never counts.
    pub allow: AddrSet,
    /// Match `request`, `path` and `query` as the server maps them
    /// (`%XX` decoded, `//`, `/./`, `/../` resolved).
    pub normalize: bool,
    /// Match `contains` and `regex` regardless of ASCII case.
    pub ignore_case: bool,
    /// Clients tracked at most; beyond, those with the fewest hits go.
    pub max_clients: usize,
    /// What the rule counts per: `[Client]` by default.
    pub key: Vec<KeyPart>,
    /// Count distinct values of this field instead of events.
    pub distinct: Option<FieldSel>,
    /// The sources it reads, as a bit mask by source index (`None`: all).
    pub sources: Option<u64>,
}

impl RuleDef {
    /// A rule looking for `contains` in `field`, with the given spec and
    /// message, no other filter, normalized and case-sensitive.
    pub fn new(
        name: &str,
        field: FieldSel,
        contains: &str,
        spec: WindowSpec,
        message: Template,
    ) -> RuleDef {
        RuleDef {
            name: name.to_string(),
            field,
            contains: Some(contains.to_string()),
            regex: None,
            status: Vec::new(),
            methods: Vec::new(),
            spec,
            message,
            allow: AddrSet::default(),
            normalize: true,
            ignore_case: false,
            max_clients: MAX_CLIENTS,
            key: vec![KeyPart::Client],
            distinct: None,
            sources: None,
        }
    }
}

/// Clients a rule tracks at most, by default.
pub const MAX_CLIENTS: usize = 2_000_000;

/// A literal to search: exact (SIMD `memmem`) or regardless of ASCII case.
#[derive(Debug, Clone)]
enum Literal {
    Exact(Box<Finder<'static>>),
    Caseless(AhoCorasick),
}

impl Literal {
    fn new(text: &str, ignore_case: bool) -> Literal {
        let caseless = ignore_case
            .then(|| AhoCorasick::builder().ascii_case_insensitive(true).build([text]).ok())
            .flatten();
        match caseless {
            Some(ac) => Literal::Caseless(ac),
            None => Literal::Exact(Box::new(Finder::new(text.as_bytes()).into_owned())),
        }
    }

    fn is_in(&self, hay: &[u8]) -> bool {
        match self {
            Literal::Exact(f) => f.find(hay).is_some(),
            Literal::Caseless(ac) => ac.is_match(hay),
        }
    }
}

/// One detection rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Field looked in.
    pub field: FieldSel,
    /// Threshold, window, cooldown.
    pub spec: WindowSpec,
    /// Alert message template.
    pub message: Template,
    /// Clients this rule never counts.
    pub allow: AddrSet,
    /// Clients tracked at most.
    pub max_clients: usize,
    /// What the rule counts per.
    pub key: Vec<KeyPart>,
    /// `key` is the client alone (checked per event, so kept, not compared).
    by_client: bool,
    /// The field whose distinct values are counted, if any.
    pub distinct: Option<FieldSel>,
    /// The sources it reads (bit mask by index; `None`: all).
    pub sources: Option<u64>,
    contains: Option<String>,
    literal: Option<Literal>,
    regex: Option<regex::bytes::Regex>,
    status: Vec<u16>,
    methods: Vec<Vec<u8>>,
    normalize: bool,
    ignore_case: bool,
    /// `{window}`, rendered once rather than per alert.
    window_text: String,
}

impl Rule {
    /// Builds a rule; the error says what is wrong with its regex.
    pub fn new(def: RuleDef) -> Result<Rule, String> {
        let regex = match &def.regex {
            Some(r) => Some(
                regex::bytes::RegexBuilder::new(r)
                    .case_insensitive(def.ignore_case)
                    .build()
                    .map_err(|e| format!("is not a valid regular expression: {e}"))?,
            ),
            None => None,
        };
        let literal = def.contains.as_deref().map(|c| Literal::new(c, def.ignore_case));
        Ok(Rule {
            name: def.name,
            field: def.field,
            spec: def.spec,
            message: def.message,
            allow: def.allow,
            max_clients: def.max_clients,
            by_client: def.key == [KeyPart::Client],
            key: def.key,
            distinct: def.distinct,
            sources: def.sources,
            contains: def.contains,
            literal,
            regex,
            status: def.status,
            methods: def.methods,
            normalize: def.normalize,
            ignore_case: def.ignore_case,
            window_text: crate::units::human_duration(u64::from(def.spec.window)),
        })
    }

    /// What the rule looks for, for messages (`{target}`).
    pub fn target(&self) -> Cow<'_, str> {
        match (&self.contains, &self.regex) {
            (Some(c), _) => c.into(),
            (None, Some(r)) => r.as_str().into(),
            (None, None) if !self.status.is_empty() => format!("status {:?}", self.status).into(),
            (None, None) => "any request".into(),
        }
    }

    /// The window in words, for messages (`{window}`): "10 minutes".
    pub fn window_text(&self) -> &str {
        &self.window_text
    }

    /// Whether the rule reads the request normalized: only a rule that
    /// searches the request's text does.
    fn normalizes(&self) -> bool {
        self.normalize
            && (self.literal.is_some() || self.regex.is_some())
            && matches!(self.field, FieldSel::Request | FieldSel::Path | FieldSel::Query)
    }

    /// Whether a line's status and method are ones the rule looks for
    /// (checked before any text, which may need normalizing).
    fn admits(&self, rec: &Record<'_>) -> bool {
        (self.status.is_empty() || rec.status.is_some_and(|s| self.status.contains(&s)))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == rec.method()))
    }

    /// Whether a parsed line is an event of this rule; `norm` is its
    /// request normalized, when that differs from the raw one.
    ///
    /// # Performance
    /// No allocation; one literal search and at most one regex search.
    pub fn matches(&self, rec: &Record<'_>, line: &[u8], norm: Option<&Normalized>) -> bool {
        self.admits(rec) && self.text_matches(rec, line, norm)
    }

    /// Whether the field the rule searches holds its literal and regex.
    fn text_matches(&self, rec: &Record<'_>, line: &[u8], norm: Option<&Normalized>) -> bool {
        let norm = norm.filter(|_| self.normalizes());
        let digits;
        let text: &[u8] = match (self.field, norm) {
            (FieldSel::Request, Some(n)) => n.request(),
            (FieldSel::Path, Some(n)) => n.path(),
            (FieldSel::Query, Some(n)) => n.query(),
            (FieldSel::Status, _) => match rec.status {
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
            (FieldSel::Line, _) => line,
            (f, _) => f.text(rec).unwrap_or(b""),
        };
        self.literal.as_ref().is_none_or(|l| l.is_in(text))
            && self.regex.as_ref().is_none_or(|r| r.is_match(text))
    }

    /// Whether the rule reads source `index`.
    pub fn reads(&self, index: usize) -> bool {
        self.sources.is_none_or(|m| index < 64 && m >> index & 1 == 1)
    }

    /// Whether the rule counts per client (the default key).
    pub fn by_client(&self) -> bool {
        self.by_client
    }

    /// The key a line counts under, given its client's key; `None` when a
    /// key field is absent, empty or `-` (a per-user rule ignores lines
    /// without a user).
    ///
    /// A key of other parts is the first 128 bits of a SHA-256 of them:
    /// fixed (saved state and farm nodes agree on it) and, since the parts
    /// are attacker-chosen, not open to crafted collisions.
    pub fn key_of(&self, rec: &Record<'_>, client: Key) -> Option<Key> {
        if self.by_client() {
            return Some(client);
        }
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        for part in &self.key {
            match part {
                KeyPart::Client => {
                    h.update(&[0]);
                    h.update(&client.0.to_le_bytes());
                }
                KeyPart::Field(f) => {
                    let v = f.text(rec).filter(|v| !v.is_empty() && *v != b"-")?;
                    h.update(&[1]);
                    h.update(&(v.len() as u64).to_le_bytes());
                    h.update(v);
                }
            }
        }
        Some(Key(first_128(h)))
    }

    /// The value a rule counting distinct values counts for a line (0 for
    /// other rules): 128 bits of a SHA-256 of the field, as for keys;
    /// `None` when the line has no such field.
    pub fn value_of(&self, rec: &Record<'_>) -> Option<u128> {
        let Some(f) = self.distinct else { return Some(0) };
        let v = f.text(rec).filter(|v| !v.is_empty())?;
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        h.update(v);
        Some(first_128(h))
    }

    /// The key of a line as text: the client, or the parts separated by
    /// spaces (control characters and invalid UTF-8 escaped).
    pub fn key_text(&self, rec: &Record<'_>, client: Key, v6_prefix: u8) -> String {
        let part = |p: &KeyPart| match p {
            KeyPart::Client => client.render(v6_prefix),
            KeyPart::Field(f) => sanitize(f.text(rec).unwrap_or(b"-")),
        };
        self.key.iter().map(part).collect::<Vec<_>>().join(" ")
    }

    /// What the rule counts, as a digest that two configurations give alike
    /// when the rule looks in the same field for the same thing, with the
    /// same filters, key, distinct field and allow-list — its own with the
    /// global one, `also_allowed` — (lists in any order; a header field by
    /// its name, `header(slot)`, since its slot depends on the formats).
    /// Farm nodes compare it.
    pub fn matching(&self, header: &dyn Fn(u8) -> String, also_allowed: &AddrSet) -> String {
        let allowed = self.allow.union(also_allowed);
        digest(&format!("{} allow {allowed:?}", self.counted(header)))
    }

    /// What the rule counts, as a digest like [`Rule::matching`]'s but
    /// without the allow-lists: a saved window holds events of what the
    /// rule counted when it was saved, which an allowed client changes only
    /// from then on.
    pub fn counting(&self, header: &dyn Fn(u8) -> String) -> String {
        digest(&self.counted(header))
    }

    /// What the rule counts, as text (farm nodes of earlier versions digest
    /// it followed by the allow-list, so its words stay as they are).
    fn counted(&self, header: &dyn Fn(u8) -> String) -> String {
        let field = |f: FieldSel| match f {
            FieldSel::Header(k) => header(k),
            f => format!("{f:?}"),
        };
        let key: Vec<String> = self
            .key
            .iter()
            .map(|p| match p {
                KeyPart::Client => "client".to_string(),
                KeyPart::Field(f) => field(*f),
            })
            .collect();
        let mut status = self.status.clone();
        status.sort_unstable();
        let mut methods: Vec<String> =
            self.methods.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect();
        methods.sort_unstable();
        format!(
            "field {} contains {:?} regex {:?} status {status:?} methods {methods:?} normalize {} ignore_case {} key {key:?} distinct {:?}",
            field(self.field),
            self.contains,
            self.regex.as_ref().map(regex::bytes::Regex::as_str),
            self.normalize,
            self.ignore_case,
            self.distinct.map(field),
        )
    }

    /// The part of the literal a candidate line must hold raw: all of it,
    /// or — when normalization may join text across `/` — its longest
    /// piece without `/`. `None`: any line may match.
    fn piece(&self) -> Option<&str> {
        let c = self.contains.as_deref()?;
        if !self.normalizes() || !c.contains('/') {
            return Some(c);
        }
        c.split('/').max_by_key(|p| p.len()).filter(|p| !p.is_empty())
    }
}

/// A text's digest as the farm's nodes compare it: the first 128 bits of
/// its SHA-256, in hex.
pub fn digest(text: &str) -> String {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    h.update(text.as_bytes());
    format!("{:032x}", first_128(h))
}

/// The first 128 bits of a SHA-256.
fn first_128(h: ring::digest::Context) -> u128 {
    let digest = h.finish();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_ref()[..16]);
    u128::from_le_bytes(first)
}

/// How candidate lines are found in a chunk.
#[derive(Debug, Clone)]
enum Prefilter {
    /// Some rule has no literal: every line is a candidate.
    Every,
    /// Lines holding one of the rules' literals; with `percent`, also lines
    /// holding one once `%XX` is decoded (a rule reads normalized requests).
    /// `bytes` marks the bytes of the literals (in both cases when a rule
    /// ignores case).
    Literals { pieces: Pieces, percent: bool, bytes: Box<[bool; 256]> },
}

/// The literals of a prefilter.
#[derive(Debug, Clone)]
enum Pieces {
    /// One literal, exact: SIMD `memmem`.
    One(Box<Finder<'static>>),
    /// Several literals, or regardless of case.
    Many(AhoCorasick),
}

impl Pieces {
    fn find(&self, hay: &[u8]) -> Option<usize> {
        match self {
            Pieces::One(f) => f.find(hay),
            Pieces::Many(ac) => ac.find(hay).map(|m| m.start()),
        }
    }
}

/// The configured rules with their chunk-level prefilter and the global
/// allow-list.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// The rules, in configuration order (an event names its rule by index).
    pub rules: Vec<Rule>,
    /// Clients no rule counts.
    pub allow: AddrSet,
    prefilter: Prefilter,
}

impl RuleSet {
    /// Builds the set and its prefilter.
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let prefilter = prefilter(&rules);
        RuleSet { rules, allow: AddrSet::default(), prefilter }
    }

    /// The set with a global allow-list.
    pub fn with_allow(mut self, allow: AddrSet) -> RuleSet {
        self.allow = allow;
        self
    }

    /// Calls `f(i)` for each rule `i` that counts this parsed line of
    /// source `source` (by index); returns true when an allow-list kept it
    /// from a rule (or from all rules). `norm` is scratch space for the
    /// normalized request, computed at most once and only for a request
    /// that needs it.
    pub fn events(
        &self,
        rec: &Record<'_>,
        source: usize,
        line: &[u8],
        norm: &mut Normalized,
        mut f: impl FnMut(usize),
    ) -> bool {
        if self.allow.contains(rec.client) {
            return true;
        }
        let mut normalized: Option<bool> = None;
        let mut allowed = false;
        for (i, r) in self.rules.iter().enumerate() {
            if !r.reads(source) || !r.admits(rec) {
                continue;
            }
            let n = match r.normalizes() {
                true => *normalized.get_or_insert_with(|| rec.request.is_some_and(|q| norm.of(q))),
                false => false,
            };
            if r.text_matches(rec, line, n.then_some(&*norm)) {
                if r.allow.contains(rec.client) {
                    allowed = true;
                } else {
                    f(i);
                }
            }
        }
        allowed
    }

    /// The fields the rules look at, so parsing can stop after them.
    pub fn needs(&self) -> Needs {
        self.rules.iter().fold(Needs::BASE, |mut n, r| {
            n = r.field.needs(n);
            if let Some(d) = r.distinct {
                n = d.needs(n);
            }
            for part in &r.key {
                if let KeyPart::Field(f) = part {
                    n = f.needs(n);
                }
            }
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
    /// `scratch` holds a line decoded from `%XX`.
    ///
    /// # Performance
    /// One pass: with literals, a SIMD search for them, with newlines counted
    /// only between hits; where a rule reads normalized requests, also a
    /// `memchr` for `%`, whose lines are decoded and searched again (only
    /// they take extra work). Without literals, a `memchr` per line.
    pub fn for_each_candidate(
        &self,
        chunk: &[u8],
        scratch: &mut Vec<u8>,
        mut f: impl FnMut(u64, usize, usize),
    ) -> u64 {
        let line_end =
            |from: usize| memchr::memchr(b'\n', &chunk[from..]).map_or(chunk.len(), |i| from + i);
        let (mut at, mut index) = (0usize, 0u64);
        let mut hits = Hits::default();
        while let Some((hit, via_percent)) = hits.next(&self.prefilter, chunk, at) {
            let end = line_end(hit);
            let start = match memchr::memrchr(b'\n', &chunk[at..hit]) {
                Some(i) => {
                    index += bytecount::count(&chunk[at..at + i + 1], b'\n') as u64;
                    at + i + 1
                }
                None => at,
            };
            if !via_percent || self.decoded_holds_piece(&chunk[start..end], scratch) {
                f(index, start, end);
            }
            index += 1;
            at = end + 1;
            if at >= chunk.len() {
                return index;
            }
        }
        let unterminated = at < chunk.len() && chunk.last() != Some(&b'\n');
        index + bytecount::count(&chunk[at..], b'\n') as u64 + u64::from(unterminated)
    }

    /// Whether `line`, with `%XX` decoded, holds a literal.
    fn decoded_holds_piece(&self, line: &[u8], scratch: &mut Vec<u8>) -> bool {
        let Prefilter::Literals { pieces, .. } = &self.prefilter else { return true };
        scratch.clear();
        decode_into(line, scratch);
        pieces.find(scratch).is_some()
    }
}

/// The next literal and the next `%XX` that encodes a byte of a literal
/// (only such a line can hold a literal once decoded), at or after a
/// position, each searched again only once the scan has passed it.
#[derive(Default)]
struct Hits {
    /// `None`: not searched yet; `Some(None)`: none left.
    piece: Option<Option<usize>>,
    percent: Option<Option<usize>>,
}

impl Hits {
    /// The next candidate position at or after `at`, and whether only a `%`
    /// makes it one.
    fn next(&mut self, prefilter: &Prefilter, chunk: &[u8], at: usize) -> Option<(usize, bool)> {
        let Prefilter::Literals { pieces, percent, bytes } = prefilter else {
            return (at < chunk.len()).then_some((at, false));
        };
        let stale = |h: Option<Option<usize>>| h.is_none_or(|p| p.is_some_and(|p| p < at));
        if stale(self.piece) {
            self.piece = Some(pieces.find(&chunk[at..]).map(|i| at + i));
        }
        if *percent && stale(self.percent) {
            let encodes_literal_byte = |p: &usize| {
                decode_pair(chunk.get(p + 1..p + 3)).is_some_and(|b| bytes[usize::from(b)])
            };
            self.percent = Some(
                memchr::memchr_iter(b'%', &chunk[at..]).map(|i| at + i).find(encodes_literal_byte),
            );
        }
        match (self.piece.flatten(), self.percent.flatten().filter(|_| *percent)) {
            (Some(p), Some(q)) if q < p => Some((q, true)),
            (Some(p), _) => Some((p, false)),
            (None, Some(q)) => Some((q, true)),
            (None, None) => None,
        }
    }
}

/// The prefilter for a set of rules.
fn prefilter(rules: &[Rule]) -> Prefilter {
    let pieces: Option<Vec<&str>> = rules.iter().map(Rule::piece).collect();
    let Some(mut pieces) = pieces.filter(|p| !p.is_empty()) else { return Prefilter::Every };
    pieces.sort_unstable();
    pieces.dedup();
    let pieces_bytes: Vec<u8> = pieces.iter().flat_map(|p| p.bytes()).collect();
    let caseless = rules.iter().any(|r| r.ignore_case);
    let percent = rules.iter().any(Rule::normalizes);
    let pieces = if pieces.len() == 1 && !caseless {
        Pieces::One(Box::new(Finder::new(pieces[0].as_bytes()).into_owned()))
    } else {
        match AhoCorasick::builder().ascii_case_insensitive(caseless).build(&pieces) {
            Ok(ac) => Pieces::Many(ac),
            Err(_) => return Prefilter::Every,
        }
    };
    let mut bytes = Box::new([false; 256]);
    for b in pieces_bytes {
        bytes[usize::from(b)] = true;
        if caseless {
            bytes[usize::from(b.to_ascii_lowercase())] = true;
            bytes[usize::from(b.to_ascii_uppercase())] = true;
        }
    }
    Prefilter::Literals { pieces, percent, bytes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::time::Zone;
    use crate::parse::{ClientSource, Format, Parser};

    fn def(field: FieldSel, contains: Option<&str>, regex: Option<&str>) -> RuleDef {
        let message = Template::parse("{client}", &["client"], crate::template::Mode::Text);
        let spec = WindowSpec { threshold: 1, window: 1, cooldown: 0, distinct: false };
        let mut d = RuleDef::new("r", field, "", spec, message.unwrap());
        d.contains = contains.map(String::from);
        d.regex = regex.map(String::from);
        d
    }

    fn rule(field: FieldSel, contains: Option<&str>, regex: Option<&str>) -> Rule {
        Rule::new(def(field, contains, regex)).unwrap()
    }

    const LINE: &[u8] = br#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "POST /login?u=today_download HTTP/1.1" 403 1 "http://x/today_download" "ua""#;

    fn parser() -> Parser {
        Parser::new(
            Format::from_spec("combined", None).unwrap(),
            Zone::Utc,
            1_700_000_000,
            ClientSource::default(),
        )
    }

    fn rec() -> Record<'static> {
        parser().parse(LINE).unwrap()
    }

    #[test]
    fn fields_select_what_is_searched() {
        let r = rec();
        let m = |rule: Rule| rule.matches(&r, LINE, None);
        assert!(m(rule(FieldSel::Request, Some("today_download"), None)));
        assert!(m(rule(FieldSel::Query, Some("today_download"), None)));
        assert!(!m(rule(FieldSel::Path, Some("today_download"), None)));
        assert!(m(rule(FieldSel::Path, None, Some("^/login$"))));
        assert!(m(rule(FieldSel::Status, Some("403"), None)));
        assert!(m(rule(FieldSel::Method, Some("POST"), None)));
        assert!(m(rule(FieldSel::UserAgent, Some("ua"), None)));
        assert!(!m(rule(FieldSel::UserAgent, Some("today"), None)));
        let mut s = rule(FieldSel::Line, None, None);
        s.status = vec![404];
        assert!(!s.matches(&r, LINE, None));
        s.status = vec![403];
        s.methods = vec![b"GET".to_vec()];
        assert!(!s.matches(&r, LINE, None));
    }

    /// Only a rule that searches the request's text pays for normalizing
    /// it; a status-only rule does not (it ran for every line of a 404 rule).
    #[test]
    fn only_rules_that_search_the_request_normalize_it() {
        let mut status_only = rule(FieldSel::Request, None, None);
        status_only.status = vec![404];
        assert!(!status_only.normalizes());
        assert!(rule(FieldSel::Request, Some("today"), None).normalizes());
        assert!(!rule(FieldSel::UserAgent, Some("today"), None).normalizes());
    }

    /// The rules that count a line, and whether an allow-list kept it out.
    fn events(set: &RuleSet, line: &[u8]) -> (Vec<usize>, bool) {
        let p = parser();
        let r = p.parse(line).unwrap();
        let mut v = Vec::new();
        let allowed = set.events(&r, 0, line, &mut Normalized::default(), |i| v.push(i));
        (v, allowed)
    }

    fn access(client: &str, request: &str) -> Vec<u8> {
        format!("{client} - - [10/Oct/2000:13:55:36 -0700] \"{request}\" 200 1 \"-\" \"ua\"")
            .into_bytes()
    }

    #[test]
    fn encoded_and_dotted_requests_count_unless_normalize_is_off() {
        let on = RuleSet::new(vec![rule(FieldSel::Path, Some("today_download"), None)]);
        let mut raw = def(FieldSel::Path, Some("today_download"), None);
        raw.normalize = false;
        let off = RuleSet::new(vec![Rule::new(raw).unwrap()]);
        for req in [
            "GET /today%5Fdownload HTTP/1.1",
            "GET /%74oday_download HTTP/1.1",
            "GET /today_%64ownload HTTP/1.1",
            "GET /x/../today_download HTTP/1.1",
        ] {
            let line = access("10.0.0.1", req);
            assert_eq!(events(&on, &line), (vec![0], false), "{req}");
            let expect = if req.contains('%') { vec![] } else { vec![0] };
            assert_eq!(events(&off, &line).0, expect, "{req} with normalize = false");
        }
    }

    #[test]
    fn ignore_case_matches_literals_and_regexes_in_any_case() {
        let mut d = def(FieldSel::Path, Some("Today_Download"), None);
        d.ignore_case = true;
        let mut r = def(FieldSel::Path, None, Some("^/ADMIN"));
        r.ignore_case = true;
        let set = RuleSet::new(vec![Rule::new(d).unwrap(), Rule::new(r).unwrap()]);
        assert_eq!(events(&set, &access("10.0.0.1", "GET /TODAY_download HTTP/1.1")).0, [0]);
        assert_eq!(events(&set, &access("10.0.0.1", "GET /admin/x HTTP/1.1")).0, [1]);
        let exact = RuleSet::new(vec![rule(FieldSel::Path, Some("Today_Download"), None)]);
        assert!(events(&exact, &access("10.0.0.1", "GET /TODAY_download HTTP/1.1")).0.is_empty());
        let mut scratch = Vec::new();
        let chunk = b"a TODAY_DOWNLOAD\nb\n";
        let mut seen = 0;
        set.for_each_candidate(chunk, &mut scratch, |_, _, _| seen += 1);
        assert_eq!(seen, 2, "a regex rule makes every line a candidate");
    }

    #[test]
    fn allow_lists_keep_clients_out() {
        let blocks = |b: &[&str]| {
            AddrSet::new(b.iter().map(|c| crate::parse::client::Cidr::parse(c).unwrap()))
        };
        let mut a = rule(FieldSel::Path, Some("/x"), None);
        a.allow = blocks(&["10.9.0.0/16"]);
        let b = rule(FieldSel::Path, Some("/x"), None);
        let set = RuleSet::new(vec![a, b]).with_allow(blocks(&["192.0.2.10", "2001:db8::/32"]));
        assert_eq!(events(&set, &access("10.0.0.1", "GET /x HTTP/1.1")), (vec![0, 1], false));
        assert_eq!(events(&set, &access("10.9.1.1", "GET /x HTTP/1.1")), (vec![1], true));
        assert_eq!(events(&set, &access("192.0.2.10", "GET /x HTTP/1.1")), (vec![], true));
        assert_eq!(events(&set, &access("2001:db8::5", "GET /x HTTP/1.1")), (vec![], true));
    }

    #[test]
    fn candidates_are_lines_holding_a_literal() {
        let chunk = b"a x\nb\nc xx\nd\nx";
        let collect = |set: &RuleSet| {
            let mut v = Vec::new();
            let n =
                set.for_each_candidate(chunk, &mut Vec::new(), |i, s, e| v.push((i, &chunk[s..e])));
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

    /// With a rule on a normalized field, a line with `%` is a candidate
    /// only when its decoded text holds the literal; lines without `%` are
    /// found by the literal alone.
    #[test]
    fn percent_lines_are_candidates_when_decoded_they_hold_the_literal() {
        let chunk = b"GET /today%5Fdownload\nGET /%E4%B8%8B\nGET /today_download\nplain\n";
        let set = RuleSet::new(vec![rule(FieldSel::Path, Some("today_download"), None)]);
        let mut v = Vec::new();
        set.for_each_candidate(chunk, &mut Vec::new(), |i, _, _| v.push(i));
        assert_eq!(v, [0, 2]);
        let mut raw = def(FieldSel::Path, Some("today_download"), None);
        raw.normalize = false;
        let set = RuleSet::new(vec![Rule::new(raw).unwrap()]);
        let mut v = Vec::new();
        set.for_each_candidate(chunk, &mut Vec::new(), |i, _, _| v.push(i));
        assert_eq!(v, [2]);
    }
}
