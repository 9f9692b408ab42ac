//! State: what survives a restart — for each followed file its identity and
//! the offset after the last line whose effects are saved, the windows of
//! every live client, and alerts decided but not yet delivered (the outbox).
//!
//! One file, `state.bin` in `state.dir`, written atomically (temporary file,
//! fsync, rename, fsync of the directory), so a crash at any moment leaves
//! either the old or the new state. Layout: a magic line, the length of a
//! JSON header (positions, outbox, watermark, rule specs), the header, the
//! windows in a compact binary form (JSON would be ten times larger for a
//! million clients), and a CRC-32 of everything before it. A file that fails
//! any check is moved aside and the daemon starts fresh.

use crate::alert::Alert;
use crate::parse::client::Key;
use crate::rules::WindowSpec;
use crate::source::Position;
use crate::window::{KeyState, Windows};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"LOGWARDEN-STATE 1\n";
/// The state file's name in `state.dir`.
pub const FILE_NAME: &str = "state.bin";

#[derive(Serialize, Deserialize)]
struct Header {
    positions: Vec<Position>,
    outbox: Vec<Alert>,
    /// For each outbox alert, a bit per output that still needs it.
    #[serde(default)]
    held_for: Vec<u64>,
    watermark: u32,
    rules: Vec<RuleHeader>,
}

#[derive(Serialize, Deserialize)]
struct RuleHeader {
    name: String,
    threshold: u32,
    window: u32,
    cooldown: u32,
    keys: u64,
}

/// Everything saved.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// File positions.
    pub positions: Vec<Position>,
    /// Alerts not yet delivered everywhere, oldest first, each with a bit per
    /// output that still needs it.
    pub outbox: Vec<(Alert, u64)>,
    /// Newest event time of the stream.
    pub watermark: u32,
    /// Windows by rule name.
    pub rules: Vec<(String, Windows)>,
}

/// Why a state file was not used.
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
}

