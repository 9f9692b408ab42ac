//! Command-line options (a mirror of the flags; no logic here).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Exact per-client sliding-window alerts over Apache and nginx logs.
#[derive(Debug, Parser)]
#[command(name = "logwarden", version, about)]
pub struct Cli {
    /// Configuration file [default: /etc/logwarden/logwarden.toml if it
    /// exists, else built-in defaults].
    #[arg(long, short, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch live detection: generated traffic, its alerts and the status page, in a temporary directory.
    Demo(DemoArgs),
    /// Run the engine over log files and print each alert.
    Replay(Box<ReplayArgs>),
    /// Show how each log line is understood.
    Parse(ParseArgs),
    /// Validate the configuration and print the effective settings.
    Check,
    /// Follow live logs as a daemon until SIGTERM; SIGHUP reloads the configuration.
    Run,
    /// Send one sample alert through every configured output and report each result.
    TestAlert,
    /// Show how the running daemon stands (from its [http] endpoint); exit 1 when unhealthy.
    #[allow(rustdoc::broken_intra_doc_links)]
    // "[http]" is the configuration's table, as `--help` shows it
    Status,
}

/// `logwarden replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Print one JSON object per alert.
    #[arg(long)]
    pub json: bool,
    /// Read the files as this configured source: its format, time zone and
    /// client, and the rules that read it [default: the first source].
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Line format (overrides the source's format).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Worker threads [default: engine.threads; 0 = one per core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Define a single rule looking for this text instead of the config's rules.
    #[arg(long, value_name = "TEXT")]
    pub target: Option<String>,
    /// Field the --target rule looks in [default: request].
    #[arg(long, value_name = "FIELD", requires = "target")]
    pub field: Option<String>,
    /// Threshold of the --target rule [default: 10].
    #[arg(long, value_name = "N", requires = "target")]
    pub threshold: Option<i64>,
    /// Window of the --target rule, e.g. 600 or 10m [default: 10m].
    #[arg(long, value_name = "DURATION", requires = "target")]
    pub window: Option<String>,
    /// Cooldown of the --target rule [default: the window].
    #[arg(long, value_name = "DURATION", requires = "target")]
    pub cooldown: Option<String>,
    /// Never show the progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Also write a self-contained HTML report of the scan to this file.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<std::path::PathBuf>,
    /// Read the files in the order given, not in time order.
    #[arg(long)]
    pub no_sort: bool,
    /// MiB of decompressed data that may be held ahead, so several compressed files
    /// decompress at once, as many as --threads (0: one after another; at most 65536).
    // Bounded: the queues are sized by it, and a huge one aborted the run
    // allocating them.
    #[arg(long, value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(0..=65536))]
    pub read_ahead: u64,
    /// Each FILE is one server's log (a file, or a directory or glob for its
    /// series) of the same period: their lines are merged by time into one
    /// stream, so the alerts are the farm-wide ones.
    #[arg(long)]
    pub merge: bool,
    /// Alert only on lines at or after this time: RFC 3339
    /// (`2026-11-01T08:00:00Z`) or a date (`2026-11-01`: from its start, in
    /// the source's time zone); windows are filled from one window before.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Count no line after this time: RFC 3339 or a date (to its end).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Count only the keys in shard I of N (0 <= I < N): N machines, each
    /// given another I, together raise the whole run's alerts.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// Log files, directories (their files) and globs (`'access.log*'`), read in time
    /// order as logrotate names them (`-` = standard input; gzip, zstd, xz and bzip2 are
    /// decompressed, known by their first bytes).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
}

/// `I/N` with 0 <= I < N.
fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let (i, n) = s.split_once('/').ok_or("write I/N, e.g. 0/3")?;
    let (i, n): (u32, u32) =
        (i.parse().map_err(|_| "I is not a number")?, n.parse().map_err(|_| "N is not a number")?);
    if n == 0 || i >= n {
        return Err(format!("needs 0 <= I < N (got {i}/{n}); shards are numbered from 0"));
    }
    Ok((i, n))
}

/// `logwarden demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to run, e.g. 60s or 5m.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub duration: String,
    /// Where the status page listens.
    #[arg(long, default_value = "127.0.0.1:9745", value_name = "ADDR:PORT")]
    pub listen: String,
    /// Lines written per second.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub rate: u32,
}

/// `logwarden parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Read the files as this configured source: its format, time zone and
    /// client, and the rules that read it [default: the first source].
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Line format (overrides the source's format).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Log files (`-` = standard input).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
}
