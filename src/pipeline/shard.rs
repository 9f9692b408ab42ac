//! A shard thread: owns the windows of the keys that hash to it, applies
//! each chunk's events in `seq` order, evicts, encodes for checkpoints.

use super::{Batch, Decided, Decision, Engine, Event, NEAREST, Restore, Save, Sharding, Tally};
use super::{ToAlerts, line_at};
use crate::parse::Parser;
use crate::parse::client::Key;
use crate::rules::RuleSet;
use crate::source::SourceEvent;
use crate::state::codec::Entries;
use crate::window::{Outcome, Windows};
use crossbeam_channel::{Receiver, Sender};
use std::collections::{BTreeMap, HashMap};

/// A shard: the windows of the keys that hash to it, owned by one thread.
pub(super) struct Shard<'e> {
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
    pub(super) fn new(
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
            Some(names) => names.get(&key).map_or_else(|| key.render_hash(), |n| n.to_string()),
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
    pub(super) fn run(mut self, rx: &Receiver<Vec<Batch>>, alerts: &Sender<Vec<ToAlerts>>) {
        let mut waiting: BTreeMap<u64, Batch> = BTreeMap::new();
        let mut next = 0u64;
        for batches in rx {
            waiting.extend(batches.into_iter().map(|b| (b.seq, b)));
            let mut decided = Vec::new();
            while let Some(b) = waiting.remove(&next) {
                next += 1;
                decided.push(ToAlerts::Decided(self.apply(b)));
            }
            if !decided.is_empty() && alerts.send(decided).is_err() {
                return;
            }
        }
        if self.peaks {
            let held = self.named(self.windows.iter().map(Windows::held_peaks).collect());
            alerts.send(vec![ToAlerts::Peaks(held)]).unwrap_or(());
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
                // An idle tick moves a source's time on from its own newest.
                let time = match (*n, b.idle) {
                    (Some(t), Some(idle)) => t.saturating_add(idle),
                    _ => time,
                };
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
        let (events, values) = match self.ship {
            true => (b.events, Some(b.values)),
            false => (Vec::new(), None),
        };
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
            values,
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

/// Names of keys of one rule, by key.
type Names = HashMap<Key, Box<str>, foldhash::fast::RandomState>;
