//! The alert thread (the caller's): completes source events in order,
//! has the farm decide a chunk's events, renders alerts, hands the sink
//! progress, checkpoints and status.

use super::{
    Checkpoint, Engine, FarmCounts, FileStatus, NEAREST, RuleCounts, Sink, Status, Summary,
};
use super::{Decision, Event, Tally, ToAlerts, line_at};
use crate::alert::{Alert, Origin, Scope};
use crate::farm::link::{Hit, Link};
use crate::parse::client::Key;

use crate::source::{Chunk, FileTag, Position, SourceError, SourceEvent};
use crate::state::codec::Entries;
use crossbeam_channel::Receiver;
use std::collections::HashMap;
use std::sync::Arc;

/// A source event being completed by the alert thread.
#[derive(Default)]
struct Pending {
    event: Option<Arc<SourceEvent>>,
    lines: u64,
    shards_done: usize,
    decisions: Vec<Decision>,
    events: Vec<Event>,
    /// The values the events refer to (in a farm).
    values: Option<Arc<Vec<u128>>>,
    /// In a farm: who decided the chunk's alerts.
    scope: Option<Scope>,
    watermark: u32,
    saves: Vec<Vec<Entries>>,
    /// Per rule, summed over the shards.
    tally: Vec<Tally>,
    nearest: Option<Vec<Vec<(String, u32)>>>,
}

/// The alert thread's bookkeeping.
pub(super) struct Collector<'e> {
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
    pub(super) fn new(
        engine: &'e Engine,
        shards: usize,
        farm: Option<&'e mut Link>,
    ) -> Collector<'e> {
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
    pub(super) fn run(
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
                p.values = p.values.take().or(d.values);
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
            let values = p.values.as_deref().map_or(&[][..], Vec::as_slice);
            for (j, e) in p.events.iter().enumerate() {
                let offset = chunk.offset + u64::from(e.pos);
                let value = values.get(e.value as usize).copied().unwrap_or(0);
                hits.push(Hit { rule: e.rule, key: e.key, time: e.time, offset, value });
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
        if !counts.differences.iter().eq(link.findings().iter().map(|f| &f.text)) {
            counts.differences = link.findings().iter().map(|f| f.text.clone()).collect();
        }
        if counts.why_alone.as_deref() != link.why_alone() {
            counts.why_alone = link.why_alone().map(str::to_string);
        }
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

    /// The name of the source a file is read as.
    fn source_name(&self, file: &FileTag) -> String {
        let sources = &self.engine.sources;
        sources.get(file.source).map_or_else(String::new, |s| s.0.clone())
    }

    /// Positions, one per file (the newest reading of a rewritten file).
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
