//! The daemon's outputs at work: one thread and one bounded queue each, so
//! a slow or failing output neither blocks the others nor the reading of
//! logs.
//!
//! An alert stays queued until its output took it; a failure is logged once
//! per outage and retried with backoff (0.5 s doubling to 30 s). A queue
//! holds at most `max_queued` alerts: beyond, new alerts for that output are
//! dropped, counted, and logged once per outage. Each output journals the
//! ids it took ([`Journal`]), so an alert decided again after a crash is
//! not sent to it again.

use super::journal::Journal;
use super::{Deliver, KeyParts, OutputConfig};
use crate::alert::Alert;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// First and longest delay between retries of a failing output.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Ids remembered per output.
const REMEMBERED_IDS: usize = 100_000;

/// One output's queue, shared by the alert thread and the output's thread.
struct Queue {
    name: String,
    max: usize,
    state: Mutex<QueueState>,
    wake: Condvar,
}

#[derive(Default)]
struct QueueState {
    pending: VecDeque<Arc<Alert>>,
    closed: bool,
    /// Closed for a reload: what the output started may run on.
    handing_over: bool,
    failing: bool,
    /// Since when deliveries fail (the first failure of this outage).
    failing_since: Option<Instant>,
    /// Alerts delivered, and failed attempts, in all.
    delivered_total: u64,
    failures_total: u64,
    /// Ids this output already took (recently): never sent to it again.
    taken: HashSet<String>,
    taken_order: VecDeque<String>,
    /// Ids taken since the alert thread last asked (for the saved state).
    delivered: Vec<String>,
    /// Alerts dropped at the bound since the queue was last empty.
    dropped: u64,
    /// Alerts dropped in all.
    dropped_total: u64,
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

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panicking output thread must not take alerts down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One output's counters, as a status page shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputStats {
    /// The output's name (`syslog`, `jsonl /path`, …).
    pub name: String,
    /// Alerts delivered.
    pub delivered: u64,
    /// Failed attempts to deliver.
    pub failures: u64,
    /// Alerts waiting.
    pub queued: u64,
    /// Alerts dropped at a full queue.
    pub dropped: u64,
    /// How long deliveries have been failing, while they do.
    pub failing_for: Option<Duration>,
}

/// A view of the outputs' queues that any thread may read.
#[derive(Clone, Default)]
pub struct OutputsView {
    queues: Vec<Arc<Queue>>,
}

impl OutputsView {
    /// Each output's counters, in configuration order.
    pub fn stats(&self) -> Vec<OutputStats> {
        self.queues
            .iter()
            .map(|q| {
                let s = q.lock();
                OutputStats {
                    name: q.name.clone(),
                    delivered: s.delivered_total,
                    failures: s.failures_total,
                    queued: s.pending.len() as u64,
                    dropped: s.dropped_total,
                    failing_for: s.failing_since.map(|t| t.elapsed()),
                }
            })
            .collect()
    }
}

/// Output `i`'s journal, named by its kind and destination (its key
/// `webhook#1@d…` → `delivered-webhook-d….ids`), so it stays that output's
/// when outputs are added, removed or reordered; a second output of one kind
/// to one destination adds its rank (`-2`). A journal of an earlier build is
/// taken over by the output then in its place: one named by kind and place
/// (`delivered-webhook-1.ids`), or by place alone (`delivered-1.ids`).
fn journal_path(dir: &Path, keys: &[String], i: usize) -> PathBuf {
    let named = |stem: &str| dir.join(journal_name(stem));
    let KeyParts { kind, place, to } = KeyParts::of(&keys[i]);
    let alike = keys[..i].iter().map(|k| KeyParts::of(k)).filter(|k| (k.kind, k.to) == (kind, to));
    let alike = alike.count();
    let rank = if alike == 0 { String::new() } else { format!("-{}", alike + 1) };
    let path = named(&format!("{kind}-{to}{rank}"));
    let earlier = [place.replace('#', "-"), i.to_string()].map(|n| named(&n));
    if !path.exists()
        && let Some(old) = earlier.iter().find(|p| p.exists())
        && let Err(e) = std::fs::rename(old, &path)
    {
        tracing::warn!(from = %old.display(), to = %path.display(), error = %e, "Cannot rename an output's journal; it starts empty.");
    }
    path
}

/// A journal's file name is its stem between these (`delivered-…ids`).
const JOURNAL_PREFIX: &str = "delivered-";
const JOURNAL_SUFFIX: &str = ".ids";

/// The file name of the journal with `stem` (`webhook-3f…a1`).
fn journal_name(stem: &str) -> String {
    format!("{JOURNAL_PREFIX}{stem}{JOURNAL_SUFFIX}")
}

