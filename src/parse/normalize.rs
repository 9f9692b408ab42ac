//! The request as the web server maps it: `%XX` decoded, `//` collapsed,
//! `/./` and `/../` resolved (Apache unescapes the path, then removes dot
//! segments), an absolute URI read by its path, so `/%74oday_download`,
//! `/a/../today_download` and `http://host/today_download` read as
//! `/today_download`. The query is only decoded. Pure, and without
//! allocation once its buffer has grown.

/// A normalized request line, built in reusable buffers.
#[derive(Debug, Default, Clone)]
pub struct Normalized {
    buf: Vec<u8>,
    decoded: Vec<u8>,
    path: std::ops::Range<usize>,
    query: std::ops::Range<usize>,
}

impl Normalized {
    /// Normalizes `request` (`GET /p?q HTTP/1.1`); false when there is
    /// nothing to change (no `%`, `//` or `/.` in its target), in which case
    /// the raw request is the normalized one and the buffers are left as is.
    pub fn of(&mut self, request: &[u8]) -> bool {
        // The method and the protocol hold no `%`, `//` or `/.`: the whole
        // line can be checked at once, and most requests end here.
        if !needs_work(request) {
            return false;
        }
        let Some(sp) = memchr::memchr(b' ', request) else { return false };
        let after = &request[sp + 1..];
        let end = memchr::memrchr(b' ', after).unwrap_or(after.len());
        let absolute = origin_form(&after[..end]);
        let target = absolute.unwrap_or(&after[..end]);
        let (path, query) = match memchr::memchr(b'?', target) {
            Some(q) => (&target[..q], Some(&target[q + 1..])),
            None => (target, None),
        };
        self.buf.clear();
        self.buf.extend_from_slice(&request[..=sp]);
        self.decoded.clear();
        decode_into(path, &mut self.decoded);
        if absolute.is_some() && self.decoded.is_empty() {
            // An absolute URI without a path (`http://host?q`) asks for `/`.
            self.decoded.push(b'/');
        }
        let start = self.buf.len();
        if self.decoded.first() == Some(&b'/') {
            resolve_into(&self.decoded, &mut self.buf);
        } else {
            // `*`, `host:port` (CONNECT) or no URI at all: decoded only.
            self.buf.extend_from_slice(&self.decoded);
        }
        self.path = start..self.buf.len();
        let q0 = match query {
            Some(q) => {
                self.buf.push(b'?');
                let q0 = self.buf.len();
                decode_into(q, &mut self.buf);
                q0
            }
            None => self.buf.len(),
        };
        self.query = q0..self.buf.len();
        self.buf.extend_from_slice(&after[end..]);
        true
    }

    /// The whole request line, normalized.
    pub fn request(&self) -> &[u8] {
        &self.buf
    }

    /// The path, normalized.
    pub fn path(&self) -> &[u8] {
        &self.buf[self.path.clone()]
    }

    /// The query, decoded.
    pub fn query(&self) -> &[u8] {
        &self.buf[self.query.clone()]
    }
}

/// The target without the scheme and authority of an absolute URI
/// (`http://host/login` → `/login`): servers must accept that form (RFC
/// 9112 §3.2.2), serve it by its path and log it as sent, so a rule on
/// `^/login` would miss it. `None` for any other target.
fn origin_form(target: &[u8]) -> Option<&[u8]> {
    let colon = memchr::memchr(b':', target)?;
    let scheme = &target[..colon];
    let is_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    let rest = target[colon + 1..].strip_prefix(b"//").filter(|_| is_scheme)?;
    let authority = memchr::memchr2(b'/', b'?', rest).unwrap_or(rest.len());
    Some(&rest[authority..])
}

/// Whether a request holds something normalization changes: a `%`, `//`
/// or `/.` (`memchr2` jumps from one `%` or `/` to the next).
fn needs_work(b: &[u8]) -> bool {
    memchr::memchr2_iter(b'%', b'/', b)
        .any(|i| b[i] == b'%' || matches!(b.get(i + 1), Some(b'/' | b'.')))
}

/// Appends `b` with every `%XX` (two hex digits) decoded; other `%` stay.
pub fn decode_into(mut b: &[u8], out: &mut Vec<u8>) {
    while let Some(i) = memchr::memchr(b'%', b) {
        out.extend_from_slice(&b[..i]);
        match decode_pair(b.get(i + 1..i + 3)) {
            Some(byte) => {
                out.push(byte);
                b = &b[i + 3..];
            }
            None => {
                out.push(b'%');
                b = &b[i + 1..];
            }
        }
    }
    out.extend_from_slice(b);
}

