//! The `logwarden` command.

use clap::Parser as _;
use std::process::ExitCode;

// No custom global allocator: the hot path does not allocate per line, and
// mimalloc (the design card's choice) measured 7% slower on `replay` and
// raised peak RSS on the stress file from 84 MB to 135 MB, its arenas being
// backed by transparent huge pages that are zeroed on first touch.
fn main() -> ExitCode {
    let cli = logwarden::app::cli::Cli::parse();
    match logwarden::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logwarden: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
