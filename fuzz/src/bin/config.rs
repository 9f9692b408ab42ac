//! The configuration loader: any text is a configuration or an error.

use logwarden::config::{Config, Overrides};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = Config::parse(text, None, &Overrides::default());
        }
    });
}