/// The byte two hex digits stand for (the `XX` of `%XX`).
pub fn decode_pair(pair: Option<&[u8]>) -> Option<u8> {
    match pair? {
        [h, l] => Some(hex(h)? << 4 | hex(l)?),
        _ => None,
    }
}

fn hex(c: &u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends the absolute path `src` with `//` collapsed and `.` and `..`
/// segments removed (RFC 3986 §5.2.4; `..` never climbs above the root).
fn resolve_into(src: &[u8], out: &mut Vec<u8>) {
    let base = out.len();
    let mut trailing = false;
    for seg in src.split(|&c| c == b'/') {
        trailing = matches!(seg, b"" | b"." | b"..");
        match seg {
            b"" | b"." => {}
            b".." => {
                let keep = memchr::memrchr(b'/', &out[base..]).unwrap_or(0);
                out.truncate(base + keep);
            }
            seg => {
                out.push(b'/');
                out.extend_from_slice(seg);
            }
        }
    }
    if trailing && !out[base..].ends_with(b"/") {
        out.push(b'/');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(request: &str) -> (String, String, String) {
        let mut n = Normalized::default();
        if !n.of(request.as_bytes()) {
            return (request.into(), String::new(), String::new());
        }
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (s(n.request()), s(n.path()), s(n.query()))
    }

    #[test]
    fn apache_maps_these_to_the_same_resource() {
        for r in [
            "GET /today%5Fdownload HTTP/1.1",
            "GET /%74oday_download HTTP/1.1",
            "GET /today_%64ownload HTTP/1.1",
            "GET //today_download HTTP/1.1",
            "GET /./today_download HTTP/1.1",
            "GET /x/../today_download HTTP/1.1",
            "GET /x/%2e%2e/today_download HTTP/1.1",
            "GET /../../today_download HTTP/1.1",
            "GET http://www.example.com/today_download HTTP/1.1",
            "GET HTTPS://www.example.com:443//x/../today%5fdownload HTTP/1.1",
            "GET h2c+x-1.y://user@host/today_download HTTP/1.1",
        ] {
            assert_eq!(norm(r).1, "/today_download", "{r}");
        }
    }

    #[test]
    fn request_path_and_query() {
        let (req, path, query) = norm("POST /a//b/./c/..?x=%41%zz&y HTTP/1.0");
        assert_eq!(
            (req.as_str(), path.as_str(), query.as_str()),
            ("POST /a/b/?x=A%zz&y HTTP/1.0", "/a/b/", "x=A%zz&y")
        );
        assert_eq!(norm("GET /plain?q=1 HTTP/1.1").0, "GET /plain?q=1 HTTP/1.1");
        assert_eq!(norm("GET /a/. HTTP/1.1").1, "/a/");
        assert_eq!(norm("GET /a/b/.. HTTP/1.1").1, "/a/");
        assert_eq!(norm("GET /.env HTTP/1.1").1, "/.env");
        assert_eq!(norm("GET / HTTP/1.1").0, "GET / HTTP/1.1");
        assert_eq!(norm("GET /%2F%2F HTTP/1.1").1, "/");
    }

    #[test]
    fn an_absolute_uri_is_read_by_its_path() {
        let (req, path, query) = norm("POST http://h.example:8080/login?u=a%41 HTTP/1.1");
        assert_eq!(
            (req.as_str(), path.as_str(), query.as_str()),
            ("POST /login?u=aA HTTP/1.1", "/login", "u=aA")
        );
        assert_eq!(norm("GET http://h.example HTTP/1.1").0, "GET / HTTP/1.1");
        assert_eq!(norm("GET http://h.example?q=1 HTTP/1.1").0, "GET /?q=1 HTTP/1.1");
        // Not a scheme: left to the path's own rules.
        assert_eq!(norm("GET /a:b//c HTTP/1.1").1, "/a:b/c");
        assert_eq!(norm("GET 1http://h/x HTTP/1.1").1, "1http://h/x");
        assert_eq!(norm("CONNECT h.example:443 HTTP/1.1").0, "CONNECT h.example:443 HTTP/1.1");
    }
}
