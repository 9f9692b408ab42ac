//! The live daemon (`logwarden run`): the follower feeding the pipeline,
//! saved state restored at start and saved at checkpoints, and alerts
//! delivered at least once, deduplicated by alert id.
//!
//! An alert has a stable id (file, line offset, line checksum, rule). It is
//! queued for every output (each has its own thread, see [`crate::output`]);
//! the queues are saved with each checkpoint, so an alert decided before a
//! crash and not yet delivered is delivered after it. Lines after the last
//! checkpoint are read again after a crash and decide the same alerts again;
//! each output journals the ids it took (and a jsonl file holds them too),
//! so those are not sent again — unless the crash fell between a delivery
//! and its journal entry.

use crate::alert::Alert;
use crate::config::Config;
use crate::farm::link::Link;
use crate::follow::several::{Beat, MAX_HOLD, SLACK};
use crate::follow::{Follower, Several, StartAt};
use crate::observe::http::Server;
use crate::observe::{Board, HttpSettings, RuleInfo};
use crate::output::{self, Running};
use crate::parse::Skip;
use crate::pipeline::{Checkpoint, Restore, Sink, Status, Summary};
use crate::source::{Position, Source};
use crate::state::lock::{DirLock, LockError};
use crate::state::{self, RuleName, SavedRule, Snapshot, State, Store};
use crate::window::Windows;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// At a stop, working outputs get this long to deliver what they hold.
const DRAIN_AT_STOP: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs until SIGTERM or SIGINT; then finishes the lines read so far, saves
/// state and returns.
///
/// SIGHUP reloads the configuration from `path`: the engine stops as on
/// SIGTERM (saving state), and starts again from that state with the new
/// configuration, so rules whose name and window length did not change keep
/// their windows. An invalid configuration, or one that cannot start, is
/// reported and the old one stays in force.
pub fn run(path: Option<&Path>, first: Config) -> Result<()> {
    let asked = Arc::new(Asked::default());
    let wake = crossbeam_channel::bounded::<()>(1);
    signal_thread(Arc::clone(&asked), wake.0.clone())?;
    raise_open_files_limit();
    let mut cfg = first;
    let mut held = DirLock::take(&cfg.state_dir)?;
    // What a reload replaced, until the new configuration has started.
    let mut replaced: Option<(Config, Option<DirLock>)> = None;
    loop {
        let (reloading, mut started) = (replaced.is_some(), false);
        let outcome = run_once(&cfg, &held, &asked, wake.clone(), || {
            started = true;
            if reloading {
                tracing::info!("Configuration reloaded.");
            }
        });
        // Whatever the outcome, the replaced configuration is needed no more
        // once this one started. One that cannot start (its port taken, an
        // output that cannot be opened) is refused like an invalid one.
        let replaced_now = replaced.take();
        if let (Err(e), false, Some((old, old_lock))) = (&outcome, started, replaced_now) {
            tracing::error!("Configuration not reloaded, the old one stays in force: {e:#}");
            cfg = old;
            if let Some(lock) = old_lock {
                held = lock;
            }
            continue;
        }
        let summary = outcome?;
        if !asked.reloading() {
            tracing::info!("Stopped; {summary}");
            notify(&[sd_notify::NotifyState::Stopping]);
            return Ok(());
        }
        tracing::info!("Reloading the configuration; {summary}");
        notify(&[sd_notify::NotifyState::Reloading]);
        asked.restart();
        match reloaded(path, &held) {
            Ok((lock, new)) => {
                let old_lock = lock.map(|l| std::mem::replace(&mut held, l));
                replaced = Some((std::mem::replace(&mut cfg, new), old_lock));
            }
            Err(e) => {
                tracing::error!("Configuration not reloaded, the old one stays in force: {e:#}")
            }
        }
    }
}

