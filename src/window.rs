//! Windows: exact per-key sliding-window counting. Pure and clock-free: time
//! is the events' own timestamps, so replay and live runs decide alike.
//!
//! Semantics (the README states the same):
//! - Per key, `T` is the newest event time seen for that key. The window holds
//!   the key's events with time in `[T − window, T]`; both ends count.
//! - An event older than `T − window` when it arrives is late: counted by the
//!   caller, not in the window. Out-of-order events inside the window count.
//! - An event that makes the window hold ≥ threshold events alerts, unless the
//!   key cools down: a key that alerted at `T_a` cools down while
//!   `T < T_a + cooldown`. The alert carries the exact count.
//!
//! Timestamps have one-second resolution, so a key keeps a small vector of
//! `(second, hits)` pairs sorted by second: at most `window + 1` of them
//! however fast it hits.
//!
//! A rule with `distinct` counts the distinct values (paths, say) among the
//! key's events in `[T − window, T]` instead, under the same rules for late
//! events and cooldown. Per key it keeps each value with the time it was
//! last seen, but at most `threshold` of them — those seen last: whether
//! `threshold` values lie in the window depends only on those, since a
//! value dropped for a later one leaves the window no later than it. So an
//! alert's count is the threshold (the number of distinct values up to
//! it), and memory per key is bounded by the threshold.

use crate::parse::client::Key;
use crate::rules::WindowSpec;
use smallvec::SmallVec;
use std::collections::HashMap;

/// What one event did to its key's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Older than `T − window`: not counted.
    Late,
    /// Counted; the window now holds this many events.
    Counted(u32),
    /// Counted and crossed the threshold outside a cooldown.
    Alert(u32),
}

/// The window of one key.
#[derive(Debug, Clone)]
pub struct KeyState {
    /// `(second, hits)` in ascending seconds, all within `[T − window, T]`.
    slots: SmallVec<[(u32, u32); 2]>,
    /// `T`: the newest event time.
    newest: u32,
    /// Sum of hits in `slots`.
    count: u32,
    /// `T_a + cooldown` of the last alert; 0 before any alert.
    quiet_until: u32,
    /// Changed since the windows' changes were last taken.
    dirty: bool,
}

impl KeyState {
    fn new(t: u32) -> KeyState {
        KeyState { slots: SmallVec::new(), newest: t, count: 0, quiet_until: 0, dirty: false }
    }

    /// Applies one event at second `t`.
    pub fn record(&mut self, t: u32, spec: &WindowSpec) -> Outcome {
        if u64::from(t) + u64::from(spec.window) < u64::from(self.newest) {
            return Outcome::Late;
        }
        if t > self.newest {
            self.newest = t;
            let oldest = t.saturating_sub(spec.window);
            let gone = self.slots.iter().take_while(|s| s.0 < oldest).count();
            self.count -= self.slots.drain(..gone).map(|s| s.1).sum::<u32>();
        }
        match self.slots.iter().rposition(|s| s.0 <= t) {
            Some(i) if self.slots[i].0 == t => self.slots[i].1 += 1,
            Some(i) => self.slots.insert(i + 1, (t, 1)),
            None => self.slots.insert(0, (t, 1)),
        }
        self.count += 1;
        self.decide(spec)
    }

    /// Applies one event at second `t` with `value` to a key that counts
    /// distinct values, kept in `values` as `(last seen, value)`.
    fn record_value(
        &mut self,
        t: u32,
        value: u128,
        values: &mut Values,
        spec: &WindowSpec,
    ) -> Outcome {
        if u64::from(t) + u64::from(spec.window) < u64::from(self.newest) {
            return Outcome::Late;
        }
        self.newest = self.newest.max(t);
        match values.iter_mut().find(|v| v.1 == value) {
            Some(v) => v.0 = v.0.max(t),
            None => values.push((t, value)),
        }
        let oldest = self.newest.saturating_sub(spec.window);
        values.retain(|v| v.0 >= oldest);
        if values.len() > spec.threshold as usize
            && let Some(i) = values.iter().enumerate().min_by_key(|(_, v)| v.0).map(|(i, _)| i)
        {
            values.swap_remove(i);
        }
        self.count = values.len() as u32;
        self.decide(spec)
    }

