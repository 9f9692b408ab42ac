//! Error logs: Apache 2.2 / 2.4 and nginx, and the syslog prefix before them.
//!
//! The client of an Apache error line is the first `[client …]` (or
//! `[remote …]`) group among the bracketed groups that open the line; a
//! `[client …]` inside the message text is attacker-controlled and ignored.
//! nginx appends `, client: A, server: S[, request: "…"][, host: "…"]…` to the
//! message; since the message itself may carry such text (a user name), the
//! first candidate whose remainder has exactly that shape wins.

use super::Skip;
use super::client::parse_ip;
use super::time::{Civil, Today, parse_apache_error, parse_nginx, parse_syslog};
use memchr::memmem;
use std::net::IpAddr;

/// What an error line yields: client, wall time, and the request if shown.
#[derive(Debug, Clone, Copy)]
pub struct ErrorLine<'a> {
    /// The client address.
    pub client: IpAddr,
    /// The wall time (error logs carry no UTC offset).
    pub time: Civil,
    /// The request line, when the server wrote it (`request: "…"`).
    pub request: Option<&'a [u8]>,
}

/// Strips a syslog prefix: `Feb 15 16:23:00 host tag[pid]: `, with an RFC
/// 3339 time (rsyslog's high-precision file format, `2026-12-01T02:00:00.123+00:00
/// host tag: `) or, without the date (journal export), `host tag[pid]: `.
/// Returns the prefix's time (a traditional one) and the rest.
pub fn strip_syslog(line: &[u8], today: Today) -> Option<(Option<Civil>, &[u8])> {
    let (time, rest) = match parse_syslog(line, today) {
        Some(t) => (Some(t), line.get(16..)?),
        None => (None, skip_rfc3339(line)),
    };
    let host_end = memchr::memchr(b' ', rest)?;
    let tag = &rest[host_end + 1..];
    let colon = memmem::find(tag, b": ")?;
    let tag_name = &tag[..colon];
    let plausible = !tag_name.is_empty()
        && tag_name.len() <= 64
        && tag_name.iter().all(|&c| c.is_ascii_graphic() && c != b'"');
    plausible.then(|| (time, &tag[colon + 2..]))
}

/// `line` after a leading RFC 3339 time and its space, if it has one.
fn skip_rfc3339(line: &[u8]) -> &[u8] {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let dated = line.len() > shape.len()
        && line
            .iter()
            .zip(shape)
            .all(|(&c, &s)| if s == b'd' { c.is_ascii_digit() } else { c == s });
    match memchr::memchr(b' ', line).filter(|_| dated) {
        Some(end) => &line[end + 1..],
        None => line,
    }
}

/// Parses an Apache error line (`[date] [level] [pid …] [client A:port] msg`).
/// `fallback` is the time from a syslog prefix, used when no date bracket leads.
pub fn apache<'a>(line: &'a [u8], fallback: Option<Civil>) -> Result<ErrorLine<'a>, Skip> {
    let mut rest = line;
    let mut time = None;
    let mut client = None;
    let mut first = true;
    while let [b'[', body @ ..] = rest {
        let (group, after) = bracket_group(body).ok_or(Skip::Malformed)?;
        if first && let Some(t) = parse_apache_error(group) {
            time = Some(t);
        } else if client.is_none()
            && let Some(addr) = group.strip_prefix(b"client ").or(group.strip_prefix(b"remote "))
        {
            client = Some(parse_ip(addr).ok_or(Skip::BadClient)?);
        }
        first = false;
        rest = after.strip_prefix(b" ").unwrap_or(after);
    }
    if first {
        return Err(Skip::Malformed);
    }
    let time = time.or(fallback).ok_or(Skip::BadTime)?;
    Ok(ErrorLine { client: client.ok_or(Skip::NoClient)?, time, request: None })
}

/// Splits `body` (just after a `[`) at its closing bracket; a client group
/// may hold a bracketed IPv6 address (`[client [2001:db8::1]:51548]`).
fn bracket_group(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let skip = match body.strip_prefix(b"client [").or(body.strip_prefix(b"remote [")) {
        Some(inner) => 8 + memchr::memchr(b']', inner)? + 1,
        None => 0,
    };
    let end = skip + memchr::memchr(b']', &body[skip..])?;
    Some((&body[..end], &body[end + 1..]))
}

/// Parses an nginx error line (`2015/01/21 10:56:10 [error] 1#0: *5 msg, client: A, …`).
pub fn nginx(line: &[u8]) -> Result<ErrorLine<'_>, Skip> {
    let time = parse_nginx(line).ok_or(Skip::Malformed)?;
    if line.get(19..21) != Some(b" [") {
        return Err(Skip::Malformed);
    }
    let mut fallback = None;
    for at in memmem::find_iter(line, b", client: ") {
        let tail = &line[at + 10..];
        match nginx_suffix(tail) {
            Some((client, request)) => return Ok(ErrorLine { client, time, request }),
            None => fallback = Some(tail),
        }
    }
    // No candidate has the exact shape (a truncated or unusual line): the last one.
    let tail = fallback.ok_or(Skip::NoClient)?;
    let end = memchr::memchr(b',', tail).unwrap_or(tail.len());
    let client = parse_ip(&tail[..end]).ok_or(Skip::BadClient)?;
    Ok(ErrorLine { client, time, request: None })
}

