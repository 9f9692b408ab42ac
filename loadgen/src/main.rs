//! loadgen: writes realistic Apache access logs, deterministic from a seed,
//! and the alerts a correct engine must raise on them.
//!
//! - `loadgen file --lines N --out F [--expect E]`: N lines as fast as possible.
//! - `loadgen live --path P --rate R --lines N [--rotate …]`: appends to a live
//!   path at R lines/s, following a dated pattern (`%Y-%m-%d`) and rotating on
//!   request, for soak tests and benchmarks of `logwarden run`.
//!
//! The expected alerts come from [`model`], a deliberately naive sliding-window
//! model written independently of logwarden's engine.

mod probe;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use loadgen::generate::{Generator, Plan, Style};
use loadgen::model;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "loadgen", version, about = "Deterministic Apache log generator")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Write N lines to a file (or `-` for stdout) as fast as possible.
    File {
        #[command(flatten)]
        g: GenArgs,
        /// Output file, `-` for standard output.
        #[arg(long, default_value = "-")]
        out: String,
    },
    /// Append to a live path at a given rate, rotating on request.
    Live {
        #[command(flatten)]
        g: GenArgs,
        /// Path or strftime pattern (`/tmp/x/access-%Y-%m-%d`); the date of
        /// each line's own time names its file.
        #[arg(long)]
        path: String,
        /// Lines per second of wall time (0 = as fast as possible).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Rotate the current file this way every `--rotate-every` lines, to
        /// `FILE.1`, `FILE.2`, … in order.
        #[arg(long, value_enum)]
        rotate: Option<Rotate>,
        /// Lines between rotations.
        #[arg(long, default_value_t = 100_000)]
        rotate_every: u64,
        /// Stamp lines with the wall clock instead of `--start` + rate.
        #[arg(long)]
        now: bool,
    },
    /// Write the logs of a web farm: one generated stream — what the load
    /// balancer receives — spread over the nodes' logs as a balancer does,
    /// and the farm-wide expected alerts (the model over the whole stream).
    Farm {
        #[command(flatten)]
        g: GenArgs,
        /// Number of nodes.
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// Path pattern: `{n}` is the node (1 to N), strftime fields as for
        /// `live` (`farm/web{n}/ssl_www_log-%Y-%m-%d`).
        #[arg(long)]
        path: String,
        /// How requests are spread over the nodes.
        #[arg(long, value_enum, default_value = "round-robin")]
        spread: Spread,
        /// Lines per second of wall time over the whole farm (0 = as fast
        /// as possible).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Stamp lines with the wall clock instead of `--start` + rate.
        #[arg(long)]
        now: bool,
    },
    /// Measure alert latency: append `--threshold` target lines for a fresh
    /// client, time until its alert appears in a jsonl output; repeat.
    Probe {
        /// The log file the daemon follows.
        #[arg(long)]
        path: PathBuf,
        /// The daemon's jsonl output.
        #[arg(long)]
        alerts: PathBuf,
        /// Number of alerts to time.
        #[arg(long, default_value_t = 200)]
        count: u32,
        /// The rule's threshold.
        #[arg(long, default_value_t = 10)]
        threshold: u32,
        /// Target string.
        #[arg(long, default_value = "today_download")]
        target: String,
        /// Pause between probes, in milliseconds.
        #[arg(long, default_value_t = 20)]
        pause_ms: u64,
        /// Give up on one alert after this many milliseconds.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// Number of the first probe client in 198.18.0.0/15 (default: from
        /// the process id); concurrent probes of one farm need their own.
        #[arg(long)]
        first: Option<u32>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Spread {
    /// Node 1, 2, …, N, 1, …
    RoundRobin,
    /// A node at random for each request (seeded).
    Random,
}

#[derive(Clone, Copy, ValueEnum)]
enum Rotate {
    /// `mv file file.1` and start a new file.
    Rename,
    /// Copy to `file.1`, then truncate in place.
    Copytruncate,
}

#[derive(Args, Clone)]
struct GenArgs {
    /// Number of lines.
    #[arg(long, default_value_t = 100_000)]
    lines: u64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Line format.
    #[arg(long, value_enum, default_value = "combined")]
    format: Style,
    /// Distinct client addresses.
    #[arg(long, default_value_t = 5000)]
    ips: usize,
    /// Share of IPv6 clients.
    #[arg(long, default_value_t = 0.1)]
    v6_share: f64,
    /// Target string.
    #[arg(long, default_value = "today_download")]
    target: String,
    /// Share of lines requesting the target.
    #[arg(long, default_value_t = 0.02)]
    target_share: f64,
    /// Clients that burst at or above the threshold within one window.
    #[arg(long, default_value_t = 20)]
    attackers: usize,
    /// Clients that hit exactly threshold - 1 times within one window.
    #[arg(long)]
    near_miss: Option<usize>,
    /// Threshold of the expected alerts.
    #[arg(long, default_value_t = 10)]
    threshold: u32,
    /// Window in seconds.
    #[arg(long, default_value_t = 600)]
    window: u32,
    /// Cooldown in seconds (default: the window).
    #[arg(long)]
    cooldown: Option<u32>,
    /// Lines per second of log time.
    #[arg(long, default_value_t = 200.0)]
    log_rate: f64,
    /// Time of the first line (RFC 3339).
    #[arg(long, default_value = "2025-07-09T00:00:00+09:00")]
    start: String,
    /// Stamp lines up to this many seconds early, as Apache does for slow
    /// requests (out-of-order lines).
    #[arg(long, default_value_t = 0)]
    jitter: u32,
    /// Write the expected alerts here, one JSON object per line.
    #[arg(long)]
    expect: Option<PathBuf>,
}

impl GenArgs {
    /// The plan, its first line stamped now when `now`.
    fn plan_from(&self, now: bool) -> Result<Plan> {
        let mut plan = self.plan()?;
        if now {
            plan.start = jiff::Timestamp::now().as_second();
        }
        Ok(plan)
    }

    fn plan(&self) -> Result<Plan> {
        let start: jiff::Timestamp = self.start.parse().context("--start is not RFC 3339")?;
        let offset = self
            .start
            .get(self.start.len().saturating_sub(6)..)
            .and_then(parse_offset)
            .unwrap_or(0);
        if self.threshold < 1 || self.window < 1 {
            bail!("--threshold and --window must be at least 1");
        }
        Ok(Plan {
            lines: self.lines,
            seed: self.seed,
            style: self.format,
            ips: self.ips.max(1),
            v6_share: self.v6_share,
            target: self.target.clone(),
            target_share: self.target_share,
            attackers: self.attackers,
            near_miss: self.near_miss.unwrap_or(self.attackers),
            threshold: self.threshold,
            window: self.window,
            log_rate: self.log_rate.max(0.001),
            start: start.as_second(),
            offset,
            jitter: self.jitter,
        })
    }
}

fn parse_offset(s: &str) -> Option<i32> {
    if s == "Z" || s.ends_with('Z') {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h: i32 = s.get(1..3)?.parse().ok()?;
    let m: i32 = s.get(4..6)?.parse().ok()?;
    Some(sign * (h * 3600 + m * 60))
}

fn main() -> Result<()> {
    match Cli::parse().mode {
        Mode::File { g, out } => file_mode(&g, &out),
        Mode::Live { g, path, rate, rotate, rotate_every, now } => {
            live_mode(&g, &path, rate, rotate, rotate_every, now)
        }
        Mode::Farm { g, nodes, path, spread, rate, now } => {
            farm_mode(&g, &path, nodes.max(1), spread, rate, now)
        }
        Mode::Probe { path, alerts, count, threshold, target, pause_ms, timeout_ms, first } => {
            let p = probe::Probe {
                path,
                alerts,
                threshold,
                target,
                timeout: Duration::from_millis(timeout_ms),
                first,
            };
            probe::run(&p, count, Duration::from_millis(pause_ms))
        }
    }
}

fn file_mode(g: &GenArgs, out: &str) -> Result<()> {
    let started = Instant::now();
    let mut gen_ = Generator::new(g.plan()?);
    let sink: Box<dyn Write> = if out == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(File::create(out).with_context(|| format!("creating {out}"))?)
    };
    let mut w = BufWriter::with_capacity(1 << 20, sink);
    let mut model = model::Model::new(g.threshold, g.window, g.cooldown.unwrap_or(g.window));
    let mut line = Vec::with_capacity(512);
    let mut n = 0u64;
    while let Some(ev) = gen_.next_line(&mut line) {
        n += 1;
        if let Some((ip, t)) = ev {
            model.record(ip, t, n);
        }
        w.write_all(&line)?;
    }
    w.flush()?;
    finish(g, &model, n, started)
}

/// Writes the expected alerts and reports the speed.
fn finish(g: &GenArgs, model: &model::Model, n: u64, started: Instant) -> Result<()> {
    write_expect(g, model)?;
    let secs = started.elapsed().as_secs_f64();
    // Not eprintln!: a closed standard error must not panic.
    writeln!(
        std::io::stderr(),
        "loadgen: wrote {n} lines in {secs:.2} s ({:.0} lines/s); {} expected alerts",
        n as f64 / secs.max(1e-9),
        model.alerts.len()
    )
    .unwrap_or(());
    Ok(())
}

fn write_expect(g: &GenArgs, model: &model::Model) -> Result<()> {
    if let Some(p) = &g.expect {
        let mut w =
            BufWriter::new(File::create(p).with_context(|| format!("creating {}", p.display()))?);
        for a in &model.alerts {
            writeln!(w, "{}", a.to_json())?;
        }
        w.flush()?;
    }
    Ok(())
}

/// Expands `%Y`, `%m`, `%d`, `%H` in a path pattern for a UTC-offset time.
fn dated(pattern: &str, epoch: i64, offset: i32) -> String {
    let t = jiff::Timestamp::from_second(epoch + i64::from(offset))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let dt = jiff::tz::Offset::UTC.to_datetime(t);
    pattern
        .replace("%Y", &format!("{:04}", dt.year()))
        .replace("%m", &format!("{:02}", dt.month()))
        .replace("%d", &format!("{:02}", dt.day()))
        .replace("%H", &format!("{:02}", dt.hour()))
}

fn live_mode(
    g: &GenArgs,
    pattern: &str,
    rate: f64,
    rotate: Option<Rotate>,
    every: u64,
    now: bool,
) -> Result<()> {
    let plan = g.plan_from(now)?;
    let offset = plan.offset;
    let mut gen_ = Generator::new(plan);
    let mut model = model::Model::new(g.threshold, g.window, g.cooldown.unwrap_or(g.window));
    let started = Instant::now();
    let mut line = Vec::with_capacity(512);
    let (mut n, mut current) = (0u64, String::new());
    // As fast as possible: batched writes, which may end mid-line, as a busy
    // server's buffered log writes do. At a rate: one write per line.
    let capacity = if rate > 0.0 { 0 } else { 1 << 20 };
    let mut file: Option<BufWriter<File>> = None;
    let (mut path, mut path_time) = (String::new(), None);
    while let Some(ev) = gen_.next_line(&mut line) {
        n += 1;
        let t = gen_.last_time();
        // The file name changes at most once a day: recompute per second only.
        if path_time != Some(t) {
            path = dated(pattern, t, offset);
            path_time = Some(t);
        }
        if path != current || file.is_none() {
            if let Some(mut f) = file.take() {
                f.flush()?;
            }
            file = Some(BufWriter::with_capacity(capacity, open_append(&path)?));
            current = path.clone();
        }
        if let Some((ip, et)) = ev {
            model.record(ip, et, n);
        }
        file.as_mut().expect("opened").write_all(&line)?;
        if let Some(r) = rotate
            && n % every.max(1) == 0
        {
            if let Some(mut f) = file.take() {
                f.flush()?;
            }
            rotate_file(r, Path::new(&current), n / every.max(1))?;
        }
        pace(rate, n, started);
    }
    if let Some(mut f) = file.take() {
        f.flush()?;
    }
    finish(g, &model, n, started)
}

fn farm_mode(
    g: &GenArgs,
    pattern: &str,
    nodes: usize,
    spread: Spread,
    rate: f64,
    now: bool,
) -> Result<()> {
    let plan = g.plan_from(now)?;
    let (offset, seed) = (plan.offset, plan.seed);
    let mut gen_ = Generator::new(plan);
    let mut model = model::Model::new(g.threshold, g.window, g.cooldown.unwrap_or(g.window));
    let started = Instant::now();
    let mut line = Vec::with_capacity(512);
    let capacity = if rate > 0.0 { 0 } else { 1 << 20 };
    // Per node: its path pattern, and the file written now with its name.
    let patterns: Vec<String> =
        (1..=nodes).map(|k| pattern.replace("{n}", &k.to_string())).collect();
    let mut files: Vec<Option<(String, BufWriter<File>)>> = (0..nodes).map(|_| None).collect();
    // The names change at most once a day: computed again per second only.
    let (mut paths, mut paths_time) = (Vec::new(), None);
    let mut pick = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut n = 0u64;
    while let Some(ev) = gen_.next_line(&mut line) {
        let node = match spread {
            Spread::RoundRobin => (n % nodes as u64) as usize,
            Spread::Random => {
                pick ^= pick << 13;
                pick ^= pick >> 7;
                pick ^= pick << 17;
                (pick % nodes as u64) as usize
            }
        };
        n += 1;
        if let Some((ip, et)) = ev {
            model.record(ip, et, n);
        }
        let t = gen_.last_time();
        if paths_time != Some(t) {
            paths = patterns.iter().map(|p| dated(p, t, offset)).collect();
            paths_time = Some(t);
        }
        let path = &paths[node];
        let slot = &mut files[node];
        if slot.as_ref().is_none_or(|(p, _)| p != path) {
            if let Some((_, mut f)) = slot.take() {
                f.flush()?;
            }
            if let Some(dir) = Path::new(path).parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            *slot = Some((path.clone(), BufWriter::with_capacity(capacity, open_append(path)?)));
        }
        slot.as_mut().expect("opened").1.write_all(&line)?;
        pace(rate, n, started);
    }
    for (_, mut f) in files.into_iter().flatten() {
        f.flush()?;
    }
    finish(g, &model, n, started)
}

/// At `rate` lines per second (0: no limit), waits until line `n` is due.
fn pace(rate: f64, n: u64, started: Instant) {
    if rate > 0.0 {
        let due = Duration::from_secs_f64(n as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

fn open_append(path: &str) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {path}"))
}

/// Rotates `path` to `path.N` (N counts rotations, so nothing is overwritten).
fn rotate_file(r: Rotate, path: &Path, n: u64) -> Result<()> {
    let rotated = PathBuf::from(format!("{}.{n}", path.display()));
    match r {
        Rotate::Rename => std::fs::rename(path, &rotated)?,
        Rotate::Copytruncate => {
            std::fs::copy(path, &rotated)?;
            OpenOptions::new().write(true).open(path)?.set_len(0)?;
        }
    }
    Ok(())
}
