//! The standard error of exec actions, read for all of them on one thread
//! (a mio event loop). An action may leave something it started holding the
//! pipe — a ban script's `(sleep 3600; unban) &` — and a thread per run
//! waited on it for as long: one thread per alert, for an hour each. Here a
//! pipe that outlives its run costs an open file only, and at most
//! [`MAX_LINGERING`] such pipes stay open: beyond, the oldest is closed
//! (what still writes to it gets a broken pipe), counted and logged.

use crate::template::sanitize;
use mio::unix::pipe::Receiver;
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::process::ChildStderr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Standard error kept for the log, per run.
const STDERR_KEPT: usize = 4096;
/// How long a failed run's standard error is waited for: its pipe ends with
/// the program, unless something it started still holds it.
const STDERR_WAIT: Duration = Duration::from_millis(500);
/// Pipes of ended runs kept open at most.
pub const MAX_LINGERING: usize = 256;
/// How often pipes closed at the bound are logged (as a count).
const TELL_EVERY: Duration = Duration::from_secs(60);
const WAKER: Token = Token(0);

/// A run's standard error as the reader takes it.
#[derive(Default)]
pub struct Stderr {
    /// The first bytes, and whether the pipe has ended.
    kept: Mutex<(Vec<u8>, bool)>,
    ended: Condvar,
    /// The run has ended: its pipe may be closed at the bound.
    run_ended: AtomicBool,
}

impl Stderr {
    /// Keeps what fits of `bytes`.
    fn take(&self, bytes: &[u8]) {
        let mut k = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let room = STDERR_KEPT.saturating_sub(k.0.len());
        k.0.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The pipe has ended (or was closed).
    fn end(&self) {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        self.ended.notify_all();
    }

    /// Marks the run as ended.
    pub fn run_ended(&self) {
        self.run_ended.store(true, Ordering::Relaxed);
    }

    /// What was kept, once the pipe has ended or after [`STDERR_WAIT`] (the
    /// reader may not have taken the last of it yet when the program's exit
    /// is seen).
    pub fn text(&self) -> String {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let (kept, _) = self
            .ended
            .wait_timeout_while(kept, STDERR_WAIT, |(_, ended)| !*ended)
            .unwrap_or_else(PoisonError::into_inner);
        sanitize(kept.0.trim_ascii_end())
    }
}

/// The reader thread's inbox.
struct Reader {
    tx: crossbeam_channel::Sender<(Receiver, Arc<Stderr>)>,
    waker: Waker,
}

static READER: OnceLock<Reader> = OnceLock::new();
/// Held while the reader starts, so that two first runs start one.
static STARTING: Mutex<()> = Mutex::new(());

/// The reader, started at the first run.
fn reader() -> io::Result<&'static Reader> {
    if let Some(r) = READER.get() {
        return Ok(r);
    }
    let _one = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(r) = READER.get() {
        return Ok(r);
    }
    let r = Reader::start()?;
    Ok(READER.get_or_init(|| r))
}

/// Hands a run's standard error to the reader.
pub fn watch(pipe: ChildStderr) -> io::Result<Arc<Stderr>> {
    let reader = reader()?;
    let pipe = Receiver::from(pipe);
    pipe.set_nonblocking(true)?;
    let stderr = Arc::new(Stderr::default());
    reader
        .tx
        .send((pipe, Arc::clone(&stderr)))
        .map_err(|_| io::Error::other("the reader ended"))?;
    reader.waker.wake()?;
    Ok(stderr)
}

impl Reader {
    fn start() -> io::Result<Reader> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new().name("exec-stderr".into()).spawn(move || serve(poll, rx))?;
        Ok(Reader { tx, waker })
    }
}

/// The open pipes, by token (oldest first), and what was closed at the bound.
struct Pipes {
    open: BTreeMap<Token, (Receiver, Arc<Stderr>)>,
    next: usize,
    closed: u64,
    told_at: Option<Instant>,
}