/// Checks that `tail` (after `client: `) reads `A, server: S` followed only by
/// `, key: "value"` pairs nginx appends; returns the client and the request.
fn nginx_suffix(tail: &[u8]) -> Option<(IpAddr, Option<&[u8]>)> {
    let comma = memchr::memchr(b',', tail)?;
    let client = parse_ip(&tail[..comma])?;
    let mut rest = tail[comma..].strip_prefix(b", server: ")?;
    let server_end = memmem::find(rest, b", ").unwrap_or(rest.len());
    if rest[..server_end].contains(&b'"') {
        return None;
    }
    rest = &rest[server_end..];
    let mut request = None;
    loop {
        rest = rest.trim_ascii_end();
        if rest.is_empty() {
            return Some((client, request));
        }
        rest = rest.strip_prefix(b", ")?;
        let colon = memmem::find(rest, b": \"")?;
        let key = &rest[..colon];
        if !matches!(key, b"request" | b"subrequest" | b"upstream" | b"host" | b"referrer") {
            return None;
        }
        let value = &rest[colon + 3..];
        let close = memchr::memchr(b'"', value)?;
        if key == b"request" {
            request = Some(&value[..close]);
        }
        rest = &value[close + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::time::Zone;

    /// 2020-09-13.
    fn today() -> Today {
        Today::at(1_600_000_000, &Zone::Utc)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn apache_22_and_24() {
        let l = apache(
            b"[Thu Jul 11 01:21:41 2013] [error] [client 194.228.20.113] user  not found: /",
            None,
        )
        .unwrap();
        assert_eq!(l.client, ip("194.228.20.113"));
        assert_eq!(l.time.hour, 1);
        let l = apache(b"[Sat Jul 20 22:11:44.147674 2013] [authz_owner:error] [pid 17540:tid 1] [client [2001:db8::80da:af6b:8b2c]:51548] AH01637: x", None).unwrap();
        assert_eq!(l.client, ip("2001:db8::80da:af6b:8b2c"));
        let l = apache(b"[Mon Nov 06 13:39:56.637868 2023] [auth_basic:error] [pid 3] [remote 192.0.2.111:35924] AH01618: x", None).unwrap();
        assert_eq!(l.client, ip("192.0.2.111"));
    }

    #[test]
    fn apache_ignores_client_in_message() {
        let l = apache(b"[Thu Jul 11 01:21:41 2013] [error] [client 1.1.1.1] File does not exist: /x [client 6.6.6.6]", None).unwrap();
        assert_eq!(l.client, ip("1.1.1.1"));
        let e = apache(
            b"[Thu Jul 11 01:21:41 2013] [error] File does not exist: [client 6.6.6.6]",
            None,
        );
        assert_eq!(e.unwrap_err(), Skip::NoClient);
    }

    #[test]
    fn syslog_prefixes() {
        let line = b"Feb 15 16:23:00 srv httpd/backend1[22034]: [authz_core:error] [pid 22036] [client 192.0.2.2:59392] AH01630: x";
        let (t, rest) = strip_syslog(line, today()).unwrap();
        let l = apache(rest, t).unwrap();
        assert_eq!((l.client, l.time.day), (ip("192.0.2.2"), 15));
        let (t, rest) =
            strip_syslog(b"host nginx[23141]: host nginx: 2025/09/07 21:20:40 [error] x", today())
                .unwrap();
        assert!(t.is_none());
        let (_, rest) = strip_syslog(rest, today()).unwrap();
        assert!(rest.starts_with(b"2025/"));
    }

    #[test]
    fn nginx_client_and_request() {
        let l = nginx(br#"2015/01/21 10:56:10 [error] 2833#0: *16336 open() "/x" failed (2: No such file or directory), client: 5.7.9.2, server: localhost, request: "GET /cgi-bin/php4 HTTP/1.1", host: "1.2.3.4""#).unwrap();
        assert_eq!(l.client, ip("5.7.9.2"));
        assert_eq!(l.request, Some(&b"GET /cgi-bin/php4 HTTP/1.1"[..]));
        let l = nginx(b"2020/11/25 14:42:16 [crit] 7#7: *2 SSL_do_handshake() failed, client: 142.93.180.14, server: 0.0.0.0:443").unwrap();
        assert_eq!(l.client, ip("142.93.180.14"));
    }

    #[test]
    fn nginx_user_name_injection() {
        let line = br#"2014/04/03 22:20:40 [error] 30708#0: *3 user "test": password mismatch, client: 127.0.0.1, server: test, request: "GET / HTTP/1.1", host: "localhost:8443"": was not found in "/etc/nginx/.htpasswd", client: 192.0.2.2, server: , request: "GET / HTTP/1.1", host: "localhost:8443""#;
        assert_eq!(nginx(line).unwrap().client, ip("192.0.2.2"));
    }
}
