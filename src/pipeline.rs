//! Pipeline: the threads and channels, wired here and nowhere else.
//!
//! ```text
//! reader ──chunks──▶ N workers ──events by shard──▶ N shards ──decisions──▶ alert thread
//!    ▲                   └──────────── chunk stats ───────────────────────────▲ │
//!    └───────────────────────────── in-flight tokens ─────────────────────────────┘
//! ```
//! - The reader cuts inputs into numbered chunks (`seq`), holding a token per
//!   chunk in flight, which bounds memory.
//! - A worker finds candidate lines, parses them and matches rules, and
//!   splits the events of its chunk by a hash of the key.
//! - Each shard owns the windows of its keys (no locks) and applies chunks
//!   strictly in `seq` order, so decisions are the same for any thread count.
//! - The alert thread (the caller's) waits until every shard has finished a
//!   chunk, then turns that chunk's decisions into alerts in line order.
//!
//! Keys with nothing left to decide are evicted each `cleanup_interval` of
//! log time, measured by the watermark (the newest event time so far), which
//! every shard sees identically.

use crate::alert::{Alert, Origin};
use crate::parse::client::Key;
use crate::parse::{Parser, Skip};
use crate::rules::RuleSet;
use crate::source::{Chunk, ChunkSource, SourceError};
use crate::state::Position;
use crate::window::{Outcome, Windows};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Everything the engine needs besides its inputs.
pub struct Engine {
    /// The rules.
    pub rules: RuleSet,
    /// The line parser.
    pub parser: Parser,
    /// IPv6 grouping prefix.
    pub ipv6_prefix: u8,
    /// Longer lines are skipped.
    pub max_line_bytes: usize,
    /// Worker (and shard) threads.
    pub threads: usize,
    /// Seconds of log time between evictions.
    pub cleanup_interval: u32,
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
    /// Events (lines matching a rule).
    pub events: u64,
    /// Events older than their key's window.
    pub late: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Keys evicted by the cleanup.
    pub evicted: u64,
}

