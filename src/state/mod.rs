//! State: what survives a restart — for each followed file its identity and
//! the offset after the last line whose effects are saved, the windows of
//! every live client, and alerts decided but not yet delivered (the outbox).
//!
//! Saving costs what changed, not what is kept. Two files in `state.dir`:
//! - `state.bin`, the base: everything as of one checkpoint, written whole —
//!   temporary file, fsync, rename, fsync of the directory — when the daemon
//!   starts, when it stops, and when the change log has outgrown the base;
//! - `state.wal`, the change log: one record per checkpoint (at most about
//!   one a second while lines flow) with the file positions, the alerts
//!   queued and delivered since the last record, and the windows of the
//!   keys that changed ([`codec`]; a key evicted or forgotten is left out:
//!   it changes no decision, and goes again after a restart); appended and
//!   synced.
//!
//! A record carries its length and a CRC-32: one cut short by a crash is
//! ignored, so the state is that of the last whole checkpoint. The change
//! log names the base it follows (a random generation), so a log left from
//! before a new base is never applied to it. A base that fails any check is
//! moved aside and the daemon starts fresh. One daemon at a time uses a
//! directory ([`lock`]).

pub mod codec;
pub mod lock;

use crate::alert::Alert;
use crate::rules::WindowSpec;
use crate::source::Position;
use crate::window::Windows;
use codec::{Entries, Reader};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const MAGIC_V1: &[u8] = b"LOGWARDEN-STATE 1\n";
/// The first line of a base.
pub const MAGIC: &[u8] = b"LOGWARDEN-STATE 2\n";
/// The first line of a change log.
pub const WAL_MAGIC: &[u8] = b"LOGWARDEN-WAL 2\n";
/// The base's name in `state.dir`.
pub const FILE_NAME: &str = "state.bin";
/// The change log's name in `state.dir`.
pub const WAL_NAME: &str = "state.wal";
/// The change log is folded into a new base past this size, or twice the
/// base's, whichever is larger.
const WAL_MIN_FOLD: u64 = 64 << 20;

/// Everything saved.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// File positions.
    pub positions: Vec<Position>,
    /// Alerts not yet delivered everywhere, oldest first, each with a bit per
    /// output that still needs it.
    pub outbox: Vec<(Alert, u64)>,
    /// The outputs the bits stand for, in order (empty in a state written
    /// before they were saved).
    pub outputs: Vec<String>,
    /// Newest event time of the stream.
    pub watermark: u32,
    /// Windows by rule.
    pub rules: Vec<SavedRule>,
    /// When it was last saved (its files' modification time), when known.
    pub saved_at: Option<SystemTime>,
    /// When each source's follower last began to look for files before
    /// the save, by source name (none in a state written before this was
    /// saved).
    pub looked: Vec<(String, SystemTime)>,
}

/// A rule's saved windows, with what named the rule when they were saved.
#[derive(Debug, Clone)]
pub struct SavedRule {
    /// The rule's name.
    pub name: String,
    /// What it counted ([`crate::rules::Rule::counting`]; empty in a state
    /// written before it was saved).
    pub counting: String,
    /// Its windows.
    pub windows: Windows,
}

/// Why a state file was not used or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        error: io::Error,
    },
    /// The content is not a valid state file.
    #[error("{0}")]
    Corrupt(String),
    /// The change log was removed while open (`state.dir` deleted while
    /// the daemon ran): what is appended to it would be lost.
    #[error(
        "{0} was removed (was state.dir deleted?); everything is saved anew at the next checkpoint"
    )]
    Removed(String),
}

