//! The binary form of windows: one entry per key, compact since a flood
//! of clients means a million of them. An entry is a tag byte (0: an IPv4
//! key, 1: IPv6), the key (4 or 16 bytes), its `T`, the end of its
//! cooldown, its slot count and the slots as (`T` − second, hits), all as
//! LEB128 varints: about 13 bytes for a client with one hit. A rule counting
//! distinct values adds their count and each value as (`T` − last seen,
//! 16 bytes).

use super::{StateError, corrupt};
use crate::parse::client::Key;
use crate::rules::WindowSpec;
use crate::window::{KeyState, Windows};

const V6: u8 = 1;

/// Entries of one rule's windows (a shard's part), encoded.
#[derive(Debug, Default, Clone)]
pub struct Entries {
    /// How many.
    pub count: u64,
    /// The entries.
    pub bytes: Vec<u8>,
}

impl Entries {
    /// The keys changed (or removed) since the last call, as entries.
    pub fn changes(w: &mut Windows) -> Entries {
        let mut e = Entries::default();
        let distinct = w.spec().distinct;
        w.take_changes_with_values(|key, state, values| {
            e.put(key, state, distinct.then_some(values))
        });
        e
    }

    /// Every key of `w`, as entries.
    pub fn all(w: &Windows) -> Entries {
        let mut e = Entries::default();
        for (key, state) in w.iter() {
            e.put(*key, state, w.spec().distinct.then(|| w.values(key)));
        }
        e
    }