/// The configuration at `path` again, with the lock of its state directory:
/// none new if it is the one `held` (the caller drops that one once
/// replaced).
fn reloaded(path: Option<&Path>, held: &DirLock) -> Result<(Option<DirLock>, Config)> {
    let new = Config::load(path, &crate::config::Overrides::default())?;
    let lock = if held.holds(&new.state_dir) { None } else { Some(DirLock::take(&new.state_dir)?) };
    Ok((lock, new))
}

/// Raises the soft limit on open files to the hard one: a glob may match
/// more logs than the usual soft limit of 1024 (systemd's default for a
/// service, whose hard limit is far higher) allows open at once.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::debug!(from = ?limit.current, to = ?limit.maximum, "Raised the open files limit.")
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot raise the open files limit; it stays {:?}.", limit.current)
            }
        }
    }
}

/// What the signals asked for, as flags the signal thread sets.
#[derive(Default)]
struct Asked {
    /// The engine is to stop (any of the signals): the flag it polls.
    interrupt: Arc<AtomicBool>,
    /// SIGHUP: reload the configuration once the engine has stopped.
    reload: AtomicBool,
    /// SIGTERM or SIGINT: end the process. Never cleared, so a stop asked
    /// while a reload is under way is not lost with the reload's restart.
    terminate: AtomicBool,
}

impl Asked {
    /// After the engine stopped: true for a reload, false to end the
    /// process (a stop asked meanwhile wins over a reload).
    fn reloading(&self) -> bool {
        self.reload.load(Ordering::SeqCst) && !self.terminate.load(Ordering::SeqCst)
    }

    /// Readies the flags for the engine's restart at a reload. A stop
    /// asked from here on interrupts the new run (the signal thread sets
    /// `terminate` before `interrupt`).
    fn restart(&self) {
        self.reload.store(false, Ordering::SeqCst);
        self.interrupt.store(false, Ordering::SeqCst);
        if self.terminate.load(Ordering::SeqCst) {
            self.interrupt.store(true, Ordering::SeqCst);
        }
    }
}

/// Turns SIGTERM, SIGINT and SIGHUP into flags and wakes the follower at
/// once (it sleeps up to a minute when idle); SIGXFSZ changes nothing.
fn signal_thread(asked: Arc<Asked>, wake: crossbeam_channel::Sender<()>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGXFSZ};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("installing signal handlers")?;
    // A file-size limit (systemd's LimitFSIZE=, `ulimit -f`) is then met as
    // a failed write (EFBIG): alerts held, the save retried, as when the disk
    // is full; SIGXFSZ's default would end the process without saving.
    signal_hook::flag::register(SIGXFSZ, Arc::new(AtomicBool::new(false)))
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                match sig {
                    SIGHUP => asked.reload.store(true, Ordering::SeqCst),
                    _ => asked.terminate.store(true, Ordering::SeqCst),
                }
                asked.interrupt.store(true, Ordering::SeqCst);
                // A full channel already holds a wake-up.
                wake.try_send(()).unwrap_or(());
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

type Wake = (crossbeam_channel::Sender<()>, crossbeam_channel::Receiver<()>);