fn corrupt(what: &str) -> StateError {
    StateError::Corrupt(format!("not a valid logwarden state file: {what}"))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError {
    let path = path.display().to_string();
    move |error| StateError::Io { path, error }
}

/// The base's header; `A` is `Alert` when read, `&Alert` when written (no
/// copies of what may be a hundred thousand held alerts).
#[derive(Serialize, Deserialize)]
struct BaseHeader<A> {
    #[serde(default)]
    generation: u64,
    positions: Vec<Position>,
    outbox: Vec<A>,
    /// For each outbox alert, a bit per output that still needs it.
    #[serde(default)]
    held_for: Vec<u64>,
    /// The outputs the bits stand for (`output::keys`; absent in states
    /// written before: then the bits stand for the outputs in order).
    #[serde(default)]
    outputs: Vec<String>,
    watermark: u32,
    rules: Vec<RuleHeader>,
    /// [`State::looked`], in ms since 1970 (absent in states written before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    looked: Vec<(String, u64)>,
}

#[derive(Serialize, Deserialize)]
struct RuleHeader {
    name: String,
    threshold: u32,
    window: u32,
    cooldown: u32,
    /// Counts distinct values (absent in states written before they could).
    #[serde(default)]
    distinct: bool,
    /// What the rule counted (absent in states written before it was saved).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    counting: String,
    keys: u64,
}

impl RuleHeader {
    fn spec(&self) -> WindowSpec {
        let (threshold, window, cooldown) = (self.threshold, self.window, self.cooldown);
        WindowSpec { threshold, window, cooldown, distinct: self.distinct }
    }
}

/// A change record's header; `A` as for [`BaseHeader`].
#[derive(Serialize, Deserialize)]
struct RecordHeader<A> {
    positions: Vec<Position>,
    watermark: u32,
    queued: Vec<A>,
    queued_for: Vec<u64>,
    /// Per output, the ids it took.
    delivered: Vec<(usize, Vec<String>)>,
    /// Entries per rule.
    entries: Vec<u64>,
    /// As in [`BaseHeader`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    looked: Vec<(String, u64)>,
}

/// A checkpoint to save: positions after, and windows as of, one source event.
pub struct Snapshot<'a> {
    /// Where reading of each followed file stands.
    pub positions: &'a [Position],
    /// When each source's follower last began to look for files.
    pub looked: &'a [(String, SystemTime)],
    /// Newest event time of the stream.
    pub watermark: u32,
    /// Per shard, per rule: the entries (all of them for a base, the
    /// changes for a record).
    pub shards: &'a [Vec<Entries>],
}

/// A rule as a base names it: name, window and what it counts.
#[derive(Debug, Clone)]
pub struct RuleName {
    /// The rule's name.
    pub name: String,
    /// Its window.
    pub spec: WindowSpec,
    /// What it counts ([`crate::rules::Rule::counting`]).
    pub counting: String,
}

/// Writes the state: bases and change records.
pub struct Store {
    dir: PathBuf,
    generation: u64,
    wal: Option<File>,
    wal_len: u64,
    base_len: u64,
}

impl Store {
    /// A store for `dir`; nothing is written until the first base.
    pub fn new(dir: &Path) -> Store {
        Store { dir: dir.to_path_buf(), generation: 0, wal: None, wal_len: 0, base_len: 0 }
    }

    /// Whether a base has been written: a change log to append to.
    pub fn has_base(&self) -> bool {
        self.wal.is_some()
    }

    /// Whether the change log has outgrown the base: the next checkpoint
    /// should write a new base.
    pub fn wants_base(&self) -> bool {
        !self.has_base() || self.wal_len > WAL_MIN_FOLD.max(2 * self.base_len)
    }

