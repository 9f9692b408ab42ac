//! The state decoder: a base, and a change log applied to it. Any bytes are
//! a state or an error. The input is the base's body, then `\0REC\0` and
//! the payload of each change record; the harness adds the magic lines,
//! lengths and checksums, so the fuzzer reaches the headers and entries
//! behind them instead of stopping at a checksum.

use logwarden::state::{MAGIC, WAL_MAGIC, apply_log, decode};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let sep = b"\0REC\0";
        let mut parts = split(data, sep).into_iter();
        let mut base = MAGIC.to_vec();
        base.extend_from_slice(parts.next().unwrap_or_default());
        let crc = crc32fast::hash(&base);
        base.extend_from_slice(&crc.to_le_bytes());
        let Ok((mut state, generation)) = decode(&base) else { return };
        let mut log = WAL_MAGIC.to_vec();
        log.extend_from_slice(&generation.to_le_bytes());
        for payload in parts {
            log.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            log.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            log.extend_from_slice(payload);
        }
        apply_log(&mut state, generation, &log);
    });
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}