impl Summary {
    fn add_scan(&mut self, s: &ScanStats) {
        self.parsed += s.parsed;
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
    /// Lines before it in its chunk.
    line: u32,
}

/// A shard's alert decision, to be rendered by the alert thread.
#[derive(Debug, Clone, Copy)]
struct Decision {
    rule: u16,
    key: Key,
    count: u32,
    pos: u32,
    line: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct ScanStats {
    lines: u64,
    parsed: u64,
    skipped: [u64; 5],
    events: u64,
}

/// What a shard gets for each chunk (possibly no events).
struct Batch {
    seq: u64,
    max_time: u32,
    events: Vec<Event>,
    /// Send a copy of the windows after applying this batch.
    snapshot: bool,
}

enum ToAlerts {
    Scanned { seq: u64, chunk: Arc<Chunk>, stats: ScanStats },
    Decided(Decided),
    ReadFailed(SourceError),
}

/// A shard's results for one chunk.
struct Decided {
    seq: u64,
    decisions: Vec<Decision>,
    late: u64,
    evicted: u64,
    watermark: u32,
    snapshot: Option<Vec<Windows>>,
}

/// A chunk being completed by the alert thread.
#[derive(Default)]
struct Pending {
    chunk: Option<Arc<Chunk>>,
    lines: u64,
    shards_done: usize,
    decisions: Vec<Decision>,
    watermark: u32,
    snapshots: Vec<Vec<Windows>>,
}

/// Where the alert thread hands its results; it runs on the caller's thread.
pub trait Sink {
    /// One alert, in the order of the lines that raised them.
    fn alert(&mut self, alert: Alert);
    /// Bytes finished so far.
    fn progress(&mut self, _bytes: u64) {}
    /// A consistent state: positions after, and windows as of, the same chunk.
    fn checkpoint(&mut self, _cp: &Checkpoint<'_>) {}
}

/// State as of one chunk, for saving.
pub struct Checkpoint<'a> {
    /// Where reading of each followed file stands.
    pub positions: Vec<Position>,
    /// Windows: per shard, one per rule (in rule order).
    pub windows: &'a [Vec<Windows>],
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
    /// Runs a source's chunks through the engine, from `restore`d windows if
    /// given, handing alerts, progress and checkpoints to `sink`. Returns
    /// when the source ends.
    pub fn run(
        &self,
        source: Box<dyn ChunkSource>,
        restore: Option<Restore>,
        sink: &mut dyn Sink,
    ) -> Result<Summary, SourceError> {
        let n = self.threads.max(1);
        let (chunk_tx, chunk_rx) = bounded::<(u64, Arc<Chunk>)>(2 * n);
        let (token_tx, token_rx) = bounded::<()>(4 * n + 4);
        let (alert_tx, alert_rx) = unbounded::<ToAlerts>();
        let shard_chans: Vec<(Sender<Batch>, Receiver<Batch>)> =
            (0..n).map(|_| unbounded()).collect();
        let shard_txs: Vec<Sender<Batch>> = shard_chans.iter().map(|c| c.0.clone()).collect();
        let restore = restore.as_ref();
        std::thread::scope(|s| {
            let reader_alert_tx = alert_tx.clone();
            s.spawn(move || read_all(source, &chunk_tx, &token_tx, &reader_alert_tx));
            for _ in 0..n {
                let (rx, txs, atx) = (chunk_rx.clone(), shard_txs.clone(), alert_tx.clone());
                let scanner = Scanner {
                    rules: &self.rules,
                    parser: self.parser.clone(),
                    ipv6_prefix: self.ipv6_prefix,
                    max_line_bytes: self.max_line_bytes,
                };
                s.spawn(move || scanner.work(&rx, &txs, &atx));
            }
            drop(shard_txs);
            for (i, (_, rx)) in shard_chans.into_iter().enumerate() {
                let shard = Shard::new(&self.rules, self.cleanup_interval, restore, i, n);
                let atx = alert_tx.clone();
                s.spawn(move || shard.run(&rx, &atx));
            }
            drop(alert_tx);
            drop(chunk_rx);
            Collector::new(self, n).run(&alert_rx, &token_rx, sink)
        })
    }
}

/// The alert thread's bookkeeping.
struct Collector<'e> {
    engine: &'e Engine,
    shards: usize,
    sum: Summary,
    pending: HashMap<u64, Pending>,
    next: u64,
    /// Lines before the next chunk of each file, by file id.
    line_base: HashMap<u64, u64>,
    /// Followed files' positions, by file id.
    positions: HashMap<u64, Position>,
}

impl<'e> Collector<'e> {
    fn new(engine: &'e Engine, shards: usize) -> Collector<'e> {
        Collector {
            engine,
            shards,
            sum: Summary::default(),
            pending: HashMap::new(),
            next: 0,
            line_base: HashMap::new(),
            positions: HashMap::new(),
        }
    }

    /// Completes chunks in order until every other thread is done.
    fn run(
        mut self,
        rx: &Receiver<ToAlerts>,
        tokens: &Receiver<()>,
        sink: &mut dyn Sink,
    ) -> Result<Summary, SourceError> {
        let mut failure = None;
        for msg in rx {
            match msg {
                ToAlerts::Scanned { seq, chunk, stats } => {
                    self.sum.add_scan(&stats);
                    let p = self.pending.entry(seq).or_default();
                    p.chunk = Some(chunk);
                    p.lines = stats.lines;
                }
                ToAlerts::Decided(d) => {
                    self.sum.late += d.late;
                    self.sum.evicted += d.evicted;
                    let mut decisions = d.decisions;
                    let p = self.pending.entry(d.seq).or_default();
                    p.shards_done += 1;
                    p.decisions.append(&mut decisions);
                    p.watermark = d.watermark;
                    p.snapshots.extend(d.snapshot);
                }
                ToAlerts::ReadFailed(e) => failure = Some(e),
            }
            while self
                .pending
                .get(&self.next)
                .is_some_and(|p| p.chunk.is_some() && p.shards_done == self.shards)
            {
                let p = self.pending.remove(&self.next).expect("checked");
                self.complete(p, sink);
                // Frees the reader to send one more chunk.
                tokens.recv().unwrap_or(());
                self.next += 1;
            }
        }
        failure.map_or(Ok(self.sum), Err)
    }

    /// Finishes one chunk: alerts, counters, positions, checkpoint.
    fn complete(&mut self, mut p: Pending, sink: &mut dyn Sink) {
        let chunk = p.chunk.take().expect("complete chunks only");
        p.decisions.sort_by_key(|d| (d.pos, d.rule));
        let base = *self.line_base.entry(chunk.file.id).or_insert(chunk.file.start_line);
        self.emit(&chunk, &p.decisions, base, sink);
        let after = base + p.lines;
        self.line_base.insert(chunk.file.id, after);
        self.sum.lines += p.lines;
        self.sum.bytes += chunk.bytes().len() as u64;
        sink.progress(self.sum.bytes);
        if let Some((dev, ino, fingerprint)) = chunk.file.identity {
            if chunk.last {
                self.positions.remove(&chunk.file.id);
            } else {
                let offset = chunk.offset + chunk.bytes().len() as u64;
                let path = chunk.file.name.clone();
                let pos = Position { path, dev, ino, fingerprint, offset, lines: after };
                self.positions.insert(chunk.file.id, pos);
            }
        }
        if chunk.checkpoint {
            let positions = self.current_positions();
            sink.checkpoint(&Checkpoint {
                positions,
                windows: &p.snapshots,
                watermark: p.watermark,
            });
        }
    }

    /// Positions, one per file (the newest reading of a rewritten file).
    fn current_positions(&self) -> Vec<Position> {
        let mut ids: Vec<&u64> = self.positions.keys().collect();
        ids.sort_unstable();
        let mut out: Vec<Position> = Vec::new();
        for id in ids {
            let pos = &self.positions[id];
            out.retain(|o| (o.dev, o.ino) != (pos.dev, pos.ino));
            out.push(pos.clone());
        }
        out
    }

    /// Renders a finished chunk's decisions.
    fn emit(&mut self, chunk: &Chunk, decisions: &[Decision], line_base: u64, sink: &mut dyn Sink) {
        let engine = self.engine;
        let bytes = chunk.bytes();
        for d in decisions {
            let pos = d.pos as usize;
            let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
            let line = bytes[pos..end].strip_suffix(b"\r").unwrap_or(&bytes[pos..end]);
            let Ok(record) = engine.parser.parse(line) else { continue };
            let rule = &engine.rules.rules[usize::from(d.rule)];
            let origin = Origin {
                file: &chunk.file.name,
                line: line_base + u64::from(chunk.skipped_long) + u64::from(d.line) + 1,
                record: &record,
            };
            self.sum.alerts += 1;
            let mut alert = Alert::new(rule, d.key.render(engine.ipv6_prefix), d.count, &origin);
            // Stable across restarts — the same line (by its checksum) at the
            // same offset of the same file, same rule — and different for new
            // content written at the same offset after a truncation.
            alert.id = chunk.file.identity.map(|(dev, ino, _)| {
                let at = chunk.offset + d.pos as u64;
                format!("{dev:x}-{ino:x}-{at}-{:08x}-{}", crc32fast::hash(line), rule.name)
            });
            sink.alert(alert);
        }
    }
}

/// A shard: the windows of the keys that hash to it, owned by one thread.
struct Shard {
    windows: Vec<Windows>,
    cleanup_interval: u32,
    watermark: u32,
    next_cleanup: u32,
}

impl Shard {
    /// Shard `index` of `count`, with its part of the restored windows.
    fn new(
        rules: &RuleSet,
        cleanup_interval: u32,
        restore: Option<&Restore>,
        index: usize,
        count: usize,
    ) -> Shard {
        let mut windows: Vec<Windows> = rules.rules.iter().map(|r| Windows::new(r.spec)).collect();
        let mut watermark = 0;
        if let Some(r) = restore {
            watermark = r.watermark;
            for (mine, saved) in windows.iter_mut().zip(&r.windows) {
                for (key, state) in saved.iter() {
                    if shard_of(*key, count as u64) == index {
                        mine.insert(*key, state.clone());
                    }
                }
            }
        }
        Shard { windows, cleanup_interval, watermark, next_cleanup: 0 }
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
    }