    /// Writes a new base — everything in `snap` (all entries), the held
    /// `outbox`, the rules — and starts an empty change log after it.
    pub fn write_base(
        &mut self,
        snap: &Snapshot<'_>,
        outbox: &[(Arc<Alert>, u64)],
        outputs: &[String],
        rules: &[RuleName],
    ) -> Result<(), StateError> {
        let generation = new_generation();
        let rule_headers = rules
            .iter()
            .enumerate()
            .map(|(r, rule)| RuleHeader {
                name: rule.name.clone(),
                threshold: rule.spec.threshold,
                window: rule.spec.window,
                cooldown: rule.spec.cooldown,
                distinct: rule.spec.distinct,
                counting: rule.counting.clone(),
                keys: snap.shards.iter().map(|s| s.get(r).map_or(0, |e| e.count)).sum(),
            })
            .collect();
        let header = BaseHeader {
            generation,
            positions: snap.positions.to_vec(),
            outbox: outbox.iter().map(|(a, _)| a.as_ref()).collect(),
            held_for: outbox.iter().map(|(_, m)| *m).collect(),
            outputs: outputs.to_vec(),
            watermark: snap.watermark,
            rules: rule_headers,
            looked: to_ms(snap.looked),
        };
        let mut out = MAGIC.to_vec();
        put_json(&mut out, &header);
        for r in 0..rules.len() {
            for shard in snap.shards {
                out.extend_from_slice(shard.get(r).map_or(&[][..], |e| &e.bytes));
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        write_atomically(&self.dir, FILE_NAME, &out)?;
        let mut wal = WAL_MAGIC.to_vec();
        wal.extend_from_slice(&generation.to_le_bytes());
        write_atomically(&self.dir, WAL_NAME, &wal)?;
        let path = self.dir.join(WAL_NAME);
        self.wal = Some(OpenOptions::new().append(true).open(&path).map_err(io_err(&path))?);
        (self.generation, self.wal_len, self.base_len) = (generation, 0, out.len() as u64);
        Ok(())
    }

    /// Appends the changes of one checkpoint, synced: the positions, the
    /// alerts queued (with the outputs that queued them) and delivered since
    /// the last record, and the entries of `snap` (the changed keys).
    pub fn append(
        &mut self,
        snap: &Snapshot<'_>,
        queued: &[(Arc<Alert>, u64)],
        delivered: &[(usize, Vec<String>)],
    ) -> Result<(), StateError> {
        let rules = snap.shards.first().map_or(0, Vec::len);
        let header = RecordHeader {
            positions: snap.positions.to_vec(),
            watermark: snap.watermark,
            queued: queued.iter().map(|(a, _)| a.as_ref()).collect(),
            queued_for: queued.iter().map(|(_, m)| *m).collect(),
            delivered: delivered.to_vec(),
            entries: (0..rules).map(|r| snap.shards.iter().map(|s| s[r].count).sum()).collect(),
            looked: to_ms(snap.looked),
        };
        let mut payload = Vec::new();
        put_json(&mut payload, &header);
        for r in 0..rules {
            for shard in snap.shards {
                payload.extend_from_slice(&shard[r].bytes);
            }
        }
        let len = u32::try_from(payload.len()).map_err(|_| corrupt("a record over 4 GiB"))?;
        let mut head = len.to_le_bytes().to_vec();
        head.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        let path = self.dir.join(WAL_NAME);
        let wal = self.wal.as_mut().ok_or_else(|| corrupt("no base written yet"))?;
        if wal.metadata().map_err(io_err(&path))?.nlink() == 0 {
            self.wal = None;
            return Err(StateError::Removed(path.display().to_string()));
        }
        // A crash between the writes leaves a record cut short: ignored.
        wal.write_all(&head)
            .and_then(|()| wal.write_all(&payload))
            .and_then(|()| wal.sync_data())
            .map_err(io_err(&path))?;
        self.wal_len += (head.len() + payload.len()) as u64;
        Ok(())
    }
}

/// A generation number for a new base: the time, in nanoseconds.
fn new_generation() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(1, |d| d.as_nanos() as u64) | 1
}

/// Appends `v` as JSON after its length, serialized in place (a header
/// may hold a hundred thousand alerts: no second copy).
fn put_json<T: Serialize>(out: &mut Vec<u8>, v: &T) {
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    serde_json::to_writer(&mut *out, v).expect("state header serializes");
    let len = (out.len() - at - 8) as u64;
    out[at..at + 8].copy_from_slice(&len.to_le_bytes());
}

fn get_json<T: for<'de> Deserialize<'de>>(r: &mut Reader<'_>) -> Result<T, StateError> {
    let len = usize::try_from(r.u64()?).map_err(|_| corrupt("header too long"))?;
    let json = r.bytes(len)?;
    serde_json::from_slice(json).map_err(|e| corrupt(&format!("header: {e}")))
}

/// Writes `dir/name` so that a crash leaves the old or the new content.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &target).map_err(io_err(&target))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Decodes a base; returns the state and its generation.
pub fn decode(bytes: &[u8]) -> Result<(State, u64), StateError> {
    let (v1, body) = match (bytes.strip_prefix(MAGIC), bytes.strip_prefix(MAGIC_V1)) {
        (Some(b), _) => (false, b),
        (None, Some(b)) => (true, b),
        (None, None) => return Err(corrupt("wrong magic line")),
    };
    let (body, crc) = body.split_last_chunk::<4>().ok_or_else(|| corrupt("it ends early"))?;
    if crc32fast::hash(&bytes[..bytes.len() - 4]) != u32::from_le_bytes(*crc) {
        return Err(corrupt("checksum mismatch"));
    }
    let mut r = Reader(body);
    let header: BaseHeader<Alert> = get_json(&mut r)?;
    let mut rules = Vec::new();
    for h in &header.rules {
        let mut w = Windows::new(h.spec());
        if v1 {
            codec::apply_v1(&mut r, h.keys, &mut w)?;
        } else {
            codec::apply(&mut r, h.keys, &mut w)?;
        }
        rules.push(SavedRule { name: h.name.clone(), counting: h.counting.clone(), windows: w });
    }
    if !r.0.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    let masks = header.held_for.into_iter().chain(std::iter::repeat(u64::MAX));
    let outbox = header.outbox.into_iter().zip(masks).collect();
    let state = State {
        positions: header.positions,
        outbox,
        outputs: header.outputs,
        watermark: header.watermark,
        rules,
        saved_at: None,
        looked: from_ms(header.looked),
    };
    Ok((state, header.generation))
}

/// Times by name, as saved: ms since 1970.
fn to_ms(times: &[(String, SystemTime)]) -> Vec<(String, u64)> {
    let ms = |t: &SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    times.iter().map(|(name, t)| (name.clone(), ms(t))).collect()
}

/// Times by name, as read.
fn from_ms(times: Vec<(String, u64)>) -> Vec<(String, SystemTime)> {
    let at = |ms| UNIX_EPOCH + std::time::Duration::from_millis(ms);
    times.into_iter().map(|(name, ms)| (name, at(ms))).collect()
}

/// Applies the change log `bytes` that follows base `generation`; returns
/// how many records were applied. Records after one that is cut short or
/// damaged (a crash while it was written) are ignored.
pub fn apply_log(state: &mut State, generation: u64, bytes: &[u8]) -> usize {
    let Some(rest) = bytes.strip_prefix(WAL_MAGIC) else { return 0 };
    let mut r = Reader(rest);
    if r.u64().ok() != Some(generation) {
        return 0;
    }
    let mut outbox = Outbox::new(std::mem::take(&mut state.outbox));
    let mut applied = 0;
    while let Ok(payload) = next_record(&mut r) {
        let mut p = Reader(payload);
        let Ok(header) = get_json::<RecordHeader<Alert>>(&mut p) else { break };
        let windows = state.rules.iter_mut().map(|r| &mut r.windows);
        let entries_ok =
            windows.zip(&header.entries).try_for_each(|(w, &count)| codec::apply(&mut p, count, w));
        if entries_ok.is_err() {
            break;
        }
        state.positions = header.positions;
        state.looked = from_ms(header.looked);
        state.watermark = header.watermark;
        outbox.queue(header.queued.into_iter().zip(header.queued_for));
        outbox.deliver(header.delivered);
        applied += 1;
    }
    state.outbox = outbox.into_vec();
    applied
}

/// The next whole record's payload.
fn next_record<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], StateError> {
    let len = r.u32()? as usize;
    let crc = r.u32()?;
    let all: &'a [u8] = r.0;
    let payload = all.get(..len).ok_or_else(|| corrupt("a record ends early"))?;
    if crc32fast::hash(payload) != crc {
        return Err(corrupt("a record's checksum"));
    }
    r.0 = &all[len..];
    Ok(payload)
}

