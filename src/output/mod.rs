//! Outputs: where alerts go.
//!
//! - `syslog`: the local socket, UDP or TCP (see [`syslog`]);
//! - `jsonl`: one JSON object per alert (the fields of `replay --json`),
//!   appended and flushed before the alert counts as delivered;
//! - `exec`: a program run per alert (see [`exec`]);
//! - `webhook`: an HTTP(S) POST per alert (see [`webhook`]).
//!
//! In the daemon every output has its own thread and queue ([`Running`]): a
//! slow or failing output neither blocks the others nor the reading of logs.
//! An alert stays queued until its output took it; a failure is logged once
//! per outage and retried with backoff (0.5 s doubling to 30 s). The queues
//! are saved with each checkpoint, so held alerts survive a restart.

pub mod exec;
pub mod jsonl;
pub mod syslog;
pub mod webhook;

use crate::alert::Alert;
use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// First and longest delay between retries of a failing output.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Something that takes alerts one at a time.
pub trait Deliver: Send {
    /// A name for messages (`syslog tcp://…`).
    fn name(&self) -> String;
    /// Delivers one alert; an error means it was not delivered.
    fn send(&mut self, alert: &Alert) -> io::Result<()>;
    /// Ids of alerts this output already holds (for the jsonl file).
    fn delivered_ids(&self) -> Vec<String> {
        Vec::new()
    }
    /// Called when the queue is empty; returns when to be called again.
    fn idle(&mut self) -> Option<Duration> {
        None
    }
    /// `Some(d)` when it cannot take an alert now: ask again after `d`.
    fn busy(&mut self) -> Option<Duration> {
        None
    }
    /// Called once when the output stops: end what it started.
    fn shutdown(&mut self) {}
    /// Waits for work started by `send` to end and reports how it ended
    /// (for `test-alert`; an exec action runs after `send` returns).
    fn settle(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One output alerts go to, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputConfig {
    /// The system log.
    Syslog(syslog::SyslogSettings),
    /// One JSON object per alert, appended to a file.
    Jsonl(PathBuf),
    /// A program run per alert.
    Exec(exec::ExecSettings),
    /// An HTTP(S) POST per alert.
    Webhook(webhook::WebhookSettings),
}

/// An output that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot open the jsonl output {path}: {error} (check that its directory exists and is writable)"
)]
pub struct OutputError {
    /// The file.
    pub path: String,
    /// Why.
    pub error: io::Error,
}

/// Opens every configured output, in configuration order.
pub fn open(configs: &[OutputConfig]) -> Result<Vec<Box<dyn Deliver>>, OutputError> {
    configs
        .iter()
        .map(|c| -> Result<Box<dyn Deliver>, OutputError> {
            Ok(match c {
                OutputConfig::Jsonl(path) => Box::new(jsonl::Jsonl::open(path)?),
                OutputConfig::Syslog(s) => Box::new(syslog::Syslog::new(s.clone())),
                OutputConfig::Exec(e) => Box::new(exec::Exec::new(e.clone())),
                OutputConfig::Webhook(w) => Box::new(webhook::Webhook::new(w.clone())),
            })
        })
        .collect()
}

/// One output's queue, shared by the alert thread and the output's thread.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

#[derive(Default)]
struct QueueState {
    pending: VecDeque<Alert>,
    closed: bool,
    failing: bool,
    /// Ids this output already took (recently): never sent to it again.
    taken: HashSet<String>,
    taken_order: VecDeque<String>,
}

impl QueueState {
    fn remember(&mut self, id: &str) {
        if self.taken.insert(id.to_string()) {
            self.taken_order.push_back(id.to_string());
        }
        while self.taken_order.len() > REMEMBERED_IDS {
            if let Some(old) = self.taken_order.pop_front() {
                self.taken.remove(&old);
            }
        }
    }
}

