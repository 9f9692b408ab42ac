//! Access-log lines in every built-in format and in `LogFormat` strings.
//! Input: a first line naming the format — a built-in name or a `LogFormat`
//! string — then log lines. Nothing may panic; what parses must normalize.

use logwarden::parse::normalize::Normalized;
use logwarden::parse::time::Zone;
use logwarden::parse::{ClientSource, Format, Needs, Parser};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let mut lines = data.split(|&c| c == b'\n');
        let spec = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let Ok(format) = Format::from_spec(&spec, Some("X-Forwarded-For")) else { return };
        let parser = Parser::new(format, Zone::Utc, 1_800_000_000, ClientSource::default());
        let mut norm = Normalized::default();
        for line in lines {
            if let Ok(r) = parser.parse(line) {
                let _ = (r.method(), r.path(), r.query());
                if let Some(q) = r.request {
                    norm.of(q);
                }
            }
            let _ = parser.parse_needed(line, Needs::BASE);
        }
    });
}