    fn apply(&mut self, b: Batch) -> Decided {
        let (mut decisions, mut late) = (Vec::new(), 0u64);
        for ev in &b.events {
            match self.windows[usize::from(ev.rule)].record(ev.key, ev.time) {
                Outcome::Late => late += 1,
                Outcome::Counted(_) => {}
                Outcome::Alert(count) => {
                    let (rule, key, pos, line) = (ev.rule, ev.key, ev.pos, ev.line);
                    decisions.push(Decision { rule, key, count, pos, line });
                }
            }
        }
        self.watermark = self.watermark.max(b.max_time);
        let mut evicted = 0;
        if self.watermark >= self.next_cleanup {
            evicted = self.windows.iter_mut().map(|w| w.evict(self.watermark) as u64).sum();
            let step = self.cleanup_interval.max(1);
            self.next_cleanup = (self.watermark / step).saturating_add(1).saturating_mul(step);
        }
        let snapshot = b.snapshot.then(|| self.windows.clone());
        Decided { seq: b.seq, decisions, late, evicted, watermark: self.watermark, snapshot }
    }
}

/// A worker's view of the engine: its own parser (which caches), shared rules.
struct Scanner<'e> {
    rules: &'e RuleSet,
    parser: Parser,
    ipv6_prefix: u8,
    max_line_bytes: usize,
}

impl Scanner<'_> {
    /// Worker thread: scans chunks, routes events to shards.
    fn work(
        &self,
        rx: &Receiver<(u64, Arc<Chunk>)>,
        shards: &[Sender<Batch>],
        alerts: &Sender<ToAlerts>,
    ) {
        let mut by_shard: Vec<Vec<Event>> = vec![Vec::new(); shards.len()];
        for (seq, chunk) in rx {
            let (stats, mut max_time) = self.scan(&chunk, &mut by_shard);
            max_time = max_time.max(chunk.clock.unwrap_or(0));
            for (tx, events) in shards.iter().zip(by_shard.iter_mut()) {
                let events = std::mem::take(events);
                let batch = Batch { seq, max_time, events, snapshot: chunk.checkpoint };
                if tx.send(batch).is_err() {
                    return;
                }
            }
            if alerts.send(ToAlerts::Scanned { seq, chunk, stats }).is_err() {
                return;
            }
        }
    }