/// Ids remembered per output.
const REMEMBERED_IDS: usize = 100_000;
/// The journal of ids an output took is cut back to its tail past this size.
const JOURNAL_MAX: u64 = 8 << 20;
const JOURNAL_KEEP: u64 = 1 << 20;

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panicking output thread must not take alerts down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The outputs, each with its thread and queue.
pub struct Running {
    queues: Vec<Arc<Queue>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts one thread per output. `journal_dir` keeps, per output, the
    /// ids of the alerts it took (`delivered-N.ids`), so an alert decided
    /// again after a crash is not sent again; a jsonl output's own file counts too.
    pub fn start(outputs: Vec<Box<dyn Deliver>>, journal_dir: &Path) -> io::Result<Running> {
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for (i, out) in outputs.into_iter().enumerate() {
            let q = Arc::new(Queue::default());
            let journal_path = journal_dir.join(format!("delivered-{i}.ids"));
            {
                let mut st = q.lock();
                for id in read_journal(&journal_path).into_iter().chain(out.delivered_ids()) {
                    st.remember(&id);
                }
            }
            let journal =
                OpenOptions::new().create(true).append(true).open(&journal_path).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot open {}: {e}", journal_path.display()))
                })?;
            let shared = Arc::clone(&q);
            let t = std::thread::Builder::new()
                .name(format!("output-{i}"))
                .spawn(move || deliver_loop(out, &shared, journal))?;
            queues.push(q);
            threads.push(t);
        }
        Ok(Running { queues, threads })
    }

    /// Queues an alert for the outputs whose bit is set in `mask`, except
    /// those that already took it.
    pub fn push(&self, alert: &Alert, mask: u64) {
        for (i, q) in self.queues.iter().enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            let mut st = q.lock();
            if alert.id.as_ref().is_some_and(|id| st.taken.contains(id)) {
                continue;
            }
            st.pending.push_back(alert.clone());
            q.wake.notify_one();
        }
    }

    /// Every output's bit.
    pub fn all(&self) -> u64 {
        (0..self.queues.len()).fold(0, |m, i| m | 1 << i)
    }

    /// Alerts not yet delivered everywhere, oldest first, each with the bits
    /// of the outputs that still need it.
    pub fn held(&self) -> Vec<(Alert, u64)> {
        held(&self.queues)
    }

    /// Waits up to `limit` for the queues of working outputs to empty.
    pub fn drain(&self, limit: Duration) {
        let end = Instant::now() + limit;
        while Instant::now() < end
            && self.queues.iter().any(|q| {
                let s = q.lock();
                !s.pending.is_empty() && !s.failing
            })
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the threads, waiting up to `grace` for each (one stuck in a
    /// slow delivery is left behind); returns the alerts still held.
    pub fn stop(self, grace: Duration) -> Vec<(Alert, u64)> {
        for q in &self.queues {
            q.lock().closed = true;
            q.wake.notify_all();
        }
        let end = Instant::now() + grace;
        while Instant::now() < end && self.threads.iter().any(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        for t in self.threads.into_iter().filter(|t| t.is_finished()) {
            t.join().unwrap_or(());
        }
        held(&self.queues)
    }
}

/// The alerts in the queues, oldest first, each with a bit per queue holding it.
fn held(queues: &[Arc<Queue>]) -> Vec<(Alert, u64)> {
    let mut out: Vec<(Alert, u64)> = Vec::new();
    for (i, q) in queues.iter().enumerate() {
        for a in &q.lock().pending {
            match out.iter_mut().find(|(b, _)| b.id.is_some() && b.id == a.id) {
                Some((_, mask)) => *mask |= 1 << i,
                None => out.push((a.clone(), 1 << i)),
            }
        }
    }
    out
}

/// An output's thread: delivers its queue in order, retrying with backoff,
/// and journals the ids it delivered.
fn deliver_loop(mut out: Box<dyn Deliver>, q: &Queue, mut journal: File) {
    let mut delay = RETRY_FIRST;
    while let Some(alert) = next_alert(out.as_mut(), q) {
        match out.send(&alert) {
            Ok(()) => {
                if let Some(id) = &alert.id {
                    // Not synced: it has to survive a crash of logwarden, not of the machine.
                    journal.write_all(format!("{id}\n").as_bytes()).unwrap_or(());
                }
                let mut s = q.lock();
                if let Some(id) = &alert.id {
                    s.remember(id);
                }
                s.pending.pop_front();
                if std::mem::take(&mut s.failing) {
                    tracing::warn!(output = %out.name(), held = s.pending.len(), "Output works again; delivering held alerts.");
                }
                delay = RETRY_FIRST;
            }
            Err(e) => {
                let mut s = q.lock();
                if !s.failing {
                    s.failing = true;
                    tracing::error!(output = %out.name(), error = %e, "Cannot deliver alerts; holding them and retrying.");
                }
                // New alerts wake the queue, but only closing cuts the pause
                // short: a flood of alerts must not turn into a flood of
                // connection attempts to an output that is down.
                let retry_at = Instant::now() + delay;
                while !s.closed && Instant::now() < retry_at {
                    let left = retry_at.saturating_duration_since(Instant::now());
                    s = q.wake.wait_timeout(s, left).unwrap_or_else(PoisonError::into_inner).0;
                }
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
    out.shutdown();
}

/// The next alert to deliver, once the output can take it; `None` when the
/// queue is closed and nothing more will be delivered (the queue is empty,
/// the output fails, or it is busy: what is left stays held).
fn next_alert(out: &mut dyn Deliver, q: &Queue) -> Option<Alert> {
    loop {
        let again = out.idle();
        let busy = out.busy();
        let s = q.lock();
        if s.closed && (s.pending.is_empty() || s.failing || busy.is_some()) {
            return None;
        }
        if busy.is_none()
            && let Some(a) = s.pending.front()
        {
            return Some(a.clone());
        }
        match busy.or(again) {
            Some(d) => drop(q.wake.wait_timeout(s, d).unwrap_or_else(PoisonError::into_inner)),
            None => drop(q.wake.wait(s).unwrap_or_else(PoisonError::into_inner)),
        }
    }
}

/// Ids in an output's journal (its tail), cutting a long journal back.
fn read_journal(path: &Path) -> Vec<String> {
    let Ok(bytes) = read_tail(path, JOURNAL_KEEP) else { return Vec::new() };
    // The first line of a tail may be cut; it is skipped.
    let text = String::from_utf8_lossy(&bytes);
    let ids: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
    if std::fs::metadata(path).is_ok_and(|m| m.len() > JOURNAL_MAX) {
        let kept: String = ids.iter().map(|id| format!("{id}\n")).collect();
        std::fs::write(path, kept).unwrap_or(());
    }
    ids
}

/// The last `n` bytes of a file.
pub(crate) fn read_tail(path: &Path, n: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(n)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An output that is down: counts the attempts.
    struct Down(Arc<AtomicUsize>);

    impl Deliver for Down {
        fn name(&self) -> String {
            "down".into()
        }
        fn send(&mut self, _: &Alert) -> io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(io::Error::other("down"))
        }
    }

    fn alert(n: u64) -> Alert {
        Alert {
            id: Some(format!("a{n}")),
            rule: "r".into(),
            key: "k".into(),
            count: 1,
            threshold: 1,
            window_s: 1,
            time: "t".into(),
            file: "f".into(),
            line: n,
            message: "m".into(),
        }
    }

    #[test]
    fn new_alerts_do_not_cut_the_backoff_short() {
        let dir = tempfile::tempdir().unwrap();
        let attempts = Arc::new(AtomicUsize::new(0));
        let running =
            Running::start(vec![Box::new(Down(Arc::clone(&attempts)))], dir.path()).unwrap();
        for n in 0..50 {
            running.push(&alert(n), running.all());
            std::thread::sleep(Duration::from_millis(4));
        }
        // 200 ms of alerts fall inside the first 500 ms pause: one attempt.
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        let held = running.stop(Duration::from_secs(1));
        assert_eq!(held.len(), 50);
        assert!(held.iter().all(|(_, mask)| *mask == 1));
    }
}