/// One run of the engine, from saved state to the next interruption;
/// `started` is called once everything it needs is open (the outputs, the
/// HTTP port): an error before that is a failed start, nothing read or
/// delivered yet.
fn run_once(
    cfg: &Config,
    lock: &DirLock,
    asked: &Asked,
    wake: Wake,
    started: impl FnOnce(),
) -> Result<Summary> {
    let saved = load_state(cfg)?;
    let outputs = output::open(&cfg.outputs)?;
    let running = Running::start(outputs, &cfg.outputs, &cfg.state_dir)
        .context("starting the output threads")?;
    // The first checkpoint writes a new base for this configuration's rules.
    let want_full = Arc::new(AtomicBool::new(true));
    let probe = Arc::new(AtomicBool::new(false));
    let (board, _server) = match &cfg.http {
        Some(h) => {
            let (board, server) = serve_http(cfg, h, &running, &probe, &wake.0)?;
            (Some(board), Some(server))
        }
        None => (None, None),
    };
    started();
    for t in cfg.read_twice() {
        tracing::warn!("{t}.");
    }
    if let Some(w) = super::exposed_secrets(cfg) {
        tracing::warn!("{w}.");
    }
    for rule in cfg.rules_without_output() {
        tracing::warn!(
            rule,
            "No output gets this rule's alerts (every output's rules leaves it out); they are counted, and delivered nowhere."
        );
    }
    let mut sink = DaemonSink {
        board,
        outputs: running,
        store: Store::new(&cfg.state_dir),
        rules: cfg.rule_names(),
        for_rule: cfg.rule_outputs().into_iter().map(|(n, m)| (n.to_string(), m)).collect(),
        queued: Vec::new(),
        want_full: Arc::clone(&want_full),
        sources: cfg.sources.len(),
        save_failing: false,
        stopping: Arc::clone(&asked.interrupt),
        wake: wake.0.clone(),
        skips: SkipTeller::default(),
        lock: lock.clone(),
        lost: None,
    };
    let times = saved.as_ref().map_or_else(SavedTimes::default, |s| SavedTimes {
        at: s.saved_at,
        looked: s.looked.clone(),
    });
    let (positions, restore) = match saved {
        Some(s) => {
            let (positions, restore) = resume(s, &mut sink);
            (Some(positions), Some(restore))
        }
        None => (None, None),
    };
    let source = followers(cfg, &asked.interrupt, positions, times, wake, (want_full, probe));
    let mut engine = cfg.engine();
    engine.settings.checkpoints = true;
    for s in &cfg.sources {
        tracing::info!(source = %s.name, path = %s.path, "Following.");
    }
    tracing::info!(rules = cfg.rules.len(), "Started.");
    let mut farm = farm_link(cfg, engine.settings.ipv6_prefix);
    notify(&[sd_notify::NotifyState::Ready]);
    let result = engine.run_in_farm(source, restore, &mut sink, farm.as_mut());
    finish(sink, asked)?;
    Ok(result?)
}

/// With `[cluster]`, the link to the farm's Redis.
fn farm_link(cfg: &Config, ipv6_prefix: u8) -> Option<Link> {
    cfg.cluster.clone().map(|c| {
        let redis = crate::farm::redacted_all(&c.redis);
        tracing::info!(node = %c.node, redis = %redis, "Deciding with the farm.");
        Link::new(c, cfg.farm_rules(), ipv6_prefix)
    })
}

/// After the engine stopped: the outputs stopped, or handed over at a
/// reload (what they started, an exec action, goes on with the process);
/// an error when another daemon took `state.dir` meanwhile.
fn finish(sink: DaemonSink, asked: &Asked) -> Result<()> {
    let held = match asked.reloading() {
        true => sink.outputs.hand_over(DRAIN_AT_STOP),
        false => sink.outputs.stop(DRAIN_AT_STOP),
    };
    if !held.is_empty() {
        tracing::warn!(
            held = held.len(),
            "Alerts still held for outputs that failed; saved for the next start."
        );
    }
    match sink.lost {
        Some(e) => Err(e).context("stopped: another daemon took state.dir while this one ran"),
        None => Ok(()),
    }
}

/// The saved state, if there is a usable one; a state that cannot be used
/// is logged with where reading starts instead.
fn load_state(cfg: &Config) -> Result<Option<State>> {
    let (saved, warning) = state::load(&cfg.state_dir);
    if let Some(w) = warning {
        let starts: Vec<StartAt> = cfg.sources.iter().map(|s| s.start_at).collect();
        let resume = match starts[..] {
            _ if starts.iter().all(|s| *s == StartAt::End) => {
                "reading starts at the end of each log file (start_at = \"end\"): lines written since the last good save are skipped"
            }
            _ if starts.iter().all(|s| *s == StartAt::Beginning) => {
                "each log file is read from its beginning (start_at = \"beginning\"): no line is skipped, older ones are counted again"
            }
            _ => "each source starts where its start_at says",
        };
        tracing::warn!("Saved state not used: {w}; {resume}.");
    }
    Ok(saved)
}