/// The outbox while changes are applied: alerts by id.
struct Outbox {
    alerts: Vec<(Alert, u64)>,
    at: HashMap<String, usize>,
}

impl Outbox {
    fn new(alerts: Vec<(Alert, u64)>) -> Outbox {
        let at =
            alerts.iter().enumerate().filter_map(|(i, (a, _))| Some((a.id.clone()?, i))).collect();
        Outbox { alerts, at }
    }

    fn queue(&mut self, queued: impl Iterator<Item = (Alert, u64)>) {
        for (alert, mask) in queued {
            match alert.id.as_ref().and_then(|id| self.at.get(id)) {
                Some(&i) => self.alerts[i].1 |= mask,
                None => {
                    if let Some(id) = &alert.id {
                        self.at.insert(id.clone(), self.alerts.len());
                    }
                    self.alerts.push((alert, mask));
                }
            }
        }
    }

    fn deliver(&mut self, delivered: Vec<(usize, Vec<String>)>) {
        for (output, ids) in delivered {
            for id in ids {
                if let Some(&i) = self.at.get(&id) {
                    self.alerts[i].1 &= !(1u64 << output.min(63));
                }
            }
        }
    }

    fn into_vec(self) -> Vec<(Alert, u64)> {
        self.alerts.into_iter().filter(|(_, m)| *m != 0).collect()
    }
}

