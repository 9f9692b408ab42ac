//! The alert thread (the caller's): completes source events in order,
//! has the farm decide a chunk's events, renders alerts, hands the sink
//! progress, checkpoints and status.
//!
//! In a farm, a chunk whose shards are done is kept as the lines of its
//! events only ([`Kept`]), so its buffer and token go back to the reader
//! while its events wait for the farm: a round trip out does not stall
//! reading, and the events read meanwhile go in the next one together (a
//! client's hits over many chunks cost one window update).

use super::ship::{Answer, Port, Run};
use super::{
    Checkpoint, Engine, FarmCounts, FileStatus, NEAREST, RuleCounts, Sink, Status, Summary,
};
use super::{Decision, Event, Tally, ToAlerts, line_at};
use crate::alert::{Alert, Origin, Scope};
use crate::farm::link::{FarmDecisions, Hit};
use crate::parse::client::Key;
use crate::source::{Chunk, Data, FileId, FileTag, Position, SourceError, SourceEvent};
use crate::state::codec::Entries;
use crossbeam_channel::{Receiver, never, select};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

/// In a farm, the most bytes of kept lines, events and values waiting for
/// the farm; beyond it chunks are held whole, which stalls the reader.
const KEPT_BYTES: usize = 32 << 20;

/// A source event being completed by the alert thread.
#[derive(Default)]
struct Pending {
    event: Option<Arc<SourceEvent>>,
    /// The reader's tokens it holds ([`super::tokens_of`]).
    tokens: usize,
    lines: u64,
    shards_done: usize,
    decisions: Vec<Decision>,
    events: Vec<Event>,
    /// The values the events refer to (in a farm).
    values: Option<Arc<Vec<u128>>>,
    /// In a farm: who decided the chunk's alerts.
    scope: Option<Scope>,
    /// In a farm, once the chunk is kept as its events' lines only.
    kept: Option<Kept>,
    /// The lines with events: where each starts, the lines before it.
    event_lines: Vec<(u32, u32)>,
    watermark: u32,
    saves: Vec<Vec<Entries>>,
    /// Per rule, summed over the shards.
    tally: Vec<Tally>,
    nearest: Option<Vec<Vec<(String, u32)>>>,
}

/// Hands the reader back `n` of the tokens it holds for source events in flight.
fn give_back(tokens: &Receiver<()>, n: usize) {
    for _ in 0..n {
        tokens.recv().unwrap_or(());
    }
}

/// The alert thread's bookkeeping.
pub(super) struct Collector<'e> {
    engine: &'e Engine,
    farm: Option<Port>,
    shards: usize,
    sum: Summary,
    pending: HashMap<u64, Pending>,
    next: u64,
    /// Lines before the next chunk of each file, by file id.
    line_base: HashMap<u64, u64>,
    /// Followed files' positions, by file id.
    positions: HashMap<u64, Position>,
    /// When each source's follower last began to look for files, by
    /// source index, as of the last checkpoint.
    looked: HashMap<usize, std::time::SystemTime>,
    /// Per shard, per rule: clients held, as last reported.
    clients: Vec<Vec<u64>>,
    /// Newest event time, by file id.
    newest: HashMap<u64, u32>,
    /// Newest event time reported.
    watermark: u32,
    /// In a farm: source events done here, in order, that wait for the
    /// farm; the first [`Out::events`] of them are out in a round trip.
    waiting: VecDeque<Pending>,
    /// Bytes the waiting events keep.
    kept_bytes: usize,
    /// The batch out at the farm thread.
    out: Option<Out>,
}

/// A batch out at the farm thread.
struct Out {
    /// How many of the waiting source events it covers.
    events: usize,
    /// Its runs, in the order sent.
    runs: Vec<OutRun>,
}

/// A run of a batch out at the farm thread.
struct OutRun {
    /// The waiting chunks it covers (indices in `waiting`).
    chunks: Range<usize>,
    /// For each hit: which of them, and which of its events.
    from: Vec<(usize, usize)>,
}

/// What completing a chunk needs once its bytes are given back: its length,
/// and per line with events (ascending): where the line starts in the chunk,
/// where in the kept bytes, and how many lines come before it in the chunk.
struct Kept {
    len: usize,
    at: Vec<(u32, u32, u64)>,
}

