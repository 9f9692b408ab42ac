//! Pipeline: the threads and channels, wired here and nowhere else.
//!
//! ```text
//! reader ──source events──▶ N workers ──events by shard──▶ N shards ──decisions──▶ alert thread
//!    ▲                          └──────────── chunk stats ───────────────────────────▲ │
//!    └───────────────────────────────── in-flight tokens ────────────────────────────────┘
//! ```
//! - The reader numbers the source's events (`seq`: a file opened, chunks
//!   of lines, a file finished, a checkpoint, an idle tick), holding a token
//!   per event in flight, which bounds memory.
//! - A worker finds a chunk's candidate lines, parses them and matches
//!   rules, and splits the events of its chunk by a seeded hash of the key.
//! - Each shard owns the windows of its keys (no locks) and applies chunks
//!   strictly in `seq` order, so decisions are the same for any thread count.
//! - The alert thread (the caller's) waits until every shard has finished a
//!   chunk, then turns that chunk's decisions into alerts in line order.
//! - At a checkpoint each shard encodes its own windows — the keys changed
//!   since the last one, or all of them for a new base — and the alert
//!   thread hands them, with the positions, to the sink.
//!
//! Keys with nothing left to decide are evicted each `cleanup_interval` of
//! log time, measured by the oldest of the sources' newest event times
//! (with one source, the newest event time so far), which every shard sees
//! identically.

use crate::alert::{Alert, Origin, Scope};
use crate::farm::link::{Hit, Link, LinkCounts};
use crate::parse::client::Key;
use crate::parse::normalize::Normalized;
use crate::parse::{Parser, Skip};
use crate::rules::RuleSet;
use crate::source::{Chunk, FileTag, Position, Source, SourceError, SourceEvent};
use crate::state::codec::Entries;
use crate::window::{Outcome, Windows};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the engine runs, besides its rules and parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// IPv6 clients are grouped by this prefix length (128 = not grouped).
    pub ipv6_prefix: u8,
    /// Worker (and shard) threads.
    pub threads: usize,
    /// Seconds of log time between evictions.
    pub cleanup_interval: u32,
    /// The source asks for checkpoints: shards track which keys change, so
    /// saving costs what changed.
    pub checkpoints: bool,
    /// Hand the sink each client's peak (most events its window held) when
    /// the client is dropped and at the end ([`Sink::peaks`]; a report).
    pub peaks: bool,
    /// `(I, N)`: count only the keys in shard I of N ([`Key::batch_shard`]),
    /// so N runs together raise the whole run's alerts.
    pub shard: Option<(u32, u32)>,
    /// Count events from one window (the rule's) before `since`, alert
    /// only on those at or after it, and count none after `until` (Unix
    /// seconds, both included).
    pub since: Option<u32>,
    /// See `since`.
    pub until: Option<u32>,
}

/// Everything the engine needs besides its inputs.
pub struct Engine {
    /// The rules.
    pub rules: RuleSet,
    /// The configured sources' names and parsers, by index
    /// ([`crate::source::FileTag::source`]).
    pub sources: Vec<(String, Parser)>,
    /// Threads, limits, cleanup.
    pub settings: EngineSettings,
}

/// Counters for a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Lines parsed (candidates for some rule, or all lines without a literal).
    pub parsed: u64,
    /// Lines skipped, by [`Skip::index`].
    pub skipped: [u64; 5],
    /// Lines an allow-list kept from a rule's windows.
    pub allowed: u64,
    /// Events (lines matching a rule).
    pub events: u64,
    /// Events older than their key's window.
    pub late: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Keys evicted by the cleanup.
    pub evicted: u64,
    /// Keys forgotten at a rule's `max_clients`.
    pub forgotten: u64,
    /// Oldest and newest event time (Unix seconds), once there are events.
    pub span: Option<(u32, u32)>,
    /// Per rule, in rule order.
    pub rules: Vec<RuleCounts>,
    /// In a farm: events the farm had applied before (read again after a
    /// crash), and events this node decided alone (Redis did not answer).
    pub farm: Option<FarmCounts>,
    /// How long the run took.
    pub elapsed: Duration,
}

/// The summary line: `summary: 1000 lines, 0.2 MB in 0.01 s (20 MB/s); …`.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let skipped: u64 = self.skipped.iter().sum();
        let reasons: Vec<String> = Skip::ALL
            .iter()
            .filter(|r| self.skipped[r.index()] > 0)
            .map(|r| format!("{} {}", r.name(), self.skipped[r.index()]))
            .collect();
        let reasons =
            if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) };
        let mb = self.bytes as f64 / 1e6;
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "summary: {} lines, {:.1} MB in {:.2} s ({:.0} MB/s); parsed {}, skipped {}{}; allowed {}; events {}, late {}; alerts {}; evicted {}, forgotten {}",
            self.lines,
            mb,
            secs,
            mb / secs.max(1e-9),
            self.parsed,
            skipped,
            reasons,
            self.allowed,
            self.events,
            self.late,
            self.alerts,
            self.evicted,
            self.forgotten
        )?;
        match &self.farm {
            Some(c) => write!(
                f,
                "; farm: repeated {}, decided alone {}, round trips {}",
                c.repeated, c.alone, c.link.round_trips
            ),
            None => Ok(()),
        }
    }
}

/// One rule's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleCounts {
    /// Events (lines the rule counts).
    pub events: u64,
    /// Events older than their key's window.
    pub late: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Clients whose windows are held now.
    pub clients: u64,
}

/// How things stand, handed to a sink that asks for it (a status page)
/// after each source event is completed.
pub struct Status<'a> {
    /// The counters so far.
    pub summary: &'a Summary,
    /// The files followed now.
    pub files: &'a [FileStatus],
    /// Newest event time of the stream (Unix seconds; 0 before any).
    pub watermark: u32,
    /// After a [`SourceEvent::Probe`]: per rule, the clients with the most
    /// events in the window that ends at the watermark, most first.
    pub nearest: Option<&'a [Vec<(String, u32)>]>,
}