fn serve(mut poll: Poll, rx: crossbeam_channel::Receiver<(Receiver, Arc<Stderr>)>) {
    let mut pipes = Pipes { open: BTreeMap::new(), next: 1, closed: 0, told_at: None };
    let mut events = Events::with_capacity(64);
    loop {
        if let Err(e) = poll.poll(&mut events, None)
            && e.kind() != io::ErrorKind::Interrupted
        {
            tracing::error!(error = %e, "Cannot wait for actions' standard error; it is no longer read.");
            return;
        }
        for ev in events.iter().filter(|ev| ev.token() != WAKER) {
            pipes.read_out(&poll, ev.token());
        }
        loop {
            match rx.try_recv() {
                Ok((pipe, stderr)) => pipes.add(&poll, pipe, stderr),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return,
            }
        }
    }
}

impl Pipes {
    fn add(&mut self, poll: &Poll, mut pipe: Receiver, stderr: Arc<Stderr>) {
        let token = Token(self.next);
        self.next += 1;
        if poll.registry().register(&mut pipe, token, Interest::READABLE).is_err() {
            stderr.end();
            return;
        }
        self.open.insert(token, (pipe, stderr));
        // What arrived before it was registered.
        self.read_out(poll, token);
        self.bound(poll);
    }

    /// Reads what the pipe holds; at its end, closes it.
    fn read_out(&mut self, poll: &Poll, token: Token) {
        let Some((pipe, stderr)) = self.open.get_mut(&token) else { return };
        let mut buf = [0u8; 4096];
        let ended = loop {
            match pipe.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => stderr.take(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        if ended {
            self.close(poll, token);
        }
    }

    fn close(&mut self, poll: &Poll, token: Token) {
        if let Some((mut pipe, stderr)) = self.open.remove(&token) {
            poll.registry().deregister(&mut pipe).unwrap_or(());
            stderr.end();
        }
    }

    /// Closes the oldest pipes of ended runs beyond [`MAX_LINGERING`].
    fn bound(&mut self, poll: &Poll) {
        let lingering: Vec<Token> = (self.open.iter())
            .filter(|(_, (_, s))| s.run_ended.load(Ordering::Relaxed))
            .map(|(t, _)| *t)
            .collect();
        let over = lingering.len().saturating_sub(MAX_LINGERING);
        for token in &lingering[..over] {
            self.close(poll, *token);
        }
        self.closed += over as u64;
        if over > 0 && self.told_at.is_none_or(|t| t.elapsed() >= TELL_EVERY) {
            tracing::warn!(
                closed = self.closed,
                "Actions ended but left {MAX_LINGERING} programs holding their standard error open; the oldest pipes were closed ({} so far).",
                self.closed
            );
            self.told_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program's exit can be seen before the reader took the last of its
    /// standard error (under load: "Action failed … stderr=" with nothing):
    /// the text waits for the pipe's end.
    #[test]
    fn a_runs_stderr_is_read_to_its_end() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 0.1; echo said late >&2"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = watch(child.stderr.take().unwrap()).unwrap();
        assert_eq!(stderr.text(), "said late");
        child.wait().unwrap();
    }

    /// Pipes of ended runs beyond the bound are closed, oldest first, and
    /// counted; a run still going keeps its pipe.
    #[test]
    fn lingering_pipes_are_bounded() {
        let poll = Poll::new().unwrap();
        let mut pipes = Pipes { open: BTreeMap::new(), next: 1, closed: 0, told_at: None };
        let mut writers = Vec::new();
        let mut kept = Vec::new();
        for k in 0..MAX_LINGERING + 10 {
            let (tx, rx) = mio::unix::pipe::new().unwrap();
            let s = Arc::new(Stderr::default());
            // The first run is still going.
            if k > 0 {
                s.run_ended();
            }
            pipes.add(&poll, rx, Arc::clone(&s));
            writers.push(tx);
            kept.push(s);
        }
        assert_eq!(pipes.closed, 9);
        assert_eq!(pipes.open.len(), MAX_LINGERING + 1);
        let ended = |s: &Stderr| s.kept.lock().unwrap().1;
        assert!(!ended(&kept[0]));
        assert!(kept[1..10].iter().all(|s| ended(s)));
        assert!(!kept[10..].iter().any(|s| ended(s)));
    }

    /// Only the first bytes are kept.
    #[test]
    fn what_is_kept_is_bounded() {
        let s = Stderr::default();
        s.take(&[b'x'; 3000]);
        s.take(&[b'y'; 3000]);
        s.end();
        assert_eq!(s.text().len(), STDERR_KEPT);
    }
}
