//! Parse: turns one log line into a [`Record`] — client, time and request
//! fields as byte slices of the line. Pure: no I/O, no clock, no allocation
//! per line. A line that cannot be understood yields a [`Skip`] reason, which
//! the caller counts; no input can make it panic (see the property tests).

pub mod access;
pub mod client;
pub mod errorlog;
pub mod nginx;
pub mod normalize;
pub mod stamp;
pub mod time;

pub use access::{Field, LogFormat, MAX_HEADERS, Needs};
use client::{Cidr, client_from_forwarded, parse_ip};
use std::cell::Cell;
use std::net::IpAddr;
use time::{Civil, LineTime, Today, Zone};

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The line does not have the configured format's shape.
    Malformed,
    /// The line has no client address.
    NoClient,
    /// The client field is not an IP address.
    BadClient,
    /// The timestamp is missing, malformed or an impossible date.
    BadTime,
    /// The line is longer than `max_line_bytes`.
    TooLong,
    /// The line is dated more than a day after this machine's clock when
    /// it was read (see the engine's scan).
    Future,
}

impl Skip {
    /// How many reasons there are.
    pub const COUNT: usize = 6;

    /// Every reason, in the order of [`Skip::index`].
    pub const ALL: [Skip; Skip::COUNT] = [
        Skip::Malformed,
        Skip::NoClient,
        Skip::BadClient,
        Skip::BadTime,
        Skip::TooLong,
        Skip::Future,
    ];

    /// A stable short name for summaries and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Skip::Malformed => "malformed",
            Skip::NoClient => "no_client",
            Skip::BadClient => "bad_client",
            Skip::BadTime => "bad_time",
            Skip::TooLong => "too_long",
            Skip::Future => "future",
        }
    }

    /// Position in [`Skip::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A sentence for `parse` output.
    pub fn describe(self) -> &'static str {
        match self {
            Skip::Malformed => "the line does not have the configured format",
            Skip::NoClient => "no client address found",
            Skip::BadClient => "the client is not an IP address",
            Skip::BadTime => "missing, malformed or impossible timestamp",
            Skip::TooLong => "longer than max_line_bytes",
            Skip::Future => "dated more than a day after this machine's clock",
        }
    }
}

/// Which format a line was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Apache common log format.
    Common,
    /// Apache combined log format.
    Combined,
    /// `vhost_combined` (a virtual host before the client).
    VhostCombined,
    /// A user-supplied `LogFormat` string.
    LogFormat,
    /// Apache error log (2.2 or 2.4).
    ApacheError,
    /// nginx error log.
    NginxError,
}

impl Kind {
    /// The name used in configuration and `parse` output.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Common => "common",
            Kind::Combined => "combined",
            Kind::VhostCombined => "vhost_combined",
            Kind::LogFormat => "logformat",
            Kind::ApacheError => "apache_error",
            Kind::NginxError => "nginx_error",
        }
    }
}

/// One understood line. Text fields are raw bytes as the server wrote them
/// (Apache's escapes included); absent fields are `None`.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The format the line was read as.
    pub kind: Kind,
    /// The client address (canonical: `::ffff:a.b.c.d` becomes `a.b.c.d`).
    pub client: IpAddr,
    /// The line's own time.
    pub time: LineTime,
    /// The request line (`GET /path?q HTTP/1.1`).
    pub request: Option<&'a [u8]>,
    /// The response status.
    pub status: Option<u16>,
    /// The Referer header.
    pub referer: Option<&'a [u8]>,
    /// The User-Agent header.
    pub user_agent: Option<&'a [u8]>,
    /// The virtual host, where the format has one.
    pub vhost: Option<&'a [u8]>,
    /// The authenticated user (`%u`), where the format has it (`-`: none).
    pub user: Option<&'a [u8]>,
    /// The Host header (`%{Host}i`), where the format logs it.
    pub host: Option<&'a [u8]>,
    /// Other headers the format logs, by slot ([`LogFormat::header_slot`]).
    pub headers: [Option<&'a [u8]>; MAX_HEADERS],
}

impl<'a> Record<'a> {
    fn request_parts(&self) -> (&'a [u8], &'a [u8]) {
        let r = self.request.unwrap_or(b"");
        match memchr::memchr(b' ', r) {
            Some(sp) => {
                let target = &r[sp + 1..];
                let end = memchr::memrchr(b' ', target).unwrap_or(target.len());
                (&r[..sp], &target[..end])
            }
            None => (b"", b""),
        }
    }

