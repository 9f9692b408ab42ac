//! What a running daemon shows about itself: the engine's counters, the
//! files it follows, the clients nearest each threshold, recent alerts and
//! the outputs' state. The alert thread writes them on a [`Board`] once per
//! source event (never per line); the HTTP thread ([`http`]) reads the board
//! and serves it as Prometheus metrics ([`metrics`]), a health check, JSON
//! ([`status`]) and a status page.

pub mod http;
pub mod metrics;
pub mod status;

use crate::alert::Alert;
use crate::output::OutputsView;
use crate::pipeline::{FileStatus, NEAREST, Status, Summary};
use crate::rules::WindowSpec;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Recent alerts kept for the status page.
pub const RECENT_ALERTS: usize = 100;
/// Throughput points: one per 10 s over 15 minutes.
const POINT_EVERY: Duration = Duration::from_secs(10);
const POINTS: usize = 90;
/// State save durations' buckets, in seconds (1 ms to 16 s).
const SAVE_BUCKETS: [f64; 8] = [0.001, 0.004, 0.016, 0.064, 0.25, 1.0, 4.0, 16.0];
/// A probe unanswered this long means the engine does not follow.
pub const PROBE_TOO_LONG: Duration = Duration::from_secs(10);

/// `[http]`: where the endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Address and port.
    pub listen: std::net::SocketAddr,
    /// Required as a bearer token (or `?token=`) when set.
    pub token: Option<String>,
    /// An output failing longer than this makes `/healthz` answer 503.
    pub unhealthy_after: Duration,
}

/// One rule as the board shows it.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    /// Its name.
    pub name: String,
    /// Its threshold, window and cooldown.
    pub spec: WindowSpec,
}

/// The shared view of a running daemon.
pub struct Board {
    /// The node's name in a farm.
    pub node: Option<String>,
    /// The rules, in order.
    pub rules: Vec<RuleInfo>,
    started: Instant,
    outputs: OutputsView,
    unhealthy_after: Duration,
    state: Mutex<Published>,
    /// How long state saves take, in seconds.
    pub saves: Histogram,
    /// Asks the follower for a probe (with a wake-up).
    probe: Arc<AtomicBool>,
    wake: crossbeam_channel::Sender<()>,
}

/// What the alert thread last published.
#[derive(Default)]
struct Published {
    summary: Summary,
    /// The files followed, by tag id (the order they were opened in).
    files: BTreeMap<u64, FileStatus>,
    watermark: u32,
    /// Per rule, the clients nearest the threshold (rendered).
    nearest: Vec<Vec<(String, u32)>>,
    nearest_at: Option<SystemTime>,
    alerts: VecDeque<Arc<Alert>>,
    /// (Unix seconds, lines read so far).
    points: VecDeque<(u64, u64)>,
    last_point: Option<Instant>,
    probe_asked: Option<Instant>,
    /// Since when saving state fails (none while saves succeed).
    save_failing: Option<Instant>,
    /// Saves that failed, in all.
    save_failures: u64,
}