impl<'e> Collector<'e> {
    pub(super) fn new(engine: &'e Engine, shards: usize, farm: Option<Port>) -> Collector<'e> {
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
            looked: HashMap::new(),
            clients: vec![Vec::new(); shards],
            newest: HashMap::new(),
            watermark: 0,
            waiting: VecDeque::new(),
            kept_bytes: 0,
            out: None,
        }
    }

    /// Completes source events in order until every other thread (and the
    /// farm thread) is done.
    pub(super) fn run(
        mut self,
        rx: &Receiver<Vec<ToAlerts>>,
        tokens: &Receiver<()>,
        sink: &mut dyn Sink,
    ) -> Result<Summary, SourceError> {
        let mut failure = None;
        let (closed, no_answers) = (never(), never());
        let answers = self.farm.as_ref().map(|f| f.answers.clone());
        let mut open = true;
        while open || self.out.is_some() || !self.waiting.is_empty() {
            select! {
                recv(if open { rx } else { &closed }) -> first => match first {
                    // What else has arrived meanwhile is taken too, so
                    // chunks ready together complete together.
                    Ok(first) => {
                        for msg in std::iter::once(first).chain(rx.try_iter()).flatten() {
                            if let Some(e) = self.take(msg, sink) {
                                failure = Some(e);
                            }
                        }
                    }
                    Err(_) => open = false,
                },
                recv(answers.as_ref().unwrap_or(&no_answers)) -> answer => {
                    // The farm thread ends only when this one hangs up.
                    let a = answer.expect("the farm thread ended with a batch out");
                    self.answered(a, sink);
                }
            }
            if self.farm.is_some() {
                self.keep_ready(tokens);
                self.send_waiting(sink);
            } else {
                while let Some(p) = self.next_ready() {
                    // Frees the reader to send more.
                    give_back(tokens, p.tokens);
                    self.complete(p, sink);
                }
            }
        }
        failure.map_or(Ok(self.sum), Err)
    }

    /// The source event to complete next, if every thread is done with it.
    fn next_ready(&mut self) -> Option<Pending> {
        let p = self.pending.get(&self.next)?;
        if p.event.is_none() || p.shards_done < self.shards {
            return None;
        }
        self.next += 1;
        self.pending.remove(&(self.next - 1))
    }

    /// In a farm: moves ready source events to those waiting for the farm,
    /// each chunk kept as its events' lines, freeing its token, while the
    /// waiting ones keep less than [`KEPT_BYTES`].
    fn keep_ready(&mut self, tokens: &Receiver<()>) {
        while self.kept_bytes < KEPT_BYTES {
            let Some(mut p) = self.next_ready() else { return };
            if let Some(SourceEvent::Lines(chunk)) = p.event.as_deref() {
                let (small, kept) = keep(chunk, &mut p.events, &std::mem::take(&mut p.event_lines));
                p.event = Some(Arc::new(SourceEvent::Lines(small)));
                p.kept = Some(kept);
            }
            self.kept_bytes += kept_size(&p);
            give_back(tokens, p.tokens);
            self.waiting.push_back(p);
        }
    }

    /// In a farm, with no round trip out: sends the waiting chunks' events
    /// to the farm thread, or completes the waiting source events at once
    /// when none of them is a chunk.
    fn send_waiting(&mut self, sink: &mut dyn Sink) {
        if self.out.is_some() || self.waiting.is_empty() {
            return;
        }
        let Some(port) = self.farm.as_ref() else { return };
        let (runs, out) = batch(&self.waiting);
        if out.runs.is_empty() {
            self.complete_waiting(self.waiting.len(), sink);
        } else if port.batches.send(runs).is_ok() {
            self.out = Some(out);
        }
    }

    /// The farm's answer to the batch out: its decisions replace this
    /// node's own (unless Redis did not answer), and its source events
    /// complete.
    fn answered(&mut self, a: Answer, sink: &mut dyn Sink) {
        let Some(out) = self.out.take() else { return };
        if let Some(counts) = self.sum.farm.as_mut() {
            counts.link = a.link;
            counts.differences = a.differences;
            counts.why_alone = a.why_alone;
        }
        for (run, decided) in out.runs.into_iter().zip(a.decided) {
            self.farm_decided(run.chunks, &run.from, decided);
        }
        self.complete_waiting(out.events, sink);
    }