    /// The request method (`GET`), empty when the request has none.
    pub fn method(&self) -> &'a [u8] {
        self.request_parts().0
    }

    /// The request target without its query string.
    pub fn path(&self) -> &'a [u8] {
        let t = self.request_parts().1;
        &t[..memchr::memchr(b'?', t).unwrap_or(t.len())]
    }

    /// The query string after `?`, empty when there is none.
    pub fn query(&self) -> &'a [u8] {
        let t = self.request_parts().1;
        memchr::memchr(b'?', t).map_or(b"", |q| &t[q + 1..])
    }
}

/// The configured line format.
#[derive(Debug, Clone)]
pub enum Format {
    /// An access log format (predefined or a `LogFormat` string).
    Access(Box<LogFormat>, Kind),
    /// Apache error log.
    ApacheError,
    /// nginx error log.
    NginxError,
    /// Decide per line among the known formats.
    Auto,
}

impl Format {
    /// Whether an access format logs field `f`; `None` for error-log formats
    /// and `auto`, which find the client themselves.
    pub fn logs(&self, f: Field) -> Option<bool> {
        match self {
            Format::Access(lf, _) => Some(lf.has(f)),
            _ => None,
        }
    }

    /// Builds a format from its configuration name or a `LogFormat` string.
    pub fn from_spec(spec: &str, client_header: Option<&str>) -> Result<Format, String> {
        Format::from_spec_sharing(spec, client_header, &mut Vec::new())
    }

    /// Like [`Format::from_spec`], other headers' slots shared through
    /// `slots` (see [`LogFormat::compile_sharing`]).
    pub fn from_spec_sharing(
        spec: &str,
        client_header: Option<&str>,
        slots: &mut Vec<String>,
    ) -> Result<Format, String> {
        let mut access = |s: &str, k| {
            let f = LogFormat::compile_sharing(s, client_header, slots)?;
            Ok(Format::Access(Box::new(f), k))
        };
        match spec {
            "common" => access(access::COMMON, Kind::Common),
            "combined" => access(access::COMBINED, Kind::Combined),
            "vhost_combined" => access(access::VHOST_COMBINED, Kind::VhostCombined),
            "apache_error" => Ok(Format::ApacheError),
            "nginx_error" => Ok(Format::NginxError),
            "auto" => Ok(Format::Auto),
            s if s.contains('%') => access(s, Kind::LogFormat),
            s if s.contains('$') => access(&nginx::to_log_format(s)?, Kind::LogFormat),
            other => Err(format!(
                "unknown format {other:?}: use common, combined, vhost_combined, apache_error, \
                 nginx_error, auto, an Apache LogFormat string such as \"%h %l %u %t \\\"%r\\\" %>s %b\" \
                 or an nginx log_format string such as '$remote_addr - $remote_user [$time_local] \"$request\" $status'"
            )),
        }
    }
}

/// Where a line's client comes from.
#[derive(Debug, Clone, Default)]
pub struct ClientSource {
    /// The access-log field of the connecting client: `%h` ([`Field::Host`])
    /// or `%a` ([`Field::Addr`]); `None`: `%a` where the format logs it,
    /// else `%h`.
    pub peer: Option<Field>,
    /// Header carrying the client (`X-Forwarded-For`), if configured.
    pub header: Option<String>,
    /// Proxies whose addresses are skipped in that header.
    pub trusted: Vec<Cidr>,
}

/// The longest time field [`Parser`] keeps to reuse (`%t` is 28 bytes, an
/// ISO 8601 time with fractions and offset a few more).
const TIME_KEPT: usize = 40;

/// Parses lines of one configured format. A parser remembers the last
/// timestamp it decoded, so each thread uses its own clone (it is not `Sync`).
#[derive(Debug, Clone)]
pub struct Parser {
    format: Format,
    zone: Zone,
    /// Today's date in `zone`, for syslog stamps (set per chunk).
    today: Cell<(i64, Today)>,
    client: ClientSource,
    /// The last time field read that carries its offset, to reuse: its
    /// length and bytes (a wall time's reading depends on when it is read).
    last_time: Cell<Option<(usize, [u8; TIME_KEPT], LineTime)>>,
    /// Longer lines are skipped by the engine ([`Skip::TooLong`]).
    max_line: usize,
}