/// `[http]`: the board the engine writes and the server that shows it.
fn serve_http(
    cfg: &Config,
    h: &HttpSettings,
    running: &Running,
    probe: &Arc<AtomicBool>,
    wake: &crossbeam_channel::Sender<()>,
) -> Result<(Arc<Board>, Server)> {
    let rules = cfg.rules.iter().map(|r| RuleInfo { name: r.name.clone(), spec: r.spec });
    let node = cfg.cluster.as_ref().map(|c| c.node.clone());
    let board = Arc::new(Board::new(
        node,
        rules.collect(),
        running.view(),
        h.unhealthy_after,
        Arc::clone(probe),
        wake.clone(),
    ));
    let server =
        Server::start(h.listen, h.token.clone(), Arc::clone(&board)).with_context(|| {
            format!("cannot listen on http.listen {} (is the port taken? choose another)", h.listen)
        })?;
    tracing::info!(address = %server.addr(), "Serving /metrics, /healthz, /api/status and the status page.");
    Ok((board, server))
}

/// Resumes from saved state: its undelivered alerts queued again, the
/// positions to read on from, and the windows to start with.
fn resume(s: State, sink: &mut DaemonSink) -> (Vec<Position>, Restore) {
    tracing::info!(
        files = s.positions.len(),
        undelivered = s.outbox.len(),
        "Resuming from saved state."
    );
    let all = sink.outputs.all();
    let mut gone = 0;
    for (alert, mask) in s.outbox {
        let mask = match s.outputs.is_empty() {
            // Saved before outputs were named: the bits stand for the
            // outputs in order, and one beyond them for every output.
            true if mask & all == 0 => all,
            true => mask & all,
            false => output::held_for_now(mask, &s.outputs, sink.outputs.keys()),
        };
        if mask == 0 {
            gone += 1;
        } else {
            sink.outputs.push(&Arc::new(alert), mask);
        }
    }
    if gone > 0 {
        tracing::warn!(alerts = gone, "Alerts held for outputs no longer configured are dropped.");
    }
    (s.positions, restore_windows(&sink.rules, s.rules, s.watermark))
}

/// When the saved state was saved, and when each source's follower had
/// last begun to look for files before (by source name).
#[derive(Default)]
struct SavedTimes {
    at: Option<SystemTime>,
    looked: Vec<(String, SystemTime)>,
}

impl SavedTimes {
    /// When the follower of source `name` had last begun to look.
    fn looked(&self, name: &str) -> Option<SystemTime> {
        self.looked.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
    }
}

/// The reader of every source: a follower each (on its own thread when
/// there are several), resuming from its own saved positions. Positions
/// saved before sources had names belong to the first source. They share
/// the stop flag and the flags asking for a full checkpoint and a probe
/// (`flags`); the daemon's wake-ups reach them all; together they prove to
/// the service manager that reading goes on. `times`: when the positions
/// were saved, and when each follower had last looked.
fn followers(
    cfg: &Config,
    stop: &Arc<AtomicBool>,
    positions: Option<Vec<Position>>,
    times: SavedTimes,
    wake: Wake,
    (want_full, probe): (Arc<AtomicBool>, Arc<AtomicBool>),
) -> Box<dyn Source> {
    let n = cfg.sources.len();
    let several = n > 1;
    let (every, beats) = watchdog(n, if several { 2 } else { 1 });
    let mut beats = beats.into_iter();
    let mut wakes = Vec::new();
    let mut idle = Vec::new();
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for (i, s) in cfg.sources.iter().enumerate() {
        let mine = positions.as_ref().map(|all| {
            let ours = |p: &&Position| p.source == s.name || (p.source.is_empty() && i == 0);
            all.iter().filter(ours).cloned().collect()
        });
        let (tx, rx) = if several { crossbeam_channel::bounded(1) } else { wake.clone() };
        wakes.push(tx.clone());
        idle.push(Arc::new(AtomicBool::new(false)));
        let mut f = Follower::new(cfg.follow(i), Arc::clone(stop), mine)
            .for_source(i)
            .with_idle(Arc::clone(&idle[i]))
            .with_wake(tx, rx)
            .with_full_checkpoints(Arc::clone(&want_full))
            .with_probes(Arc::clone(&probe))
            .with_saved_at(times.at, times.looked(&s.name))
            .with_times(cfg.parser(i), merge_slack(cfg, i));
        if let Some(beat) = beats.next() {
            f = f.with_heartbeat(every, beat);
        }
        sources.push(Box::new(f));
    }
    if !several {
        return sources.pop().expect("at least one source");
    }
    Box::new(Several {
        sources,
        parsers: (0..n).map(|i| cfg.parser(i)).collect(),
        idle,
        // The second beat of each follower (none without a watchdog).
        beats: beats.collect(),
        max_hold: MAX_HOLD,
        wake: wake.1,
        wakes,
        stop: Arc::clone(stop),
    })
}