/// Loads the state in `dir` (the base and its change log): `None` when
/// there is none. A corrupt or unreadable base is moved aside (its new name
/// is in the warning) so that the daemon starts fresh rather than refusing
/// to run.
pub fn load(dir: &Path) -> (Option<State>, Option<String>) {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (None, None),
        Err(e) => {
            return (
                None,
                Some(format!("cannot read {}: {e}; starting without saved state", path.display())),
            );
        }
    };
    match decode(&bytes) {
        Ok((mut state, generation)) => {
            if let Ok(log) = std::fs::read(dir.join(WAL_NAME)) {
                apply_log(&mut state, generation, &log);
            }
            let written = |name| std::fs::metadata(dir.join(name)).and_then(|m| m.modified()).ok();
            state.saved_at = written(FILE_NAME).max(written(WAL_NAME));
            (Some(state), None)
        }
        Err(e) => {
            let aside = PathBuf::from(format!("{}.corrupt", path.display()));
            let moved = std::fs::rename(&path, &aside).map_or_else(
                |m| format!("could not move it aside ({m})"),
                |()| format!("moved to {}", aside.display()),
            );
            (None, Some(format!("{}: {e}; {moved}; starting without saved state", path.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::client::Key;
    use crate::source::FileId;

    const SPEC: WindowSpec = WindowSpec { threshold: 3, window: 60, cooldown: 60, distinct: false };

    fn position(offset: u64) -> Position {
        let id = FileId { dev: 1, ino: 2, fingerprint: Some(3) };
        Position { source: "default".into(), path: "/x".into(), id, offset, lines: 4 }
    }

    fn alert(id: &str) -> Arc<Alert> {
        Arc::new(Alert { id: Some(id.into()), ..Alert::sample() })
    }

    /// Two shards of one rule, tracking changes.
    fn shards() -> Vec<Windows> {
        let (mut a, mut b) = (Windows::new(SPEC).tracking(), Windows::new(SPEC).tracking());
        for t in [100, 110, 110, 120] {
            a.record(Key(1), t);
            b.record(Key(2), t + 5);
        }
        vec![a, b]
    }

    /// Writes a base of `windows` (offset 400, watermark 125) in `dir`.
    fn base_of(dir: &Path, windows: &[Windows]) -> Store {
        let all: Vec<Vec<Entries>> = windows.iter().map(|w| vec![Entries::all(w)]).collect();
        let snap =
            Snapshot { positions: &[position(400)], looked: &[], watermark: 125, shards: &all };
        let mut store = Store::new(dir);
        store
            .write_base(
                &snap,
                &[(alert("a1"), 0b11)],
                &[],
                &[RuleName { name: "r".into(), spec: SPEC, counting: String::new() }],
            )
            .unwrap();
        store
    }

    #[test]
    fn base_and_changes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut windows = shards();
        assert!(Store::new(dir.path()).wants_base());
        let mut store = base_of(dir.path(), &windows);
        windows.iter_mut().for_each(|w| w.take_changes(|_, _| {}));
        // Changes: key 1 gets a hit, key 3 is new.
        windows[0].record(Key(1), 130);
        windows[1].record(Key(3), 200);
        let changes: Vec<Vec<Entries>> =
            windows.iter_mut().map(|w| vec![Entries::changes(w)]).collect();
        assert_eq!(changes.iter().map(|c| c[0].count).sum::<u64>(), 2);
        let snap =
            Snapshot { positions: &[position(900)], looked: &[], watermark: 200, shards: &changes };
        let delivered = vec![(0, vec!["a1".to_string()])];
        store.append(&snap, &[(alert("a2"), 0b01)], &delivered).unwrap();
        assert!(!store.wants_base());
        let appended = std::fs::metadata(dir.path().join(WAL_NAME)).unwrap().modified().unwrap();
        let (state, warning) = load(dir.path());
        assert!(warning.is_none());
        let s = state.unwrap();
        assert_eq!(s.saved_at, Some(appended), "the change log's time, the later save");
        assert_eq!((s.positions[0].offset, s.watermark), (900, 200));
        let w = &s.rules[0].windows;
        assert_eq!(w.get(Key(1)).unwrap().count(), 5);
        assert!(w.get(Key(2)).is_some() && w.get(Key(3)).is_some());
        let outbox: Vec<(&str, u64)> =
            s.outbox.iter().map(|(a, m)| (a.id.as_deref().unwrap(), *m)).collect();
        assert_eq!(outbox, [("a1", 0b10), ("a2", 0b01)]);
    }

    #[test]
    fn when_each_follower_last_looked_is_saved_with_the_positions() {
        let dir = tempfile::tempdir().unwrap();
        let mut windows = shards();
        let at = |ms| UNIX_EPOCH + std::time::Duration::from_millis(ms);
        let all: Vec<Vec<Entries>> = windows.iter().map(|w| vec![Entries::all(w)]).collect();
        let looked = [("web".to_string(), at(1_796_000_000_123))];
        let snap =
            Snapshot { positions: &[position(400)], looked: &looked, watermark: 125, shards: &all };
        let rule = RuleName { name: "r".into(), spec: SPEC, counting: String::new() };
        let mut store = Store::new(dir.path());
        store.write_base(&snap, &[], &[], &[rule]).unwrap();
        assert_eq!(load(dir.path()).0.unwrap().looked, looked);
        let changes: Vec<Vec<Entries>> =
            windows.iter_mut().map(|w| vec![Entries::changes(w)]).collect();
        let looked = [("web".to_string(), at(1_796_000_001_456)), ("app".into(), at(5))];
        let snap = Snapshot {
            positions: &[position(500)],
            looked: &looked,
            watermark: 130,
            shards: &changes,
        };
        store.append(&snap, &[], &[]).unwrap();
        assert_eq!(load(dir.path()).0.unwrap().looked, looked);
    }

    #[test]
    fn a_record_cut_short_and_a_log_of_another_base_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut windows = shards();
        let mut store = base_of(dir.path(), &windows);
        windows[0].record(Key(9), 130);
        let changes: Vec<Vec<Entries>> =
            windows.iter_mut().map(|w| vec![Entries::changes(w)]).collect();
        let snap =
            Snapshot { positions: &[position(500)], looked: &[], watermark: 130, shards: &changes };
        store.append(&snap, &[], &[]).unwrap();
        store.append(&snap, &[], &[]).unwrap();
        let log = dir.path().join(WAL_NAME);
        let full = std::fs::read(&log).unwrap();
        // The second record cut in the middle, as by a crash.
        std::fs::write(&log, &full[..full.len() - 5]).unwrap();
        let s = load(dir.path()).0.unwrap();
        assert_eq!(s.positions[0].offset, 500);
        assert!(s.rules[0].windows.get(Key(9)).is_some());
        // A log following another base changes nothing.
        let (base, generation) =
            decode(&std::fs::read(dir.path().join(FILE_NAME)).unwrap()).unwrap();
        let mut other = base.clone();
        assert_eq!(apply_log(&mut other, generation + 2, &full), 0);
        assert_eq!(other.positions[0].offset, 400);
    }

    #[test]
    fn a_change_log_removed_while_open_asks_for_a_new_base() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let mut windows = shards();
        let mut store = base_of(&dir, &windows);
        std::fs::remove_dir_all(&dir).unwrap();
        let changes: Vec<Vec<Entries>> =
            windows.iter_mut().map(|w| vec![Entries::changes(w)]).collect();
        let snap =
            Snapshot { positions: &[position(500)], looked: &[], watermark: 130, shards: &changes };
        let err = store.append(&snap, &[], &[]).unwrap_err().to_string();
        assert!(err.contains("state.wal was removed (was state.dir deleted?)"), "{err}");
        assert!(store.wants_base() && !store.has_base());
        let mut store = base_of(&dir, &windows);
        store.append(&snap, &[], &[]).unwrap();
        assert_eq!(load(&dir).0.unwrap().positions[0].offset, 500);
    }

    /// A state file of the first format (fixed-width entries) still loads.
    #[test]
    fn a_first_format_state_loads() {
        let header = serde_json::json!({
            "positions": [{"path": "/x", "dev": 1, "ino": 2, "fingerprint": 3, "offset": 400, "lines": 4}],
            "outbox": [], "held_for": [], "watermark": 125,
            "rules": [{"name": "r", "threshold": 3, "window": 60, "cooldown": 60, "keys": 1}]
        })
        .to_string();
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&7u128.to_le_bytes());
        for v in [120u32, 0, 2, 100, 1, 120, 2] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let (s, generation) = decode(&bytes).unwrap();
        assert_eq!((s.positions[0].offset, s.watermark, generation), (400, 125, 0));
        assert_eq!(s.rules[0].windows.get(Key(7)).unwrap().count(), 3);
        assert!(s.looked.is_empty(), "not saved then");
    }

    #[test]
    fn any_damage_to_a_base_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        base_of(dir.path(), &shards());
        let good = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert!(decode(&good).is_ok());
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at {i}");
        }
        assert!(decode(&good[..good.len() - 1]).is_err());
        assert!(decode(b"").is_err());
    }

    #[test]
    fn corrupt_files_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        base_of(dir.path(), &shards());
        assert!(load(dir.path()).0.is_some());
        std::fs::write(dir.path().join(FILE_NAME), b"garbage").unwrap();
        let (state, warning) = load(dir.path());
        assert!(state.is_none());
        assert!(warning.unwrap().contains("moved to"));
        assert!(dir.path().join("state.bin.corrupt").exists());
        assert_eq!(load(dir.path()).0.map(|s| s.watermark), None);
    }
}