/// How long the journal of an output no longer configured is kept after
/// its last id: it matters only if that output comes back (a change undone)
/// while alerts it took may be decided again, from lines read again after
/// a crash — seconds to minutes after they were taken.
const UNCLAIMED_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Removes the journals in `dir` that no output in `claimed` owns and that
/// were last written more than [`UNCLAIMED_KEPT`] before `now`, so outputs
/// changed over the years leave no file each behind.
fn prune_journals(dir: &Path, claimed: &[PathBuf], now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.flatten().map(|e| e.path()) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let journal = name.starts_with(JOURNAL_PREFIX) && name.ends_with(JOURNAL_SUFFIX);
        if !journal || claimed.contains(&path) {
            continue;
        }
        let written = std::fs::metadata(&path).and_then(|m| m.modified());
        let age = written.ok().and_then(|w| now.duration_since(w).ok());
        if age.is_some_and(|a| a > UNCLAIMED_KEPT) {
            let days = age.map_or(0, |a| a.as_secs() / 86_400);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), days, "Removed the journal of an output no longer configured.")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "Cannot remove the journal of an output no longer configured.")
                }
            }
        }
    }
}

/// The outputs' names, each told apart by its place among the outputs
/// (`(output 2)`) where two are alike (two webhooks to one host): a name is
/// a metric's label and a line on the status page.
fn distinct_names(names: Vec<String>) -> Vec<String> {
    let alike = |n: &String| names.iter().filter(|m| *m == n).count() > 1;
    let told = names.iter().enumerate().map(|(i, n)| match alike(n) {
        true => format!("{n} (output {})", i + 1),
        false => n.clone(),
    });
    told.collect()
}

/// The outputs, each with its thread and queue.
pub struct Running {
    queues: Vec<Arc<Queue>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Each output's key ([`super::keys`]), in order.
    keys: Vec<String>,
}

impl Running {
    /// Starts one thread per output (`configs[i]` gives output `i`'s bound).
    /// `journal_dir` keeps, per output, the ids of the alerts it took
    /// (`delivered-jsonl-….ids`, see [`journal_path`]); a jsonl output's
    /// own file counts too.
    pub fn start(
        outputs: Vec<Box<dyn Deliver>>,
        configs: &[OutputConfig],
        journal_dir: &Path,
    ) -> io::Result<Running> {
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        let names = distinct_names(outputs.iter().map(|o| o.name()).collect());
        let keys = super::keys(configs);
        let paths: Vec<PathBuf> =
            (0..keys.len()).map(|i| journal_path(journal_dir, &keys, i)).collect();
        prune_journals(journal_dir, &paths, SystemTime::now());
        for (i, ((out, cfg), name)) in outputs.into_iter().zip(configs).zip(names).enumerate() {
            let (journal, ids) = Journal::open(&paths[i])?;
            let mut st = QueueState::default();
            for id in ids.iter().chain(&out.delivered_ids()) {
                st.remember(id);
            }
            let q = Arc::new(Queue {
                name,
                max: cfg.max_queued,
                state: Mutex::new(st),
                wake: Condvar::new(),
            });
            let shared = Arc::clone(&q);
            let t = std::thread::Builder::new()
                .name(format!("output-{i}"))
                .spawn(move || deliver_loop(out, &shared, journal))?;
            queues.push(q);
            threads.push(t);
        }
        Ok(Running { queues, threads, keys })
    }

    /// Queues an alert for the outputs whose bit is set in `mask`, except
    /// those that already took it; returns the bits of the outputs that
    /// queued it (a full queue drops it, counted).
    pub fn push(&self, alert: &Arc<Alert>, mask: u64) -> u64 {
        let mut queued = 0;
        for (i, q) in self.queues.iter().enumerate() {
            if mask & (1 << i) == 0 {
                continue;
            }
            let mut st = q.lock();
            if alert.id.as_ref().is_some_and(|id| st.taken.contains(id)) {
                continue;
            }
            if st.pending.len() >= q.max {
                if st.dropped == 0 {
                    tracing::error!(output = %q.name, max_queued = q.max, "Queue full: new alerts for this output are dropped (and counted) until it takes alerts again.");
                }
                st.dropped += 1;
                st.dropped_total += 1;
                continue;
            }
            st.pending.push_back(Arc::clone(alert));
            queued |= 1 << i;
            q.wake.notify_one();
        }
        queued
    }

    /// A view of the queues for other threads (a status page).
    pub fn view(&self) -> OutputsView {
        OutputsView { queues: self.queues.clone() }
    }

    /// Each output's key ([`super::keys`]): what names it across a change
    /// of the configuration, for the alerts saved held for it.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Every output's bit.
    pub fn all(&self) -> u64 {
        (0..self.queues.len()).fold(0, |m, i| m | 1 << i)
    }

