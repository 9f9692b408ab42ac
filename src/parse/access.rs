//! Access logs: an interpreter for Apache `LogFormat` strings.
//!
//! `common`, `combined` and `vhost_combined` are just predefined format
//! strings. A format compiles to a list of (literal, field) tokens; a line is
//! read left to right, each field ending at the next literal. Quoted fields
//! (`"%r"`, `"%{User-Agent}i"`) end at the first `"` that is not escaped with a
//! backslash, exactly as Apache escapes them, so text inside a request or a
//! user agent can never shift the client or the time.

use super::Skip;
use super::time::{LineTime, parse_clf};

/// Apache's `LogFormat "%h %l %u %t \"%r\" %>s %b" common`.
pub const COMMON: &str = r#"%h %l %u %t "%r" %>s %b"#;
/// Apache's `combined` format.
pub const COMBINED: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i""#;
/// Apache's `vhost_combined` format.
pub const VHOST_COMBINED: &str = r#"%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i""#;

/// What a `%` directive yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `%h`: remote host.
    Host,
    /// `%a`: client address.
    Addr,
    /// `%t`: request time in brackets.
    Time,
    /// `%r`: first line of the request.
    Request,
    /// `%s` / `%>s`: status.
    Status,
    /// `%{Referer}i`.
    Referer,
    /// `%{User-Agent}i`.
    UserAgent,
    /// The header named as the client source (`%{X-Forwarded-For}i`).
    ClientHeader,
    /// `%v` / `%V`: virtual host.
    VHost,
    /// `%u`: the authenticated user (`-` when none).
    User,
    /// `%{Host}i`: the Host header.
    HostHeader,
    /// The first other header the format logs (`%{Name}i`), in order.
    Header0,
    /// The second other header.
    Header1,
    /// The third other header.
    Header2,
    /// The fourth other header.
    Header3,
    /// Any other directive (`%l %u %b %O %D %T %p …`): read and ignored.
    Other,
}

/// Number of distinct [`Field`] values (the size of a value table).
const N_FIELDS: usize = 16;

/// Other headers (`%{Name}i`) a format may log for rules to read.
pub const MAX_HEADERS: usize = 4;

impl Field {
    /// Whether it is another header's slot, or another header past them.
    fn is_header_slot(self) -> bool {
        matches!(
            self,
            Field::Header0 | Field::Header1 | Field::Header2 | Field::Header3 | Field::Other
        )
    }

    /// The field of the `k`-th other header (`k` < [`MAX_HEADERS`]).
    pub fn header(k: u8) -> Field {
        match k {
            0 => Field::Header0,
            1 => Field::Header1,
            2 => Field::Header2,
            _ => Field::Header3,
        }
    }
}

/// A set of fields a caller needs; reading stops after the last of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs(u16);

impl Needs {
    /// Every field (what `parse` shows).
    pub const ALL: Needs = Needs(u16::MAX);
    /// Client and time only; add more with [`Needs::with`].
    pub const BASE: Needs = Needs(
        1 << Field::Host as u16
            | 1 << Field::Addr as u16
            | 1 << Field::ClientHeader as u16
            | 1 << Field::Time as u16,
    );

    /// This set plus `f`.
    pub const fn with(self, f: Field) -> Needs {
        Needs(self.0 | 1 << f as u16)
    }

    fn has(self, f: Field) -> bool {
        self.0 & (1 << f as u16) != 0
    }
}

#[derive(Debug, Clone)]
struct Token {
    literal: Vec<u8>,
    field: Field,
    quoted: bool,
    /// First byte of the next literal: where an unquoted value ends.
    stop: Option<u8>,
    /// For a time written with a pattern that may hold `stop`: the pattern,
    /// which finds where the value ends by reading it.
    read_to_end: Option<String>,
}

/// How a format writes the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    /// `%t`: `[10/Oct/2000:13:55:36 -0700]`.
    Clf,
    /// `%{…}t` directives, as one `strptime` pattern ([`super::stamp`]).
    Pattern(String),
}

/// A compiled `LogFormat`.
#[derive(Debug, Clone)]
pub struct LogFormat {
    tokens: Vec<Token>,
    /// How its time is written.
    stamp: Stamp,
    /// The other headers it logs, in order, each with its slot
    /// ([`Field::header`]) or `None` past the [`MAX_HEADERS`] slots.
    headers: Vec<(String, Option<u8>)>,
}