/// Where reading of one followed file stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// The name it is followed under.
    pub path: String,
    /// Offset after the last line decided.
    pub offset: u64,
    /// Newest time of its events so far (Unix seconds; 0 before any).
    pub newest: u32,
}

/// Clients listed per rule after a probe.
pub const NEAREST: usize = 20;

/// A farm node's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FarmCounts {
    /// Events the farm had applied before.
    pub repeated: u64,
    /// Events decided on this node's windows alone.
    pub alone: u64,
    /// The link's own: round trips, outages, rule differences.
    pub link: LinkCounts,
}

impl Summary {
    fn add_scan(&mut self, s: &ScanStats) {
        if s.events > 0 {
            let (a, b) = self.span.unwrap_or((s.oldest, s.newest));
            self.span = Some((a.min(s.oldest), b.max(s.newest)));
        }
        self.parsed += s.parsed;
        self.allowed += s.allowed;
        self.events += s.events;
        for (a, b) in self.skipped.iter_mut().zip(s.skipped) {
            *a += b;
        }
    }
}

/// One matched line, routed to the shard of its key.
#[derive(Debug, Clone, Copy)]
struct Event {
    rule: u16,
    key: Key,
    time: u32,
    /// Byte offset of the line start in its chunk.
    pos: u32,
    /// For a rule counting distinct values, the index of the line's value
    /// in its batch's `values` (else [`NO_VALUE`]): kept apart, so an event
    /// stays 32 bytes.
    value: u32,
}

/// [`Event::value`] of a rule that counts events.
const NO_VALUE: u32 = u32::MAX;

/// A shard's alert decision, to be rendered by the alert thread.
#[derive(Debug, Clone, Copy)]
struct Decision {
    rule: u16,
    count: u32,
    pos: u32,
}

#[derive(Debug, Clone, Copy)]
struct ScanStats {
    lines: u64,
    /// Newest event time.
    newest: u32,
    /// Oldest event time (`u32::MAX` without events).
    oldest: u32,
    parsed: u64,
    skipped: [u64; 5],
    allowed: u64,
    events: u64,
}

/// Which windows a shard encodes at a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Save {
    /// The keys changed since the last save.
    Changes,
    /// Every key (for a new base).
    All,
}

/// What a shard gets for each chunk (possibly no events).
struct Batch {
    seq: u64,
    /// The source whose newest time this event carries (a chunk's newest
    /// event or last line, an idle tick's clock), and that time.
    newest: Option<(usize, u32)>,
    events: Vec<Event>,
    /// Encode the windows after applying this batch.
    save: Option<Save>,
    /// List the clients nearest the threshold after applying this batch.
    probe: bool,
    /// The chunk, where a rule counts per more than the client: the shard
    /// reads the names of new keys from its lines.
    chunk: Option<Arc<SourceEvent>>,
    /// The chunk's values of fields counted distinct ([`Event::value`]).
    values: Arc<Vec<u128>>,
}

impl Batch {
    /// The counted field's value of an event (0 for a rule counting events).
    fn value(&self, ev: &Event) -> u128 {
        self.values.get(ev.value as usize).copied().unwrap_or(0)
    }
}

impl Default for ScanStats {
    fn default() -> ScanStats {
        ScanStats {
            lines: 0,
            newest: 0,
            oldest: u32::MAX,
            parsed: 0,
            skipped: [0; 5],
            allowed: 0,
            events: 0,
        }
    }
}

enum ToAlerts {
    Scanned {
        seq: u64,
        event: Arc<SourceEvent>,
        stats: ScanStats,
    },
    Decided(Decided),
    /// A shard's clients still held at the end, per rule, with their peaks.
    Peaks(Vec<Vec<(String, u32)>>),
    ReadFailed(SourceError),
}

/// One chunk's events and late events of one rule.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    events: u64,
    late: u64,
}

/// A shard's results for one chunk.
struct Decided {
    seq: u64,
    shard: usize,
    /// Per rule: events applied and late events.
    tally: Vec<Tally>,
    /// Per rule: clients held after.
    clients: Vec<u64>,
    /// Per rule, after a probe: this shard's clients nearest the threshold.
    nearest: Option<Vec<Vec<(String, u32)>>>,
    /// Per rule, with peaks asked for: the clients dropped, with their peaks.
    peaks: Vec<Vec<(String, u32)>>,
    decisions: Vec<Decision>,
    /// The chunk's events, for the farm (empty without one).
    events: Vec<Event>,
    evicted: u64,
    forgotten: u64,
    watermark: u32,
    /// Per rule, the entries asked for by `Batch::save`.
    save: Option<Vec<Entries>>,
}

/// A source event being completed by the alert thread.
#[derive(Default)]
struct Pending {
    event: Option<Arc<SourceEvent>>,
    lines: u64,
    shards_done: usize,
    decisions: Vec<Decision>,
    events: Vec<Event>,
    /// In a farm: who decided the chunk's alerts.
    scope: Option<Scope>,
    watermark: u32,
    saves: Vec<Vec<Entries>>,
    /// Per rule, summed over the shards.
    tally: Vec<Tally>,
    nearest: Option<Vec<Vec<(String, u32)>>>,
}

