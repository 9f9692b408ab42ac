//! The live daemon (`logwarden run`): the follower feeding the pipeline,
//! saved state restored at start and saved at checkpoints, and alerts
//! delivered exactly once.
//!
//! Exactly once: an alert has a stable id (file, line offset, rule). It is
//! put in the outbox, delivered, and then remembered as delivered. The outbox
//! is saved with each checkpoint, so an alert decided before a crash and not
//! yet delivered is delivered after it. Lines after the last checkpoint are
//! read again after a crash and decide the same alerts again; those already
//! delivered are recognised by their id in the jsonl outputs and skipped.

use crate::alert::Alert;
use crate::app::{engine_for, summary_text};
use crate::config::Config;
use crate::follow::{FollowConfig, Follower};
use crate::output::Outputs;
use crate::pipeline::{Checkpoint, Restore, Sink};
use crate::state;
use crate::window::Windows;
use anyhow::{Context, Result};
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Ids of delivered alerts remembered (the newest ones).
const REMEMBERED_IDS: usize = 100_000;

/// Runs until SIGTERM or SIGINT; then finishes the lines read so far, saves
/// state and returns.
///
/// SIGHUP reloads the configuration from `path`: the engine stops as on
/// SIGTERM (saving state), and starts again from that state with the new
/// configuration, so rules whose name, threshold, window and cooldown did not
/// change keep their windows. An invalid configuration is reported and the
/// old one stays in force.
pub fn run(path: Option<&Path>, first: Config) -> Result<()> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    let wake = crossbeam_channel::bounded::<()>(1);
    signal_thread(Arc::clone(&interrupt), Arc::clone(&reload), wake.0.clone())?;
    let mut cfg = first;
    loop {
        run_once(&cfg, Arc::clone(&interrupt), wake.clone())?;
        if !reload.swap(false, Ordering::SeqCst) {
            notify(&[sd_notify::NotifyState::Stopping]);
            return Ok(());
        }
        notify(&[sd_notify::NotifyState::Reloading]);
        interrupt.store(false, Ordering::SeqCst);
        match Config::load(path, &crate::config::Overrides::default()) {
            Ok(new) => {
                tracing::info!("Configuration reloaded.");
                cfg = new;
            }
            Err(e) => {
                tracing::error!("Configuration not reloaded, the old one stays in force: {e}")
            }
        }
    }
}

/// Turns SIGTERM, SIGINT and SIGHUP into flags and wakes the follower at
/// once (it sleeps up to a minute when idle).
fn signal_thread(
    interrupt: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    wake: crossbeam_channel::Sender<()>,
) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    reload.store(true, Ordering::SeqCst);
                }
                interrupt.store(true, Ordering::SeqCst);
                // A full channel already holds a wake-up.
                wake.try_send(()).unwrap_or(());
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

type Wake = (crossbeam_channel::Sender<()>, crossbeam_channel::Receiver<()>);

/// One run of the engine, from saved state to the next interruption.
fn run_once(cfg: &Config, stop: Arc<AtomicBool>, wake: Wake) -> Result<()> {
    std::fs::create_dir_all(&cfg.state_dir).with_context(|| {
        format!(
            "cannot create state.dir {} (it must be writable by logwarden)",
            cfg.state_dir.display()
        )
    })?;
    let (saved, warning) = state::load(&cfg.state_dir);
    if let Some(w) = warning {
        tracing::warn!("Saved state not used: {w}");
    }
    let outputs = Outputs::open(&cfg.outputs)?;
    let delivered = outputs.delivered_ids();
    let names: Vec<String> = cfg.rules.iter().map(|r| r.name.clone()).collect();
    let held = Arc::new(AtomicBool::new(false));
    let mut sink =
        DaemonSink::new(outputs, delivered, cfg.state_dir.clone(), names, Arc::clone(&held));
    let (positions, restore) = match saved {
        Some(s) => {
            tracing::info!(
                files = s.positions.len(),
                undelivered = s.outbox.len(),
                "Resuming from saved state."
            );
            sink.outbox.extend(s.outbox.into_iter().map(|a| (a, 0)));
            sink.flush_outbox();
            (Some(s.positions), Some(restore_windows(cfg, s.rules, s.watermark)))
        }
        None => (None, None),
    };
    let src = &cfg.source;
    let follow = FollowConfig {
        spec: src.spec.clone(),
        zone: src.zone.clone(),
        start_at: src.start_at,
        poll_interval: src.poll_interval,
        rotate_wait: src.rotate_wait,
        cleanup_interval: cfg.cleanup_interval,
        file_events: src.file_events,
    };
    let (every, beat) = watchdog();
    let follower = Follower::new(follow, stop, positions)
        .with_wake(wake.0, wake.1)
        .with_heartbeat(every, beat);
    let engine = engine_for(cfg);
    tracing::info!(path = %src.path, rules = cfg.rules.len(), "Started.");
    notify(&[sd_notify::NotifyState::Ready]);
    let started = Instant::now();
    let summary = engine.run(Box::new(follower), restore, &mut sink)?;
    tracing::info!("Stopped; {}", summary_text(&summary, started.elapsed().as_secs_f64()));
    Ok(())
}

