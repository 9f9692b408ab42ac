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
}

enum ToAlerts {
    Scanned { seq: u64, chunk: Arc<Chunk>, stats: ScanStats },
    Decided { seq: u64, decisions: Vec<Decision>, late: u64, evicted: u64 },
    ReadFailed(SourceError),
}

/// A chunk being completed by the alert thread.
#[derive(Default)]
struct Pending {
    chunk: Option<Arc<Chunk>>,
    lines: u64,
    shards_done: usize,
    decisions: Vec<Decision>,
}

impl Engine {
    /// Runs a source's chunks through the engine, calling `on_alert` for
    /// each alert in line order and `on_progress` with the bytes finished so
    /// far. Returns when the source ends.
    pub fn run(
        &self,
        source: Box<dyn ChunkSource>,
        on_alert: &mut dyn FnMut(Alert),
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<Summary, SourceError> {
        let n = self.threads.max(1);
        let (chunk_tx, chunk_rx) = bounded::<(u64, Arc<Chunk>)>(2 * n);
        let (token_tx, token_rx) = bounded::<()>(4 * n + 4);
        let (alert_tx, alert_rx) = unbounded::<ToAlerts>();
        let shard_chans: Vec<(Sender<Batch>, Receiver<Batch>)> =
            (0..n).map(|_| unbounded()).collect();
        let shard_txs: Vec<Sender<Batch>> = shard_chans.iter().map(|c| c.0.clone()).collect();
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
            for (_, rx) in shard_chans {
                let (atx, rules, step) = (alert_tx.clone(), &self.rules, self.cleanup_interval);
                s.spawn(move || shard(rules, step, &rx, &atx));
            }
            drop(alert_tx);
            drop(chunk_rx);
            self.collect(&alert_rx, &token_rx, n, on_alert, on_progress)
        })
    }

    /// Alert thread: completes chunks in order and renders their alerts.
    fn collect(
        &self,
        rx: &Receiver<ToAlerts>,
        tokens: &Receiver<()>,
        shards: usize,
        on_alert: &mut dyn FnMut(Alert),
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<Summary, SourceError> {
        let mut sum = Summary::default();
        let mut pending: HashMap<u64, Pending> = HashMap::new();
        let mut next = 0u64;
        // Lines before the next chunk of each file, by file id.
        let mut line_base: HashMap<u64, u64> = HashMap::new();
        let mut failure = None;
        for msg in rx {
            let seq = match msg {
                ToAlerts::Scanned { seq, chunk, stats } => {
                    sum.add_scan(&stats);
                    let p = pending.entry(seq).or_default();
                    p.chunk = Some(chunk);
                    p.lines = stats.lines;
                    seq
                }
                ToAlerts::Decided { seq, mut decisions, late, evicted } => {
                    sum.late += late;
                    sum.evicted += evicted;
                    let p = pending.entry(seq).or_default();
                    p.shards_done += 1;
                    p.decisions.append(&mut decisions);
                    seq
                }
                ToAlerts::ReadFailed(e) => {
                    failure = Some(e);
                    continue;
                }
            };
            if seq != next {
                continue;
            }
            while let Some(p) = pending.get(&next) {
                if p.chunk.is_none() || p.shards_done < shards {
                    break;
                }
                let mut p = pending.remove(&next).expect("present");
                let chunk = p.chunk.take().expect("checked");
                p.decisions.sort_by_key(|d| (d.pos, d.rule));
                let base = line_base.entry(chunk.file.id).or_insert(chunk.file.start_line);
                self.emit(&chunk, &p.decisions, *base, &mut sum, on_alert);
                *base += p.lines;
                sum.lines += p.lines;
                sum.bytes += chunk.bytes().len() as u64;
                on_progress(sum.bytes);
                // Frees the reader to send one more chunk.
                tokens.recv().unwrap_or(());
                next += 1;
            }
        }
        failure.map_or(Ok(sum), Err)
    }

    /// Renders a finished chunk's decisions.
    fn emit(
        &self,
        chunk: &Chunk,
        decisions: &[Decision],
        line_base: u64,
        sum: &mut Summary,
        on_alert: &mut dyn FnMut(Alert),
    ) {
        let bytes = chunk.bytes();
        for d in decisions {
            let pos = d.pos as usize;
            let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
            let line = bytes[pos..end].strip_suffix(b"\r").unwrap_or(&bytes[pos..end]);
            let Ok(record) = self.parser.parse(line) else { continue };
            let rule = &self.rules.rules[usize::from(d.rule)];
            let origin = Origin {
                file: &chunk.file.name,
                line: line_base + u64::from(chunk.skipped_long) + u64::from(d.line) + 1,
                record: &record,
            };
            sum.alerts += 1;
            on_alert(Alert::new(rule, d.key.render(self.ipv6_prefix), d.count, &origin));
        }
    }
}

/// Shard thread: applies batches in `seq` order to the windows it owns.
fn shard(rules: &RuleSet, cleanup_interval: u32, rx: &Receiver<Batch>, alerts: &Sender<ToAlerts>) {
    let mut windows: Vec<Windows> = rules.rules.iter().map(|r| Windows::new(r.spec)).collect();
    let mut waiting: BTreeMap<u64, Batch> = BTreeMap::new();
    let mut next = 0u64;
    let mut watermark = 0u32;
    let mut next_cleanup = 0u32;
    for batch in rx {
        waiting.insert(batch.seq, batch);
        while let Some(b) = waiting.remove(&next) {
            next += 1;
            let (mut decisions, mut late) = (Vec::new(), 0u64);
            for ev in &b.events {
                match windows[usize::from(ev.rule)].record(ev.key, ev.time) {
                    Outcome::Late => late += 1,
                    Outcome::Counted(_) => {}
                    Outcome::Alert(count) => decisions.push(Decision {
                        rule: ev.rule,
                        key: ev.key,
                        count,
                        pos: ev.pos,
                        line: ev.line,
                    }),
                }
            }
            watermark = watermark.max(b.max_time);
            let mut evicted = 0;
            if watermark >= next_cleanup {
                evicted = windows.iter_mut().map(|w| w.evict(watermark) as u64).sum();
                let step = cleanup_interval.max(1);
                next_cleanup = (watermark / step).saturating_add(1).saturating_mul(step);
            }
            if alerts.send(ToAlerts::Decided { seq: b.seq, decisions, late, evicted }).is_err() {
                return;
            }
        }
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
            let (stats, max_time) = self.scan(&chunk, &mut by_shard);
            for (tx, events) in shards.iter().zip(by_shard.iter_mut()) {
                if tx.send(Batch { seq, max_time, events: std::mem::take(events) }).is_err() {
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
