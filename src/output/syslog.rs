//! Syslog: the formatter and the senders, written here rather than taken
//! from the `syslog` crate, which writes RFC 3164 time stamps in UTC (a
//! local syslog daemon expects local time) and has no RFC 6587
//! octet-counting framing for TCP; the real rsyslog in the tests decides.
//!
//! - `unix:/dev/log`: one datagram per message, RFC 3164 without a host name
//!   (as glibc's `syslog()` sends it) or RFC 5424;
//! - `udp://host:port`: one datagram, with our host name;
//! - `tcp://host:port`: octet-counted frames (`LEN SP MSG`, RFC 6587 §3.4.1)
//!   on a connection kept open and re-made after a failure.
//!
//! A message longer than the transport takes is cut, with a visible marker.

use super::Deliver;
use crate::alert::Alert;
use crate::template::sanitize;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Longest message sent over a local socket or TCP (rsyslog's default limit).
const MAX_STREAM: usize = 8192;
/// Longest UDP datagram every receiver must accept (RFC 5426 §3.2).
const MAX_UDP: usize = 2048;
const CUT_MARKER: &str = "...[cut]";
const TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of a syslog output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSettings {
    /// `unix:/dev/log`, `udp://host:port` or `tcp://host:port`.
    pub target: String,
    /// `rfc3164` or `rfc5424`.
    pub format: String,
    /// Facility number (RFC 5424 §6.2.1).
    pub facility: u8,
    /// Severity number, 0 (emerg) to 7 (debug).
    pub severity: u8,
    /// TAG / APP-NAME.
    pub tag: String,
    /// Add our process id (`TAG[pid]:`, PROCID); off by default, as
    /// `logger -t TAG` sends it.
    pub pid: bool,
}

/// RFC 5424 facility names and their numbers.
pub const FACILITIES: [(&str, u8); 24] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("security", 13),
    ("console", 14),
    ("solaris-cron", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Severity names (with the aliases syslog tools accept) and their numbers.
pub const SEVERITIES: [(&str, u8); 11] = [
    ("emerg", 0),
    ("panic", 0),
    ("alert", 1),
    ("crit", 2),
    ("err", 3),
    ("error", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

/// The number of a facility or severity name in `table`.
pub fn lookup(table: &[(&str, u8)], name: &str) -> Option<u8> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Whether `target` names a transport: `unix:/path`, `udp://host:port` or
/// `tcp://host:port`.
pub fn valid_target(target: &str) -> bool {
    target.strip_prefix("unix:").is_some_and(|p| p.starts_with('/'))
        || ["udp://", "tcp://"].iter().any(|s| {
            target.strip_prefix(s).is_some_and(|hp| {
                hp.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            })
        })
}

/// Whether syslog keeps `tag` whole: 1 to 32 printable ASCII characters
/// without spaces.
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= 32 && tag.bytes().all(|c| c.is_ascii_graphic())
}

/// Where messages go.
enum Transport {
    Unix(std::path::PathBuf),
    Udp(String),
    Tcp(String),
}

/// One configured syslog destination with its connection.
pub struct Syslog {
    cfg: SyslogSettings,
    transport: Transport,
    hostname: String,
    pid: u32,
    tcp: Option<TcpStream>,
}

impl Syslog {
    /// A sender for a validated output (nothing is opened yet).
    pub fn new(cfg: SyslogSettings) -> Syslog {
        let t = &cfg.target;
        let transport = if let Some(p) = t.strip_prefix("unix:") {
            Transport::Unix(p.into())
        } else if let Some(a) = t.strip_prefix("udp://") {
            Transport::Udp(a.into())
        } else {
            Transport::Tcp(t.trim_start_matches("tcp://").into())
        };
        Syslog { cfg, transport, hostname: hostname(), pid: std::process::id(), tcp: None }
    }

    /// Sends one alert; an error means it was not delivered.
    fn send_one(&mut self, alert: &Alert) -> io::Result<()> {
        let local = matches!(self.transport, Transport::Unix(_));
        let limit = if matches!(self.transport, Transport::Udp(_)) { MAX_UDP } else { MAX_STREAM };
        let msg = self.format(alert, local, limit);
        match &self.transport {
            Transport::Unix(path) => UnixDatagram::unbound()?.send_to(&msg, path).map(|_| ()),
            Transport::Udp(addr) => {
                let sock =
                    UdpSocket::bind(("0.0.0.0", 0)).or_else(|_| UdpSocket::bind(("::", 0)))?;
                sock.connect(addr.as_str())?;
                sock.send(&msg).map(|_| ())
            }
            Transport::Tcp(addr) => {
                let frame = [format!("{} ", msg.len()).as_bytes(), &msg].concat();
                let result = self
                    .tcp_stream(addr.clone())
                    .and_then(|s| s.write_all(&frame).and_then(|()| s.flush()));
                if result.is_err() {
                    self.tcp = None;
                }
                result
            }
        }
    }

    fn tcp_stream(&mut self, addr: String) -> io::Result<&mut TcpStream> {
        // A kept connection the server has closed would swallow the next
        // write; a non-blocking peek shows the close first.
        if let Some(s) = &self.tcp {
            let closed = s.set_nonblocking(true).is_err()
                || !matches!(s.peek(&mut [0u8; 1]), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock);
            if closed || s.set_nonblocking(false).is_err() {
                self.tcp = None;
            }
        }
        if self.tcp.is_none() {
            let sa = addr.to_socket_addrs()?.next().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no address for {addr}"))
            })?;
            let s = TcpStream::connect_timeout(&sa, TIMEOUT)?;
            s.set_write_timeout(Some(TIMEOUT))?;
            self.tcp = Some(s);
        }
        Ok(self.tcp.as_mut().expect("connected above"))
    }

    /// The message bytes in the configured format.
    pub fn format(&self, alert: &Alert, local: bool, limit: usize) -> Vec<u8> {
        let pri = u16::from(self.cfg.facility) * 8 + u16::from(self.cfg.severity);
        let time: Option<jiff::Timestamp> = alert.time.parse().ok();
        let body = sanitize(alert.message.as_bytes());
        let head = if self.cfg.format == "rfc5424" {
            let ts =
                time.map_or("-".to_string(), |t| t.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string());
            let procid = if self.cfg.pid { self.pid.to_string() } else { "-".to_string() };
            format!("<{pri}>1 {ts} {} {} {procid} - - ", self.hostname, self.cfg.tag)
        } else {
            // RFC 3164 stamps are local time without a year.
            let local_time = time.map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::system()));
            let ts = local_time.map_or_else(
                || "Jan  1 00:00:00".to_string(),
                |z| z.strftime("%b %e %H:%M:%S").to_string(),
            );
            let host = if local { String::new() } else { format!("{} ", self.hostname) };
            let pid = if self.cfg.pid { format!("[{}]", self.pid) } else { String::new() };
            format!("<{pri}>{ts} {host}{}{pid}: ", self.cfg.tag)
        };
        cut([head.as_bytes(), body.as_bytes()].concat(), limit)
    }
}

