//! Several sources followed at once: one thread per source (each a
//! [`super::Follower`]), their events handed on in about the order of their
//! lines' times.
//!
//! One reader per source rather than one for all: a follower's state (its
//! files, the dated series' day, rotations) is per path, so one follower
//! per source reuses it unchanged, and a source that waits for its files
//! never holds up another's lines.
//!
//! Why the order: an event more than a window older than its client's
//! newest is late. A source catching up on a backlog (after a restart)
//! reads old lines while another may already read today's; handed on as
//! they come, the old lines would be late for the clients both sources
//! share. So a source's next chunk waits while another source that is
//! still reading — not idle, not finished, nothing of it waiting here — is
//! more than [`SLACK`] behind the chunk's first line, but at most
//! [`MAX_HOLD`]: a source that stalls holds the others that long and no
//! longer. A held source's follower cannot beat the watchdog while it
//! waits to hand on a chunk, so the hold beats for it. A chunk that reaches
//! further than [`SLACK`] past where another source stands (a quiet log's
//! backlog, hours in one chunk) is split there: its lines up to that point
//! go on, the rest waits as the source's next chunk.

use crate::parse::Parser;
use crate::source::{Chunk, Source, SourceError, SourceEvent};
use crate::threads;
use crossbeam_channel::{Receiver, Select, Sender, TryRecvError, bounded};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Events in flight from each reader to the pipeline's reader thread.
const IN_FLIGHT: usize = 4;
/// How far (log time) a source may be ahead of one still reading.
pub const SLACK: i64 = 60;
/// The longest a chunk waits for another source.
pub const MAX_HOLD: Duration = Duration::from_secs(5);
/// How often a hold looks whether the source it waits for went idle.
const POLL: Duration = Duration::from_millis(10);

/// A heartbeat for the service manager's watchdog.
pub type Beat = Box<dyn FnMut() + Send>;

/// Several sources read at once.
pub struct Several {
    /// The sources, each run on its own thread.
    pub sources: Vec<Box<dyn Source>>,
    /// Each source's parser, which reads its chunks' times.
    pub parsers: Vec<Parser>,
    /// Each source's flag, set while it waits for its files to grow.
    pub idle: Vec<Arc<AtomicBool>>,
    /// Each source's heartbeat, beaten while its chunk is held (none
    /// without a watchdog).
    pub beats: Vec<Beat>,
    /// The longest a chunk waits ([`MAX_HOLD`]).
    pub max_hold: Duration,
    /// Wake-ups for the daemon (a signal, a status page's probe), passed
    /// on to every source.
    pub wake: Receiver<()>,
    /// Each source's own wake-up.
    pub wakes: Vec<Sender<()>>,
    /// The sources' stop flag: set when one fails, so the others end too.
    pub stop: Arc<AtomicBool>,
}

/// One source's events as they reach the forwarder.
struct Lane {
    rx: Receiver<Result<SourceEvent, SourceError>>,
    /// The next event, with its chunk's time, and since when it waits.
    head: Option<(SourceEvent, Option<i64>, Instant)>,
    /// The time of the last line handed on.
    reached: Option<i64>,
    ended: bool,
}

/// What the forwarder does next.
enum Step {
    /// Hands on lane `i`'s head.
    Send(usize),
    /// A chunk waits for a source behind it: look again shortly.
    Hold,
    /// Nothing to hand on: wait for the next event.
    Wait,
    /// Every source has ended.
    Done,
}

impl Source for Several {
    fn run(self: Box<Self>, emit: &mut dyn FnMut(SourceEvent) -> bool) -> Result<(), SourceError> {
        // Dropped when reading ends, which ends the passing on of wake-ups.
        let (done_tx, done) = bounded::<()>(0);
        let Several { sources, parsers, idle, mut beats, max_hold, wake, wakes, stop } = *self;
        std::thread::scope(|s| {
            let mut lanes = Vec::new();
            for (i, source) in sources.into_iter().enumerate() {
                let (tx, rx) = bounded::<Result<SourceEvent, SourceError>>(IN_FLIGHT);
                threads::spawn(s, &format!("follow-{i}"), move || {
                    if let Err(e) = source.run(&mut |ev| tx.send(Ok(ev)).is_ok()) {
                        tx.send(Err(e)).unwrap_or(());
                    }
                });
                lanes.push(Lane { rx, head: None, reached: None, ended: false });
            }
            threads::spawn(s, "wakes", || pass_on_wakes(&wake, &wakes, &done));
            let _done = done_tx;
            let order = Order { parsers: &parsers, idle: &idle, max_hold };
            let result = order.forward(&mut lanes, &mut beats, emit);
            if !matches!(result, Ok(true)) {
                // End the others; what they still send is dropped.
                stop.store(true, Ordering::SeqCst);
                wakes.iter().for_each(|w| w.try_send(()).unwrap_or(()));
                lanes.iter().for_each(|l| l.rx.iter().for_each(drop));
            }
            result.map(|_| ())
        })
    }
}

