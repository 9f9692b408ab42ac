//! Apache and nginx error-log lines (with and without syslog prefixes) and
//! `auto`, which decides per line. Nothing may panic.

use logwarden::parse::time::Zone;
use logwarden::parse::{ClientSource, Format, Parser};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        for spec in ["apache_error", "nginx_error", "auto"] {
            let format = Format::from_spec(spec, None).expect("a built-in format");
            let parser = Parser::new(format, Zone::Utc, 1_800_000_000, ClientSource::default());
            for line in data.split(|&c| c == b'\n') {
                let _ = parser.parse(line);
            }
        }
    });
}