impl Parser {
    /// A parser; `zone` resolves times written without offset, and `now`
    /// (Unix seconds) dates syslog stamps, which have no year (see
    /// [`Parser::set_now`]).
    pub fn new(format: Format, zone: Zone, now: i64, client: ClientSource) -> Parser {
        let today = Cell::new((now, Today::at(now, &zone)));
        Parser { format, zone, today, client, last_time: Cell::new(None), max_line: usize::MAX }
    }

    /// This parser, its lines at most `bytes` long.
    pub fn with_max_line(mut self, bytes: usize) -> Parser {
        self.max_line = bytes;
        self
    }

    /// The longest line it reads.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The other headers lines carry, with their slots in
    /// [`Record::headers`].
    pub fn headers(&self) -> Vec<(&str, usize)> {
        match &self.format {
            Format::Access(f, _) => f
                .headers()
                .iter()
                .filter_map(|(name, slot)| Some((name.as_str(), usize::from((*slot)?))))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The time lines are read at (Unix seconds): a syslog stamp is dated
    /// in its year, or the year before for a date more than a month ahead.
    pub fn set_now(&self, now: i64) {
        if self.today.get().0 != now {
            self.today.set((now, Today::at(now, &self.zone)));
        }
    }

    /// A time written without an offset, in the zone, as read now.
    fn resolve(&self, c: &time::Civil) -> Result<LineTime, Skip> {
        self.zone.resolve_at(c, self.today.get().0).ok_or(Skip::BadTime)
    }

    /// Understands one line (without its newline), reading every field.
    pub fn parse<'a>(&self, line: &'a [u8]) -> Result<Record<'a>, Skip> {
        self.parse_needed(line, Needs::ALL)
    }