    /// Whether the window, as it now holds `count`, alerts.
    fn decide(&mut self, spec: &WindowSpec) -> Outcome {
        if self.count >= spec.threshold && self.newest >= self.quiet_until {
            self.quiet_until = self.newest.saturating_add(spec.cooldown);
            return Outcome::Alert(self.count);
        }
        Outcome::Counted(self.count)
    }

    /// The state as plain parts: `T`, the end of the cooldown, the slots.
    pub fn parts(&self) -> (u32, u32, &[(u32, u32)]) {
        (self.newest, self.quiet_until, &self.slots)
    }

    /// Rebuilds a key's state from [`KeyState::parts`]; `None` when the parts
    /// are inconsistent (slots out of order or outside `[T − window, T]`).
    pub fn from_parts(
        newest: u32,
        quiet_until: u32,
        slots: &[(u32, u32)],
        spec: &WindowSpec,
    ) -> Option<KeyState> {
        let oldest = newest.saturating_sub(spec.window);
        let ordered = slots.windows(2).all(|w| w[0].0 < w[1].0);
        let inside = slots.iter().all(|&(t, h)| t >= oldest && t <= newest && h > 0);
        let count = slots.iter().try_fold(0u32, |acc, s| acc.checked_add(s.1))?;
        (ordered && inside).then(|| KeyState {
            slots: SmallVec::from_slice(slots),
            newest,
            count,
            quiet_until,
            dirty: false,
        })
    }

    /// The newest event time `T` of this key.
    pub fn newest(&self) -> u32 {
        self.newest
    }

    /// Events in the window now.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Events at or after second `oldest`.
    pub fn count_since(&self, oldest: u32) -> u32 {
        self.slots.iter().rev().take_while(|s| s.0 >= oldest).map(|s| s.1).sum()
    }

    /// Whether forgetting this key cannot change any decision unless a line
    /// arrives more than one window behind `watermark` (the newest event time
    /// of the whole stream): all its events are over two windows old and its
    /// cooldown ended a window ago.
    fn forgettable(&self, watermark: u32, spec: &WindowSpec) -> bool {
        let w = u64::from(spec.window);
        u64::from(self.newest) + 2 * w < u64::from(watermark)
            && u64::from(self.quiet_until) + w <= u64::from(watermark)
    }
}

/// The windows of every key for one rule.
#[derive(Debug, Clone)]
pub struct Windows {
    spec: WindowSpec,
    keys: HashMap<Key, KeyState, foldhash::fast::RandomState>,
    /// At most this many keys; beyond, those with the fewest hits go.
    max_keys: usize,
    /// Keys forgotten at `max_keys` since last asked.
    forgotten: u64,
    /// Whether changes are tracked (for saving only what changed).
    track: bool,
    /// Keys that became dirty since the changes were last taken, while
    /// they are few; `None` once they are many (the map is walked instead).
    changed: Option<Vec<Key>>,
    /// When asked for (a report): each key's peak, the most events its
    /// window held (kept apart, so the states stay small for the daemon).
    peaks: Option<Peaks>,
    /// For a rule counting distinct values: each key's values.
    values: Option<HashMap<Key, Values, foldhash::fast::RandomState>>,
}

/// A key's distinct values with the time each was last seen (at most the
/// threshold of them).
pub type Values = Vec<(u32, u128)>;

/// Peaks of the keys held, and of those dropped since last taken.
#[derive(Debug, Clone, Default)]
struct Peaks {
    held: HashMap<Key, u32, foldhash::fast::RandomState>,
    dropped: Vec<(Key, u32)>,
}

impl Peaks {
    fn drop_key(&mut self, key: &Key) {
        if let Some(p) = self.held.remove(key) {
            self.dropped.push((*key, p));
        }
    }
}

/// What goes with a key that is dropped: its values, and its peak to the
/// dropped peaks.
fn dropped(
    key: &Key,
    peaks: &mut Option<Peaks>,
    values: &mut Option<HashMap<Key, Values, foldhash::fast::RandomState>>,
) {
    if let Some(p) = peaks.as_mut() {
        p.drop_key(key);
    }
    if let Some(v) = values.as_mut() {
        v.remove(key);
    }
}

impl Windows {
    /// Empty windows for a rule, without a limit on keys.
    pub fn new(spec: WindowSpec) -> Windows {
        Windows {
            spec,
            keys: HashMap::default(),
            max_keys: usize::MAX,
            forgotten: 0,
            track: false,
            changed: Some(Vec::new()),
            peaks: None,
            values: spec.distinct.then(HashMap::default),
        }
    }