    /// Whether output `i` already took alert `id`.
    pub fn took(&self, i: usize, id: &str) -> bool {
        self.queues.get(i).is_some_and(|q| q.lock().taken.contains(id))
    }

    /// Alerts not yet delivered everywhere, oldest first, each with the bits
    /// of the outputs that still need it. Linear in what is held.
    pub fn held(&self) -> Vec<(Arc<Alert>, u64)> {
        let mut out: Vec<(Arc<Alert>, u64)> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        for (i, q) in self.queues.iter().enumerate() {
            for a in &q.lock().pending {
                let known = a.id.as_ref().and_then(|id| at.get(id).copied());
                match known {
                    Some(k) => out[k].1 |= 1 << i,
                    None => {
                        if let Some(id) = &a.id {
                            at.insert(id.clone(), out.len());
                        }
                        out.push((Arc::clone(a), 1 << i));
                    }
                }
            }
        }
        out
    }

    /// The ids each output took since the last call, by output.
    pub fn take_delivered(&self) -> Vec<(usize, Vec<String>)> {
        self.queues
            .iter()
            .enumerate()
            .map(|(i, q)| (i, std::mem::take(&mut q.lock().delivered)))
            .filter(|(_, ids)| !ids.is_empty())
            .collect()
    }

    /// Alerts dropped at full queues, by output.
    pub fn dropped(&self) -> Vec<u64> {
        self.queues.iter().map(|q| q.lock().dropped_total).collect()
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
    pub fn stop(self, grace: Duration) -> Vec<(Arc<Alert>, u64)> {
        self.close(grace, false)
    }

    /// [`Running::stop`] for a reload: the outputs hand over what they
    /// started ([`Deliver::hand_over`]) rather than end it.
    pub fn hand_over(self, grace: Duration) -> Vec<(Arc<Alert>, u64)> {
        self.close(grace, true)
    }

    fn close(self, grace: Duration, handing_over: bool) -> Vec<(Arc<Alert>, u64)> {
        for q in &self.queues {
            let mut s = q.lock();
            (s.closed, s.handing_over) = (true, handing_over);
            q.wake.notify_all();
        }
        let end = Instant::now() + grace;
        while Instant::now() < end && self.threads.iter().any(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let held = self.held();
        for t in self.threads.into_iter().filter(|t| t.is_finished()) {
            t.join().unwrap_or(());
        }
        held
    }
}

/// An output's thread: delivers its queue in order, retrying with backoff,
/// and journals the ids it delivered.
fn deliver_loop(mut out: Box<dyn Deliver>, q: &Queue, mut journal: Journal) {
    let mut delay = RETRY_FIRST;
    while let Some(alert) = next_alert(out.as_mut(), q, &mut journal) {
        match out.send(&alert) {
            Ok(()) => {
                if let Some(id) = &alert.id {
                    journal.record(id);
                }
                let mut s = q.lock();
                if let Some(id) = &alert.id {
                    s.remember(id);
                    s.delivered.push(id.clone());
                }
                s.pending.pop_front();
                s.delivered_total += 1;
                s.failing_since = None;
                if std::mem::take(&mut s.failing) {
                    tracing::warn!(output = %q.name, held = s.pending.len(), "Output works again; delivering held alerts.");
                }
                if s.pending.is_empty() && s.dropped > 0 {
                    tracing::warn!(output = %q.name, dropped = s.dropped, "Queue emptied; alerts dropped while it was full are lost for this output.");
                    s.dropped = 0;
                }
                delay = RETRY_FIRST;
            }
            Err(e) => {
                let mut s = q.lock();
                s.failures_total += 1;
                s.failing_since.get_or_insert_with(Instant::now);
                if !s.failing {
                    s.failing = true;
                    tracing::error!(output = %q.name, error = %e, "Cannot deliver alerts; holding them and retrying.");
                }
                journal.sync();
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
    journal.sync();
    if q.lock().handing_over {
        out.hand_over();
    } else {
        out.shutdown();
    }
}

/// The next alert to deliver, once the output can take it; `None` when the
/// queue is closed and nothing more will be delivered (the queue is empty,
/// the output fails, or it is busy: what is left stays held).
fn next_alert(out: &mut dyn Deliver, q: &Queue, journal: &mut Journal) -> Option<Arc<Alert>> {
    loop {
        let again = out.idle();
        let busy = out.busy();
        {
            let s = q.lock();
            if s.closed && (s.pending.is_empty() || s.failing || busy.is_some()) {
                return None;
            }
            if busy.is_none()
                && let Some(a) = s.pending.front()
            {
                return Some(Arc::clone(a));
            }
        }
        // Nothing to do now: make what was journaled durable before waiting.
        journal.sync();
        let s = q.lock();
        if s.closed || (busy.is_none() && !s.pending.is_empty()) {
            continue;
        }
        match busy.or(again) {
            Some(d) => drop(q.wake.wait_timeout(s, d).unwrap_or_else(PoisonError::into_inner)),
            None => drop(q.wake.wait(s).unwrap_or_else(PoisonError::into_inner)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn only_journals_no_output_owns_and_unwritten_for_a_week_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let files = [
            ("delivered-webhook-aa.ids", 30, true), // owned: kept, however old
            ("delivered-webhook-bb.ids", 8, false), // no owner for over a week: removed
            ("delivered-webhook-cc.ids", 6, true),  // no owner, but written lately: kept
            ("delivered-3.ids", 8, false),          // an earlier build's name, no owner
            ("positions.bin", 30, true),            // not a journal
        ];
        for (name, days, _) in files {
            let f = std::fs::File::create(d.join(name)).unwrap();
            f.set_modified(now - day * days).unwrap();
        }
        prune_journals(d, &[d.join("delivered-webhook-aa.ids")], now);
        for (name, _, kept) in files {
            assert_eq!(d.join(name).exists(), kept, "{name}");
        }
    }

    #[test]
    fn a_journal_is_named_by_its_outputs_destination_and_an_earlier_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let keys: Vec<String> =
            ["jsonl#1@aa", "webhook#1@bb", "webhook#2@bb"].map(String::from).to_vec();
        // By place alone (the oldest builds).
        std::fs::write(d.join("delivered-1.ids"), "id-a\n").unwrap();
        let path = journal_path(d, &keys, 1);
        assert_eq!(path, d.join("delivered-webhook-bb.ids"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "id-a\n");
        assert!(!d.join("delivered-1.ids").exists());
        // A second output of one kind to one destination: its rank.
        assert_eq!(journal_path(d, &keys, 2), d.join("delivered-webhook-bb-2.ids"));
        // By kind and place (the build before), preferred to one by place.
        std::fs::write(d.join("delivered-0.ids"), "id-b\n").unwrap();
        std::fs::write(d.join("delivered-jsonl-1.ids"), "id-c\n").unwrap();
        let path = journal_path(d, &keys, 0);
        assert_eq!(path, d.join("delivered-jsonl-aa.ids"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "id-c\n");
        // Once named by destination, an earlier file left beside it is not taken.
        std::fs::write(d.join("delivered-jsonl-1.ids"), "id-d\n").unwrap();
        assert_eq!(std::fs::read_to_string(journal_path(d, &keys, 0)).unwrap(), "id-c\n");
    }

    #[test]
    fn outputs_alike_are_told_apart_by_their_place() {
        let names = ["webhook https://h/…", "jsonl /a", "webhook https://h/…"];
        assert_eq!(
            distinct_names(names.map(String::from).to_vec()),
            ["webhook https://h/… (output 1)", "jsonl /a", "webhook https://h/… (output 3)"]
        );
    }

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

    fn alert(n: u64) -> Arc<Alert> {
        Arc::new(Alert { id: Some(format!("a{n}")), line: n, ..Alert::sample() })
    }

    fn config(max_queued: usize) -> OutputConfig {
        OutputConfig { kind: super::super::OutputKind::Jsonl("/x".into()), max_queued, rules: None }
    }

    #[test]
    fn new_alerts_do_not_cut_the_backoff_short() {
        let dir = tempfile::tempdir().unwrap();
        let attempts = Arc::new(AtomicUsize::new(0));
        let down: Vec<Box<dyn Deliver>> = vec![Box::new(Down(Arc::clone(&attempts)))];
        let running = Running::start(down, &[config(1000)], dir.path()).unwrap();
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

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let outs: Vec<Box<dyn Deliver>> = vec![
            Box::new(Down(Arc::new(AtomicUsize::new(0)))),
            Box::new(Down(Arc::new(AtomicUsize::new(0)))),
        ];
        let running = Running::start(outs, &[config(100_000), config(10)], dir.path()).unwrap();
        let mut masks = Vec::new();
        for n in 0..200_000 {
            masks.push(running.push(&alert(n), running.all()));
        }
        assert_eq!(masks[..10].iter().filter(|&&m| m == 0b11).count(), 10);
        assert!(masks[10..100_000].iter().all(|&m| m == 0b01));
        assert!(masks[100_000..].iter().all(|&m| m == 0));
        assert_eq!(running.dropped(), [100_000, 199_990]);
        let held = running.held();
        assert_eq!(held.len(), 100_000);
        assert_eq!(held.iter().filter(|(_, m)| *m == 0b11).count(), 10);
        running.stop(Duration::from_millis(100));
    }
}