/// How far (seconds) one of source `i`'s files may be read past where
/// another stands: half the shortest window of the rules that read it, so
/// that no hit is read a window behind another of its client's — but a
/// minute at least, as between sources ([`SLACK`]): each step is a chunk of
/// each file through the pipeline, and a 10-second window would make a step
/// of every 5 seconds of every file's backlog.
fn merge_slack(cfg: &Config, i: usize) -> i64 {
    let shortest = cfg.rules.iter().filter(|r| r.reads(i)).map(|r| r.spec.window).min();
    shortest.map_or(SLACK, |w| i64::from(w / 2).max(SLACK))
}

/// Tells systemd (Type=notify) about the service's state; a no-op outside systemd.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "Cannot notify the service manager.");
    }
}

/// The watchdog pings: `copies` beats for each of `followers`, called from
/// its reading loop (and, with several sources, while its chunk is held for
/// another source), follower by follower. A ping goes out at most twice
/// per `WatchdogSec`, and only once every follower has beaten since the
/// last one, so a stalled pipeline or a follower stuck in a read gets the
/// daemon restarted.
fn watchdog(followers: usize, copies: usize) -> (Option<Duration>, Vec<Beat>) {
    let Some(every) = sd_notify::watchdog_enabled().map(|d| d / 2) else {
        return (None, Vec::new());
    };
    let beats = Arc::new(std::sync::Mutex::new(Beats::new(followers, every)));
    let beat = |i: usize| -> Beat {
        let beats = Arc::clone(&beats);
        Box::new(move || {
            if beats.lock().is_ok_and(|mut b| b.beat(i, Instant::now())) {
                notify(&[sd_notify::NotifyState::Watchdog]);
            }
        })
    };
    (Some(every), (0..followers * copies).map(|k| beat(k % followers)).collect())
}

/// Which followers have beaten since the last watchdog ping.
struct Beats {
    seen: Vec<bool>,
    last: Option<Instant>,
    every: Duration,
}

impl Beats {
    fn new(followers: usize, every: Duration) -> Beats {
        Beats { seen: vec![false; followers], last: None, every }
    }

    /// Follower `i` beats at `now`: whether a ping is due.
    fn beat(&mut self, i: usize, now: Instant) -> bool {
        if let Some(s) = self.seen.get_mut(i) {
            *s = true;
        }
        let due = self.last.is_none_or(|l| now.duration_since(l) >= self.every);
        if !due || !self.seen.iter().all(|&s| s) {
            return false;
        }
        self.last = Some(now);
        self.seen.fill(false);
        true
    }
}

