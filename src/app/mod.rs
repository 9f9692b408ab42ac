//! The commands: the binary's edge, where configuration, files, clock and
//! terminal meet the pure core. Errors here are `anyhow` with context.
//! [`cli`] mirrors the flags; [`replay`], [`inspect`] (`parse`) and
//! [`daemon`] (`run`) are the larger commands.

pub mod cli;
pub mod daemon;
mod inspect;
mod replay;

use crate::alert::Alert;
use crate::config::{Config, Overrides};
use crate::parse::Parser;
use crate::source::{Input, Opened};
use anyhow::{Context, Result};
use cli::{Cli, Command};
use std::process::ExitCode;

/// Runs one command; returns the process exit code.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => replay::replay(cli.config.as_deref(), &args),
        Command::Parse(args) => inspect::parse(cli.config.as_deref(), &args),
        Command::Check => check(cli.config.as_deref()),
        Command::Run => run_daemon(cli.config.as_deref()),
        Command::TestAlert => test_alert(cli.config.as_deref()),
    }
}

fn load(path: Option<&std::path::Path>, ov: &Overrides) -> Result<Config> {
    Ok(Config::load(path, ov)?)
}

fn open_all(files: &[String]) -> Result<Vec<(Input, Opened)>> {
    files
        .iter()
        .map(|f| {
            let input = Input::from_arg(f);
            let opened = input.open().with_context(|| format!("cannot open {f}"))?;
            Ok((input, opened))
        })
        .collect()
}

fn check(config: Option<&std::path::Path>) -> Result<ExitCode> {
    let cfg = load(config, &Overrides::default())?;
    let from =
        cfg.file.as_ref().map_or("built-in defaults".to_string(), |p| p.display().to_string());
    print!("# effective configuration (from {from})\n{}", cfg.effective_toml());
    eprintln!("configuration OK: {} rule(s), {} output(s)", cfg.rules.len(), cfg.outputs.len());
    Ok(ExitCode::SUCCESS)
}

/// Sets up the daemon's own log: stderr, one line per event — starting,
/// following a file, switching files, reloading, stopping, and problems —
/// unless `LOGWARDEN_LOG` (e.g. `warn`, `debug`) says otherwise.
fn init_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGWARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// `logwarden run`: follows the configured files until SIGTERM or SIGINT.
fn run_daemon(config: Option<&std::path::Path>) -> Result<ExitCode> {
    init_log();
    let cfg = load(config, &Overrides::default())?;
    daemon::run(config, cfg)?;
    Ok(ExitCode::SUCCESS)
}

/// `logwarden test-alert`: one sample alert (client 192.0.2.1, the first
/// rule, its message template) through every output; exit 1 if one failed.
fn test_alert(config: Option<&std::path::Path>) -> Result<ExitCode> {
    let cfg = load(config, &Overrides::default())?;
    let rule = cfg.rules.first().context("the configuration has no rule")?;
    let stamp = jiff::Timestamp::now().strftime("%d/%b/%Y:%H:%M:%S +0000").to_string();
    let line = format!(
        "192.0.2.1 - - [{stamp}] \"GET /{} HTTP/1.1\" 200 0 \"-\" \"logwarden test-alert\"",
        rule.target()
    );
    let parser = Parser::new(
        crate::parse::Format::from_spec("combined", None).map_err(anyhow::Error::msg)?,
        crate::parse::time::Zone::Utc,
        jiff::Timestamp::now().as_second(),
        Default::default(),
    );
    let record = parser
        .parse(line.as_bytes())
        .map_err(|e| anyhow::anyhow!("sample line: {}", e.describe()))?;
    let origin = crate::alert::Origin { file: "test-alert", line: 0, record: &record };
    let mut alert = Alert::new(rule, "192.0.2.1".into(), rule.spec.threshold, &origin);
    alert.message = format!("TEST ALERT (logwarden test-alert): {}", alert.message);
    let mut failed = false;
    for mut out in crate::output::open(&cfg.outputs)? {
        let (name, result) = (out.name(), out.send(&alert).and_then(|()| out.settle()));
        match result {
            Ok(()) => println!("ok      {name}"),
            Err(e) => {
                failed = true;
                println!("FAILED  {name}: {e}");
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
