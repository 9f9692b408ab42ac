//! The state decoder: a base, and a change log applied to it. Any bytes are
//! a state or an error. Input: a base, then `\0LOG\0`, then a change log.

use logwarden::state::{apply_log, decode};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let sep = b"\0LOG\0";
        let at = data.windows(sep.len()).position(|w| w == sep);
        let (base, log) = match at {
            Some(i) => (&data[..i], &data[i + sep.len()..]),
            None => (data, &[][..]),
        };
        if let Ok((mut state, generation)) = decode(base) {
            apply_log(&mut state, generation, log);
        }
    });
}