    /// One entry; `values` for a rule counting distinct values.
    fn put(&mut self, key: Key, state: &KeyState, values: Option<&[(u32, u128)]>) {
        let out = &mut self.bytes;
        match key.v4_bits() {
            Some(v4) => {
                out.push(0);
                out.extend_from_slice(&v4.to_le_bytes());
            }
            None => {
                out.push(V6);
                out.extend_from_slice(&key.0.to_le_bytes());
            }
        }
        let (newest, quiet, slots) = state.parts();
        put_varint(out, newest);
        put_varint(out, quiet);
        put_varint(out, slots.len() as u32);
        for &(t, hits) in slots {
            put_varint(out, newest - t);
            put_varint(out, hits);
        }
        if let Some(values) = values {
            put_varint(out, values.len() as u32);
            for &(t, v) in values {
                put_varint(out, newest.saturating_sub(t));
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        self.count += 1;
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads numbers from a byte slice, failing on a short or bad input.
pub(super) struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    pub fn take<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let (head, rest) =
            self.0.split_first_chunk::<N>().ok_or_else(|| corrupt("it ends early"))?;
        self.0 = rest;
        Ok(*head)
    }

    pub fn u32(&mut self) -> Result<u32, StateError> {
        self.take::<4>().map(u32::from_le_bytes)
    }

    pub fn u64(&mut self) -> Result<u64, StateError> {
        self.take::<8>().map(u64::from_le_bytes)
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&[u8], StateError> {
        let head = self.0.get(..n).ok_or_else(|| corrupt("it ends early"))?;
        self.0 = &self.0[n..];
        Ok(head)
    }

    fn varint(&mut self) -> Result<u32, StateError> {
        let mut v = 0u32;
        for shift in (0..35).step_by(7) {
            let [b] = self.take::<1>()?;
            let part = u32::from(b & 0x7f);
            if shift == 28 && part > 0x0f {
                return Err(corrupt("a number is too large"));
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("a number is too long"))
    }
}

/// Applies `count` entries to `w` (a rule with `spec`).
pub(super) fn apply(r: &mut Reader<'_>, count: u64, w: &mut Windows) -> Result<(), StateError> {
    let spec = *w.spec();
    for _ in 0..count {
        let [tag] = r.take::<1>()?;
        let key = match tag {
            0 => Key::from_v4_bits(r.u32()?),
            V6 => Key(u128::from_le_bytes(r.take::<16>()?)),
            _ => return Err(corrupt("unknown entry tag")),
        };
        let (newest, quiet) = (r.varint()?, r.varint()?);
        let n = r.varint()?;
        if n > spec.window.saturating_add(1) {
            return Err(corrupt("slot count"));
        }
        let slots = (0..n)
            .map(|_| {
                let (age, hits) = (r.varint()?, r.varint()?);
                let t = newest.checked_sub(age).ok_or_else(|| corrupt("slot time"))?;
                Ok((t, hits))
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        let state = KeyState::from_parts(newest, quiet, &slots, &spec)
            .ok_or_else(|| corrupt("window slots"))?;
        let values = if spec.distinct { distinct_values(r, newest, &spec)? } else { Vec::new() };
        w.insert_values(key, state, values);
    }
    Ok(())
}

/// A key's distinct values (after its slots).
fn distinct_values(
    r: &mut Reader<'_>,
    newest: u32,
    spec: &WindowSpec,
) -> Result<Vec<(u32, u128)>, StateError> {
    let n = r.varint()?;
    if n > spec.threshold {
        return Err(corrupt("distinct value count"));
    }
    (0..n)
        .map(|_| {
            let t = newest.checked_sub(r.varint()?).ok_or_else(|| corrupt("value time"))?;
            Ok((t, u128::from_le_bytes(r.take::<16>()?)))
        })
        .collect()
}

/// Applies `count` entries of the first state format (fixed-width fields).
pub(super) fn apply_v1(r: &mut Reader<'_>, count: u64, w: &mut Windows) -> Result<(), StateError> {
    let spec: WindowSpec = *w.spec();
    for _ in 0..count {
        let key = Key(u128::from_le_bytes(r.take::<16>()?));
        let (newest, quiet, n) = (r.u32()?, r.u32()?, r.u32()?);
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= spec.window as usize + 1)
            .ok_or_else(|| corrupt("slot count"))?;
        let slots =
            (0..n).map(|_| Ok((r.u32()?, r.u32()?))).collect::<Result<Vec<_>, StateError>>()?;
        let state = KeyState::from_parts(newest, quiet, &slots, &spec)
            .ok_or_else(|| corrupt("window slots"))?;
        w.insert(key, state);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Outcome;

    #[test]
    fn entries_round_trip_small() {
        let spec = WindowSpec { threshold: 3, window: 600, cooldown: 600, distinct: false };
        let mut w = Windows::new(spec).tracking();
        for t in [1_700_000_000, 1_700_000_000, 1_700_000_300] {
            w.record(Key::from_v4_bits(0x0a00_0001), t);
        }
        w.record(Key(0x2001_0db8 << 96), 1_700_000_100);
        let all = Entries::all(&w);
        assert_eq!(all.count, 2);
        let mut back = Windows::new(spec);
        apply(&mut Reader(&all.bytes), all.count, &mut back).unwrap();
        let k = back.get(Key::from_v4_bits(0x0a00_0001)).unwrap();
        assert_eq!((k.count(), k.newest()), (3, 1_700_000_300));
        assert!(back.get(Key(0x2001_0db8 << 96)).is_some());
        let mut one = Windows::new(spec).tracking();
        one.record(Key::from_v4_bits(1), 1_700_000_000);
        let e = Entries::changes(&mut one);
        assert!(e.bytes.len() <= 14, "a one-hit IPv4 client takes {} bytes", e.bytes.len());
        let mut r = Reader(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert!(r.varint().is_err());
    }

    #[test]
    fn distinct_values_round_trip() {
        let spec = WindowSpec { threshold: 3, window: 600, cooldown: 600, distinct: true };
        let mut w = Windows::new(spec).tracking();
        let k = Key::from_v4_bits(0x0a00_0001);
        for (t, v) in [(1_700_000_000, 5u128 << 100), (1_700_000_010, 6), (1_700_000_020, 5 << 100)]
        {
            w.record_value(k, t, v);
        }
        for e in [Entries::all(&w), Entries::changes(&mut w)] {
            let mut back = Windows::new(spec);
            apply(&mut Reader(&e.bytes), e.count, &mut back).unwrap();
            let mut values = back.values(&k).to_vec();
            values.sort_unstable();
            assert_eq!(values, [(1_700_000_010, 6), (1_700_000_020, 5 << 100)]);
            assert_eq!(back.get(k).unwrap().count(), 2);
            assert_eq!(back.record_value(k, 1_700_000_030, 7), Outcome::Alert(3));
        }
    }
}