    /// Completes the first `n` source events waiting for the farm.
    fn complete_waiting(&mut self, n: usize, sink: &mut dyn Sink) {
        for _ in 0..n {
            let Some(p) = self.waiting.pop_front() else { return };
            self.kept_bytes -= kept_size(&p);
            self.complete(p, sink);
        }
    }

    /// Files a thread's message under its source event; a read failure is
    /// returned.
    fn take(&mut self, msg: ToAlerts, sink: &mut dyn Sink) -> Option<SourceError> {
        match msg {
            ToAlerts::Scanned { seq, event, stats, event_lines } => {
                self.sum.add_scan(&stats);
                if let SourceEvent::Lines(c) = event.as_ref() {
                    let newest = self.newest.entry(c.file.id).or_default();
                    *newest = (*newest).max(stats.newest);
                }
                let p = self.pending.entry(seq).or_default();
                p.tokens = super::tokens_of(&event);
                p.event = Some(event);
                p.lines = stats.lines;
                p.event_lines = event_lines;
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
        let touched = match p.event.take().as_deref() {
            Some(SourceEvent::Lines(chunk)) => {
                p.decisions.sort_by_key(|d| (d.pos, d.rule));
                self.lines_done(chunk, &p, sink);
                Some(chunk.file.id)
            }
            Some(SourceEvent::Opened { file, offset }) => {
                self.line_base.insert(file.id, file.start_line);
                if let Some(id) = file.identity {
                    let (path, offset, lines) = (file.name.clone(), *offset, file.start_line);
                    let source = self.source_name(file);
                    self.positions.insert(file.id, Position { source, path, id, offset, lines });
                }
                Some(file.id)
            }
            Some(SourceEvent::FileDone(tag)) => {
                self.positions.remove(&tag.id);
                self.newest.remove(&tag.id);
                Some(tag.id)
            }
            Some(SourceEvent::Checkpoint { full, looked }) => {
                if let Some((source, at)) = *looked {
                    self.looked.insert(source, at);
                }
                self.checkpoint(&p, *full, sink);
                None
            }
            Some(SourceEvent::Tick { .. }) => {
                self.checkpoint(&p, true, sink);
                None
            }
            Some(SourceEvent::Probe) | None => None,
        };
        for (r, counts) in self.sum.rules.iter_mut().enumerate() {
            counts.clients = self.clients.iter().filter_map(|c| c.get(r)).sum();
        }
        if sink.wants_status() {
            self.status(&mut p, touched, sink);
        }
    }

    /// Hands the sink how things stand: where reading of the file `touched`
    /// (by tag id) stands now, the nearest clients merged over the shards
    /// after a probe. One file, not all: an event moves one, and listing
    /// every file after each chunk cost a pass over 2000 files under a glob
    /// more than the reading did.
    fn status(&mut self, p: &mut Pending, touched: Option<u64>, sink: &mut dyn Sink) {
        if let Some(lists) = p.nearest.as_mut() {
            for l in lists.iter_mut() {
                l.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                l.truncate(NEAREST);
            }
        }
        let file = touched.map(|id| {
            let now = self.positions.get(&id).map(|pos| FileStatus {
                path: pos.path.clone(),
                offset: pos.offset,
                newest: self.newest.get(&id).copied().unwrap_or(0),
            });
            (id, now)
        });
        self.watermark = self.watermark.max(p.watermark);
        sink.status(&Status {
            summary: &self.sum,
            file: file.as_ref(),
            watermark: self.watermark,
            nearest: p.nearest.as_deref(),
        });
    }

    /// Applies the farm's decisions on one run of waiting chunks (`None`:
    /// Redis did not answer, so this node's own stand); `from` says where
    /// each hit came from: which waiting chunk, which of its events.
    fn farm_decided(
        &mut self,
        run: Range<usize>,
        from: &[(usize, usize)],
        decided: Option<FarmDecisions>,
    ) {
        let Some(counts) = self.sum.farm.as_mut() else { return };
        let run = self.waiting.range_mut(run);
        let Some(d) = decided else {
            counts.alone += from.len() as u64;
            run.for_each(|p| p.scope = Some(Scope::Local));
            return;
        };
        counts.repeated += d.repeated;
        for (i, p) in run.enumerate() {
            p.scope = Some(Scope::Farm);
            p.decisions.clear();
            for (r, t) in p.tally.iter_mut().enumerate() {
                t.late = if i == 0 { d.late_by_rule.get(r).copied().unwrap_or(0) } else { 0 };
            }
        }
        for a in &d.alerts {
            let (k, j) = from[a.hit];
            let p = &mut self.waiting[k];
            let e = p.events[j];
            p.decisions.push(Decision { rule: e.rule, count: a.count, pos: e.pos });
        }
    }

    /// A chunk is done: its alerts, counters and the position after it.
    fn lines_done(&mut self, chunk: &Chunk, p: &Pending, sink: &mut dyn Sink) {
        let base = *self.line_base.entry(chunk.file.id).or_insert(chunk.file.start_line);
        self.emit(chunk, p, base, sink);
        let len = p.kept.as_ref().map_or(chunk.bytes().len(), |k| k.len);
        for (sum, add) in self.sum.rules.iter_mut().zip(&p.tally) {
            sum.events += add.events;
            sum.late += add.late;
            self.sum.late += add.late;
        }
        let after = base + p.lines;
        self.line_base.insert(chunk.file.id, after);
        self.sum.lines += p.lines;
        self.sum.bytes += len as u64;
        sink.progress(chunk);
        if let Some(id) = chunk.file.identity {
            let offset = chunk.offset + len as u64;
            let (path, source) = (chunk.file.name.clone(), self.source_name(&chunk.file));
            let lines = after;
            self.positions.insert(chunk.file.id, Position { source, path, id, offset, lines });
        }
    }

    /// Hands the sink the state as of the event just completed.
    fn checkpoint(&self, p: &Pending, full: bool, sink: &mut dyn Sink) {
        let positions = self.current_positions();
        let windows = &p.saves;
        let sources = &self.engine.sources;
        let looked = (self.looked.iter())
            .filter_map(|(i, at)| Some((sources.get(*i)?.0.clone(), *at)))
            .collect();
        let watermark = p.watermark;
        sink.checkpoint(&Checkpoint { positions, looked, windows, full, watermark });
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

    /// Positions, one per file (the later tag of a file followed again).
    /// Not by inode alone: a copytruncate copy goes on as the file it was
    /// copied from (for its alerts' ids), whose inode now holds new lines
    /// with a position of their own.
    fn current_positions(&self) -> Vec<Position> {
        let mut ids: Vec<u64> = self.positions.keys().copied().collect();
        ids.sort_unstable();
        // Looked up, not searched: thousands of files are followed under a
        // glob, and a checkpoint comes with each rotation.
        let later: HashMap<FileId, u64> =
            ids.iter().map(|tag| (self.positions[tag].id, *tag)).collect();
        let is_later = |tag: &u64| later.get(&self.positions[tag].id) == Some(tag);
        ids.iter().filter(|tag| is_later(tag)).map(|tag| self.positions[tag].clone()).collect()
    }

    /// Renders a finished chunk's decisions.
    fn emit(&mut self, chunk: &Chunk, p: &Pending, line_base: u64, sink: &mut dyn Sink) {
        let engine = self.engine;
        let parser = engine.parser(chunk.file.source);
        let source = engine.sources.get(chunk.file.source).map_or("", |s| s.0.as_str());
        parser.set_now(chunk.read_at);
        let bytes = chunk.bytes();
        // Decisions come in line order: their line numbers are counted on.
        let mut counter = LinesBefore::default();
        for d in &p.decisions {
            let (line, lines_before) = match &p.kept {
                Some(kept) => {
                    let Some(found) = kept.line(bytes, d.pos) else { continue };
                    found
                }
                None => (line_at(bytes, d.pos as usize), counter.at(bytes, d.pos)),
            };
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
            let at = chunk.offset + d.pos as u64;
            alert.id = chunk.file.identity.map(|id| alert_id(id, source, at, line, &rule.name));
            if let (Some(scope), Some(port)) = (p.scope, self.farm.as_ref()) {
                alert.node = Some(port.node.clone());
                alert.scope = Some(scope);
            }
            sink.alert(alert);
        }
    }
}

/// An alert's id: stable across restarts — the same line (by its checksum)
/// at the same offset of the same content of the same source, same rule —
/// and different for new content written at the same offset after a
/// truncation. The content is named by the checksum of its file's first
/// bytes where known, else by its inode: a copytruncate copy read as a file
/// of its own (its original saved, before a crash, while it was shorter
/// than them) gives the lines the ids they had, so their alerts are not
/// sent again. The source is named too: two sources' files that begin with
/// the same line gave an alert on it the same id, and the second was taken
/// for the first, sent already (a soak lost such an alert).
fn alert_id(file: FileId, source: &str, at: u64, line: &[u8], rule: &str) -> String {
    let content =
        file.fingerprint.map_or_else(|| format!("{:x}", file.ino), |f| format!("c{f:08x}"));
    format!("{:x}-{content}-{at}-{:08x}-{source}-{rule}", file.dev, crc32fast::hash(line))
}

impl Kept {
    /// The kept line that started at `pos` in the chunk (in `bytes`, the
    /// kept chunk's), and the lines before it in the chunk.
    fn line<'b>(&self, bytes: &'b [u8], pos: u32) -> Option<(&'b [u8], u64)> {
        let i = self.at.binary_search_by_key(&pos, |a| a.0).ok()?;
        let (_, start, before) = self.at[i];
        Some((line_at(bytes, start as usize), before))
    }
}

/// Counts a chunk's lines before positions given in ascending order, each
/// byte once.
#[derive(Default)]
struct LinesBefore {
    counted_to: usize,
    before: u64,
}

impl LinesBefore {
    /// The lines of `bytes` before the one that starts at `pos`.
    fn at(&mut self, bytes: &[u8], pos: u32) -> u64 {
        let pos = (pos as usize).min(bytes.len());
        if pos > self.counted_to {
            self.before += bytecount::count(&bytes[self.counted_to..pos], b'\n') as u64;
            self.counted_to = pos;
        }
        self.before
    }
}

/// A chunk as the lines of its events only (the events sorted into line
/// order), and where those lines were in it: `event_lines` (ascending) says
/// how many lines came before each, as the worker counted them; a line not
/// among them is counted here.
fn keep(chunk: &Chunk, events: &mut [Event], event_lines: &[(u32, u32)]) -> (Chunk, Kept) {
    events.sort_unstable_by_key(|e| (e.pos, e.rule));
    let bytes = chunk.bytes();
    let (mut lines, mut at) = (Vec::new(), Vec::<(u32, u32, u64)>::new());
    let mut counter = LinesBefore::default();
    let mut known = event_lines.iter().peekable();
    for e in events.iter() {
        if at.last().is_some_and(|a| a.0 == e.pos) {
            continue;
        }
        while known.next_if(|l| l.0 < e.pos).is_some() {}
        let before = match known.peek() {
            Some(l) if l.0 == e.pos => u64::from(l.1),
            _ => counter.at(bytes, e.pos),
        };
        // Kept lines are no longer than the chunk, far below 4 GiB.
        at.push((e.pos, lines.len() as u32, before));
        lines.extend_from_slice(line_at(bytes, e.pos as usize));
        lines.push(b'\n');
    }
    let small = Chunk {
        file: Arc::clone(&chunk.file),
        offset: chunk.offset,
        data: Data::Owned(lines),
        skipped_long: chunk.skipped_long,
        read_at: chunk.read_at,
        origins: chunk.origins.clone(),
        read: chunk.read,
    };
    (small, Kept { len: bytes.len(), at })
}

/// The bytes a source event waiting for the farm keeps: its kept lines,
/// its events and their values.
fn kept_size(p: &Pending) -> usize {
    let lines = match p.event.as_deref() {
        Some(SourceEvent::Lines(c)) if p.kept.is_some() => c.bytes().len(),
        _ => 0,
    };
    let values = p.values.as_ref().map_or(0, |v| v.len() * std::mem::size_of::<u128>());
    lines + p.events.len() * std::mem::size_of::<Event>() + values
}

/// The waiting chunks' events as a batch for the farm thread: one run per
/// stretch of consecutive chunks of one file.
fn batch(waiting: &VecDeque<Pending>) -> (Vec<Run>, Out) {
    let file_of = |p: &Pending| match p.event.as_deref() {
        Some(SourceEvent::Lines(c)) => Some(c.file.id),
        _ => None,
    };
    let (mut runs, mut spans, mut i) = (Vec::new(), Vec::new(), 0);
    while i < waiting.len() {
        let id = file_of(&waiting[i]);
        let end =
            (i + 1..waiting.len()).find(|&k| file_of(&waiting[k]) != id).unwrap_or(waiting.len());
        if id.is_some() {
            let (run, from) = run_of(waiting, i..end);
            runs.push(run);
            spans.push(OutRun { chunks: i..end, from });
        }
        i = end;
    }
    (runs, Out { events: waiting.len(), runs: spans })
}

/// The events of consecutive waiting chunks of one file, in line order,
/// and where each came from: which chunk, which of its events.
fn run_of(waiting: &VecDeque<Pending>, span: Range<usize>) -> (Run, Vec<(usize, usize)>) {
    let (mut hits, mut from, mut identity) = (Vec::new(), Vec::new(), None);
    for k in span {
        let p = &waiting[k];
        let Some(SourceEvent::Lines(chunk)) = p.event.as_deref() else { continue };
        identity = chunk.file.identity;
        let values = p.values.as_deref().map_or(&[][..], Vec::as_slice);
        for (j, e) in p.events.iter().enumerate() {
            let offset = chunk.offset + u64::from(e.pos);
            let value = values.get(e.value as usize).copied().unwrap_or(0);
            hits.push(Hit { rule: e.rule, key: e.key, time: e.time, offset, value });
            from.push((k, j));
        }
    }
    // The file, for the farm's record of what each node applied: its
    // identity, with the checksum of its first bytes, which changes when a
    // copytruncate starts it again.
    let file =
        identity.map(|id| format!("{:x}-{:x}-{:08x}", id.dev, id.ino, id.fingerprint.unwrap_or(0)));
    (Run { file, hits }, from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(rule: u16, pos: u32) -> Event {
        Event { rule, key: Key(1), time: 0, pos, value: super::super::NO_VALUE }
    }

    #[test]
    fn a_copy_of_a_file_gives_its_lines_the_same_alert_ids() {
        let file = |ino, fingerprint| FileId { dev: 1, ino, fingerprint };
        let id = |f| alert_id(f, "www", 87, b"a line", "r");
        assert_eq!(id(file(7, Some(42))), id(file(9, Some(42))));
        assert_ne!(id(file(7, Some(42))), id(file(7, Some(43))), "new content");
        assert_ne!(id(file(7, None)), id(file(9, None)), "first bytes unknown");
        assert_ne!(
            alert_id(file(7, None), "www", 87, b"a line", "r"),
            alert_id(file(7, None), "www", 88, b"a line", "r")
        );
        // Two sources' files that begin alike.
        assert_ne!(id(file(7, Some(42))), alert_id(file(9, Some(42)), "api", 87, b"a line", "r"));
    }

    #[test]
    fn a_kept_chunk_has_its_events_lines_and_their_numbers() {
        let text = b"a 1\r\nb 2\r\nc 3\nd 4\ne 5";
        let file =
            Arc::new(FileTag { name: "f".into(), id: 1, start_line: 0, identity: None, source: 0 });
        let chunk = Chunk::new(file, 100, Data::Owned(text.to_vec()), 0);
        // Out of order, and two rules on the line at 10 ("c 3").
        let events = [event(0, 18), event(1, 10), event(0, 5), event(0, 10)];
        // The lines before each counted here, or as the worker counted them
        // (here for two of the three lines).
        for counted in [&[][..], &[(5, 1), (18, 4)][..]] {
            let mut events = events;
            let (small, kept) = keep(&chunk, &mut events, counted);
            assert_eq!(kept.len, text.len());
            assert_eq!(small.offset, 100);
            assert_eq!(events.map(|e| (e.pos, e.rule)), [(5, 0), (10, 0), (10, 1), (18, 0)]);
            let line = |pos| kept.line(small.bytes(), pos);
            assert_eq!(line(5), Some((&b"b 2"[..], 1)));
            assert_eq!(line(10), Some((&b"c 3"[..], 2)));
            assert_eq!(line(18), Some((&b"e 5"[..], 4)), "the last line, without its line end");
            assert_eq!(line(0), None, "a line without events is not kept");
            assert_eq!(small.bytes(), b"b 2\nc 3\ne 5\n");
        }
        let (small, kept) = keep(&chunk, &mut events.clone(), &[(5, 9)]);
        assert_eq!(
            kept.line(small.bytes(), 5),
            Some((&b"b 2"[..], 9)),
            "the worker's count is taken"
        );
    }
}