/// Tells systemd (Type=notify) about the service's state; a no-op outside systemd.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "Cannot notify the service manager.");
    }
}

/// The watchdog ping, sent at most twice per `WatchdogSec` from the reading
/// loop, so a stalled pipeline gets the daemon restarted.
fn watchdog() -> (Option<std::time::Duration>, Box<dyn FnMut() + Send>) {
    let Some(every) = sd_notify::watchdog_enabled().map(|d| d / 2) else {
        return (None, Box::new(|| {}));
    };
    let mut last: Option<Instant> = None;
    let beat = move || {
        if last.is_none_or(|l| l.elapsed() >= every) {
            last = Some(Instant::now());
            notify(&[sd_notify::NotifyState::Watchdog]);
        }
    };
    (Some(every), Box::new(beat))
}

/// Saved windows for the configured rules: a rule keeps its windows when its
/// name, threshold, window and cooldown are unchanged.
fn restore_windows(cfg: &Config, mut saved: Vec<(String, Windows)>, watermark: u32) -> Restore {
    let windows = cfg
        .rules
        .iter()
        .map(|r| match saved.iter().position(|(n, w)| *n == r.name && *w.spec() == r.spec) {
            Some(i) => saved.swap_remove(i).1,
            None => Windows::new(r.spec),
        })
        .collect();
    Restore { windows, watermark }
}

/// Delivers alerts and saves checkpoints on the alert thread.
struct DaemonSink {
    outputs: Outputs,
    /// Alerts not yet delivered everywhere, with a bit per output that has them.
    outbox: VecDeque<(Alert, u64)>,
    delivered: HashSet<String>,
    delivered_order: VecDeque<String>,
    state_dir: PathBuf,
    names: Vec<String>,
    save_failing: bool,
    /// Tells the follower that alerts are held, so it nudges for retries.
    held: Arc<AtomicBool>,
}

impl DaemonSink {
    fn new(
        outputs: Outputs,
        delivered: Vec<String>,
        state_dir: PathBuf,
        names: Vec<String>,
        held: Arc<AtomicBool>,
    ) -> DaemonSink {
        let mut s = DaemonSink {
            outputs,
            outbox: VecDeque::new(),
            delivered: HashSet::new(),
            delivered_order: VecDeque::new(),
            state_dir,
            names,
            save_failing: false,
            held,
        };
        delivered.into_iter().for_each(|id| s.remember(id));
        s
    }

    fn remember(&mut self, id: String) {
        if self.delivered.insert(id.clone()) {
            self.delivered_order.push_back(id);
        }
        while self.delivered_order.len() > REMEMBERED_IDS {
            if let Some(old) = self.delivered_order.pop_front() {
                self.delivered.remove(&old);
            }
        }
    }

    /// Delivers the outbox in order, stopping at the first failure (it is
    /// retried with the next alert or checkpoint).
    fn flush_outbox(&mut self) {
        while let Some((a, done)) = self.outbox.front_mut() {
            if a.id.as_ref().is_some_and(|id| self.delivered.contains(id)) {
                self.outbox.pop_front();
                continue;
            }
            if !self.outputs.deliver(a, done) {
                self.held.store(true, Ordering::SeqCst);
                return;
            }
            if let Some(id) = self.outbox.pop_front().and_then(|(a, _)| a.id) {
                self.remember(id);
            }
        }
        self.held.store(false, Ordering::SeqCst);
    }
}

impl Sink for DaemonSink {
    fn alert(&mut self, alert: Alert) {
        self.outbox.push_back((alert, 0));
        self.flush_outbox();
    }

    fn progress(&mut self, _bytes: u64) {
        // Every chunk, also the follower's retry nudges, retries held alerts.
        if !self.outbox.is_empty() {
            self.flush_outbox();
        }
    }

    fn checkpoint(&mut self, cp: &Checkpoint<'_>) {
        self.flush_outbox();
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let outbox: Vec<Alert> = self.outbox.iter().map(|(a, _)| a.clone()).collect();
        let bytes = state::encode(&cp.positions, &outbox, cp.watermark, &names, cp.windows);
        match state::save(&self.state_dir, &bytes) {
            Ok(()) => self.save_failing = false,
            Err(e) if !self.save_failing => {
                self.save_failing = true;
                tracing::error!(error = %e, "Cannot save state; retrying at the next checkpoint.");
            }
            Err(_) => {}
        }
    }
}