    /// These windows keeping the peak of each key they drop, for
    /// [`Windows::take_peaks`].
    pub fn with_peaks(mut self) -> Windows {
        self.peaks = Some(Peaks::default());
        self
    }

    /// The peaks (most events a window held) of the keys dropped since the
    /// last call; empty unless made [`Windows::with_peaks`].
    pub fn take_peaks(&mut self) -> Vec<(Key, u32)> {
        self.peaks.as_mut().map(|p| std::mem::take(&mut p.dropped)).unwrap_or_default()
    }

    /// The peak of every key held now.
    pub fn held_peaks(&self) -> Vec<(Key, u32)> {
        let held = self.peaks.as_ref().map(|p| p.held.iter().map(|(k, v)| (*k, *v)).collect());
        held.unwrap_or_default()
    }

    /// These windows holding at most `max_keys` keys.
    pub fn with_max_keys(mut self, max_keys: usize) -> Windows {
        self.max_keys = max_keys.max(1);
        self
    }

    /// These windows keeping track of which keys change (see
    /// [`Windows::take_changes`]).
    pub fn tracking(mut self) -> Windows {
        self.track = true;
        self
    }

    /// Applies one event for `key` at second `t`.
    pub fn record(&mut self, key: Key, t: u32) -> Outcome {
        self.record_value(key, t, 0)
    }

    /// Applies one event for `key` at second `t` whose counted field has
    /// `value` (ignored unless the rule counts distinct values).
    pub fn record_value(&mut self, key: Key, t: u32, value: u128) -> Outcome {
        if self.keys.len() >= self.max_keys && !self.keys.contains_key(&key) {
            self.forget_fewest();
        }
        let spec = &self.spec;
        let many = self.keys.len() / 8;
        let state = self.keys.entry(key).or_insert_with(|| KeyState::new(t));
        let outcome = match self.values.as_mut() {
            Some(values) => state.record_value(t, value, values.entry(key).or_default(), spec),
            None => state.record(t, spec),
        };
        if let Some(p) = self.peaks.as_mut() {
            let peak = p.held.entry(key).or_default();
            *peak = (*peak).max(state.count);
        }
        if self.track && !state.dirty {
            state.dirty = true;
            // Past an eighth of the keys, listing them costs more than
            // walking the map when the changes are taken.
            match &mut self.changed {
                Some(list) if list.len() <= many => list.push(key),
                Some(_) => self.changed = None,
                None => {}
            }
        }
        outcome
    }

    /// At `max_keys`: forgets about a tenth of the keys, those with the
    /// fewest hits in their window (of equals, the longest idle), so a flood
    /// of new clients costs the least for what is counted. The cut-off is
    /// taken from a sample of the keys (the map's order is seeded, so any
    /// part is a fair sample), which keeps the extra memory small.
    fn forget_fewest(&mut self) {
        const SAMPLE: usize = 4096;
        let mut sample: Vec<(u32, u32)> =
            self.keys.values().take(SAMPLE).map(|s| (s.count, s.newest)).collect();
        let at = sample.len() / 10;
        let (_, &mut cut, _) = sample.select_nth_unstable(at);
        // Many keys alike (a flood of one-hit clients in one second) must
        // not all go: of those equal to the cut-off, only enough for a tenth.
        let below = sample.iter().filter(|x| **x < cut).count();
        let mut equal_budget = (self.keys.len() / 10)
            .saturating_sub(below * self.keys.len() / sample.len().max(1))
            .max(1);
        let before = self.keys.len();
        let (peaks, values) = (&mut self.peaks, &mut self.values);
        self.keys.retain(|k, s| {
            let v = (s.count, s.newest);
            let go = v < cut || (v == cut && equal_budget > 0);
            if v == cut && go {
                equal_budget -= 1;
            }
            if go {
                dropped(k, peaks, values);
            }
            !go
        });
        self.forgotten += (before - self.keys.len()) as u64;
    }

    /// Keys forgotten at `max_keys` since the last call.
    pub fn take_forgotten(&mut self) -> u64 {
        std::mem::take(&mut self.forgotten)
    }