    /// Like [`Parser::parse`], but an access line is read only as far as the
    /// last field in `needs`; later fields are `None` and not checked.
    pub fn parse_needed<'a>(&self, line: &'a [u8], needs: Needs) -> Result<Record<'a>, Skip> {
        match &self.format {
            Format::Access(f, kind) => self.access(f, *kind, line, needs),
            Format::ApacheError => self.error_line(line, Kind::ApacheError),
            Format::NginxError => self.error_line(line, Kind::NginxError),
            Format::Auto => self.auto(line),
        }
    }

    fn access<'a>(
        &self,
        f: &LogFormat,
        kind: Kind,
        line: &'a [u8],
        needs: Needs,
    ) -> Result<Record<'a>, Skip> {
        // A line behind a syslog prefix keeps its own time, its `%t`.
        let v = match f.read(line, needs) {
            Err(Skip::Malformed) => self
                .behind_syslog(line, |rest, _| shaped(f.read(rest, needs)))
                .unwrap_or(Err(Skip::Malformed))?,
            v => v?,
        };
        let peer = match self.client.peer {
            Some(f) => v.get(f),
            None => v.get(Field::Addr).or(v.get(Field::Host)),
        };
        let client = match (v.get(Field::ClientHeader), &self.client.header) {
            (Some(h), Some(_)) => {
                let peer = peer.and_then(parse_ip);
                client_from_forwarded(peer, h, &self.client.trusted)
            }
            _ => peer.and_then(parse_ip),
        };
        let client = client.ok_or(if peer.is_some() { Skip::BadClient } else { Skip::NoClient })?;
        let time = self.time_of(f, v.get(Field::Time).ok_or(Skip::BadTime)?)?;
        let kind = match (kind, v.get(Field::UserAgent)) {
            (Kind::Combined, None) if needs == Needs::ALL => Kind::Common,
            (k, _) => k,
        };
        Ok(Record {
            kind,
            client,
            time,
            request: v.get(Field::Request),
            status: v.get(Field::Status).and_then(parse_status),
            referer: v.get(Field::Referer),
            user_agent: v.get(Field::UserAgent),
            vhost: v.get(Field::VHost),
            user: v.get(Field::User),
            host: v.get(Field::HostHeader),
            headers: std::array::from_fn(|k| v.get(Field::header(k as u8))),
        })
    }

    /// Decodes the time field of format `f`, reusing the last result when
    /// the field repeats (busy logs write many lines per second).
    fn time_of(&self, f: &LogFormat, field: &[u8]) -> Result<LineTime, Skip> {
        if let Some((len, bytes, t)) = self.last_time.get()
            && bytes.get(..len) == Some(field)
        {
            return Ok(t);
        }
        let t = match f.stamp() {
            access::Stamp::Clf => access::time_field(field).ok_or(Skip::BadTime)?,
            access::Stamp::Pattern(p) => match stamp::read(p, field).ok_or(Skip::BadTime)? {
                stamp::Read::At(t) => t,
                stamp::Read::Wall(c) => return self.resolve(&c),
            },
        };
        if field.len() <= TIME_KEPT {
            let mut bytes = [0; TIME_KEPT];
            bytes[..field.len()].copy_from_slice(field);
            self.last_time.set(Some((field.len(), bytes, t)));
        }
        Ok(t)
    }

    fn error_line<'a>(&self, line: &'a [u8], kind: Kind) -> Result<Record<'a>, Skip> {
        let direct = match kind {
            Kind::NginxError => errorlog::nginx(line),
            _ => errorlog::apache(line, None),
        };
        let e = match direct {
            Err(Skip::Malformed) => self.after_syslog(line, kind)?,
            other => other?,
        };
        self.error_record(e, kind)
    }

    /// Retries an error line behind one or two syslog prefixes.
    fn after_syslog<'a>(
        &self,
        line: &'a [u8],
        kind: Kind,
    ) -> Result<errorlog::ErrorLine<'a>, Skip> {
        let read = |rest, fallback| match kind {
            Kind::NginxError => errorlog::nginx(rest),
            _ => errorlog::apache(rest, fallback),
        };
        self.behind_syslog(line, |rest, fallback| shaped(read(rest, fallback)))
            .unwrap_or(Err(Skip::Malformed))
    }

    /// `attempt` on what follows one syslog prefix, then two (a relay's
    /// before the sender's), with the first prefix's time, until it gives
    /// something: nginx's `access_log syslog:…`, Apache's `CustomLog
    /// "|logger …"`, error logs through syslog.
    fn behind_syslog<'a, T>(
        &self,
        line: &'a [u8],
        mut attempt: impl FnMut(&'a [u8], Option<Civil>) -> Option<T>,
    ) -> Option<T> {
        let (mut rest, mut time) = (line, None);
        for _ in 0..2 {
            let (t, r) = errorlog::strip_syslog(rest, self.today.get().1)?;
            (rest, time) = (r, time.or(t));
            if let Some(found) = attempt(rest, time) {
                return Some(found);
            }
        }
        None
    }

    fn error_record<'a>(&self, e: errorlog::ErrorLine<'a>, kind: Kind) -> Result<Record<'a>, Skip> {
        Ok(Record {
            kind,
            client: e.client,
            time: self.resolve(&e.time)?,
            request: e.request,
            status: None,
            referer: None,
            user_agent: None,
            vhost: None,
            user: None,
            host: None,
            headers: [None; MAX_HEADERS],
        })
    }

    /// `auto`: error logs by their opening, else an access log read loosely:
    /// the client is the first word (the second, after a virtual host, when
    /// the first is not an address), the time the first `[…]` after it (an
    /// offset may be missing), the request the first quoted field after the
    /// time, then status, size, and the quoted referer and user agent.
    fn auto<'a>(&self, line: &'a [u8]) -> Result<Record<'a>, Skip> {
        match line.first() {
            Some(b'[') => return self.error_line(line, Kind::ApacheError),
            Some(c) if c.is_ascii_digit() && line.get(4) == Some(&b'/') => {
                return self.error_line(line, Kind::NginxError);
            }
            _ => {}
        }
        if let Some(r) = self.loose_access(line) {
            return r;
        }
        if let Some(r) = self.behind_syslog(line, |rest, _| self.loose_access(rest)) {
            return r;
        }
        match self.after_syslog(line, Kind::ApacheError) {
            Ok(e) => self.error_record(e, Kind::ApacheError),
            Err(_) => self.error_line(line, Kind::NginxError),
        }
    }
}

/// A reading, unless the line does not have the shape read for (then the
/// next way of reading it is tried).
fn shaped<T>(read: Result<T, Skip>) -> Option<Result<T, Skip>> {
    (!matches!(read, Err(Skip::Malformed))).then_some(read)
}