/// Where the alert thread hands its results; it runs on the caller's thread.
pub trait Sink {
    /// One alert, in the order of the lines that raised them.
    fn alert(&mut self, alert: Alert);
    /// A chunk is finished (its `read` says how far its input is read).
    fn progress(&mut self, _chunk: &Chunk) {}
    /// A consistent state: positions after, and windows as of, the same chunk.
    fn checkpoint(&mut self, _cp: &Checkpoint<'_>) {}
    /// Whether the sink wants [`Sink::status`] (building it costs a little
    /// per chunk: the positions are gathered).
    fn wants_status(&self) -> bool {
        false
    }
    /// How things stand after a source event was completed.
    fn status(&mut self, _s: &Status<'_>) {}
    /// With [`EngineSettings::peaks`]: clients of rule `rule` and the most
    /// events their window held, as they are dropped and at the end (a
    /// client dropped and seen again comes again).
    fn peaks(&mut self, _rule: usize, _peaks: &[(String, u32)]) {}
}

/// State as of one source event, for saving.
pub struct Checkpoint<'a> {
    /// Where reading of each followed file stands.
    pub positions: Vec<Position>,
    /// Windows, encoded: per shard, one per rule (in rule order) — every
    /// key when `full`, else the keys changed since the last checkpoint.
    pub windows: &'a [Vec<Entries>],
    /// Whether `windows` holds every key.
    pub full: bool,
    /// Newest event time of the stream.
    pub watermark: u32,
}

/// Saved windows to start from.
pub struct Restore {
    /// One per rule, in rule order (empty ones for new or changed rules).
    pub windows: Vec<Windows>,
    /// Newest event time of the stream when saved.
    pub watermark: u32,
}

impl Engine {
    /// An engine with these rules, one source's parser, and settings.
    pub fn new(rules: RuleSet, parser: Parser, settings: EngineSettings) -> Engine {
        Engine::with_sources(rules, vec![("default".to_string(), parser)], settings)
    }

    /// An engine reading several sources, each with its name and parser.
    pub fn with_sources(
        rules: RuleSet,
        sources: Vec<(String, Parser)>,
        settings: EngineSettings,
    ) -> Engine {
        Engine { rules, sources, settings }
    }

    /// The parser of source `index` (the first for an unknown index).
    pub fn parser(&self, index: usize) -> &Parser {
        &self.sources.get(index).unwrap_or(&self.sources[0]).1
    }

    /// Runs a source's events through the engine, from `restore`d windows
    /// if given, handing alerts, progress and checkpoints to `sink`. Returns
    /// when the source ends.
    pub fn run(
        &self,
        source: Box<dyn Source>,
        restore: Option<Restore>,
        sink: &mut dyn Sink,
    ) -> Result<Summary, SourceError> {
        self.run_in_farm(source, restore, sink, None)
    }

    /// Like [`Engine::run`]; with a `farm`, each chunk's events are decided
    /// on the farm-wide windows, or on this node's own while Redis does not
    /// answer.
    pub fn run_in_farm(
        &self,
        source: Box<dyn Source>,
        restore: Option<Restore>,
        sink: &mut dyn Sink,
        farm: Option<&mut Link>,
    ) -> Result<Summary, SourceError> {
        let started = Instant::now();
        let ship = farm.is_some();
        let n = self.settings.threads.max(1);
        // A fresh seed per run: which shard owns a key is not predictable
        // from outside (keys are attacker-chosen), yet fixed within the run.
        let sharding = Sharding { hasher: foldhash::fast::RandomState::default(), shards: n };
        let (event_tx, event_rx) = bounded::<(u64, Arc<SourceEvent>)>(2 * n);
        // In a farm, 24 more chunks (1 MB each at most) may be read ahead
        // while a round trip is out: the next call then merges a client's
        // hits over more chunks (benches/farm.sh: Redis time -20 %).
        let (token_tx, token_rx) = bounded::<()>(4 * n + 4 + if ship { 24 } else { 0 });
        let (alert_tx, alert_rx) = unbounded::<ToAlerts>();
        let shard_chans: Vec<(Sender<Batch>, Receiver<Batch>)> =
            (0..n).map(|_| unbounded()).collect();
        let shard_txs: Vec<Sender<Batch>> = shard_chans.iter().map(|c| c.0.clone()).collect();
        let restore = restore.as_ref();
        std::thread::scope(|s| {
            let reader_alert_tx = alert_tx.clone();
            s.spawn(move || read_all(source, &event_tx, &token_tx, &reader_alert_tx));
            for _ in 0..n {
                let (rx, txs, atx) = (event_rx.clone(), shard_txs.clone(), alert_tx.clone());
                let scanner = Scanner {
                    rules: &self.rules,
                    only: self.settings.shard,
                    range: Range { since: self.settings.since, until: self.settings.until },
                    parsers: self.sources.iter().map(|s| s.1.clone()).collect(),
                    ipv6_prefix: self.settings.ipv6_prefix,
                    sharding: &sharding,
                };
                s.spawn(move || scanner.work(&rx, &txs, &atx));
            }
            drop(shard_txs);
            for (i, (_, rx)) in shard_chans.into_iter().enumerate() {
                let shard = Shard::new(self, restore, &sharding, i, ship);
                let atx = alert_tx.clone();
                s.spawn(move || shard.run(&rx, &atx));
            }
            drop(alert_tx);
            drop(event_rx);
            let mut summary = Collector::new(self, n, farm).run(&alert_rx, &token_rx, sink)?;
            summary.elapsed = started.elapsed();
            Ok(summary)
        })
    }
}

/// The alert thread's bookkeeping.
struct Collector<'e> {
    engine: &'e Engine,
    farm: Option<&'e mut Link>,
    shards: usize,
    sum: Summary,
    pending: HashMap<u64, Pending>,
    next: u64,
    /// Lines before the next chunk of each file, by file id.
    line_base: HashMap<u64, u64>,
    /// Followed files' positions, by file id.
    positions: HashMap<u64, Position>,
    /// Per shard, per rule: clients held, as last reported.
    clients: Vec<Vec<u64>>,
    /// Newest event time, by file id.
    newest: HashMap<u64, u32>,
    /// Newest event time reported.
    watermark: u32,
}