/// Saved windows for the configured rules: a rule keeps its windows when its
/// name, window length and what it counts are unchanged (a new threshold or
/// cooldown applies to the kept windows, except the threshold of a distinct
/// count); otherwise its windows start empty — a rule that looked for
/// `today_download` and now for `wp-login` would count the old hits as
/// logins.
fn restore_windows(rules: &[RuleName], mut saved: Vec<SavedRule>, watermark: u32) -> Restore {
    let windows = (rules.iter())
        .map(|r| {
            let Some(i) = saved.iter().position(|s| s.name == r.name) else {
                return Windows::new(r.spec);
            };
            let old = saved.swap_remove(i);
            // A state saved before it kept what the rule counted: kept.
            if !old.counting.is_empty() && old.counting != r.counting {
                tracing::info!(rule = %r.name, "What the rule counts changed (its field, text, filters, key or distinct field); its windows start empty.");
                return Windows::new(r.spec);
            }
            let mut w = old.windows;
            let was = *w.spec();
            if was.window != r.spec.window {
                tracing::info!(rule = %r.name, was = was.window, now = r.spec.window, "The rule's window length changed; its windows start empty.");
                return Windows::new(r.spec);
            }
            // A distinct count keeps only `threshold` values per key.
            if was.distinct != r.spec.distinct || (r.spec.distinct && was.threshold != r.spec.threshold) {
                tracing::info!(rule = %r.name, "The rule's distinct count or its threshold changed; its windows start empty.");
                return Windows::new(r.spec);
            }
            if was != r.spec {
                tracing::info!(rule = %r.name, threshold = r.spec.threshold, cooldown = r.spec.cooldown, "The rule's threshold or cooldown changed; its windows are kept.");
                w.set_spec(r.spec);
            }
            w
        })
        .collect();
    Restore { windows, watermark }
}

/// How often skipped lines are told at most.
const TELL_SKIPS_EVERY: Duration = Duration::from_secs(600);

/// Tells the lines skipped since it last told (the first at once): a
/// wrong `format`, or hostnames for `%h`, makes every line skipped, which
/// only the counters showed.
#[derive(Debug, Default)]
struct SkipTeller {
    told: [u64; Skip::COUNT],
    at: Option<Instant>,
}

impl SkipTeller {
    /// Sees the counters (since the pipeline started; a reload starts them
    /// again).
    fn see(&mut self, skipped: &[u64; Skip::COUNT]) {
        if skipped.iter().zip(&self.told).any(|(now, told)| now < told) {
            self.told = [0; Skip::COUNT];
        }
        if *skipped == self.told || self.at.is_some_and(|t| t.elapsed() < TELL_SKIPS_EVERY) {
            return;
        }
        let new: Vec<String> = (Skip::ALL.iter())
            .filter(|r| skipped[r.index()] > self.told[r.index()])
            .map(|r| {
                format!(
                    "{} {} ({})",
                    r.name(),
                    skipped[r.index()] - self.told[r.index()],
                    r.describe()
                )
            })
            .collect();
        tracing::warn!(skipped = %new.join(", "), "Lines were skipped; `logwarden check` shows a line of each log that does not read, `logwarden parse FILE` how each line reads.");
        (self.told, self.at) = (*skipped, Some(Instant::now()));
    }
}

/// Hands alerts to the outputs and saves checkpoints, on the alert thread.
struct DaemonSink {
    /// The status page's board, with `[http]`.
    board: Option<Arc<Board>>,
    outputs: Running,
    store: Store,
    /// The rules' names, specs and what they count, in order, for the base.
    rules: Vec<RuleName>,
    /// Per rule name, the bits of the outputs that get its alerts (an
    /// output's `rules`).
    for_rule: HashMap<String, u64>,
    /// Alerts queued since the last save, with the outputs that queued them.
    queued: Vec<(Arc<Alert>, u64)>,
    /// Asks the follower for a full checkpoint (a new base).
    want_full: Arc<AtomicBool>,
    /// How many followers (sources) report their files before a save.
    sources: usize,
    save_failing: bool,
    /// Set when the daemon stops: the last checkpoint first lets the
    /// outputs deliver what they hold.
    stopping: Arc<AtomicBool>,
    /// Wakes the followers, so that a stop decided here is seen at once:
    /// one asleep with nothing to read sleeps up to a minute.
    wake: crossbeam_channel::Sender<()>,
    skips: SkipTeller,
    /// `state.dir`'s lock, checked before each new base.
    lock: DirLock,
    /// Set when another daemon took `state.dir` meanwhile: nothing more is
    /// saved, and the daemon stops.
    lost: Option<LockError>,
}