    /// Forgets keys with nothing left to decide (see `KeyState::forgettable`);
    /// returns how many were evicted.
    pub fn evict(&mut self, watermark: u32) -> usize {
        let before = self.keys.len();
        let spec = self.spec;
        let (peaks, values) = (&mut self.peaks, &mut self.values);
        self.keys.retain(|k, s| {
            let go = s.forgettable(watermark, &spec);
            if go {
                dropped(k, peaks, values);
            }
            !go
        });
        if self.keys.capacity() > 4 * self.keys.len().max(1024) {
            self.keys.shrink_to_fit();
            if let Some(v) = self.values.as_mut() {
                v.shrink_to_fit();
            }
        }
        before - self.keys.len()
    }

    /// Calls `f` with each key changed since the last call and its state
    /// now, and starts tracking afresh. Removed keys are not reported: a key
    /// that is evicted or forgotten changes no decision, so one brought
    /// back from saved changes after a crash is harmless (and goes again).
    ///
    /// # Performance
    /// Proportional to what changed: the changed keys are looked up one by
    /// one, or — when they became more than an eighth of all keys, as in a
    /// flood of new clients — the map is walked in order, which costs less
    /// than that many scattered look-ups (and the list is not kept).
    pub fn take_changes(&mut self, mut f: impl FnMut(Key, &KeyState)) {
        self.take_changes_with_values(|k, s, _| f(k, s));
    }

    /// Like [`Windows::take_changes`], with each key's distinct values.
    pub fn take_changes_with_values(&mut self, mut f: impl FnMut(Key, &KeyState, &[(u32, u128)])) {
        let values = self.values.as_ref();
        let values_of = |k: &Key| values.and_then(|v| v.get(k)).map_or(&[][..], Vec::as_slice);
        let Some(changed) = self.changed.replace(Vec::new()) else {
            for (key, state) in self.keys.iter_mut().filter(|(_, s)| s.dirty) {
                state.dirty = false;
                f(*key, state, values_of(key));
            }
            return;
        };
        for key in changed {
            if let Some(state) = self.keys.get_mut(&key).filter(|s| s.dirty) {
                state.dirty = false;
                f(key, state, values_of(&key));
            }
        }
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The state of one key, if held.
    pub fn get(&self, key: Key) -> Option<&KeyState> {
        self.keys.get(&key)
    }

    /// Every key and its state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &KeyState)> {
        self.keys.iter()
    }

    /// The `n` keys with the most events in the window that ends at `now`
    /// (`[now − window, now]`), most first (ties by key); keys with none are
    /// left out. One pass over the keys, keeping `n`.
    pub fn top(&self, n: usize, now: u32) -> Vec<(Key, u32)> {
        let rank = |&(k, c): &(Key, u32)| (c, std::cmp::Reverse(k));
        let oldest = now.saturating_sub(self.spec.window);
        let mut best: Vec<(Key, u32)> = Vec::with_capacity(n + 1);
        for (key, state) in &self.keys {
            let entry = (*key, self.count_since(key, state, oldest));
            if entry.1 == 0
                || best.len() == n && best.last().is_some_and(|l| rank(&entry) <= rank(l))
            {
                continue;
            }
            best.insert(best.partition_point(|b| rank(b) > rank(&entry)), entry);
            best.truncate(n);
        }
        best
    }

    /// Events (or distinct values) of a key at or after second `oldest`.
    fn count_since(&self, key: &Key, state: &KeyState, oldest: u32) -> u32 {
        match self.values.as_ref() {
            Some(values) => {
                let v = values.get(key).map_or(&[][..], Vec::as_slice);
                v.iter().filter(|v| v.0 >= oldest).count() as u32
            }
            None => state.count_since(oldest),
        }
    }

    /// A key's distinct values (empty unless the rule counts them).
    pub fn values(&self, key: &Key) -> &[(u32, u128)] {
        self.values.as_ref().and_then(|v| v.get(key)).map_or(&[], Vec::as_slice)
    }

    /// Sets the state of a key (restoring saved state).
    pub fn insert(&mut self, key: Key, state: KeyState) {
        self.keys.insert(key, state);
    }

    /// Sets the state and distinct values of a key (restoring saved state).
    pub fn insert_values(&mut self, key: Key, mut state: KeyState, values: Values) {
        if let Some(v) = self.values.as_mut() {
            state.count = values.len() as u32;
            v.insert(key, values);
        }
        self.keys.insert(key, state);
    }