impl Deliver for Syslog {
    fn name(&self) -> String {
        format!("syslog {}", self.cfg.target)
    }

    fn send(&mut self, alert: &Alert) -> io::Result<()> {
        self.send_one(alert)
    }
}

/// Cuts `msg` to `limit` bytes at a character boundary, ending in a marker.
fn cut(mut msg: Vec<u8>, limit: usize) -> Vec<u8> {
    if msg.len() <= limit {
        return msg;
    }
    let mut end = limit - CUT_MARKER.len();
    while end > 0 && (msg[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    msg.truncate(end);
    msg.extend_from_slice(CUT_MARKER.as_bytes());
    msg
}

/// This machine's name (the kernel's, as the farm's default node name),
/// as syslog shows it: printable ASCII, else `localhost`.
fn hostname() -> String {
    let name = rustix::system::uname().nodename().to_string_lossy().into_owned();
    match !name.is_empty() && name.bytes().all(|c| c.is_ascii_graphic()) {
        true => name,
        false => "localhost".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(message: &str) -> Alert {
        Alert { message: message.into(), ..Alert::sample() }
    }

    fn sender(format: &str, target: &str) -> Syslog {
        Syslog::new(SyslogSettings {
            target: target.into(),
            format: format.into(),
            facility: 1,
            severity: 3,
            tag: "AlbumMonitor".into(),
            pid: false,
        })
    }

    fn with_pid(format: &str, target: &str) -> Syslog {
        let mut s = sender(format, target);
        s.cfg.pid = true;
        s
    }

    #[test]
    fn rfc5424_has_pri_version_time_host_app() {
        let s = sender("rfc5424", "udp://127.0.0.1:514");
        let m = String::from_utf8(s.format(&alert("hello"), false, MAX_UDP)).unwrap();
        let want =
            format!("<11>1 2026-11-28T20:45:07+00:00 {} AlbumMonitor - - - hello", s.hostname);
        assert_eq!(m, want);
        let s = with_pid("rfc5424", "udp://127.0.0.1:514");
        let m = String::from_utf8(s.format(&alert("hello"), false, MAX_UDP)).unwrap();
        let want = format!(
            "<11>1 2026-11-28T20:45:07+00:00 {} AlbumMonitor {} - - hello",
            s.hostname, s.pid
        );
        assert_eq!(m, want);
    }

    #[test]
    fn rfc3164_local_has_no_host_and_one_line() {
        let s = sender("rfc3164", "unix:/dev/log");
        let m = String::from_utf8(s.format(&alert("a\nb\r<13>c"), true, MAX_STREAM)).unwrap();
        assert!(m.starts_with("<11>Nov 28 "), "{m}");
        assert!(m.ends_with(" AlbumMonitor: a\\x0ab\\x0d<13>c"), "{m}");
        assert!(!m.contains('\n'));
        let s = with_pid("rfc3164", "unix:/dev/log");
        let m = String::from_utf8(s.format(&alert("a"), true, MAX_STREAM)).unwrap();
        assert!(m.ends_with(&format!(" AlbumMonitor[{}]: a", s.pid)), "{m}");
    }

    #[test]
    fn long_messages_are_cut_with_a_marker() {
        let s = sender("rfc3164", "udp://127.0.0.1:514");
        let m = s.format(&alert(&"é".repeat(3000)), false, MAX_UDP);
        assert!(m.len() <= MAX_UDP);
        assert!(m.ends_with(CUT_MARKER.as_bytes()));
        assert!(String::from_utf8(m).is_ok());
    }
}
