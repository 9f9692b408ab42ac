//! The `logwarden` command.

use clap::Parser as _;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = logwarden::cli::Cli::parse();
    match logwarden::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logwarden: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