/// How the forwarder orders the lanes.
struct Order<'a> {
    parsers: &'a [Parser],
    idle: &'a [Arc<AtomicBool>],
    max_hold: Duration,
}

impl Order<'_> {
    /// Hands on the lanes' events until every source ends (`Ok(true)`),
    /// `emit` asks to stop (`Ok(false)`), or a source fails.
    fn forward(
        &self,
        lanes: &mut [Lane],
        beats: &mut [Beat],
        emit: &mut dyn FnMut(SourceEvent) -> bool,
    ) -> Result<bool, SourceError> {
        let mut bases = Bases { looked: vec![false; lanes.len()], owed: false };
        loop {
            for (i, lane) in lanes.iter_mut().enumerate() {
                self.take(i, lane)?;
            }
            match self.step(lanes) {
                Step::Send(i) => {
                    let (mut ev, _, since) = lanes[i].head.take().expect("step picks a head");
                    if let SourceEvent::Lines(c) = &mut ev {
                        if since.elapsed() < self.max_hold {
                            lanes[i].head = self.split(i, c, lanes, since);
                        }
                        lanes[i].reached = lanes[i].reached.max(self.time_of(i, c, true));
                    }
                    if let SourceEvent::Checkpoint { full, looked } = &mut ev {
                        bases.pass(full, *looked);
                    }
                    if !emit(ev) {
                        return Ok(false);
                    }
                }
                Step::Hold => {
                    let held = lanes.iter().enumerate().filter(|(_, l)| l.head.is_some());
                    held.for_each(|(i, _)| beats.get_mut(i).map_or((), |b| b()));
                    wait(lanes, Some(POLL));
                }
                Step::Wait => wait(lanes, None),
                Step::Done => return Ok(true),
            }
        }
    }

    /// Takes lane `i`'s next event if it has none waiting.
    fn take(&self, i: usize, lane: &mut Lane) -> Result<(), SourceError> {
        if lane.head.is_some() || lane.ended {
            return Ok(());
        }
        match lane.rx.try_recv() {
            Ok(Ok(ev)) => {
                let time = match &ev {
                    SourceEvent::Lines(c) => self.time_of(i, c, false),
                    _ => None,
                };
                lane.head = Some((ev, time, Instant::now()));
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(TryRecvError::Empty) => Ok(()),
            Err(TryRecvError::Disconnected) => {
                lane.ended = true;
                Ok(())
            }
        }
    }

    /// The next step: an event without a time goes at once; else the
    /// oldest chunk, unless a source still reading is far behind it.
    fn step(&self, lanes: &[Lane]) -> Step {
        if let Some(i) = lanes.iter().position(|l| l.head.as_ref().is_some_and(|h| h.1.is_none())) {
            return Step::Send(i);
        }
        let oldest = lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.head.as_ref().and_then(|h| Some((h.1?, i, h.2))))
            .min();
        let Some((time, i, since)) = oldest else {
            return match lanes.iter().all(|l| l.ended) {
                true => Step::Done,
                false => Step::Wait,
            };
        };
        // The others' heads are no older than this one: only a source with
        // nothing waiting here can be behind it.
        let behind = self.others(i, lanes).is_some_and(|t| t.saturating_add(SLACK) < time);
        match since.elapsed() >= self.max_hold || !behind {
            true => Step::Send(i),
            false => Step::Hold,
        }
    }

    /// Where the others stand, for source `i`: the least, over the other
    /// sources still reading, of their next chunk's time or, without one,
    /// the time of the last line they handed on (`i64::MIN`, behind
    /// everything, for one that has handed on nothing yet); `None` when
    /// every other source is idle or finished. The hold and the split both
    /// go by it.
    fn others(&self, i: usize, lanes: &[Lane]) -> Option<i64> {
        let stands = |(j, l): (usize, &Lane)| match &l.head {
            _ if j == i || l.ended => None,
            Some((_, time, _)) => *time,
            None if self.idle.get(j).is_some_and(|f| f.load(Ordering::SeqCst)) => None,
            None => Some(l.reached.unwrap_or(i64::MIN)),
        };
        lanes.iter().enumerate().filter_map(stands).min()
    }

    /// Splits source `i`'s `chunk` after its last line within [`SLACK`] of
    /// where the others stand; the rest, as the source's next event (it
    /// has waited since `since`).
    fn split(
        &self,
        i: usize,
        chunk: &mut Chunk,
        lanes: &[Lane],
        since: Instant,
    ) -> Option<(SourceEvent, Option<i64>, Instant)> {
        let bound = self.others(i, lanes)?.saturating_add(SLACK);
        if self.time_of(i, chunk, true)? <= bound {
            return None;
        }
        let rest = chunk.split_after(self.parsers.get(i)?, bound)?;
        let time = self.time_of(i, &rest, false);
        Some((SourceEvent::Lines(rest), time, since))
    }

    /// The time of source `i`'s chunk: of its first line that parses (or
    /// last, with `last`).
    fn time_of(&self, i: usize, chunk: &Chunk, last: bool) -> Option<i64> {
        chunk.line_time(self.parsers.get(i)?, last)
    }
}

