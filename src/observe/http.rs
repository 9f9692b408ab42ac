//! The daemon's HTTP endpoint: `/metrics`, `/healthz`, `/api/status` and
//! the status page `/`. Hand-written on `std::net` (design/CRATES.md: no
//! maintained small server fits; tiny_http has an open request-smuggling
//! issue): one thread, GET and HEAD only, one request per connection, a
//! bounded request head and timeouts, so a slow or hostile client holds it
//! for at most a few seconds and never touches the engine.

use super::{Board, metrics, status};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The status page, self-contained (no external scripts, fonts or CDNs).
const PAGE: &str = include_str!("page.html");
/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole head must arrive within this: a client trickling a byte at a
/// time cannot hold the thread longer.
const HEAD_DEADLINE: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `/api/status` waits for the engine's nearest clients.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// The running server.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Listens on `listen` and serves `board`; with a `token`, every
    /// request must carry it (`Authorization: Bearer …` or `?token=…`).
    pub fn start(
        listen: SocketAddr,
        token: Option<String>,
        board: Arc<Board>,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("http".into()).spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = conn else { continue };
                if let Err(e) = handle(stream, &board, token.as_deref()) {
                    tracing::debug!(error = %e, "HTTP request not answered");
                }
            }
        })?;
        Ok(Server { addr, stop, thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    /// Stops the thread: the flag, then a connection to wake its accept.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let wake = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let (Ok(_), Some(t)) = (wake, self.thread.take()) {
            t.join().unwrap_or(());
        }
    }
}

/// A response: status line, content type, body.
struct Reply {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn text(status: &'static str, body: impl Into<String>) -> Reply {
        Reply { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }
}

fn handle(mut stream: TcpStream, board: &Board, token: Option<&str>) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let reply = if method != "GET" && method != "HEAD" {
        Reply::text("405 Method Not Allowed", "only GET and HEAD\n")
    } else if token.is_some_and(|t| !authorized(&head, query, t)) {
        Reply::text("401 Unauthorized", "a bearer token is required (http.token)\n")
    } else {
        route(path, board)
    };
    let body = if method == "HEAD" { "" } else { reply.body.as_str() };
    write!(
        stream,
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        reply.status,
        reply.content_type,
        reply.body.len()
    )?;
    stream.flush()
}

fn route(path: &str, board: &Board) -> Reply {
    match path {
        "/metrics" => Reply {
            status: "200 OK",
            content_type: metrics::CONTENT_TYPE,
            body: metrics::render(board),
        },
        "/healthz" => {
            // Asking keeps the check honest: a probe left unanswered means
            // the engine no longer follows.
            board.ask_probe(Duration::ZERO);
            let problems = board.problems();
            match problems.is_empty() {
                true => Reply::text("200 OK", "ok\n"),
                false => Reply::text("503 Service Unavailable", problems.join("\n") + "\n"),
            }
        }
        "/api/status" => {
            board.ask_probe(PROBE_WAIT);
            let doc = status::document(board);
            let body = serde_json::to_string(&doc).unwrap_or_default();
            Reply { status: "200 OK", content_type: "application/json", body }
        }
        "/" => {
            Reply { status: "200 OK", content_type: "text/html; charset=utf-8", body: PAGE.into() }
        }
        _ => Reply::text("404 Not Found", "not found: try /, /metrics, /healthz or /api/status\n"),
    }
}

/// The request line and headers (the body, if any, is not read).
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let started = std::time::Instant::now();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too long"));
        }
        if started.elapsed() > HEAD_DEADLINE {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "request head too slow"));
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Whether the request carries `token`, as a bearer token or `?token=`.
fn authorized(head: &str, query: &str, token: &str) -> bool {
    let bearer = head.lines().skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let value = value.trim();
        name.trim().eq_ignore_ascii_case("authorization").then_some(value)?.strip_prefix("Bearer ")
    });
    let param = query.split('&').find_map(|kv| kv.strip_prefix("token="));
    [bearer, param].into_iter().flatten().any(|given| same(given.as_bytes(), token.as_bytes()))
}

/// Compares without stopping at the first difference (no timing hint).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_comes_as_a_bearer_header_or_a_query_parameter() {
        let head = "GET /metrics HTTP/1.1\r\nHost: x\r\nauthorization: Bearer s3cret\r\n\r\n";
        assert!(authorized(head, "", "s3cret"));
        assert!(!authorized(head, "", "s3cre"));
        assert!(!authorized(head, "", "s3crets"));
        let bare = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(!authorized(bare, "", "s3cret"));
        assert!(authorized(bare, "a=1&token=s3cret", "s3cret"));
        assert!(!authorized(bare, "token=other", "s3cret"));
    }
}