impl<'e> Collector<'e> {
    fn new(engine: &'e Engine, shards: usize, farm: Option<&'e mut Link>) -> Collector<'e> {
        let farm_counts = farm.is_some().then(FarmCounts::default);
        Collector {
            engine,
            farm,
            shards,
            sum: Summary {
                farm: farm_counts,
                rules: vec![RuleCounts::default(); engine.rules.rules.len()],
                ..Summary::default()
            },
            pending: HashMap::new(),
            next: 0,
            line_base: HashMap::new(),
            positions: HashMap::new(),
            clients: vec![Vec::new(); shards],
            newest: HashMap::new(),
            watermark: 0,
        }
    }

    /// Completes source events in order until every other thread is done.
    fn run(
        mut self,
        rx: &Receiver<ToAlerts>,
        tokens: &Receiver<()>,
        sink: &mut dyn Sink,
    ) -> Result<Summary, SourceError> {
        let mut failure = None;
        while let Ok(first) = rx.recv() {
            // What else has arrived meanwhile (in a farm, during a round
            // trip) is taken too, so chunks ready together complete together.
            for msg in std::iter::once(first).chain(rx.try_iter()) {
                if let Some(e) = self.take(msg, sink) {
                    failure = Some(e);
                }
            }
            let mut ready = Vec::new();
            while self
                .pending
                .get(&self.next)
                .is_some_and(|p| p.event.is_some() && p.shards_done == self.shards)
            {
                ready.push(self.pending.remove(&self.next).expect("checked"));
                self.next += 1;
            }
            // Chunks that are ready together go to the farm together: a
            // client's hits in several chunks cost one window update.
            self.farm_decides(&mut ready);
            for p in ready {
                self.complete(p, sink);
                // Frees the reader to send one more event.
                tokens.recv().unwrap_or(());
            }
        }
        failure.map_or(Ok(self.sum), Err)
    }

    /// Files a thread's message under its source event; a read failure is
    /// returned.
    fn take(&mut self, msg: ToAlerts, sink: &mut dyn Sink) -> Option<SourceError> {
        match msg {
            ToAlerts::Scanned { seq, event, stats } => {
                self.sum.add_scan(&stats);
                if let SourceEvent::Lines(c) = event.as_ref() {
                    let newest = self.newest.entry(c.file.id).or_default();
                    *newest = (*newest).max(stats.newest);
                }
                let p = self.pending.entry(seq).or_default();
                p.event = Some(event);
                p.lines = stats.lines;
            }
            ToAlerts::Decided(d) => {
                for (rule, peaks) in d.peaks.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
                    sink.peaks(rule, peaks);
                }
                self.sum.evicted += d.evicted;
                self.note_forgotten(d.forgotten);
                let (mut decisions, mut events) = (d.decisions, d.events);
                let p = self.pending.entry(d.seq).or_default();
                p.shards_done += 1;
                p.decisions.append(&mut decisions);
                p.events.append(&mut events);
                p.watermark = d.watermark;
                p.saves.extend(d.save);
                p.tally.resize(d.tally.len(), Tally::default());
                for (a, b) in p.tally.iter_mut().zip(&d.tally) {
                    a.events += b.events;
                    a.late += b.late;
                }
                self.clients[d.shard] = d.clients;
                if let Some(mut lists) = d.nearest {
                    let all = p.nearest.get_or_insert_with(|| vec![Vec::new(); lists.len()]);
                    for (a, b) in all.iter_mut().zip(&mut lists) {
                        a.append(b);
                    }
                }
            }
            ToAlerts::Peaks(lists) => {
                for (rule, peaks) in lists.iter().enumerate() {
                    sink.peaks(rule, peaks);
                }
            }
            ToAlerts::ReadFailed(e) => return Some(e),
        }
        None
    }

    /// Finishes one source event: a chunk's alerts, counters and position;
    /// a finished file's position dropped; a checkpoint handed to the sink.
    fn complete(&mut self, mut p: Pending, sink: &mut dyn Sink) {
        match p.event.take().as_deref() {
            Some(SourceEvent::Lines(chunk)) => {
                p.decisions.sort_by_key(|d| (d.pos, d.rule));
                self.lines_done(chunk, &p, sink);
            }
            Some(SourceEvent::Opened { file, offset }) => {
                self.line_base.insert(file.id, file.start_line);
                if let Some(id) = file.identity {
                    let (path, offset, lines) = (file.name.clone(), *offset, file.start_line);
                    let source = self.source_name(file);
                    self.positions.insert(file.id, Position { source, path, id, offset, lines });
                }
            }
            Some(SourceEvent::FileDone(tag)) => {
                self.positions.remove(&tag.id);
                self.newest.remove(&tag.id);
            }
            Some(SourceEvent::Checkpoint { full }) => self.checkpoint(&p, *full, sink),
            Some(SourceEvent::Tick { .. }) => self.checkpoint(&p, true, sink),
            Some(SourceEvent::Probe) | None => {}
        }
        for (r, counts) in self.sum.rules.iter_mut().enumerate() {
            counts.clients = self.clients.iter().filter_map(|c| c.get(r)).sum();
        }
        if sink.wants_status() {
            self.status(&mut p, sink);
        }
    }

    /// Hands the sink how things stand, the nearest clients merged over the
    /// shards after a probe.
    fn status(&mut self, p: &mut Pending, sink: &mut dyn Sink) {
        if let Some(lists) = p.nearest.as_mut() {
            for l in lists.iter_mut() {
                l.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                l.truncate(NEAREST);
            }
        }
        let mut ids: Vec<&u64> = self.positions.keys().collect();
        ids.sort_unstable();
        let files: Vec<FileStatus> = ids
            .into_iter()
            .map(|id| FileStatus {
                path: self.positions[id].path.clone(),
                offset: self.positions[id].offset,
                newest: self.newest.get(id).copied().unwrap_or(0),
            })
            .collect();
        self.watermark = self.watermark.max(p.watermark);
        sink.status(&Status {
            summary: &self.sum,
            files: &files,
            watermark: self.watermark,
            nearest: p.nearest.as_deref(),
        });
    }

    /// In a farm, the farm's decisions on the events of each run of chunks
    /// of one file replace this node's own, unless Redis does not answer;
    /// sets each chunk's alert scope and late counts accordingly.
    fn farm_decides(&mut self, ready: &mut [Pending]) {
        if self.farm.is_none() {
            return;
        }
        let file_of = |p: &Pending| match p.event.as_deref() {
            Some(SourceEvent::Lines(c)) => Some(c.file.id),
            _ => None,
        };
        for run in ready.chunk_by_mut(|a, b| file_of(a) == file_of(b)) {
            if file_of(&run[0]).is_some() {
                self.farm_decides_run(run);
            }
        }
    }

    /// One round trip for consecutive chunks of one file.
    fn farm_decides_run(&mut self, run: &mut [Pending]) {
        let (Some(link), Some(counts)) = (self.farm.as_deref_mut(), self.sum.farm.as_mut()) else {
            return;
        };
        let mut hits = Vec::new();
        let mut from = Vec::new(); // (chunk in the run, event) of each hit
        let mut identity = None;
        for (k, p) in run.iter_mut().enumerate() {
            let Some(SourceEvent::Lines(chunk)) = p.event.as_deref() else { continue };
            identity = chunk.file.identity;
            p.events.sort_unstable_by_key(|e| (e.pos, e.rule));
            for (j, e) in p.events.iter().enumerate() {
                let offset = chunk.offset + u64::from(e.pos);
                hits.push(Hit { rule: e.rule, key: e.key, time: e.time, offset });
                from.push((k, j));
            }
        }
        // The file, for the farm's record of what each node applied: its
        // identity, with the checksum of its first bytes, which changes when
        // a copytruncate starts it again.
        let decided = identity.and_then(|id| {
            let file = format!("{:x}-{:x}-{:08x}", id.dev, id.ino, id.fingerprint.unwrap_or(0));
            link.decide(&file, &hits).ok()
        });
        counts.link = link.counts();
        let Some(d) = decided else {
            counts.alone += hits.len() as u64;
            run.iter_mut().for_each(|p| p.scope = Some(Scope::Local));
            return;
        };
        counts.repeated += d.repeated;
        for (i, p) in run.iter_mut().enumerate() {
            p.scope = Some(Scope::Farm);
            p.decisions.clear();
            for (r, t) in p.tally.iter_mut().enumerate() {
                t.late = if i == 0 { d.late_by_rule.get(r).copied().unwrap_or(0) } else { 0 };
            }
        }
        for a in &d.alerts {
            let (k, j) = from[a.hit];
            let e = run[k].events[j];
            let d = Decision { rule: e.rule, count: a.count, pos: e.pos };
            run[k].decisions.push(d);
        }
    }

    /// A chunk is done: its alerts, counters and the position after it.
    fn lines_done(&mut self, chunk: &Chunk, p: &Pending, sink: &mut dyn Sink) {
        let base = *self.line_base.entry(chunk.file.id).or_insert(chunk.file.start_line);
        self.emit(chunk, &p.decisions, base, p.scope, sink);
        for (sum, add) in self.sum.rules.iter_mut().zip(&p.tally) {
            sum.events += add.events;
            sum.late += add.late;
            self.sum.late += add.late;
        }
        let after = base + p.lines;
        self.line_base.insert(chunk.file.id, after);
        self.sum.lines += p.lines;
        self.sum.bytes += chunk.bytes().len() as u64;
        sink.progress(chunk);
        if let Some(id) = chunk.file.identity {
            let offset = chunk.offset + chunk.bytes().len() as u64;
            let (path, source) = (chunk.file.name.clone(), self.source_name(&chunk.file));
            let lines = after;
            self.positions.insert(chunk.file.id, Position { source, path, id, offset, lines });
        }
    }

    /// Hands the sink the state as of the event just completed.
    fn checkpoint(&self, p: &Pending, full: bool, sink: &mut dyn Sink) {
        let positions = self.current_positions();
        let windows = &p.saves;
        sink.checkpoint(&Checkpoint { positions, windows, full, watermark: p.watermark });
    }

    /// Counts keys forgotten at `max_clients`, saying so the first time.
    fn note_forgotten(&mut self, n: u64) {
        if n > 0 && self.sum.forgotten == 0 {
            tracing::warn!(
                "A rule reached its max_clients; the clients with the fewest hits are forgotten (counted as forgotten in the summary)."
            );
        }
        self.sum.forgotten += n;
    }

    /// Positions, one per file (the newest reading of a rewritten file).
    /// The name of the source a file is read as.
    fn source_name(&self, file: &FileTag) -> String {
        let sources = &self.engine.sources;
        sources.get(file.source).map_or_else(String::new, |s| s.0.clone())
    }

    fn current_positions(&self) -> Vec<Position> {
        let mut ids: Vec<&u64> = self.positions.keys().collect();
        ids.sort_unstable();
        let mut out: Vec<Position> = Vec::new();
        for id in ids {
            let pos = &self.positions[id];
            out.retain(|o| (o.id.dev, o.id.ino) != (pos.id.dev, pos.id.ino));
            out.push(pos.clone());
        }
        out
    }

    /// Renders a finished chunk's decisions.
    fn emit(
        &mut self,
        chunk: &Chunk,
        decisions: &[Decision],
        line_base: u64,
        scope: Option<Scope>,
        sink: &mut dyn Sink,
    ) {
        let engine = self.engine;
        let parser = engine.parser(chunk.file.source);
        parser.set_now(chunk.read_at);
        let bytes = chunk.bytes();
        // Decisions come in line order: their line numbers are counted on.
        let (mut counted_to, mut lines_before) = (0usize, 0u64);
        for d in decisions {
            let pos = (d.pos as usize).min(bytes.len());
            lines_before += bytecount::count(&bytes[counted_to.min(pos)..pos], b'\n') as u64;
            counted_to = counted_to.max(pos);
            let line = line_at(bytes, pos);
            let Ok(record) = parser.parse(line) else { continue };
            let rule = &engine.rules.rules[usize::from(d.rule)];
            let here = line_base + u64::from(chunk.skipped_long) + lines_before + 1;
            let (file, number) = match chunk.origins.as_deref().and_then(|o| o.at(d.pos)) {
                Some(merged) => merged,
                None => (chunk.file.name.as_str(), here),
            };
            let origin = Origin { file, line: number, record: &record };
            self.sum.alerts += 1;
            if let Some(counts) = self.sum.rules.get_mut(usize::from(d.rule)) {
                counts.alerts += 1;
            }
            let client = Key::of(record.client, engine.settings.ipv6_prefix);
            let key = rule.key_text(&record, client, engine.settings.ipv6_prefix);
            let mut alert = Alert::new(rule, key, d.count, &origin);
            // Stable across restarts — the same line (by its checksum) at the
            // same offset of the same file, same rule — and different for new
            // content written at the same offset after a truncation.
            alert.id = chunk.file.identity.map(|id| {
                let at = chunk.offset + d.pos as u64;
                let (dev, ino) = (id.dev, id.ino);
                format!("{dev:x}-{ino:x}-{at}-{:08x}-{}", crc32fast::hash(line), rule.name)
            });
            if let (Some(scope), Some(link)) = (scope, self.farm.as_deref()) {
                alert.node = Some(link.node().to_string());
                alert.scope = Some(scope);
            }
            sink.alert(alert);
        }
    }
}