/// The new bases (full checkpoints) the sources ask for. Each source's
/// follower reports the files it resumes at its first look, and a base
/// written before every one had holds only some sources' positions (the
/// state sink saves none before). The followers share one request for a
/// base, and the first to take it after a start is often not the last to
/// look: its checkpoint goes on as changes only, and the one that
/// completes the looks as the base owed, at once rather than a checkpoint
/// period later (a soak's restarts, under a second apart, saved nothing
/// for two seconds so).
struct Bases {
    /// Whether each source has looked.
    looked: Vec<bool>,
    /// A base was asked for before every source had looked.
    owed: bool,
}

impl Bases {
    /// Passes on a checkpoint from the source that `looked`: not full
    /// while a source has not looked yet, full once all have when a base
    /// is owed.
    fn pass(&mut self, full: &mut bool, looked: Option<(usize, std::time::SystemTime)>) {
        if let Some(l) = looked.and_then(|(i, _)| self.looked.get_mut(i)) {
            *l = true;
        }
        if self.looked.iter().all(|l| *l) {
            *full |= std::mem::take(&mut self.owed);
        } else {
            self.owed |= std::mem::take(full);
        }
    }
}

/// Waits until a lane without a head has something (or has ended), at
/// most `timeout`.
fn wait(lanes: &[Lane], timeout: Option<Duration>) {
    let mut sel = Select::new();
    let open: Vec<&Lane> = lanes.iter().filter(|l| l.head.is_none() && !l.ended).collect();
    for l in &open {
        sel.recv(&l.rx);
    }
    match (open.is_empty(), timeout) {
        // Holding implies a lane without a head; waiting, one not ended.
        (true, _) => std::thread::sleep(POLL),
        (false, Some(t)) => drop(sel.ready_timeout(t)),
        (false, None) => drop(sel.ready()),
    }
}

