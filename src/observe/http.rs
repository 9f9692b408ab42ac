//! The daemon's HTTP endpoint: `/metrics`, `/healthz`, `/api/status` and
//! the status page `/`. Hand-written (design/CRATES.md: no maintained small
//! server fits; tiny_http has an open request-smuggling issue): GET and HEAD
//! only, one request per connection, a bounded request head.
//!
//! One thread serves every connection at once with an event loop (mio), so
//! a client that connects and sends nothing (a browser's spare connection,
//! a TCP health check, a hostile one) delays no other: each connection has
//! a deadline, at most [`MAX_CONNECTIONS`] are open (a new one closes the
//! oldest), and the engine is never touched.

use super::{Board, metrics, status};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The status page, self-contained (no external scripts, fonts or CDNs).
const PAGE: &str = include_str!("page.html");
/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// A longer head is read on to its end and discarded, up to this, so that
/// its 431 reply is not lost to a reset (closing with unread bytes sends
/// one); a browser's cookies for the whole domain can pass `MAX_HEAD`.
const MAX_DISCARDED: usize = 256 * 1024;
/// The whole head must arrive within this: a client trickling a byte at a
/// time is closed then.
const HEAD_DEADLINE: Duration = Duration::from_secs(3);
/// A reply must be taken within this.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// How long `/api/status` waits for the engine's nearest clients.
const PROBE_WAIT: Duration = Duration::from_secs(2);
/// How often a reply waiting for the engine's probe looks for its answer.
const PROBE_POLL: Duration = Duration::from_millis(5);
/// Connections open at once; a new one beyond closes the oldest (a request
/// is answered in milliseconds, so the oldest is the one that sends nothing).
pub const MAX_CONNECTIONS: usize = 64;
/// How often the connections closed at the bound are logged (as a count).
const TELL_EVERY: Duration = Duration::from_secs(60);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// The running server.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
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
        let mut listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = Serving {
            poll,
            listener,
            board,
            token,
            stop: Arc::clone(&stop),
            conns: HashMap::new(),
            next: 2,
            closed_at_bound: 0,
            told_at: None,
        };
        let thread = std::thread::Builder::new().name("http".into()).spawn(move || server.run())?;
        Ok(Server { addr, stop, waker, thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    /// Stops the thread: the flag, then its event loop woken.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let (Ok(()), Some(t)) = (self.waker.wake(), self.thread.take()) {
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

/// Where a connection is.
enum Phase {
    /// Its request head arriving, and the bytes of it discarded past
    /// `MAX_HEAD`.
    Reading(Vec<u8>, usize),
    /// `/api/status` waiting for the engine's probe, until the instant; the
    /// reply is for HEAD (no body) or not.
    Probing(Instant, bool),
    /// Its reply going out, from the offset.
    Writing(Vec<u8>, usize),
}

/// One open connection.
struct Conn {
    stream: TcpStream,
    opened: Instant,
    /// Closed unanswered when this passes.
    deadline: Instant,
    phase: Phase,
}

/// The event loop's state.
struct Serving {
    poll: Poll,
    listener: TcpListener,
    board: Arc<Board>,
    token: Option<String>,
    stop: Arc<AtomicBool>,
    conns: HashMap<Token, Conn>,
    next: usize,
    closed_at_bound: u64,
    told_at: Option<Instant>,
}

impl Serving {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::SeqCst) {
            if let Err(e) = self.poll.poll(&mut events, Some(self.wait())) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "The HTTP endpoint stops: waiting for connections failed.");
                return;
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    token => self.advance(token),
                }
            }
            self.answer_probes();
            self.close_late();
        }
    }

    /// How long the loop may sleep: until the nearest deadline, or a short
    /// while when a reply waits for the engine's probe.
    fn wait(&self) -> Duration {
        let now = Instant::now();
        let probing = self.conns.values().any(|c| matches!(c.phase, Phase::Probing(..)));
        let nearest = self.conns.values().map(|c| c.deadline.saturating_duration_since(now)).min();
        let wait = nearest.unwrap_or(Duration::from_secs(60));
        if probing { wait.min(PROBE_POLL) } else { wait }
    }

    /// Takes every pending connection; at the bound, the oldest goes.
    fn accept(&mut self) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(error = %e, "HTTP connection not accepted");
                    return;
                }
            };
            if self.conns.len() >= MAX_CONNECTIONS {
                self.close_oldest();
            }
            let token = Token(self.next);
            self.next += 1;
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
                tracing::debug!(error = %e, "HTTP connection not watched");
                continue;
            }
            let now = Instant::now();
            let phase = Phase::Reading(Vec::with_capacity(1024), 0);
            self.conns
                .insert(token, Conn { stream, opened: now, deadline: now + HEAD_DEADLINE, phase });
            // A request already there arrived before the registration.
            self.advance(token);
        }
    }

    fn close_oldest(&mut self) {
        let oldest = self.conns.iter().min_by_key(|(_, c)| c.opened).map(|(t, _)| *t);
        oldest.and_then(|t| self.conns.remove(&t));
        self.closed_at_bound += 1;
        if self.told_at.is_none_or(|t| t.elapsed() >= TELL_EVERY) {
            tracing::warn!(
                closed = self.closed_at_bound,
                "HTTP: {MAX_CONNECTIONS} connections were open, the oldest closed unanswered for a new one ({} so far).",
                self.closed_at_bound
            );
            self.told_at = Some(Instant::now());
        }
    }

    /// Reads or writes what the connection's phase wants; closes it when
    /// done or broken.
    fn advance(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        let keep = match progress(conn, &self.board, self.token.as_deref()) {
            Ok(keep) => keep,
            Err(e) => {
                tracing::debug!(error = %e, "HTTP request not answered");
                false
            }
        };
        if !keep {
            self.conns.remove(&token);
        }
    }

    /// Replies that waited for the engine's probe go out once it answered
    /// or their wait is over.
    fn answer_probes(&mut self) {
        let now = Instant::now();
        let pending = self.board.probe_pending();
        let ready: Vec<Token> = self
            .conns
            .iter()
            .filter(
                |(_, c)| matches!(c.phase, Phase::Probing(until, _) if !pending || now >= until),
            )
            .map(|(t, _)| *t)
            .collect();
        for token in ready {
            if let Some(conn) = self.conns.get_mut(&token)
                && let Phase::Probing(_, head_only) = conn.phase
            {
                conn.start_writing(status_reply(&self.board), head_only);
                self.advance(token);
            }
        }
    }

    /// Closes the connections whose deadline passed.
    fn close_late(&mut self) {
        let now = Instant::now();
        self.conns.retain(|_, c| c.deadline > now);
    }
}

