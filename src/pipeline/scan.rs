//! A worker thread: finds a chunk's candidate lines, parses them, matches
//! rules, and routes the events to the shards of their keys.

use super::{Batch, Engine, Event, NO_VALUE, Save, ScanStats, Sharding, ToAlerts};
use crate::parse::client::Key;
use crate::parse::normalize::Normalized;
use crate::parse::{Parser, Skip};
use crate::rules::RuleSet;
use crate::source::{Chunk, SourceEvent};
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;

/// The most source events a worker takes at once.
const GROUP: usize = 64;
/// A worker takes no more once it has this many bytes of lines: large
/// chunks are shared among the workers, one each.
const GROUP_BYTES: usize = 64 << 10;

/// A worker's reusable buffers: a line decoded from `%XX` while looking for
/// candidates, a normalized request, the chunk's distinct values.
#[derive(Default)]
struct Scratch {
    decoded: Vec<u8>,
    norm: Normalized,
    /// Values of fields counted distinct, for the chunk's batches.
    values: Vec<u128>,
    /// The chunk's lines with events: start, lines before.
    event_lines: Vec<(u32, u32)>,
}

/// A worker's view of the engine: its own parser (which caches), shared rules.
pub(super) struct Scanner<'e> {
    rules: &'e RuleSet,
    /// Count only the keys of this batch shard ([`EngineSettings::shard`]).
    only: Option<(u32, u32)>,
    /// The times counted ([`EngineSettings::since`]).
    range: Range,
    /// Per source (this thread's own; they cache).
    parsers: Vec<Parser>,
    ipv6_prefix: u8,
    sharding: &'e Sharding,
    /// Whether to tell the alert thread the lines with events (in a farm).
    tell_lines: bool,
    /// Some rule counts per more than the client: shards name its keys
    /// from the chunk's lines.
    named: bool,
}

impl<'e> Scanner<'e> {
    /// A worker's scanner for `engine`, routing by `sharding`; `in_farm`, it
    /// tells the alert thread the lines with events.
    pub(super) fn new(engine: &'e Engine, sharding: &'e Sharding, in_farm: bool) -> Scanner<'e> {
        let settings = &engine.settings;
        Scanner {
            rules: &engine.rules,
            only: settings.shard,
            range: Range { since: settings.since, until: settings.until },
            parsers: engine.sources.iter().map(|s| s.1.clone()).collect(),
            ipv6_prefix: settings.ipv6_prefix,
            sharding,
            tell_lines: in_farm,
            named: engine.rules.rules.iter().any(|r| !r.by_client()),
        }
    }

    /// Worker thread: scans chunks, routes events to shards; every source
    /// event reaches every shard (possibly with no events), so each shard
    /// sees the same sequence. The source events waiting when the worker
    /// comes for more go on together, one message to each shard and one to
    /// the alert thread: a thread woken per small chunk cost more than the
    /// chunk (a glob's many sparse files, caught up in time order).
    pub(super) fn work(
        &self,
        rx: &Receiver<(u64, Arc<SourceEvent>)>,
        shards: &[Sender<Vec<Batch>>],
        alerts: &Sender<Vec<ToAlerts>>,
    ) {
        let mut by_shard: Vec<Vec<Event>> = vec![Vec::new(); shards.len()];
        let mut scratch = Scratch::default();
        for first in rx {
            let mut batches: Vec<Vec<Batch>> = shards.iter().map(|_| Vec::new()).collect();
            let mut told = Vec::new();
            for (seq, event) in group(first, rx) {
                let scanned = self.one(seq, event, &mut by_shard, &mut scratch, &mut batches);
                told.push(scanned);
            }
            for (tx, batches) in shards.iter().zip(batches) {
                if tx.send(batches).is_err() {
                    return;
                }
            }
            if alerts.send(told).is_err() {
                return;
            }
        }
    }

    /// Scans one source event into a batch for each shard (added to
    /// `batches`); returns what the alert thread is told of it.
    fn one(
        &self,
        seq: u64,
        event: Arc<SourceEvent>,
        by_shard: &mut [Vec<Event>],
        scratch: &mut Scratch,
        batches: &mut [Vec<Batch>],
    ) -> ToAlerts {
        let (stats, newest, idle) = match event.as_ref() {
            #[cfg(debug_assertions)]
            SourceEvent::Lines(_) if test_panic() => panic!("LOGWARDEN_TEST_PANIC=worker"),
            SourceEvent::Lines(chunk) => {
                let st = self.scan(chunk, by_shard, scratch);
                let parser = self.parsers.get(chunk.file.source).unwrap_or(&self.parsers[0]);
                let last = chunk.line_time(parser, true).and_then(|t| u32::try_from(t).ok());
                let newest = st.newest.max(last.unwrap_or(0));
                (st, (newest > 0).then_some((chunk.file.source, newest)), None)
            }
            SourceEvent::Tick { clock, idle, source } => {
                (ScanStats::default(), Some((*source, *clock)), Some(*idle))
            }
            SourceEvent::Opened { .. }
            | SourceEvent::FileDone(_)
            | SourceEvent::Checkpoint { .. }
            | SourceEvent::Probe => (ScanStats::default(), None, None),
        };
        // An idle tick's save is whole: a new base without the clients
        // the cleanup has just forgotten, written while nothing else goes on.
        let save = match *event {
            SourceEvent::Checkpoint { full: true, .. } | SourceEvent::Tick { .. } => {
                Some(Save::All)
            }
            SourceEvent::Checkpoint { full: false, .. } => Some(Save::Changes),
            _ => None,
        };
        let probe = matches!(*event, SourceEvent::Probe);
        let values = Arc::new(std::mem::take(&mut scratch.values));
        for (out, events) in batches.iter_mut().zip(by_shard.iter_mut()) {
            let events = std::mem::take(events);
            // A shard names the keys of rules not by client from the chunk's lines.
            let chunk = (self.named && !events.is_empty()).then(|| event.clone());
            let values = Arc::clone(&values);
            out.push(Batch { seq, newest, idle, events, save, probe, chunk, values });
        }
        let event_lines = std::mem::take(&mut scratch.event_lines);
        ToAlerts::Scanned { seq, event, stats, event_lines }
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
        let lines =
            self.rules.for_each_candidate(bytes, &mut scratch.decoded, |index, start, end| {
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
                if chunk.in_future(i64::from(time)) {
                    st.skipped[Skip::Future.index()] += 1;
                    return;
                }
                st.parsed += 1;
                let client = Key::of(rec.client, self.ipv6_prefix);
                let rules = &self.rules.rules;
                let (values, event_lines) = (&mut scratch.values, &mut scratch.event_lines);
                let tell_lines = self.tell_lines;
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
                    // A chunk is far below 4 GiB, and holds fewer lines.
                    if tell_lines && event_lines.last().is_none_or(|l| l.0 != start as u32) {
                        event_lines.push((start as u32, index as u32));
                    }
                });
                st.allowed += u64::from(allowed);
            });
        // Lines longer than a whole chunk were dropped by the source.
        st.lines = lines + u64::from(chunk.skipped_long);
        st.skipped[Skip::TooLong.index()] += u64::from(chunk.skipped_long);
        st
    }
}