/// Encodes the state; `windows` holds, per shard, one `Windows` per rule.
pub fn encode(
    positions: &[Position],
    outbox: &[(Alert, u64)],
    watermark: u32,
    names: &[&str],
    windows: &[Vec<Windows>],
) -> Vec<u8> {
    let rules = names
        .iter()
        .enumerate()
        .filter_map(|(r, name)| {
            let spec = *windows.first()?.get(r)?.spec();
            let keys = windows.iter().map(|shard| shard[r].len() as u64).sum();
            Some(RuleHeader {
                name: name.to_string(),
                threshold: spec.threshold,
                window: spec.window,
                cooldown: spec.cooldown,
                keys,
            })
        })
        .collect();
    let header = Header {
        positions: positions.to_vec(),
        outbox: outbox.iter().map(|(a, _)| a.clone()).collect(),
        held_for: outbox.iter().map(|(_, m)| *m).collect(),
        watermark,
        rules,
    };
    let json = serde_json::to_vec(&header).expect("state header serializes");
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for r in 0..header.rules.len() {
        for shard in windows {
            for (key, state) in shard[r].iter() {
                let (newest, quiet, slots) = state.parts();
                out.extend_from_slice(&key.0.to_le_bytes());
                out.extend_from_slice(&newest.to_le_bytes());
                out.extend_from_slice(&quiet.to_le_bytes());
                out.extend_from_slice(&(slots.len() as u32).to_le_bytes());
                for (t, h) in slots {
                    out.extend_from_slice(&t.to_le_bytes());
                    out.extend_from_slice(&h.to_le_bytes());
                }
            }
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads little-endian numbers from a byte slice, failing on a short input.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let (head, rest) =
            self.0.split_first_chunk::<N>().ok_or_else(|| corrupt("it ends early"))?;
        self.0 = rest;
        Ok(*head)
    }
    fn u32(&mut self) -> Result<u32, StateError> {
        self.take::<4>().map(u32::from_le_bytes)
    }
}

fn corrupt(what: &str) -> StateError {
    StateError::Corrupt(format!("not a valid logwarden state file: {what}"))
}

/// Decodes a state file's bytes.
pub fn decode(bytes: &[u8]) -> Result<State, StateError> {
    let body = bytes.strip_prefix(MAGIC).ok_or_else(|| corrupt("wrong magic line"))?;
    let (body, crc) = body.split_last_chunk::<4>().ok_or_else(|| corrupt("it ends early"))?;
    if crc32fast::hash(&bytes[..bytes.len() - 4]) != u32::from_le_bytes(*crc) {
        return Err(corrupt("checksum mismatch"));
    }
    let mut r = Reader(body);
    let len = usize::try_from(u64::from_le_bytes(r.take::<8>()?))
        .map_err(|_| corrupt("header too long"))?;
    let json = r.0.get(..len).ok_or_else(|| corrupt("header cut short"))?;
    let header: Header =
        serde_json::from_slice(json).map_err(|e| corrupt(&format!("header: {e}")))?;
    r.0 = &r.0[len..];
    let mut rules = Vec::new();
    for h in &header.rules {
        let spec = WindowSpec { threshold: h.threshold, window: h.window, cooldown: h.cooldown };
        let mut w = Windows::new(spec);
        for _ in 0..h.keys {
            let key = Key(u128::from_le_bytes(r.take::<16>()?));
            let (newest, quiet, n) = (r.u32()?, r.u32()?, r.u32()?);
            let n = usize::try_from(n)
                .ok()
                .filter(|n| *n <= h.window as usize + 1)
                .ok_or_else(|| corrupt("slot count"))?;
            let slots =
                (0..n).map(|_| Ok((r.u32()?, r.u32()?))).collect::<Result<Vec<_>, StateError>>()?;
            let state = KeyState::from_parts(newest, quiet, &slots, &spec)
                .ok_or_else(|| corrupt("window slots"))?;
            w.insert(key, state);
        }
        rules.push((h.name.clone(), w));
    }
    if !r.0.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    let masks = header.held_for.into_iter().chain(std::iter::repeat(u64::MAX));
    let outbox = header.outbox.into_iter().zip(masks).collect();
    Ok(State { positions: header.positions, outbox, watermark: header.watermark, rules })
}

/// Writes `bytes` as `dir/state.bin` atomically.
pub fn save(dir: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let io_err = |path: &Path| {
        let path = path.display().to_string();
        move |error| StateError::Io { path, error }
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join("state.bin.tmp");
    let target = dir.join(FILE_NAME);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &target).map_err(io_err(&target))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
    Ok(())
}

/// Loads the state in `dir`: `None` when there is none. A corrupt or
/// unreadable file is moved aside (its new name is returned in the warning)
/// so that the daemon starts fresh rather than refusing to run.
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
        Ok(s) => (Some(s), None),
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

    fn sample() -> Vec<u8> {
        let spec = WindowSpec { threshold: 3, window: 60, cooldown: 60 };
        let (mut a, mut b) = (Windows::new(spec), Windows::new(spec));
        for t in [100, 110, 110, 120] {
            a.record(Key(1), t);
            b.record(Key(2), t + 5);
        }
        let pos = Position {
            path: "/x".into(),
            id: crate::source::FileId { dev: 1, ino: 2, fingerprint: Some(3) },
            offset: 400,
            lines: 4,
        };
        encode(&[pos], &[], 125, &["r"], &[vec![a], vec![b]])
    }

    #[test]
    fn round_trip() {
        let s = decode(&sample()).unwrap();
        assert_eq!(s.positions[0].offset, 400);
        assert_eq!(s.watermark, 125);
        let (name, w) = &s.rules[0];
        assert_eq!((name.as_str(), w.len()), ("r", 2));
        assert_eq!(w.get(Key(2)).unwrap().count(), 4);
    }

    #[test]
    fn any_damage_is_detected() {
        let good = sample();
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
        save(dir.path(), &sample()).unwrap();
        assert!(load(dir.path()).0.is_some());
        std::fs::write(dir.path().join(FILE_NAME), b"garbage").unwrap();
        let (state, warning) = load(dir.path());
        assert!(state.is_none());
        assert!(warning.unwrap().contains("moved to"));
        assert!(dir.path().join("state.bin.corrupt").exists());
        assert_eq!(load(dir.path()).0.map(|s| s.watermark), None);
    }
}