impl Conn {
    fn start_writing(&mut self, reply: Reply, head_only: bool) {
        let body = if head_only { "" } else { reply.body.as_str() };
        let out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
            reply.status,
            reply.content_type,
            reply.body.len()
        );
        self.deadline = Instant::now() + WRITE_DEADLINE;
        self.phase = Phase::Writing(out.into_bytes(), 0);
    }
}

/// Moves a connection on as far as its socket allows: false when it is to
/// be closed (answered, or the client went away).
fn progress(conn: &mut Conn, board: &Board, token: Option<&str>) -> io::Result<bool> {
    match &mut conn.phase {
        Phase::Reading(head, discarded) => {
            if !read_head(&mut conn.stream, head, discarded)? {
                return Ok(true);
            }
            if *discarded > 0 {
                let text = "the request head is over 8 KiB (cookies of the whole domain?)\n";
                conn.start_writing(Reply::text("431 Request Header Fields Too Large", text), false);
                return progress(conn, board, token);
            }
            let head = String::from_utf8_lossy(head).into_owned();
            let head_only = head.starts_with("HEAD ");
            match answer(&head, board, token) {
                Some(reply) => conn.start_writing(reply, head_only),
                None => {
                    conn.deadline = Instant::now() + PROBE_WAIT + WRITE_DEADLINE;
                    conn.phase = Phase::Probing(Instant::now() + PROBE_WAIT, head_only);
                    return Ok(true);
                }
            }
            progress(conn, board, token)
        }
        Phase::Probing(..) => Ok(true),
        Phase::Writing(out, sent) => {
            while *sent < out.len() {
                match conn.stream.write(&out[*sent..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => *sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(false)
        }
    }
}

/// The reply to a request head, or `None` for `/api/status`, which waits
/// for the engine's probe first (asked for here).
fn answer(head: &str, board: &Board, token: Option<&str>) -> Option<Reply> {
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method != "GET" && method != "HEAD" {
        return Some(Reply::text("405 Method Not Allowed", "only GET and HEAD\n"));
    }
    if token.is_some_and(|t| !authorized(head, query, t)) {
        return Some(Reply::text("401 Unauthorized", "a bearer token is required (http.token)\n"));
    }
    Some(match path {
        "/metrics" => Reply {
            status: "200 OK",
            content_type: metrics::CONTENT_TYPE,
            body: metrics::render(board),
        },
        "/healthz" => {
            // Asking keeps the check honest: a probe left unanswered means
            // the engine no longer follows.
            board.ask_probe();
            let problems = board.problems();
            match problems.is_empty() {
                true => Reply::text("200 OK", "ok\n"),
                false => Reply::text("503 Service Unavailable", problems.join("\n") + "\n"),
            }
        }
        "/api/status" => {
            board.ask_probe();
            return None;
        }
        "/" => {
            Reply { status: "200 OK", content_type: "text/html; charset=utf-8", body: PAGE.into() }
        }
        _ => Reply::text("404 Not Found", "not found: try /, /metrics, /healthz or /api/status\n"),
    })
}

/// `/api/status`'s reply, as of now.
fn status_reply(board: &Board) -> Reply {
    let body = serde_json::to_string(&status::document(board)).unwrap_or_default();
    Reply { status: "200 OK", content_type: "application/json", body }
}

/// Reads what has arrived of the request line and headers (a body, if any,
/// is not read): true once the head is whole.
fn read_head(
    stream: &mut TcpStream,
    head: &mut Vec<u8>,
    discarded: &mut usize,
) -> io::Result<bool> {
    let mut buf = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(true);
        }
        if head.len() >= MAX_HEAD {
            // Past the bound only the last bytes are kept, to find the end.
            let keep = head.len() - 3;
            *discarded += keep;
            head.drain(..keep);
            if *discarded > MAX_DISCARDED {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too long"));
            }
        }
        match stream.read(&mut buf) {
            // A client that stops sending before the blank line still gets
            // an answer to what it sent.
            Ok(0) if !head.is_empty() => return Ok(true),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
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