impl Parser {
    /// The loose access-line reader of `auto`; `None` when the line does not
    /// start like an access line at all.
    fn loose_access<'a>(&self, line: &'a [u8]) -> Option<Result<Record<'a>, Skip>> {
        let word = |s: &'a [u8]| &s[..memchr::memchr(b' ', s).unwrap_or(s.len())];
        let first = word(line);
        let (vhost, client_word) = match parse_ip(first) {
            Some(_) => (None, first),
            None => {
                let second = word(line.get(first.len() + 1..)?);
                parse_ip(second)?;
                (Some(&first[..memchr::memrchr(b':', first).unwrap_or(first.len())]), second)
            }
        };
        let client = parse_ip(client_word)?;
        let start = if vhost.is_some() { first.len() + 1 } else { 0 } + client_word.len();
        Some(self.loose_rest(line, start, client, vhost))
    }

    fn loose_rest<'a>(
        &self,
        line: &'a [u8],
        start: usize,
        client: IpAddr,
        vhost: Option<&'a [u8]>,
    ) -> Result<Record<'a>, Skip> {
        let rest = &line[start..];
        let open = memchr::memchr(b'[', rest).ok_or(Skip::BadTime)?;
        let close = open + memchr::memchr(b']', &rest[open..]).ok_or(Skip::BadTime)?;
        let body = &rest[open + 1..close];
        let time = match time::parse_clf(body) {
            Some(t) => t,
            None => self.resolve(&time::parse_clf_wall(body).ok_or(Skip::BadTime)?)?,
        };
        let mut fields = Quoted(&rest[close + 1..]);
        let request = fields.next_quoted();
        let status = fields.next_word().and_then(parse_status);
        let _size = fields.next_word();
        let referer = fields.next_quoted();
        let user_agent = fields.next_quoted();
        let kind = match (vhost, user_agent) {
            (Some(_), _) => Kind::VhostCombined,
            (None, Some(_)) => Kind::Combined,
            (None, None) => Kind::Common,
        };
        let (user, host, headers) = (None, None, [None; MAX_HEADERS]);
        Ok(Record {
            kind,
            client,
            time,
            request,
            status,
            referer,
            user_agent,
            vhost,
            user,
            host,
            headers,
        })
    }
}

/// Walks the quoted and bare fields after an access line's time.
struct Quoted<'a>(&'a [u8]);

impl<'a> Quoted<'a> {
    /// The next `"…"` field (escapes kept), skipping bare words before it.
    fn next_quoted(&mut self) -> Option<&'a [u8]> {
        let q = memchr::memchr(b'"', self.0)?;
        let body = &self.0[q + 1..];
        let len = access::quoted_len(body)?;
        self.0 = &body[len + 1..];
        Some(&body[..len])
    }

    /// The next bare word, if the next field is not quoted.
    fn next_word(&mut self) -> Option<&'a [u8]> {
        let s = self.0.trim_ascii_start();
        if s.first() == Some(&b'"') || s.is_empty() {
            return None;
        }
        let end = memchr::memchr(b' ', s).unwrap_or(s.len());
        self.0 = &s[end..];
        Some(&s[..end])
    }
}