/// `first` and the source events waiting after it, while they are small
/// ([`GROUP`], [`GROUP_BYTES`]).
fn group(
    first: (u64, Arc<SourceEvent>),
    rx: &Receiver<(u64, Arc<SourceEvent>)>,
) -> Vec<(u64, Arc<SourceEvent>)> {
    let mut total = first.1.line_bytes();
    let mut group = vec![first];
    while total < GROUP_BYTES && group.len() < GROUP {
        let Ok(next) = rx.try_recv() else { break };
        total += next.1.line_bytes();
        group.push(next);
    }
    group
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Data, FileTag};

    fn lines(seq: u64, len: usize) -> (u64, Arc<SourceEvent>) {
        let file =
            Arc::new(FileTag { name: "f".into(), id: 1, start_line: 0, identity: None, source: 0 });
        (seq, Arc::new(SourceEvent::Lines(Chunk::new(file, 0, Data::Owned(vec![b'\n'; len]), 0))))
    }

    fn seqs(group: Vec<(u64, Arc<SourceEvent>)>) -> Vec<u64> {
        group.into_iter().map(|(seq, _)| seq).collect()
    }

    #[test]
    fn a_worker_takes_the_small_events_waiting_and_a_large_chunk_alone() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let next = |rx: &Receiver<_>| seqs(group(rx.recv().unwrap(), rx));
        for (seq, len) in [(0, 100), (1, 100), (2, 100 << 10), (3, 100), (4, 200 << 10), (5, 100)] {
            tx.send(lines(seq, len)).unwrap();
        }
        tx.send((6, Arc::new(SourceEvent::Probe))).unwrap();
        assert_eq!(next(&rx), [0, 1, 2], "small ones up to one past 64 KiB");
        assert_eq!(next(&rx), [3, 4]);
        assert_eq!(next(&rx), [5, 6], "only what is waiting");
        for seq in 0..100 {
            tx.send(lines(seq, 10)).unwrap();
        }
        assert_eq!(next(&rx).len(), GROUP);
        assert_eq!(next(&rx).len(), 100 - GROUP);
        tx.send(lines(0, 1 << 20)).unwrap();
        tx.send(lines(1, 10)).unwrap();
        assert_eq!(next(&rx), [0], "a chunk of 64 KiB or more goes alone when it comes first");
        assert_eq!(next(&rx), [1]);
    }
}