/// A shard: the windows of the keys that hash to it, owned by one thread.
struct Shard<'e> {
    index: usize,
    rules: &'e RuleSet,
    ipv6_prefix: u8,
    windows: Vec<Windows>,
    /// Per rule that counts per more than the client: the names of the keys
    /// held (for the nearest clients and peaks), read from a line of each.
    names: Vec<Option<Names>>,
    /// Reads those lines, per source (this thread's own; they cache).
    parsers: Vec<Parser>,
    /// Hand on the peaks of dropped clients (a report).
    peaks: bool,
    /// In a farm: hand the events on, for the farm to decide.
    ship: bool,
    cleanup_interval: u32,
    /// Per source, its newest time once it has one (events, a chunk's last
    /// line, idle ticks); the newest of them is the watermark.
    newest: Vec<Option<u32>>,
    next_cleanup: u32,
    /// Events before this only fill the windows ([`EngineSettings::since`]).
    since: u32,
}

impl<'e> Shard<'e> {
    /// Shard `index`, with its part of the restored windows.
    fn new(
        engine: &'e Engine,
        restore: Option<&Restore>,
        sharding: &Sharding,
        index: usize,
        ship: bool,
    ) -> Shard<'e> {
        let rules = &engine.rules.rules;
        let n = sharding.shards;
        let track = engine.settings.checkpoints;
        let peaks = engine.settings.peaks;
        let windows_of = |r: &crate::rules::Rule| {
            let w = Windows::new(r.spec).with_max_keys(r.max_clients.div_ceil(n));
            let w = if track { w.tracking() } else { w };
            if peaks { w.with_peaks() } else { w }
        };
        let mut windows: Vec<Windows> = rules.iter().map(windows_of).collect();
        // Restored windows are kept until every source has read past the
        // time they were saved at.
        let mut newest = vec![None; engine.sources.len()];
        if let Some(r) = restore {
            newest.fill(Some(r.watermark));
            for (mine, saved) in windows.iter_mut().zip(&r.windows) {
                for (key, state) in saved.iter() {
                    if sharding.of(*key) == index {
                        mine.insert_values(*key, state.clone(), saved.values(key).to_vec());
                    }
                }
            }
        }
        let names = rules.iter().map(|r| (!r.by_client()).then(Names::default)).collect();
        Shard {
            index,
            rules: &engine.rules,
            ipv6_prefix: engine.settings.ipv6_prefix,
            windows,
            names,
            parsers: engine.sources.iter().map(|s| s.1.clone()).collect(),
            peaks,
            ship,
            since: engine.settings.since.unwrap_or(0),
            cleanup_interval: engine.settings.cleanup_interval,
            newest,
            next_cleanup: 0,
        }
    }

    /// The newest time of any source.
    fn watermark(&self) -> u32 {
        self.newest.iter().flatten().max().copied().unwrap_or(0)
    }

    /// The time the cleanup forgets keys by: the oldest of the sources'
    /// newest times, so a source catching up on old lines keeps the windows
    /// it is still filling while another source is far ahead (a source with
    /// no time yet holds nothing back).
    fn cleanup_mark(&self) -> u32 {
        self.newest.iter().flatten().min().copied().unwrap_or(0)
    }

    /// The name of a key of rule `rule`: the client, or the parts read from
    /// one of its lines (a key restored from saved state and not seen since
    /// shows as `#` and its hash).
    fn name(&self, rule: usize, key: Key) -> String {
        match &self.names[rule] {
            None => key.render(self.ipv6_prefix),
            Some(names) => {
                names.get(&key).map_or_else(|| format!("#{:032x}", key.0), |n| n.to_string())
            }
        }
    }

    /// Names rendered for a list of keys of each rule.
    fn named(&self, lists: Vec<Vec<(Key, u32)>>) -> Vec<Vec<(String, u32)>> {
        let name = |(r, l): (usize, Vec<(Key, u32)>)| {
            l.into_iter().map(|(k, c)| (self.name(r, k), c)).collect()
        };
        lists.into_iter().enumerate().map(name).collect()
    }

    /// Learns the name of a new key of a rule counting per more than the
    /// client, from the event's line.
    fn learn_name(&mut self, ev: &Event, chunk: Option<&SourceEvent>) {
        let rule = usize::from(ev.rule);
        let (Some(names), Some(SourceEvent::Lines(chunk))) = (&mut self.names[rule], chunk) else {
            return;
        };
        if names.contains_key(&ev.key) {
            return;
        }
        let parser = self.parsers.get(chunk.file.source).unwrap_or(&self.parsers[0]);
        parser.set_now(chunk.read_at);
        let Ok(rec) = parser.parse(line_at(chunk.bytes(), ev.pos as usize)) else { return };
        let prefix = self.ipv6_prefix;
        let r = &self.rules.rules[rule];
        names.insert(ev.key, r.key_text(&rec, Key::of(rec.client, prefix), prefix).into());
    }

    /// Forgets the names of keys no longer held.
    fn prune_names(&mut self) {
        for (names, w) in self.names.iter_mut().zip(&self.windows) {
            if let Some(n) = names.as_mut().filter(|n| n.len() > w.len()) {
                n.retain(|k, _| w.get(*k).is_some());
            }
        }
    }

    /// Shard thread: applies batches strictly in `seq` order.
    fn run(mut self, rx: &Receiver<Batch>, alerts: &Sender<ToAlerts>) {
        let mut waiting: BTreeMap<u64, Batch> = BTreeMap::new();
        let mut next = 0u64;
        for batch in rx {
            waiting.insert(batch.seq, batch);
            while let Some(b) = waiting.remove(&next) {
                next += 1;
                if alerts.send(ToAlerts::Decided(self.apply(b))).is_err() {
                    return;
                }
            }
        }
        if self.peaks {
            let held = self.named(self.windows.iter().map(Windows::held_peaks).collect());
            alerts.send(ToAlerts::Peaks(held)).unwrap_or(());
        }
    }

    fn apply(&mut self, b: Batch) -> Decided {
        let mut decisions = Vec::new();
        let mut tally = vec![Tally::default(); self.windows.len()];
        for ev in &b.events {
            let t = &mut tally[usize::from(ev.rule)];
            t.events += 1;
            let outcome =
                self.windows[usize::from(ev.rule)].record_value(ev.key, ev.time, b.value(ev));
            self.learn_name(ev, b.chunk.as_deref());
            match outcome {
                Outcome::Late => t.late += 1,
                Outcome::Counted(_) => {}
                Outcome::Alert(_) if ev.time < self.since => {}
                Outcome::Alert(count) => {
                    let (rule, pos) = (ev.rule, ev.pos);
                    decisions.push(Decision { rule, count, pos });
                }
            }
        }
        let mut evicted = 0;
        if let Some((source, time)) = b.newest {
            if let Some(n) = self.newest.get_mut(source) {
                *n = Some(n.map_or(time, |t| t.max(time)));
            }
            let mark = self.cleanup_mark();
            if mark >= self.next_cleanup {
                evicted = self.windows.iter_mut().map(|w| w.evict(mark) as u64).sum();
                let step = self.cleanup_interval.max(1);
                self.next_cleanup = (mark / step).saturating_add(1).saturating_mul(step);
            }
        }
        let forgotten = self.windows.iter_mut().map(Windows::take_forgotten).sum();
        let peaks = match self.peaks {
            true => {
                let dropped = self.windows.iter_mut().map(Windows::take_peaks).collect();
                self.named(dropped)
            }
            false => Vec::new(),
        };
        let save = b.save.map(|kind| self.windows.iter_mut().map(|w| encode(w, kind)).collect());
        let watermark = self.watermark();
        let clients = self.windows.iter().map(|w| w.len() as u64).collect();
        let nearest = b
            .probe
            .then(|| self.named(self.windows.iter().map(|w| w.top(NEAREST, watermark)).collect()));
        self.prune_names();
        let events = if self.ship { b.events } else { Vec::new() };
        let (seq, shard) = (b.seq, self.index);
        Decided {
            seq,
            shard,
            tally,
            clients,
            nearest,
            peaks,
            decisions,
            events,
            evicted,
            forgotten,
            watermark,
            save,
        }
    }
}