fn parse_status(b: &[u8]) -> Option<u16> {
    match b {
        [a, b, c] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// For other modules' tests: Common Log Format lines and their parser.
#[cfg(test)]
pub(crate) mod testing {
    use super::{ClientSource, Format, Parser, time::Zone};

    /// The time test lines count from: 2025-07-08T15:00:00Z.
    pub const T0: i64 = 1_751_986_800;

    /// A parser of Common Log Format lines, in UTC.
    pub fn common() -> Parser {
        Parser::new(
            Format::from_spec("common", None).unwrap(),
            Zone::Utc,
            0,
            ClientSource::default(),
        )
    }

    /// A Common Log Format line of `client` asking for `path`, `t` seconds
    /// after [`T0`].
    pub fn common_line(client: &str, path: &str, t: i64) -> String {
        let stamp = jiff::Timestamp::from_second(T0 + t).unwrap();
        let stamp = stamp.strftime("%d/%b/%Y:%H:%M:%S +0000");
        format!("{client} - - [{stamp}] \"GET {path} HTTP/1.1\" 200 5\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parser(spec: &str) -> Parser {
        Parser::new(
            Format::from_spec(spec, None).unwrap(),
            Zone::Utc,
            1_700_000_000,
            ClientSource::default(),
        )
    }

    #[test]
    fn request_parts() {
        let p = parser("combined");
        let r = p.parse(br#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a/b?x=1&y HTTP/1.1" 200 1 "-" "ua""#).unwrap();
        assert_eq!(r.method(), b"GET");
        assert_eq!(r.path(), b"/a/b");
        assert_eq!(r.query(), b"x=1&y");
        assert_eq!(r.status, Some(200));
        assert_eq!(r.kind, Kind::Combined);
        let r = p.parse(br#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "-" 408 -"#).unwrap();
        assert_eq!((r.method(), r.path(), r.kind), (&b""[..], &b""[..], Kind::Common));
    }

    #[test]
    fn auto_decides_per_line() {
        let p = parser("auto");
        let cases: [(&[u8], Kind, &str); 5] = [
            (br#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "ua""#, Kind::Combined, "1.2.3.4"),
            (br#"www.example.com:443 ::ffff:5.6.7.8 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "ua""#, Kind::VhostCombined, "5.6.7.8"),
            (b"[Thu Jul 11 01:21:41 2013] [error] [client 194.228.20.113] user  not found: /", Kind::ApacheError, "194.228.20.113"),
            (b"2015/01/21 10:56:10 [error] 2833#0: *1 x, client: 5.7.9.2, server: localhost", Kind::NginxError, "5.7.9.2"),
            (b"Feb 16 22:32:48 srv httpd[22034]: [error] [client 127.0.0.1] user x not found: /", Kind::ApacheError, "127.0.0.1"),
        ];
        for (line, kind, client) in cases {
            let r = p.parse(line).unwrap();
            assert_eq!((r.kind, r.client.to_string().as_str()), (kind, client));
        }
        assert_eq!(p.parse(b"hello world").unwrap_err(), Skip::Malformed);
    }

    /// A time field read again is reused when it carries its offset (an
    /// ISO 8601 one too, not only `%t`'s 28 bytes), not when it is a wall
    /// time, whose reading depends on when it is read (a DST repeat).
    #[test]
    fn a_repeated_time_field_is_reused_only_with_its_offset() {
        let Some(berlin) = Zone::named("Europe/Berlin") else { return };
        let wall = Format::from_spec("%h [%{%Y-%m-%d %H:%M:%S}t] \"%r\"", None).unwrap();
        let p = Parser::new(wall, berlin, 0, ClientSource::default());
        let line = b"1.2.3.4 [2025-10-26 02:30:00] \"GET / HTTP/1.1\"";
        // 02:30 at +02:00 is 00:30Z; the second time, at +01:00, 01:30Z.
        let (first, second) = (1_761_438_600, 1_761_442_200);
        p.set_now(first);
        assert_eq!(p.parse(line).unwrap().time.epoch, first);
        p.set_now(second);
        assert_eq!(p.parse(line).unwrap().time.epoch, second);
        let iso = Format::from_spec("%h [%{%Y-%m-%dT%H:%M:%S%z}t] \"%r\"", None).unwrap();
        let p = Parser::new(iso, Zone::Utc, 0, ClientSource::default());
        let line = b"1.2.3.4 [2025-10-26T02:30:00+0200] \"GET / HTTP/1.1\"";
        assert_eq!(p.parse(line).unwrap().time.epoch, first);
        assert!(p.last_time.get().is_some_and(|(len, ..)| len == 24));
    }

    #[test]
    fn forwarded_client_with_trusted_proxies() {
        let spec = r#"%h %l %u %t "%r" %>s %b "%{X-Forwarded-For}i""#;
        let client = ClientSource {
            peer: None,
            header: Some("X-Forwarded-For".into()),
            trusted: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        };
        let f = Format::from_spec(spec, client.header.as_deref()).unwrap();
        let p = Parser::new(f, Zone::Utc, 1_700_000_000, client);
        let r = p.parse(br#"10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "7.7.7.7, 1.2.3.4, 10.9.9.9""#).unwrap();
        assert_eq!(r.client.to_string(), "1.2.3.4");
    }

    #[test]
    fn skip_reasons() {
        let p = parser("combined");
        assert_eq!(
            p.parse(br#"host.example - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1"#)
                .unwrap_err(),
            Skip::BadClient
        );
        assert_eq!(
            p.parse(br#"1.2.3.4 - - [31/Feb/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1"#)
                .unwrap_err(),
            Skip::BadTime
        );
        assert_eq!(p.parse(b"").unwrap_err(), Skip::Malformed);
    }

    /// Syslog stamps have no year: they are dated from the time each chunk
    /// is read, so at 2027-01-01 00:05 the last seconds of 2026 and the
    /// first of 2027 fall in one window; a date over a month ahead is last
    /// year's.
    #[test]
    fn yearless_dates_follow_the_clock_across_new_year() {
        let p = parser("apache_error");
        let line = |stamp: &str| {
            format!("{stamp} srv httpd[1]: [error] [client 192.0.2.1] File does not exist: /x")
        };
        let epoch = |stamp: &str| p.parse(line(stamp).as_bytes()).map(|r| r.time.epoch);
        p.set_now(1_798_761_600 - 60); // 2026-12-31 23:59:00 UTC
        assert_eq!(epoch("Dec 31 23:58:50"), Ok(1_798_761_530));
        p.set_now(1_798_761_600 + 300); // 2027-01-01 00:05:00 UTC
        let (dec31, jan1) = (epoch("Dec 31 23:59:55").unwrap(), epoch("Jan  1 00:00:05").unwrap());
        assert_eq!((dec31, jan1), (1_798_761_595, 1_798_761_605));
        assert!(jan1 - dec31 <= 600, "both fall in one 10-minute window");
        assert_eq!(epoch("Jan 20 00:00:00"), Ok(1_798_761_600 + 19 * 86_400));
        assert_eq!(epoch("Mar  1 00:00:00"), Ok(1_772_323_200), "2026-03-01: last year's");
    }

    #[test]
    fn auto_reads_odd_access_lines() {
        let p = parser("auto");
        let r = p.parse(br#"66.249.66.1 - - - [31/Jan/2015:14:29:44 ] fail2ban.org "GET / HTTP/1.1" 200 814 "-" "Googlebot" + 293"#).unwrap();
        assert_eq!(
            (r.client.to_string().as_str(), r.status, r.user_agent),
            ("66.249.66.1", Some(200), Some(&b"Googlebot"[..]))
        );
        assert_eq!(time::rfc3339(r.time), "2015-01-31T14:29:44+00:00");
        let r = p.parse(br#"www.sitename.com 192.0.2.222 - - [18/Aug/2024:21:08:39 +0100] "GET /x HTTP/1.1" 403 332 "-" "T""#).unwrap();
        assert_eq!((r.kind, r.vhost), (Kind::VhostCombined, Some(&b"www.sitename.com"[..])));
        assert_eq!(r.path(), b"/x");
        assert_eq!(p.parse(b"1.2.3.4 no time here").unwrap_err(), Skip::BadTime);
    }

    proptest! {
        /// Any bytes: every format either parses or names a reason, never panics.
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            for spec in ["common", "combined", "vhost_combined", "apache_error", "nginx_error", "auto"] {
                if let Ok(r) = parser(spec).parse(&b) {
                    prop_assert!(r.time.epoch > -2 * 86_400);
                }
            }
        }

        /// Text inside the request, referer and user agent cannot move the
        /// client or the time, whatever it contains (Apache escapes `"` and `\`).
        #[test]
        fn quoted_text_cannot_move_fields(
            req in "[ -~]{0,40}", ua in "[ -~]{0,40}", a in 1u8..=254, sec in 0u8..60
        ) {
            let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
            let line = format!(
                "10.0.0.{a} - - [10/Oct/2000:13:55:{sec:02} +0000] \"{}\" 200 5 \"-\" \"{}\"",
                esc(&req), esc(&ua)
            );
            let r = parser("auto").parse(line.as_bytes()).unwrap();
            prop_assert_eq!(r.client.to_string(), format!("10.0.0.{a}"));
            prop_assert_eq!(r.time.epoch % 60, i64::from(sec));
            let (want_req, want_ua) = (esc(&req), esc(&ua));
            prop_assert_eq!(r.request.unwrap(), want_req.as_bytes());
            prop_assert_eq!(r.user_agent.unwrap(), want_ua.as_bytes());
        }
    }
}
