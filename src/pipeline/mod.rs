//! Pipeline: the threads and channels, wired here and nowhere else.
//!
//! ```text
//! reader ──source events──▶ N workers ──events by shard──▶ N shards ──decisions──▶ alert thread ◀──▶ farm thread
//!    ▲                          └──────────── chunk stats ───────────────────────────▲ │     (batches, answers)
//!    └───────────────────────────────── in-flight tokens ────────────────────────────────┘
//! ```
//! - The reader numbers the source's events (`seq`: a file opened, chunks
//!   of lines, a file finished, a checkpoint, an idle tick), holding tokens
//!   for each event in flight (one per 64 KiB of lines, at least one), which
//!   bounds memory.
//! - A worker finds a chunk's candidate lines, parses them and matches
//!   rules, and splits the events of its chunk by a seeded hash of the key.
//!   Small source events waiting together go on as one message to each
//!   thread after it.
//! - Each shard owns the windows of its keys (no locks) and applies chunks
//!   strictly in `seq` order, so decisions are the same for any thread count.
//! - The alert thread (the caller's) waits until every shard has finished a
//!   chunk, then turns that chunk's decisions into alerts in line order.
//! - In a farm, the farm thread takes the alert thread's batches of events
//!   to Redis, one at a time; meanwhile the alert thread keeps the chunks
//!   that wait for it as their events' lines only, so their tokens go back
//!   to the reader (bounded by bytes kept instead).
//! - At a checkpoint each shard encodes its own windows — the keys changed
//!   since the last one, or all of them for a new base — and the alert
//!   thread hands them, with the positions, to the sink.
//!
//! Keys with nothing left to decide are evicted each `cleanup_interval` of
//! log time, measured by the oldest of the sources' newest event times
//! (with one source, the newest event time so far), which every shard sees
//! identically.
//!
//! Each thread's part has its own file: [`scan`] (the workers), [`shard`]
//! (the windows), [`collect`] (the alert thread), [`ship`] (the farm
//! thread); [`sink`] is what the engine hands out. The messages between
//! them, and the wiring, are here.

mod collect;
mod scan;
mod shard;
mod ship;
mod sink;

pub use sink::{
    Checkpoint, FarmCounts, FileStatus, NEAREST, Restore, RuleCounts, Sink, Status, Summary,
};

use crate::farm::link::Link;
use crate::parse::Parser;
use crate::parse::client::Key;
use crate::rules::RuleSet;
use crate::source::{Source, SourceError, SourceEvent};
use crate::state::codec::Entries;
use crate::threads::spawn;
use collect::Collector;
use crossbeam_channel::{Sender, bounded, unbounded};
use scan::Scanner;
use shard::Shard;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Instant;

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
        let in_farm = farm.is_some();
        let n = self.settings.threads.max(1);
        // A fresh seed per run: which shard owns a key is not predictable
        // from outside (keys are attacker-chosen), yet fixed within the run.
        let sharding = Sharding { hasher: foldhash::fast::RandomState::default(), shards: n };
        // The tokens bound what is in flight; the queue to the workers
        // holds as many source events, so small ones go on together.
        let (token_tx, token_rx) = bounded::<()>((4 * n + 4) * CHUNK_TOKENS);
        let (event_tx, event_rx) =
            bounded::<(u64, Arc<SourceEvent>)>(token_rx.capacity().unwrap_or(1));
        let (alert_tx, alert_rx) = unbounded::<Vec<ToAlerts>>();
        let shard_chans: Vec<_> = (0..n).map(|_| unbounded::<Vec<Batch>>()).collect();
        let shard_txs: Vec<Sender<Vec<Batch>>> = shard_chans.iter().map(|c| c.0.clone()).collect();
        let restore = restore.as_ref();
        std::thread::scope(|s| {
            let reader_alert_tx = alert_tx.clone();
            spawn(s, "reader", move || read_all(source, &event_tx, &token_tx, &reader_alert_tx));
            for i in 0..n {
                let (rx, txs, atx) = (event_rx.clone(), shard_txs.clone(), alert_tx.clone());
                let scanner = Scanner::new(self, &sharding, in_farm);
                spawn(s, &format!("scan-{i}"), move || scanner.work(&rx, &txs, &atx));
            }
            drop(shard_txs);
            for (i, (_, rx)) in shard_chans.into_iter().enumerate() {
                let shard = Shard::new(self, restore, &sharding, i, in_farm);
                let atx = alert_tx.clone();
                spawn(s, &format!("shard-{i}"), move || shard.run(&rx, &atx));
            }
            drop(alert_tx);
            drop(event_rx);
            let port = farm.map(|link| {
                let (batch_tx, batch_rx) = bounded(1);
                let (answer_tx, answer_rx) = bounded(1);
                let node = link.node().to_string();
                spawn(s, "farm", move || ship::ship(link, &batch_rx, &answer_tx));
                ship::Port { batches: batch_tx, answers: answer_rx, node }
            });
            let mut summary = Collector::new(self, n, port).run(&alert_rx, &token_rx, sink)?;
            summary.elapsed = started.elapsed();
            Ok(summary)
        })
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