/// A shard's windows of one rule, encoded for saving.
fn encode(w: &mut Windows, kind: Save) -> Entries {
    match kind {
        Save::Changes => Entries::changes(w),
        Save::All => {
            // Everything is in a new base: the changes so far are in it.
            w.take_changes(|_, _| {});
            Entries::all(w)
        }
    }
}

/// A worker's reusable buffers: a line decoded from `%XX` while looking for
/// candidates, a normalized request, the chunk's distinct values.
#[derive(Default)]
struct Scratch {
    decoded: Vec<u8>,
    norm: Normalized,
    /// Values of fields counted distinct, for the chunk's batches.
    values: Vec<u128>,
}

/// A worker's view of the engine: its own parser (which caches), shared rules.
struct Scanner<'e> {
    rules: &'e RuleSet,
    /// Count only the keys of this batch shard ([`EngineSettings::shard`]).
    only: Option<(u32, u32)>,
    /// The times counted ([`EngineSettings::since`]).
    range: Range,
    /// Per source (this thread's own; they cache).
    parsers: Vec<Parser>,
    ipv6_prefix: u8,
    sharding: &'e Sharding,
}

impl Scanner<'_> {
    /// Worker thread: scans chunks, routes events to shards; every source
    /// event reaches every shard (possibly with no events), so each shard
    /// sees the same sequence.
    fn work(
        &self,
        rx: &Receiver<(u64, Arc<SourceEvent>)>,
        shards: &[Sender<Batch>],
        alerts: &Sender<ToAlerts>,
    ) {
        let mut by_shard: Vec<Vec<Event>> = vec![Vec::new(); shards.len()];
        let mut scratch = Scratch::default();
        // A shard names the keys of rules not by client from the chunk's lines.
        let named = self.rules.rules.iter().any(|r| !r.by_client());
        for (seq, event) in rx {
            let (stats, newest) = match event.as_ref() {
                #[cfg(debug_assertions)]
                SourceEvent::Lines(_) if test_panic() => panic!("LOGWARDEN_TEST_PANIC=worker"),
                SourceEvent::Lines(chunk) => {
                    let st = self.scan(chunk, &mut by_shard, &mut scratch);
                    let parser = self.parsers.get(chunk.file.source).unwrap_or(&self.parsers[0]);
                    let last = chunk.line_time(parser, true).and_then(|t| u32::try_from(t).ok());
                    let newest = st.newest.max(last.unwrap_or(0));
                    (st, (newest > 0).then_some((chunk.file.source, newest)))
                }
                SourceEvent::Tick { clock, source } => {
                    (ScanStats::default(), Some((*source, *clock)))
                }
                SourceEvent::Opened { .. }
                | SourceEvent::FileDone(_)
                | SourceEvent::Checkpoint { .. }
                | SourceEvent::Probe => (ScanStats::default(), None),
            };
            // An idle tick's save is whole: a new base without the clients
            // the cleanup has just forgotten, written while nothing else goes on.
            let save = match *event {
                SourceEvent::Checkpoint { full: true } | SourceEvent::Tick { .. } => {
                    Some(Save::All)
                }
                SourceEvent::Checkpoint { full: false } => Some(Save::Changes),
                _ => None,
            };
            let probe = matches!(*event, SourceEvent::Probe);
            let values = Arc::new(std::mem::take(&mut scratch.values));
            for (tx, events) in shards.iter().zip(by_shard.iter_mut()) {
                let events = std::mem::take(events);
                let chunk = (named && !events.is_empty()).then(|| event.clone());
                let values = Arc::clone(&values);
                let batch = Batch { seq, newest, events, save, probe, chunk, values };
                if tx.send(batch).is_err() {
                    return;
                }
            }
            if alerts.send(ToAlerts::Scanned { seq, event, stats }).is_err() {
                return;
            }
        }
    }

    /// Finds the events of one chunk; returns counters (with the newest and
    /// oldest event time).
    ///
    /// # Performance
    /// Lines without a rule's literal are never parsed; no allocation per line.
    fn scan(&self, chunk: &Chunk, by_shard: &mut [Vec<Event>], scratch: &mut Scratch) -> ScanStats {
        let source = chunk.file.source;
        let parser = self.parsers.get(source).unwrap_or(&self.parsers[0]);
        parser.set_now(chunk.read_at);
        let max_line = parser.max_line();
        let bytes = chunk.bytes();
        let mut st = ScanStats::default();
        let needs = self.rules.needs();
        let lines = self.rules.for_each_candidate(bytes, &mut scratch.decoded, |_, start, end| {
            let mut line = &bytes[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.len() > max_line {
                st.skipped[Skip::TooLong.index()] += 1;
                return;
            }
            // Borrowed, not moved out: a record is some 200 bytes.
            let parsed = parser.parse_needed(line, needs);
            let rec = match &parsed {
                Ok(r) => r,
                Err(e) => {
                    st.skipped[e.index()] += 1;
                    return;
                }
            };
            let Ok(time) = u32::try_from(rec.time.epoch) else {
                st.skipped[Skip::BadTime.index()] += 1;
                return;
            };
            st.parsed += 1;
            let client = Key::of(rec.client, self.ipv6_prefix);
            let rules = &self.rules.rules;
            let values = &mut scratch.values;
            let (only, range) = (self.only, self.range);
            let allowed = self.rules.events(rec, source, line, &mut scratch.norm, |i| {
                let Some(key) = rules[i].key_of(rec, client) else { return };
                if only.is_some_and(|(i, n)| key.batch_shard(n) != i)
                    || !range.holds(time, rules[i].spec.window)
                {
                    return;
                }
                let value = match rules[i].distinct {
                    None => NO_VALUE,
                    Some(_) => {
                        let Some(v) = rules[i].value_of(rec) else { return };
                        values.push(v);
                        (values.len() - 1) as u32
                    }
                };
                st.events += 1;
                st.newest = st.newest.max(time);
                st.oldest = st.oldest.min(time);
                let ev = Event { rule: i as u16, key, time, pos: start as u32, value };
                by_shard[self.sharding.of(key)].push(ev);
            });
            st.allowed += u64::from(allowed);
        });
        // Lines longer than a whole chunk were dropped by the source.
        st.lines = lines + u64::from(chunk.skipped_long);
        st.skipped[Skip::TooLong.index()] += u64::from(chunk.skipped_long);
        st
    }
}