    /// The rule's threshold, window and cooldown.
    pub fn spec(&self) -> &WindowSpec {
        &self.spec
    }

    /// Applies a new threshold and cooldown to the kept windows.
    ///
    /// # Panics
    /// If the window length differs: the slots were cut for the old one.
    pub fn set_spec(&mut self, spec: WindowSpec) {
        assert_eq!(spec.window, self.spec.window, "windows are kept only for the same length");
        self.spec = spec;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SPEC: WindowSpec = WindowSpec { threshold: 3, window: 10, cooldown: 10, distinct: false };

    fn run(spec: WindowSpec, times: &[u32]) -> Vec<Outcome> {
        let mut w = Windows::new(spec);
        times.iter().map(|&t| w.record(Key(1), t)).collect()
    }

    #[test]
    fn top_lists_the_keys_with_most_events_in_the_window_ending_now() {
        let spec = WindowSpec { threshold: 100, window: 10, cooldown: 0, distinct: false };
        let mut w = Windows::new(spec);
        for (k, hits) in [(1u128, 3u32), (2, 5), (3, 1), (4, 5), (5, 2)] {
            for _ in 0..hits {
                w.record(Key(k), 100);
            }
        }
        w.record(Key(6), 80); // outside [95, 105]
        w.record(Key(6), 80);
        w.record(Key(6), 80);
        w.record(Key(6), 80);
        w.record(Key(6), 80);
        w.record(Key(6), 80);
        assert_eq!(w.top(3, 105), vec![(Key(2), 5), (Key(4), 5), (Key(1), 3)]);
        assert_eq!(w.top(10, 105).len(), 5, "keys with no event in the window are left out");
        assert_eq!(w.top(10, 111), vec![], "all older than now − window");
    }

    #[test]
    fn windows_with_peaks_hand_on_the_peak_of_each_key_they_drop() {
        let mut w = Windows::new(SPEC).with_peaks();
        for t in [100, 101, 102, 150] {
            w.record(Key(1), t);
        }
        w.record(Key(2), 100);
        assert_eq!(w.held_peaks().len(), 2);
        assert_eq!(w.evict(1000), 2);
        let mut dropped = w.take_peaks();
        dropped.sort_unstable();
        assert_eq!(dropped, vec![(Key(1), 3), (Key(2), 1)], "the most a window held, not the last");
        assert!(w.take_peaks().is_empty());
        assert!(Windows::new(SPEC).take_peaks().is_empty());
    }

    #[test]
    fn both_ends_of_the_window_count() {
        assert_eq!(run(SPEC, &[100, 105, 110]).last(), Some(&Outcome::Alert(3)));
        assert_eq!(run(SPEC, &[100, 105, 111]).last(), Some(&Outcome::Counted(2)));
    }

    #[test]
    fn late_and_out_of_order() {
        let o = run(SPEC, &[100, 120, 109, 110, 115]);
        assert_eq!(o[2], Outcome::Late);
        assert_eq!(o[3], Outcome::Counted(2));
        assert_eq!(o[4], Outcome::Alert(3));
    }

    #[test]
    fn cooldown_and_zero_cooldown() {
        let o = run(SPEC, &[1, 2, 3, 4, 12, 13, 14]);
        assert_eq!(o[2], Outcome::Alert(3));
        assert_eq!(o[3], Outcome::Counted(4));
        assert_eq!(o[4], Outcome::Counted(4)); // T=12 < 3+10
        assert_eq!(o[5], Outcome::Alert(4)); // T=13: window [3,13] holds 3,4,12,13
        let zero = WindowSpec { cooldown: 0, ..SPEC };
        let o = run(zero, &[1, 2, 3, 4]);
        assert_eq!(&o[2..], &[Outcome::Alert(3), Outcome::Alert(4)]);
    }

    #[test]
    fn memory_per_key_is_bounded() {
        let mut w = Windows::new(WindowSpec {
            threshold: u32::MAX,
            window: 5,
            cooldown: 0,
            distinct: false,
        });
        for t in 0..10_000u32 {
            for _ in 0..100 {
                w.record(Key(7), t / 3);
            }
        }
        assert!(w.get(Key(7)).unwrap().slots.len() <= 6);
    }

    #[test]
    fn at_max_keys_the_fewest_hits_go_first() {
        let mut w =
            Windows::new(WindowSpec { threshold: 100, window: 600, cooldown: 0, distinct: false })
                .with_max_keys(1000)
                .tracking();
        for k in 0..10u128 {
            for t in 0..5 {
                w.record(Key(k), 1000 + t);
            }
        }
        for k in 10..100_000u128 {
            w.record(Key(k), 2000);
            assert!(w.len() <= 1000);
        }
        assert!((0..10).all(|k| w.get(Key(k)).is_some_and(|s| s.count() == 5)));
        let forgotten = w.take_forgotten();
        assert_eq!(forgotten as usize, 100_000 - w.len(), "every key forgotten is counted");
        assert!(w.len() >= 800, "about a tenth goes at a time: {}", w.len());
        let mut saved = 0;
        w.take_changes(|_, _| saved += 1);
        assert_eq!(saved, w.len(), "what is left is saved");
    }

    #[test]
    fn changes_are_taken_once_per_key() {
        let mut w = Windows::new(SPEC).tracking();
        w.record(Key(1), 100);
        w.record(Key(1), 101);
        w.record(Key(2), 100);
        let mut seen = Vec::new();
        w.take_changes(|k, s| seen.push((k, s.count())));
        seen.sort();
        assert_eq!(seen, [(Key(1), 2), (Key(2), 1)]);
        w.take_changes(|_, _| panic!("nothing changed"));
        w.record(Key(2), 130);
        let mut seen = Vec::new();
        w.take_changes(|k, s| seen.push((k, s.count())));
        assert_eq!(seen, [(Key(2), 1)]);
        // Most keys changed: the map is walked instead.
        for k in 0..100 {
            w.record(Key(k), 200);
        }
        let mut n = 0;
        w.take_changes(|_, _| n += 1);
        assert_eq!(n, 100);
    }

    #[test]
    fn eviction_keeps_what_can_still_matter() {
        let mut w = Windows::new(SPEC);
        w.record(Key(1), 100);
        w.record(Key(2), 115);
        assert_eq!(w.evict(121), 1);
        assert!(w.get(Key(1)).is_none() && w.get(Key(2)).is_some());
    }

    #[test]
    fn parts_round_trip_and_bad_parts_are_refused() {
        let mut w = Windows::new(SPEC);
        for t in [100, 101, 101, 109] {
            w.record(Key(3), t);
        }
        let k = w.get(Key(3)).unwrap();
        let (newest, quiet, slots) = k.parts();
        let back = KeyState::from_parts(newest, quiet, slots, &SPEC).unwrap();
        assert_eq!((back.count(), back.newest()), (k.count(), k.newest()));
        assert!(KeyState::from_parts(109, 0, &[(101, 1), (100, 1)], &SPEC).is_none());
        assert!(KeyState::from_parts(109, 0, &[(90, 1)], &SPEC).is_none());
        assert!(KeyState::from_parts(109, 0, &[(100, 0)], &SPEC).is_none());
    }

    /// The naive model: every `(time, value)` kept, the window recounted
    /// from scratch by `count` (given the kept events and the window's
    /// oldest second).
    fn naive(
        spec: WindowSpec,
        events: &[(u32, u128)],
        count: impl Fn(&[(u32, u128)], i64) -> u32,
    ) -> Vec<Outcome> {
        let mut kept: Vec<(u32, u128)> = Vec::new();
        let mut newest: Option<u32> = None;
        let mut alerted: Option<u32> = None;
        let mut out = Vec::new();
        for &(t, v) in events {
            if newest.is_some_and(|n| i64::from(t) < i64::from(n) - i64::from(spec.window)) {
                out.push(Outcome::Late);
                continue;
            }
            let tt = newest.map_or(t, |n| n.max(t));
            newest = Some(tt);
            kept.push((t, v));
            let count = count(&kept, i64::from(tt) - i64::from(spec.window));
            let cooling =
                alerted.is_some_and(|a| i64::from(tt) < i64::from(a) + i64::from(spec.cooldown));
            if count >= spec.threshold && !cooling {
                alerted = Some(tt);
                out.push(Outcome::Alert(count));
            } else {
                out.push(Outcome::Counted(count));
            }
        }
        out
    }

    /// The naive model of counting events.
    fn model(spec: WindowSpec, times: &[u32]) -> Vec<Outcome> {
        let events: Vec<(u32, u128)> = times.iter().map(|&t| (t, 0)).collect();
        naive(spec, &events, |kept, lo| kept.iter().filter(|e| i64::from(e.0) >= lo).count() as u32)
    }

    /// The naive model of a distinct count: the distinct values in the
    /// window, reported up to the threshold.
    fn model_distinct(spec: WindowSpec, events: &[(u32, u128)]) -> Vec<Outcome> {
        naive(spec, events, |kept, lo| {
            let mut seen: Vec<u128> =
                kept.iter().filter(|e| i64::from(e.0) >= lo).map(|e| e.1).collect();
            seen.sort_unstable();
            seen.dedup();
            (seen.len() as u32).min(spec.threshold)
        })
    }

    #[test]
    fn a_distinct_count_counts_values_not_events() {
        let spec = WindowSpec { threshold: 3, window: 10, cooldown: 10, distinct: true };
        let mut w = Windows::new(spec);
        let k = Key(7);
        assert_eq!(w.record_value(k, 100, 1), Outcome::Counted(1));
        assert_eq!(w.record_value(k, 101, 1), Outcome::Counted(1), "the same path again");
        assert_eq!(w.record_value(k, 102, 2), Outcome::Counted(2));
        assert_eq!(w.record_value(k, 112, 3), Outcome::Counted(2), "path 1 left the window");
        assert_eq!(w.record_value(k, 112, 4), Outcome::Alert(3));
        assert_eq!(w.values(&k).len(), 3);
        for v in 5..100 {
            w.record_value(k, 113, v);
        }
        assert_eq!(w.values(&k).len(), 3, "at most the threshold of values per key");
        assert_eq!(w.record_value(k, 100, 1000), Outcome::Late);
        assert_eq!(w.top(5, 113), vec![(k, 3)]);
        assert_eq!(w.evict(1000), 1);
        assert!(w.values(&k).is_empty(), "the values go with the key");
    }

    proptest! {
        /// A distinct count agrees with its naive model on arbitrary (also
        /// out-of-order) events with repeated values, with the values kept
        /// per key bounded by the threshold.
        #[test]
        fn distinct_counts_match_model(
            threshold in 1u32..6, window in 1u32..20, cooldown in 0u32..30,
            steps in proptest::collection::vec((-15i32..8, 0u128..8), 1..200)
        ) {
            let spec = WindowSpec { threshold, window, cooldown, distinct: true };
            let mut t = 1000i64;
            let events: Vec<(u32, u128)> = steps
                .iter()
                .map(|(d, v)| { t = (t + i64::from(*d)).max(0); (t as u32, *v) })
                .collect();
            let mut w = Windows::new(spec);
            let mut got = Vec::new();
            for &(t, v) in &events {
                got.push(w.record_value(Key(1), t, v));
                prop_assert!(w.values(&Key(1)).len() <= threshold as usize);
            }
            prop_assert_eq!(got, model_distinct(spec, &events));
        }

        /// The windows agree with the naive model on arbitrary (also
        /// out-of-order) event sequences.
        #[test]
        fn windows_match_model(
            threshold in 1u32..6, window in 1u32..20, cooldown in 0u32..30,
            steps in proptest::collection::vec(-15i32..8, 1..200)
        ) {
            let spec = WindowSpec { threshold, window, cooldown, distinct: false };
            let mut t = 1000i64;
            let times: Vec<u32> = steps.iter().map(|d| { t = (t + i64::from(*d)).max(0); t as u32 }).collect();
            prop_assert_eq!(run(spec, &times), model(spec, &times));
        }

        /// Evicting at any moment changes nothing while no event lags the
        /// newest event of the stream by more than one window.
        #[test]
        fn eviction_is_invisible(
            window in 1u32..20, steps in proptest::collection::vec((0u128..4, 0u32..6), 1..300),
            every in 1usize..20
        ) {
            let spec = WindowSpec { threshold: 3, window, cooldown: window * 2, distinct: false };
            let (mut a, mut b) = (Windows::new(spec), Windows::new(spec));
            let mut head = 0u32;
            for (i, (k, d)) in steps.iter().enumerate() {
                head += d;
                let t = head.saturating_sub(d * window / 6);
                prop_assert_eq!(a.record(Key(*k), t), b.record(Key(*k), t));
                if i % every == 0 {
                    b.evict(head);
                }
            }
        }
    }
}