/// A worker's counters for one chunk.
#[derive(Debug, Clone, Copy)]
struct ScanStats {
    lines: u64,
    /// Newest event time.
    newest: u32,
    /// Oldest event time (`u32::MAX` without events).
    oldest: u32,
    parsed: u64,
    skipped: [u64; crate::parse::Skip::COUNT],
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
    /// For an idle tick, the seconds its source had no line: its time goes
    /// on that long from its newest (`newest` only while it has none).
    idle: Option<u32>,
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
            skipped: [0; crate::parse::Skip::COUNT],
            allowed: 0,
            events: 0,
        }
    }
}

/// What the other threads tell the alert thread.
enum ToAlerts {
    Scanned {
        seq: u64,
        event: Arc<SourceEvent>,
        stats: ScanStats,
        /// In a farm, the lines with events, ascending: where each starts in
        /// the chunk and the lines before it (so that a waiting chunk, kept as
        /// these lines only, need not count its newlines again).
        event_lines: Vec<(u32, u32)>,
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
    /// In a farm, the values of fields counted distinct that `events`
    /// refer to ([`Event::value`]).
    values: Option<Arc<Vec<u128>>>,
    evicted: u64,
    forgotten: u64,
    watermark: u32,
    /// Per rule, the entries asked for by `Batch::save`.
    save: Option<Vec<Entries>>,
}

/// The line that starts at `pos` of a chunk, without its line end.
fn line_at(bytes: &[u8], pos: usize) -> &[u8] {
    let rest = bytes.get(pos..).unwrap_or_default();
    let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
    line.strip_suffix(b"\r").unwrap_or(line)
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

/// Bytes of a chunk that take one token: a source event in flight holds a
/// token per `TOKEN_BYTES` of its lines (one at least), so many small
/// chunks can be in flight where few large ones are.
const TOKEN_BYTES: usize = 64 << 10;

/// The tokens a whole chunk holds, and the most any event holds.
const CHUNK_TOKENS: usize = crate::source::CHUNK_BYTES / TOKEN_BYTES + 1;

/// The tokens a source event holds while in flight.
fn tokens_of(event: &SourceEvent) -> usize {
    (event.line_bytes() / TOKEN_BYTES + 1).min(CHUNK_TOKENS)
}

/// Reader thread: numbers the source's events and hands them to the
/// workers, holding tokens for each event in flight ([`tokens_of`]).
fn read_all(
    source: Box<dyn Source>,
    event_tx: &Sender<(u64, Arc<SourceEvent>)>,
    tokens: &Sender<()>,
    alerts: &Sender<Vec<ToAlerts>>,
) {
    let mut seq = 0u64;
    let mut emit = |ev: SourceEvent| {
        let held = (0..tokens_of(&ev)).all(|_| tokens.send(()).is_ok());
        if !held || event_tx.send((seq, Arc::new(ev))).is_err() {
            return false;
        }
        seq += 1;
        true
    };
    if let Err(e) = source.run(&mut emit) {
        // If the alert thread is gone there is nobody left to tell.
        alerts.send(vec![ToAlerts::ReadFailed(e)]).unwrap_or(());
    }
}