impl DaemonSink {
    /// Whether this daemon still holds `state.dir`, before a new base: its
    /// lock is taken again where it was removed (the directory deleted
    /// while running: a second daemon could start on it); when another
    /// daemon took it meanwhile, this one saves nothing more and stops.
    fn still_held(&mut self) -> bool {
        match self.lock.renew() {
            Ok(false) => true,
            Ok(true) => {
                tracing::warn!(
                    "state.dir's lock file had been removed (was state.dir deleted?); it is held again, and everything is saved anew."
                );
                true
            }
            Err(e @ LockError::Held { .. }) => {
                tracing::error!("{e}; this daemon stops.");
                self.lost = Some(e);
                self.stopping.store(true, Ordering::SeqCst);
                // A full channel already holds a wake-up.
                self.wake.try_send(()).unwrap_or(());
                false
            }
            Err(e) => {
                tracing::error!("Cannot hold state.dir again: {e}.");
                true
            }
        }
    }
}

impl Sink for DaemonSink {
    /// Always: skipped lines are told from it.
    fn wants_status(&self) -> bool {
        true
    }

    fn status(&mut self, s: &Status<'_>) {
        if let Some(b) = &self.board {
            b.publish(s);
        }
        self.skips.see(&s.summary.skipped);
    }

    fn alert(&mut self, alert: Alert) {
        let alert = Arc::new(alert);
        if let Some(b) = &self.board {
            b.alert(&alert);
        }
        let mask = self.for_rule.get(&alert.rule).copied().unwrap_or(self.outputs.all());
        let queued = self.outputs.push(&alert, mask);
        if queued != 0 {
            self.queued.push((alert, queued));
        }
    }