impl Board {
    /// A board for a daemon with `rules` and `outputs` (unhealthy when one
    /// fails longer than `unhealthy_after`); `probe` and `wake` reach the
    /// follower.
    pub fn new(
        node: Option<String>,
        rules: Vec<RuleInfo>,
        outputs: OutputsView,
        unhealthy_after: Duration,
        probe: Arc<AtomicBool>,
        wake: crossbeam_channel::Sender<()>,
    ) -> Board {
        Board {
            node,
            rules,
            started: Instant::now(),
            outputs,
            unhealthy_after,
            state: Mutex::new(Published::default()),
            saves: Histogram::new(SAVE_BUCKETS),
            probe,
            wake,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Published> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How things stand after a source event (from the alert thread).
    pub fn publish(&self, s: &Status<'_>) {
        let mut st = self.lock();
        st.summary.clone_from(s.summary);
        match s.file {
            Some((id, Some(now))) => {
                st.files.insert(*id, now.clone());
            }
            Some((id, None)) => {
                st.files.remove(id);
            }
            None => {}
        }
        st.watermark = s.watermark;
        if let Some(lists) = s.nearest {
            st.nearest = lists.iter().map(|l| l.iter().take(NEAREST).cloned().collect()).collect();
            st.nearest_at = Some(SystemTime::now());
            st.probe_asked = None;
        }
        st.sample();
    }

    /// An alert raised (from the alert thread).
    pub fn alert(&self, a: &Arc<Alert>) {
        let mut st = self.lock();
        if st.alerts.len() == RECENT_ALERTS {
            st.alerts.pop_front();
        }
        st.alerts.push_back(Arc::clone(a));
    }

    /// A state save took `took`, and succeeded or not.
    pub fn saved(&self, took: Duration, ok: bool) {
        self.saves.observe(took.as_secs_f64());
        let mut st = self.lock();
        match ok {
            true => st.save_failing = None,
            false => {
                st.save_failing.get_or_insert_with(Instant::now);
                st.save_failures += 1;
            }
        }
    }

    /// State saves that failed, in all.
    pub fn save_failures(&self) -> u64 {
        self.lock().save_failures
    }

    /// Asks the engine for the clients nearest the threshold; they come
    /// with the next published status ([`Board::probe_pending`] turns false).
    pub fn ask_probe(&self) {
        self.lock().probe_asked.get_or_insert_with(Instant::now);
        self.probe.store(true, Ordering::SeqCst);
        // A full channel already holds a wake-up.
        self.wake.try_send(()).unwrap_or(());
    }

    /// Whether a probe asked for has not been answered yet.
    pub fn probe_pending(&self) -> bool {
        self.lock().probe_asked.is_some()
    }

    /// Why the daemon is not healthy; empty when it is.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let (asked, save_failing) = {
            let st = self.lock();
            (st.probe_asked, st.save_failing)
        };
        if let Some(asked) = asked
            && asked.elapsed() > PROBE_TOO_LONG
        {
            let secs = asked.elapsed().as_secs();
            out.push(format!("not following: the engine has not answered for {secs} s"));
        }
        if let Some(f) = save_failing.map(|t| t.elapsed()).filter(|f| *f > self.unhealthy_after) {
            let secs = f.as_secs();
            out.push(format!("state cannot be saved, for {secs} s (a full disk? see the log): a restart would read lines again"));
        }
        for o in self.outputs.stats() {
            if let Some(f) = o.failing_for.filter(|f| *f > self.unhealthy_after) {
                out.push(format!("output {} has been failing for {} s", o.name, f.as_secs()));
            }
        }
        out
    }

    /// Seconds since the daemon started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The outputs' counters.
    pub fn outputs(&self) -> Vec<crate::output::OutputStats> {
        self.outputs.stats()
    }

    /// A copy of what was published, for one response.
    pub fn snapshot(&self) -> Snapshot {
        let mut st = self.lock();
        // An idle engine publishes nothing: the requests take the
        // throughput points then (the lines read since the last one).
        st.sample();
        Snapshot {
            summary: st.summary.clone(),
            files: st.files.values().cloned().collect(),
            watermark: st.watermark,
            nearest: st.nearest.clone(),
            nearest_at: st.nearest_at,
            alerts: st.alerts.iter().cloned().collect(),
            points: st.points.iter().copied().collect(),
        }
    }
}

/// A copy of the board's published state.
pub struct Snapshot {
    /// The engine's counters.
    pub summary: Summary,
    /// The files followed.
    pub files: Vec<FileStatus>,
    /// Newest event time (Unix seconds; 0 before any).
    pub watermark: u32,
    /// Per rule, the clients nearest the threshold, as of `nearest_at`.
    pub nearest: Vec<Vec<(String, u32)>>,
    /// When the engine listed them.
    pub nearest_at: Option<SystemTime>,
    /// Recent alerts, oldest first.
    pub alerts: Vec<Arc<Alert>>,
    /// (Unix seconds, lines read so far), one per 10 s.
    pub points: Vec<(u64, u64)>,
}

impl Published {
    /// Adds a throughput point when one is due.
    fn sample(&mut self) {
        if self.last_point.is_some_and(|t| t.elapsed() < POINT_EVERY) {
            return;
        }
        self.last_point = Some(Instant::now());
        if self.points.len() == POINTS {
            self.points.pop_front();
        }
        self.points.push_back((unix_now(), self.summary.lines));
    }
}

/// The wall clock in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_listed_from_its_opening_to_its_end() {
        let (wake, _woken) = crossbeam_channel::bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let board = Board::new(None, Vec::new(), OutputsView::default(), Duration::MAX, stop, wake);
        let summary = Summary::default();
        let at = |path: &str, offset| Some(FileStatus { path: path.into(), offset, newest: 0 });
        let events = [Some((1, at("a", 0))), Some((2, at("b", 0))), Some((1, at("a", 10))), None];
        for file in events.iter().chain([&Some((2, None))]) {
            board.publish(&Status {
                summary: &summary,
                file: file.as_ref(),
                watermark: 0,
                nearest: None,
            });
        }
        assert_eq!(board.snapshot().files, [at("a", 10).unwrap()]);
    }
}