/// Passes each wake-up on to every source until `done` is closed.
fn pass_on_wakes(wake: &Receiver<()>, wakes: &[Sender<()>], done: &Receiver<()>) {
    loop {
        crossbeam_channel::select! {
            recv(wake) -> got => match got {
                // A full channel already holds a wake-up.
                Ok(()) => wakes.iter().for_each(|w| w.try_send(()).unwrap_or(())),
                Err(_) => return,
            },
            recv(done) -> _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::testing;
    use crate::source::{Data, FileTag};
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_base_asked_for_before_every_source_has_looked_comes_with_the_last_look() {
        let mut b = Bases { looked: vec![false; 2], owed: false };
        let at = std::time::SystemTime::now();
        let mut pass = |full: bool, source: usize| {
            let mut full = full;
            b.pass(&mut full, Some((source, at)));
            full
        };
        assert!(!pass(true, 0), "source 1 has not looked: no base yet");
        assert!(!pass(false, 0));
        assert!(pass(false, 1), "the last to look brings the base owed");
        assert!(!pass(false, 0) && !pass(false, 1), "owed once");
        assert!(pass(true, 1), "asked for once all have looked: as asked");
    }

    /// A source that sends its events (a pause before each), or fails
    /// after them; then idles like a follower until told to stop.
    struct Fake {
        events: Vec<(Duration, SourceEvent)>,
        fail: bool,
        idle: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
    }

    impl Source for Fake {
        fn run(
            self: Box<Self>,
            emit: &mut dyn FnMut(SourceEvent) -> bool,
        ) -> Result<(), SourceError> {
            for (pause, ev) in self.events {
                let until = Instant::now() + pause;
                while Instant::now() < until {
                    if self.stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                if !emit(ev) {
                    return Ok(());
                }
            }
            if self.fail {
                let error = std::io::Error::other("gone");
                return Err(SourceError { name: "f".into(), error });
            }
            self.idle.store(true, Ordering::SeqCst);
            while !self.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }
    }

    /// A chunk of source `source` with one line at each of `times` (seconds
    /// after 2025-07-08T15:00:00Z).
    fn chunk(source: usize, times: &[i64]) -> SourceEvent {
        let tag = Arc::new(FileTag {
            name: format!("s{source}"),
            id: source as u64,
            start_line: 0,
            identity: None,
            source,
        });
        let client = format!("192.0.2.{source}");
        let text: String = times.iter().map(|&t| testing::common_line(&client, "/", t)).collect();
        SourceEvent::Lines(Chunk::new(tag, 0, Data::Owned(text.into_bytes()), 0))
    }

    /// A source's events: each after a pause.
    type Script = Vec<(Duration, SourceEvent)>;

    /// The sources' events as handed on until `n` of them: `(source,
    /// seconds)` of each chunk's first line, `(usize::MAX, -1)` of anything
    /// else; the result; how long it took.
    fn run(
        fakes: Vec<(Script, bool)>,
        n: usize,
        max_hold: Duration,
    ) -> (Vec<(usize, i64)>, Result<(), SourceError>, Duration) {
        run_beating(fakes, n, max_hold, Vec::new())
    }

    /// [`run`] with heartbeats.
    fn run_beating(
        fakes: Vec<(Script, bool)>,
        n: usize,
        max_hold: Duration,
        beats: Vec<Beat>,
    ) -> (Vec<(usize, i64)>, Result<(), SourceError>, Duration) {
        let (seen, r, took) = handed(fakes, &|seen| seen.len() >= n, max_hold, beats);
        let first = seen.into_iter().map(|(s, times)| (s, times.first().copied().unwrap_or(-1)));
        (first.collect(), r, took)
    }

    /// What was handed on: each chunk's source and its lines' seconds,
    /// `(usize::MAX, [])` for anything else.
    type Handed = Vec<(usize, Vec<i64>)>;

    /// What the sources hand on until `done` says so; the result; how long
    /// it took.
    fn handed(
        fakes: Vec<(Script, bool)>,
        done: &dyn Fn(&Handed) -> bool,
        max_hold: Duration,
        beats: Vec<Beat>,
    ) -> (Handed, Result<(), SourceError>, Duration) {
        let stop = Arc::new(AtomicBool::new(false));
        let idle: Vec<Arc<AtomicBool>> = fakes.iter().map(|_| Arc::default()).collect();
        let sources = fakes
            .into_iter()
            .zip(&idle)
            .map(|((events, fail), idle)| {
                let (idle, stop) = (Arc::clone(idle), Arc::clone(&stop));
                Box::new(Fake { events, fail, idle, stop }) as Box<dyn Source>
            })
            .collect::<Vec<_>>();
        let (_wake_tx, wake) = bounded(1);
        let parsers = vec![testing::common(); sources.len()];
        let wakes = Vec::new();
        let several =
            Box::new(Several { sources, parsers, idle, beats, max_hold, wake, wakes, stop });
        let mut seen = Vec::new();
        let started = Instant::now();
        let p = testing::common();
        let r = several.run(&mut |ev| {
            seen.push(match &ev {
                SourceEvent::Lines(c) => {
                    let lines = c.bytes().split(|&b| b == b'\n').filter(|l| !l.is_empty());
                    let times = lines.map(|l| p.parse(l).unwrap().time.epoch - T0);
                    (c.file.source, times.collect())
                }
                _ => (usize::MAX, Vec::new()),
            });
            !done(&seen)
        });
        (seen, r, started.elapsed())
    }

    const T0: i64 = testing::T0;
    const LONG: Duration = Duration::from_secs(30);

    fn probes(n: usize) -> Script {
        (0..n).map(|_| (Duration::ZERO, SourceEvent::Probe)).collect()
    }

    #[test]
    fn every_event_of_every_source_is_handed_on_until_they_stop() {
        let (seen, r, _) = run(vec![(probes(3), false), (probes(5), false)], 8, LONG);
        assert!(r.is_ok());
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn one_source_failing_ends_them_all_with_its_error() {
        let (_, r, _) = run(vec![(probes(2), true), (probes(1), false)], 100, LONG);
        assert_eq!(r.unwrap_err().to_string(), "reading f: gone");
    }

    /// A source catching up (a chunk every 20 ms) and one already an hour
    /// ahead: the one ahead waits until the other has caught up.
    #[test]
    fn a_source_ahead_waits_for_one_still_reading() {
        let pause = Duration::from_millis(20);
        let behind = (0..10).map(|k| (pause, chunk(0, &[k * 100, k * 100 + 50]))).collect();
        let ahead = vec![(Duration::ZERO, chunk(1, &[3600]))];
        let (seen, r, took) = run(vec![(behind, false), (ahead, false)], 11, LONG);
        assert!(r.is_ok());
        let mut want: Vec<(usize, i64)> = (0..10).map(|k| (0, k * 100)).collect();
        want.push((1, 3600));
        assert_eq!(seen, want);
        assert!(took < LONG, "held to the limit: {took:?}");
    }

    /// A quiet source's backlog in one chunk (an hour) beside a busy one
    /// catching up: the quiet chunk is split, so no line is handed on after
    /// one of another source more than SLACK newer; every line arrives once.
    #[test]
    fn a_chunk_reaching_far_past_another_source_is_split() {
        let pause = Duration::from_millis(20);
        let busy = (0..10).map(|k| (pause, chunk(0, &[k * 100, k * 100 + 50]))).collect();
        let quiet = vec![(Duration::ZERO, chunk(1, &[0, 300, 600, 900, 3600]))];
        let all = |seen: &Handed| seen.iter().map(|c| c.1.len()).sum::<usize>() >= 25;
        let (seen, r, took) = handed(vec![(busy, false), (quiet, false)], &all, LONG, Vec::new());
        assert!(r.is_ok() && took < LONG, "{took:?}");
        let lines: Vec<(usize, i64)> =
            seen.iter().flat_map(|(s, times)| times.iter().map(|t| (*s, *t))).collect();
        let mut newest = i64::MIN;
        for &(s, t) in &lines {
            assert!(newest <= t + SLACK, "line {t} of source {s} after one at {newest}: {seen:?}");
            newest = newest.max(t);
        }
        assert_eq!(lines.len(), 25, "{seen:?}");
        assert!(seen.iter().filter(|(s, _)| *s == 1).count() > 2, "split: {seen:?}");
    }

    /// A source that waits for its files holds nothing back.
    #[test]
    fn an_idle_source_holds_nothing() {
        let ahead = vec![(Duration::ZERO, chunk(1, &[3600]))];
        let (seen, _, took) = run(vec![(Vec::new(), false), (ahead, false)], 1, LONG);
        assert_eq!(seen, [(1, 3600)]);
        assert!(took < LONG / 2, "held: {took:?}");
    }

    /// A source that sends nothing yet is not idle holds the others, but
    /// only for the longest hold; meanwhile the held one's heartbeat goes
    /// on (its follower cannot beat while its chunk waits).
    #[test]
    fn a_stalled_source_holds_the_others_at_most_the_longest_hold() {
        let stalled = vec![(LONG, SourceEvent::Probe)];
        let ahead = vec![(Duration::ZERO, chunk(1, &[3600]))];
        let hold = Duration::from_millis(300);
        let counts: Vec<Arc<AtomicUsize>> = (0..2).map(|_| Arc::default()).collect();
        let beats = counts
            .iter()
            .map(|c| {
                let c = Arc::clone(c);
                Box::new(move || {
                    c.fetch_add(1, Ordering::SeqCst);
                }) as Beat
            })
            .collect();
        let (seen, _, took) = run_beating(vec![(stalled, false), (ahead, false)], 1, hold, beats);
        assert_eq!(seen, [(1, 3600)]);
        assert!(took >= hold && took < LONG, "{took:?}");
        let beaten = |i: usize| counts[i].load(Ordering::SeqCst);
        assert!(beaten(1) > 0 && beaten(0) == 0, "held {}, stalled {}", beaten(1), beaten(0));
    }

    /// Events without a time (checkpoints, probes, files opened) go at once.
    #[test]
    fn events_without_a_time_are_not_held() {
        let behind = vec![(LONG, chunk(0, &[0]))];
        let ahead = vec![(Duration::ZERO, SourceEvent::Probe), (Duration::ZERO, chunk(1, &[3600]))];
        let (seen, _, took) = run(vec![(behind, false), (ahead, false)], 1, LONG);
        assert_eq!(seen, [(usize::MAX, -1)]);
        assert!(took < LONG / 2, "{took:?}");
    }
}