    /// Saves what changed (a record of the change log) or, when asked,
    /// everything (a new base). Either way the cost follows what changed or
    /// what is held, and reading goes on meanwhile in the other threads.
    fn checkpoint(&mut self, cp: &Checkpoint<'_>) {
        // A test hook (debug builds only): with LOGWARDEN_TEST_NO_SAVE set,
        // nothing is saved, as if the process died before each save.
        #[cfg(debug_assertions)]
        if std::env::var_os("LOGWARDEN_TEST_NO_SAVE").is_some() {
            return;
        }
        // With several sources, one follower's checkpoint of changes can
        // come before the full one another follower took: before the first
        // base there is nothing to append them to, and the full one follows.
        if self.lost.is_some() || (!cp.full && !self.store.has_base()) {
            return;
        }
        // Each follower reports the files it resumes at its first look: a
        // base written before every one had looked held only some sources'
        // positions, and a kill then lost the others' (a 300-s soak of two
        // sources lost 58 hits so). Until then the state saved last stands.
        // The followers' checkpoints come as changes only until then (see
        // `follow::several`); an idle tick's base is asked for again, and
        // the followers woken, so that one asleep sees the request.
        if cp.looked.len() < self.sources {
            if cp.full {
                self.want_full.store(true, Ordering::SeqCst);
                self.wake.try_send(()).unwrap_or(());
            }
            return;
        }
        if cp.full && !self.still_held() {
            return;
        }
        if self.stopping.load(Ordering::SeqCst) {
            self.outputs.drain(DRAIN_AT_STOP);
        }
        let started = Instant::now();
        let delivered = self.outputs.take_delivered();
        let (positions, looked) = (&cp.positions, &cp.looked);
        let snap = Snapshot { positions, looked, watermark: cp.watermark, shards: cp.windows };
        let result = if cp.full {
            self.store.write_base(&snap, &self.outputs.held(), self.outputs.keys(), &self.rules)
        } else {
            self.store.append(&snap, &self.queued, &delivered)
        };
        // Saved, or to be saved whole by the next checkpoint.
        self.queued.clear();
        if let Some(b) = &self.board {
            b.saved(started.elapsed(), result.is_ok());
        }
        match result {
            Ok(()) => {
                self.save_failing = false;
                if self.store.wants_base() {
                    self.want_full.store(true, Ordering::SeqCst);
                }
            }
            Err(e) => {
                self.want_full.store(true, Ordering::SeqCst);
                if self.stopping.load(Ordering::SeqCst) {
                    // No checkpoint follows: say what the next start finds.
                    tracing::error!(error = %e, "Cannot save state at stop; the next start resumes from the state saved last and reads the lines after it again.");
                } else if !self.save_failing {
                    self.save_failing = true;
                    tracing::error!(error = %e, "Cannot save state; retrying at the next checkpoint.");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink saving into `dir`, with no outputs.
    fn sink(dir: &Path) -> DaemonSink {
        DaemonSink {
            board: None,
            outputs: Running::start(Vec::new(), &[], dir).unwrap(),
            store: Store::new(dir),
            rules: Vec::new(),
            for_rule: HashMap::new(),
            queued: Vec::new(),
            want_full: Arc::new(AtomicBool::new(false)),
            sources: 0,
            save_failing: false,
            stopping: Arc::new(AtomicBool::new(false)),
            wake: crossbeam_channel::bounded(1).0,
            skips: SkipTeller::default(),
            lock: DirLock::take(dir).unwrap(),
            lost: None,
        }
    }

    #[test]
    fn changes_before_the_first_base_wait_for_it_without_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path());
        let cp = |full| Checkpoint {
            positions: Vec::new(),
            looked: Vec::new(),
            windows: &[],
            full,
            watermark: 0,
        };
        s.checkpoint(&cp(false));
        assert!(!s.save_failing, "changes before the first base are not a failed save");
        assert!(!s.want_full.load(Ordering::SeqCst) && !s.store.has_base());
        s.checkpoint(&cp(true));
        s.checkpoint(&cp(false));
        assert!(!s.save_failing && s.store.has_base());
    }

    #[test]
    fn nothing_is_saved_before_every_follower_has_looked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path());
        s.sources = 2;
        let (wake, woken) = crossbeam_channel::bounded(1);
        s.wake = wake;
        let at = SystemTime::now();
        let cp = |looked: Vec<(String, SystemTime)>| Checkpoint {
            positions: Vec::new(),
            looked,
            windows: &[],
            full: true,
            watermark: 0,
        };
        s.checkpoint(&cp(vec![("www".into(), at)]));
        assert!(!s.store.has_base(), "saved with one source's files");
        assert!(s.want_full.load(Ordering::SeqCst), "the new base is asked for again");
        assert!(woken.try_recv().is_ok(), "the followers are woken to see it");
        s.checkpoint(&cp(vec![("www".into(), at), ("api".into(), at)]));
        assert!(s.store.has_base());
    }

    #[test]
    fn the_watchdog_pings_once_every_follower_has_beaten() {
        let every = Duration::from_secs(1);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut b = Beats::new(2, every);
        assert!(!b.beat(0, at(0)), "follower 1 has not beaten");
        assert!(b.beat(1, at(10)));
        // Both beat again, but within `every` of the ping.
        assert!(!b.beat(0, at(500)) && !b.beat(1, at(600)));
        assert!(b.beat(0, at(1_100)));
        // Follower 1 is stuck: no ping however long follower 0 goes on.
        assert!(!b.beat(0, at(2_500)) && !b.beat(0, at(9_000)));
        assert!(b.beat(1, at(9_100)));
    }
}