    /// Finds the events of one chunk; returns counters and the newest event time.
    ///
    /// # Performance
    /// Lines without a rule's literal are never parsed; no allocation per line.
    fn scan(&self, chunk: &Chunk, by_shard: &mut [Vec<Event>]) -> (ScanStats, u32) {
        let bytes = chunk.bytes();
        let mut st = ScanStats::default();
        let mut max_time = 0u32;
        let shards = by_shard.len() as u64;
        let needs = self.rules.needs();
        let lines = self.rules.for_each_candidate(bytes, |index, start, end| {
            let mut line = &bytes[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.len() > self.max_line_bytes {
                st.skipped[Skip::TooLong.index()] += 1;
                return;
            }
            let rec = match self.parser.parse_needed(line, needs) {
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
            let key = Key::of(rec.client, self.ipv6_prefix);
            for (i, rule) in self.rules.rules.iter().enumerate() {
                if rule.matches(&rec, line) {
                    st.events += 1;
                    max_time = max_time.max(time);
                    let ev =
                        Event { rule: i as u16, key, time, pos: start as u32, line: index as u32 };
                    by_shard[shard_of(key, shards)].push(ev);
                }
            }
        });
        st.lines = lines + u64::from(chunk.skipped_long);
        (st, max_time)
    }
}

/// The shard that owns `key`.
fn shard_of(key: Key, shards: u64) -> usize {
    let h = (key.0 as u64 ^ (key.0 >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) % shards) as usize
}

/// Reader thread: numbers the source's chunks and hands them to the workers,
/// holding one token per chunk in flight.
fn read_all(
    source: Box<dyn ChunkSource>,
    chunk_tx: &Sender<(u64, Arc<Chunk>)>,
    tokens: &Sender<()>,
    alerts: &Sender<ToAlerts>,
) {
    let mut seq = 0u64;
    let mut emit = |c: Chunk| {
        if tokens.send(()).is_err() || chunk_tx.send((seq, Arc::new(c))).is_err() {
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
