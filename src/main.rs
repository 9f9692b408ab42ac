//! The `logwarden` command.

use clap::Parser as _;
use std::io::Write as _;
use std::process::ExitCode;

// No custom global allocator: the hot path does not allocate per line, and
// mimalloc (the design card's choice) measured 7% slower on `replay` and
// raised peak RSS on the stress file from 84 MB to 135 MB, its arenas being
// backed by transparent huge pages that are zeroed on first touch.
fn main() -> ExitCode {
    abort_on_panic();
    let cli = logwarden::app::cli::Cli::parse();
    match logwarden::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Not eprintln!: a closed standard error must not panic.
            writeln!(std::io::stderr(), "logwarden: error: {e:#}").unwrap_or(());
            ExitCode::from(2)
        }
    }
}

/// A panic in any thread ends the process at once (SIGABRT, after the usual
/// message): a lost worker or output thread must never leave the daemon
/// hanging, deaf to SIGTERM and silent to the watchdog. Saved state makes
/// the restart safe, as after `kill -9`.
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        writeln!(std::io::stderr(), "logwarden: error: a thread panicked (a bug); exiting")
            .unwrap_or(());
        std::process::abort();
    }));
}