/// The line that starts at `pos` of a chunk, without its line end.
fn line_at(bytes: &[u8], pos: usize) -> &[u8] {
    let rest = bytes.get(pos..).unwrap_or_default();
    let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Names of keys of one rule, by key.
type Names = HashMap<Key, Box<str>, foldhash::fast::RandomState>;

/// The event times counted (`replay --since/--until`).
#[derive(Debug, Clone, Copy)]
struct Range {
    since: Option<u32>,
    until: Option<u32>,
}

impl Range {
    /// Whether an event at `time` of a rule with a `window` is counted: from
    /// one window before `since` (so the first alerts are right) to `until`.
    fn holds(self, time: u32, window: u32) -> bool {
        self.since.is_none_or(|s| u64::from(time) + u64::from(window) >= u64::from(s))
            && self.until.is_none_or(|u| time <= u)
    }
}

/// A test hook (debug builds only): with `LOGWARDEN_TEST_PANIC=worker`, the
/// first worker to take a chunk panics (once per process), so tests can
/// check that a panic ends the process instead of hanging it.
#[cfg(debug_assertions)]
fn test_panic() -> bool {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    std::env::var_os("LOGWARDEN_TEST_PANIC").is_some_and(|v| v == "worker")
        && !DONE.swap(true, std::sync::atomic::Ordering::SeqCst)
}

/// Which shard owns a key: a seeded hash, fixed for the run.
struct Sharding {
    hasher: foldhash::fast::RandomState,
    shards: usize,
}

impl Sharding {
    /// The shard that owns `key`.
    fn of(&self, key: Key) -> usize {
        (self.hasher.hash_one(key.0) % self.shards as u64) as usize
    }
}

/// Reader thread: numbers the source's events and hands them to the
/// workers, holding one token per event in flight.
fn read_all(
    source: Box<dyn Source>,
    event_tx: &Sender<(u64, Arc<SourceEvent>)>,
    tokens: &Sender<()>,
    alerts: &Sender<ToAlerts>,
) {
    let mut seq = 0u64;
    let mut emit = |ev: SourceEvent| {
        if tokens.send(()).is_err() || event_tx.send((seq, Arc::new(ev))).is_err() {
            return false;
        }
        seq += 1;
        true
    };
    if let Err(e) = source.run(&mut emit) {
        // If the alert thread is gone there is nobody left to tell.
        alerts.send(ToAlerts::ReadFailed(e)).unwrap_or(());
    }
}