/// Values read from one line, indexed by [`Field`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Values<'a>([Option<&'a [u8]>; N_FIELDS]);

impl<'a> Values<'a> {
    /// The raw bytes of a field, if the format has it and the line carried it.
    pub fn get(&self, f: Field) -> Option<&'a [u8]> {
        self.0[f as usize]
    }
}

impl LogFormat {
    /// Compiles a format string as pasted from httpd.conf (`\"` is a quote).
    /// `client_header` names the header that carries the client, if any.
    pub fn compile(spec: &str, client_header: Option<&str>) -> Result<LogFormat, String> {
        LogFormat::compile_sharing(spec, client_header, &mut Vec::new())
    }

    /// Like [`LogFormat::compile`], with the slots of other headers taken
    /// from `slots`, shared by several formats (so a header has one slot in
    /// all of them), and new headers added there.
    pub fn compile_sharing(
        spec: &str,
        client_header: Option<&str>,
        slots: &mut Vec<String>,
    ) -> Result<LogFormat, String> {
        let b = spec.as_bytes();
        let mut c = Compiling { spec, ..Compiling::default() };
        let mut i = 0;
        while i < b.len() {
            i = match b[i] {
                b'\\' if i + 1 < b.len() => {
                    c.lit.push(match b[i + 1] {
                        b'n' => b'\n',
                        b't' => b'\t',
                        c => c,
                    });
                    i + 2
                }
                b'%' if b.get(i + 1) == Some(&b'%') => {
                    c.lit.push(b'%');
                    i + 2
                }
                b'%' => c.directive_at(i, client_header, slots)?,
                ch => {
                    c.lit.push(ch);
                    i + 1
                }
            };
        }
        c.finish(client_header)
    }

    /// How the format writes the time.
    pub fn stamp(&self) -> &Stamp {
        &self.stamp
    }

    /// Whether the format logs field `f`.
    pub fn has(&self, f: Field) -> bool {
        self.tokens.iter().any(|t| t.field == f)
    }

    /// The slot of another header the format logs (`%{Name}i`, any case).
    pub fn header_slot(&self, name: &str) -> Option<u8> {
        self.headers.iter().find(|h| h.0.eq_ignore_ascii_case(name)).and_then(|h| h.1)
    }

    /// The other headers the format logs, in order, with their slots.
    pub fn headers(&self) -> &[(String, Option<u8>)] {
        &self.headers
    }

    /// Reads the fields of one line. A line may end early, after the time,
    /// at a field boundary (a `combined` format also reads `common` lines).
    /// Reading stops after the last field in `needs`, so what follows it is
    /// neither read nor checked.
    pub fn read<'a>(&self, line: &'a [u8], needs: Needs) -> Result<Values<'a>, Skip> {
        let mut v = Values::default();
        let mut p = 0;
        let last = self.tokens.iter().rposition(|t| needs.has(t.field)).unwrap_or(0);
        for (k, tok) in self.tokens.iter().enumerate().take(last + 1) {
            if p == line.len() && k > 0 && v.get(Field::Time).is_some() {
                return Ok(v);
            }
            let rest = line.get(p..).ok_or(Skip::Malformed)?;
            if !starts_with(rest, &tok.literal) {
                return Err(Skip::Malformed);
            }
            p += tok.literal.len();
            let len = field_len(&line[p..], tok).ok_or(Skip::Malformed)?;
            let value = &line[p..p + len];
            if tok.field != Field::Other && v.0[tok.field as usize].is_none() {
                v.0[tok.field as usize] = Some(value);
            }
            p += len;
        }
        Ok(v)
    }
}

#[cfg(test)]
impl LogFormat {
    fn read_all<'a>(&self, line: &'a [u8]) -> Result<Values<'a>, Skip> {
        self.read(line, Needs::ALL)
    }
}

/// A format being compiled: the tokens so far, the headers, the time, and
/// the literal text since the last directive.
#[derive(Default)]
struct Compiling<'s> {
    spec: &'s str,
    tokens: Vec<Token>,
    headers: Vec<(String, Option<u8>)>,
    stamp: Option<Stamp>,
    lit: Vec<u8>,
}

impl Compiling<'_> {
    /// Takes the directive at byte `i` (a `%`); returns where the text
    /// after it starts.
    fn directive_at(
        &mut self,
        i: usize,
        client_header: Option<&str>,
        slots: &mut Vec<String>,
    ) -> Result<usize, String> {
        let b = self.spec.as_bytes();
        let (mut field, next, name) = directive(b, i + 1, client_header, slots)?;
        if field == Field::Time {
            match self.time(name)? {
                Some(f) => field = f,
                None => return Ok(next),
            }
        }
        if let Some(name) = header_name(b, i + 1).filter(|_| field.is_header_slot()) {
            let slot = slots.iter().position(|h| h.eq_ignore_ascii_case(&name));
            let slot = slot.filter(|k| *k < MAX_HEADERS).map(|k| k as u8);
            if !self.headers.iter().any(|h| h.0.eq_ignore_ascii_case(&name)) {
                self.headers.push((name, slot));
            }
        }
        if self.lit.is_empty() && !self.tokens.is_empty() {
            return Err(format!(
                "directives must be separated by text; two meet at byte {i} of {:?}",
                self.spec
            ));
        }
        let quoted = self.lit.last() == Some(&b'"');
        self.tokens.push(Token {
            literal: std::mem::take(&mut self.lit),
            field,
            quoted,
            stop: None,
            read_to_end: None,
        });
        Ok(next)
    }

    /// A time directive (`%t`, or `%{name}t`): the field it is read as, or
    /// `None` when it joins the time just before it (one value, one
    /// pattern).
    fn time(&mut self, name: &[u8]) -> Result<Option<Field>, String> {
        let piece = match name.is_empty() {
            true => None,
            false => Some(super::stamp::piece(&String::from_utf8_lossy(name))?),
        };
        let follows = self.tokens.last().is_some_and(|t| t.field == Field::Time);
        match (&mut self.stamp, piece) {
            (None, None) => self.stamp = Some(Stamp::Clf),
            (None, Some(p)) => self.stamp = Some(Stamp::Pattern(p)),
            (Some(Stamp::Pattern(p)), Some(piece)) if follows => {
                *p += &super::stamp::literal(&self.lit);
                *p += &piece;
                self.lit.clear();
                return Ok(None);
            }
            (Some(_), _) if follows => {
                return Err(format!(
                    "%t and %{{…}}t meet in {:?}: write the time as one %t, or as %{{…}}t only",
                    self.spec
                ));
            }
            // A second time elsewhere in the line: read and ignored.
            (Some(_), _) => return Ok(Some(Field::Other)),
        }
        Ok(Some(Field::Time))
    }

    /// The format, once it has a time and a client: each token knows where
    /// its value stops, and a time whose pattern may hold that byte is read
    /// to its end by the pattern.
    fn finish(mut self, client_header: Option<&str>) -> Result<LogFormat, String> {
        let spec = self.spec;
        let has = |f: Field| self.tokens.iter().any(|t| t.field == f);
        let Some(stamp) = self.stamp.take() else {
            return Err(format!("the format {spec:?} has no %t, so lines carry no time"));
        };
        if !(has(Field::Host) || has(Field::Addr) || has(Field::ClientHeader)) {
            let hint = client_header.map_or(String::new(), |h| format!(" or %{{{h}}}i"));
            return Err(format!("the format {spec:?} has no client: add %h or %a{hint}"));
        }
        let mut tokens = self.tokens;
        for k in 0..tokens.len() {
            let next = tokens.get(k + 1).map_or(&self.lit, |t| &t.literal);
            tokens[k].stop = next.first().copied();
        }
        if let Stamp::Pattern(p) = &stamp {
            let t = tokens.iter_mut().find(|t| t.field == Field::Time).expect("a time, above");
            let holds_stop =
                super::stamp::check(p, t.stop).map_err(|e| format!("{e} (in {spec:?})"))?;
            if holds_stop && !t.quoted {
                t.read_to_end = Some(p.clone());
            }
        }
        Ok(LogFormat { tokens, stamp, headers: self.headers })
    }
}

/// Parses the directive after a `%` at `b[i..]`; returns it and the index after it.
/// The name of a `%{Name}i` directive after the `%` at `b[i..]`.
fn header_name(b: &[u8], mut i: usize) -> Option<String> {
    while matches!(b.get(i), Some(b'<' | b'>' | b'!' | b',' | b'0'..=b'9')) {
        i += 1;
    }
    let rest = b.get(i..)?.strip_prefix(b"{")?;
    let end = memchr::memchr(b'}', rest)?;
    (rest.get(end + 1) == Some(&b'i')).then(|| String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Another header gets its slot in `headers`, shared by the formats, or
/// the next free one (beyond [`MAX_HEADERS`] it is read and ignored).
fn directive<'b>(
    b: &'b [u8],
    mut i: usize,
    client_header: Option<&str>,
    headers: &mut Vec<String>,
) -> Result<(Field, usize, &'b [u8]), String> {
    let mut name: &[u8] = b"";
    while matches!(b.get(i), Some(b'<' | b'>' | b'!' | b',' | b'0'..=b'9')) {
        i += 1;
    }
    if b.get(i) == Some(&b'{') {
        let end = memchr::memchr(b'}', &b[i..]).ok_or("unclosed %{ in the format")?;
        name = &b[i + 1..i + end];
        i += end + 1;
    }
    let c = *b.get(i).ok_or("the format ends with a lone %")?;
    let mut header = |n: &[u8]| {
        if client_header.is_some_and(|h| h.as_bytes().eq_ignore_ascii_case(n)) {
            Field::ClientHeader
        } else if n.eq_ignore_ascii_case(b"Referer") {
            Field::Referer
        } else if n.eq_ignore_ascii_case(b"User-Agent") {
            Field::UserAgent
        } else if n.eq_ignore_ascii_case(b"Host") {
            Field::HostHeader
        } else {
            let name = String::from_utf8_lossy(n);
            let k = match headers.iter().position(|h| h.eq_ignore_ascii_case(&name)) {
                Some(k) => k,
                None => {
                    headers.push(name.into_owned());
                    headers.len() - 1
                }
            };
            if k < MAX_HEADERS { Field::header(k as u8) } else { Field::Other }
        }
    };
    let field = match c {
        b'h' => Field::Host,
        b'a' if name.is_empty() => Field::Addr,
        b't' => Field::Time,
        b'r' => Field::Request,
        b's' => Field::Status,
        b'v' | b'V' => Field::VHost,
        b'u' => Field::User,
        b'i' => header(name),
        b'a' | b'A' | b'b' | b'B' | b'C' | b'D' | b'e' | b'f' | b'H' | b'I' | b'k' | b'l'
        | b'L' | b'm' | b'n' | b'o' | b'O' | b'p' | b'P' | b'q' | b'R' | b'S' | b'T' | b'U'
        | b'X' => Field::Other,
        other => {
            return Err(format!("unknown directive %{} in the format", char::from(other)));
        }
    };
    Ok((field, i + 1, name))
}

/// `s.starts_with(lit)` for the one- to three-byte separators of log
/// formats; a plain loop here, since the generic slice comparison calls
/// `memcmp` and showed as a quarter of the parse time in a profile.
#[inline]
fn starts_with(s: &[u8], lit: &[u8]) -> bool {
    s.len() >= lit.len() && s.iter().zip(lit).all(|(a, b)| a == b)
}

/// Length of the field value at the start of `s`.
fn field_len(s: &[u8], tok: &Token) -> Option<usize> {
    if let Some(pattern) = &tok.read_to_end {
        return super::stamp::len(pattern, s);
    }
    if tok.field == Field::Time && s.first() == Some(&b'[') {
        // `[10/Oct/2000:13:55:36 -0700]` is 28 bytes; check there first.
        if s.get(27) == Some(&b']') {
            return Some(28);
        }
        return memchr::memchr(b']', s).map(|i| i + 1);
    }
    if tok.quoted {
        return quoted_len(s);
    }
    match tok.stop {
        Some(stop) => Some(find_short(stop, s).unwrap_or(s.len())),
        None => Some(s.len()),
    }
}

/// `memchr` for separators that are usually a few bytes away (`-`, a status,
/// an address): a plain loop over the first bytes avoids the SIMD set-up
/// cost, which a profile showed as the largest single item of parsing.
#[inline]
fn find_short(stop: u8, s: &[u8]) -> Option<usize> {
    const SHORT: usize = 48;
    match s.iter().take(SHORT).position(|&c| c == stop) {
        Some(i) => Some(i),
        None if s.len() > SHORT => memchr::memchr(stop, &s[SHORT..]).map(|i| i + SHORT),
        None => None,
    }
}

/// Length up to the closing quote, skipping backslash escapes (`\"`, `\\`).
pub(crate) fn quoted_len(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(j) = memchr::memchr2(b'"', b'\\', &s[i..]) {
        if s[i + j] == b'"' {
            return Some(i + j);
        }
        i += j + 2;
        if i > s.len() {
            return None;
        }
    }
    None
}

/// Parses the `%t` value `[10/Oct/2000:13:55:36 -0700]`.
pub fn time_field(v: &[u8]) -> Option<LineTime> {
    match v {
        [b'[', inner @ .., b']'] => parse_clf(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_reads_all_fields() {
        let f = LogFormat::compile(COMBINED, None).unwrap();
        let line = br#"1.2.3.4 - bob [10/Oct/2000:13:55:36 -0700] "GET /a?b=1 HTTP/1.1" 200 2326 "http://r/" "UA \"x\" 1""#;
        let v = f.read_all(line).unwrap();
        assert_eq!(v.get(Field::Host), Some(&b"1.2.3.4"[..]));
        assert_eq!(v.get(Field::Request), Some(&b"GET /a?b=1 HTTP/1.1"[..]));
        assert_eq!(v.get(Field::Status), Some(&b"200"[..]));
        assert_eq!(v.get(Field::Referer), Some(&b"http://r/"[..]));
        assert_eq!(v.get(Field::UserAgent), Some(&br#"UA \"x\" 1"#[..]));
        assert!(time_field(v.get(Field::Time).unwrap()).is_some());
    }

    #[test]
    fn escaped_quotes_cannot_move_fields() {
        let f = LogFormat::compile(COMBINED, None).unwrap();
        let line = br#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /\" 200 1 \"x\" \"9.9.9.9 HTTP/1.1" 404 1 "-" "a\\""#;
        let v = f.read_all(line).unwrap();
        assert_eq!(v.get(Field::Status), Some(&b"404"[..]));
        assert_eq!(v.get(Field::UserAgent), Some(&br#"a\\"#[..]));
    }

    #[test]
    fn combined_accepts_common_lines_and_extra_fields() {
        let f = LogFormat::compile(COMBINED, None).unwrap();
        let v = f
            .read_all(br#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1"#)
            .unwrap();
        assert_eq!(v.get(Field::UserAgent), None);
        assert!(
            f.read_all(br#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "" 400 4 "-" "-" "-""#).is_ok()
        );
        assert!(f.read_all(b"1.2.3.4 - -").is_err());
    }

    #[test]
    fn pasted_httpd_conf_string_compiles() {
        let spec = r#"%h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\""#;
        let f = LogFormat::compile(spec, None).unwrap();
        let v = f
            .read_all(br#"::1 - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "curl""#)
            .unwrap();
        assert_eq!(v.get(Field::UserAgent), Some(&b"curl"[..]));
        let vh = LogFormat::compile(VHOST_COMBINED, None).unwrap();
        let v = vh.read_all(br#"www:443 1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "c""#).unwrap();
        assert_eq!(v.get(Field::VHost), Some(&b"www"[..]));
        assert_eq!(v.get(Field::Host), Some(&b"1.2.3.4"[..]));
    }

    #[test]
    fn every_listed_directive_compiles_and_errors_are_clear() {
        let spec = r#"%h %a %l %u %t "%r" %>s %s %b %O %D %T "%{X-Forwarded-For}i" %v %V"#;
        let f = LogFormat::compile(spec, Some("X-Forwarded-For")).unwrap();
        let v = f
            .read_all(br#"10.0.0.1 10.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" 200 200 5 9 120 0 "1.2.3.4, 10.0.0.2" www www"#)
            .unwrap();
        assert_eq!(v.get(Field::ClientHeader), Some(&b"1.2.3.4, 10.0.0.2"[..]));
        assert!(LogFormat::compile("%h %l", None).unwrap_err().contains("no %t"));
        assert!(LogFormat::compile("%l %t", None).unwrap_err().contains("no client"));
        assert!(LogFormat::compile("%h%t", None).unwrap_err().contains("separated"));
        assert!(LogFormat::compile("%h %t %Y", None).unwrap_err().contains("%Y"));
    }
}
