//! The commands: the binary's edge, where configuration, files, clock and
//! terminal meet the pure core. Errors here are `anyhow` with context.

use crate::alert::{Alert, sanitize};
use crate::cli::{Cli, Command, ParseArgs, ReplayArgs};
use crate::config::{Config, Overrides, RuleOverride};
use crate::parse::time::rfc3339;
use crate::parse::{Parser, Record, Skip};
use crate::pipeline::{Engine, Sink, Summary};
use crate::rules::RuleSet;
use crate::source::{Files, Input, Opened};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

/// Runs one command; returns the process exit code.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => replay(cli.config.as_deref(), &args),
        Command::Parse(args) => parse(cli.config.as_deref(), &args),
        Command::Check => check(cli.config.as_deref()),
        Command::Run => daemon(cli.config.as_deref()),
        Command::TestAlert => test_alert(cli.config.as_deref()),
    }
}

fn load(path: Option<&std::path::Path>, ov: &Overrides) -> Result<Config> {
    Ok(Config::load(path, ov)?)
}

/// The year syslog dates (which have none) are read in: the current one.
fn year_hint() -> i64 {
    i64::from(jiff::ZonedDateTime::now().year())
}

fn parser_for(cfg: &Config) -> Parser {
    let s = &cfg.source;
    Parser::new(s.format.clone(), s.zone.clone(), year_hint(), s.client.clone())
}

/// Builds the engine a configuration describes.
pub fn engine_for(cfg: &Config) -> Engine {
    Engine {
        rules: RuleSet::new(cfg.rules.clone()),
        parser: parser_for(cfg),
        ipv6_prefix: cfg.source.ipv6_prefix,
        max_line_bytes: cfg.source.max_line_bytes,
        threads: cfg.worker_threads(),
        cleanup_interval: u32::try_from(cfg.cleanup_interval.as_secs()).unwrap_or(u32::MAX),
    }
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

fn replay(config: Option<&std::path::Path>, a: &ReplayArgs) -> Result<ExitCode> {
    let ov = Overrides {
        format: a.format.clone(),
        threads: a.threads,
        rule: a.target.as_ref().map(|t| RuleOverride {
            target: t.clone(),
            field: a.field.clone(),
            threshold: a.threshold,
            window: a.window.clone(),
            cooldown: a.cooldown.clone(),
        }),
    };
    let cfg = load(config, &ov)?;
    let engine = engine_for(&cfg);
    let inputs = open_all(&a.files)?;
    let total: u64 = a
        .files
        .iter()
        .filter(|f| !f.ends_with(".gz") && *f != "-")
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress_bar(!a.no_progress && std::io::stderr().is_terminal(), total);
    let mut sink = ReplaySink {
        out: BufWriter::new(std::io::stdout().lock()),
        json: a.json,
        bar,
        error: None,
    };
    let started = Instant::now();
    let summary = engine.run(Box::new(Files(inputs)), None, &mut sink)?;
    sink.bar.finish_and_clear();
    if let Some(e) = sink.error
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("writing alerts to standard output");
    }
    eprintln!("{}", summary_text(&summary, started.elapsed().as_secs_f64()));
    Ok(ExitCode::SUCCESS)
}

/// Prints `replay`'s alerts and moves its progress bar.
struct ReplaySink<W: Write> {
    out: W,
    json: bool,
    bar: ProgressBar,
    error: Option<std::io::Error>,
}

impl<W: Write> Sink for ReplaySink<W> {
    fn alert(&mut self, al: Alert) {
        let line = if self.json { al.to_json() } else { al.to_text() };
        if let Err(e) = writeln!(self.out, "{line}").and_then(|()| self.out.flush()) {
            self.error.get_or_insert(e);
        }
    }

    fn progress(&mut self, bytes: u64) {
        self.bar.set_position(bytes);
    }
}

fn progress_bar(show: bool, total: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// The end-of-run summary line.
pub fn summary_text(s: &Summary, secs: f64) -> String {
    let skipped: u64 = s.skipped.iter().sum();
    let reasons: Vec<String> = Skip::ALL
        .iter()
        .filter(|r| s.skipped[r.index()] > 0)
        .map(|r| format!("{} {}", r.name(), s.skipped[r.index()]))
        .collect();
    let reasons =
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) };
    let mb = s.bytes as f64 / 1e6;
    format!(
        "summary: {} lines, {:.1} MB in {:.2} s ({:.0} MB/s); parsed {}, skipped {}{}; events {}, late {}; alerts {}",
        s.lines,
        mb,
        secs,
        mb / secs.max(1e-9),
        s.parsed,
        skipped,
        reasons,
        s.events,
        s.late,
        s.alerts
    )
}

fn parse(config: Option<&std::path::Path>, a: &ParseArgs) -> Result<ExitCode> {
    let ov = Overrides { format: a.format.clone(), ..Overrides::default() };
    let cfg = load(config, &ov)?;
    let parser = parser_for(&cfg);
    let rules = RuleSet::new(cfg.rules.clone());
    let mut out = BufWriter::new(std::io::stdout().lock());
    for f in &a.files {
        let input = Input::from_arg(f);
        let reader: Box<dyn std::io::Read> =
            match input.open().with_context(|| format!("cannot open {f}"))? {
                Opened::File(file) => Box::new(file),
                Opened::Stream(s) => s,
            };
        let mut reader = std::io::BufReader::new(reader);
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).with_context(|| format!("reading {f}"))? == 0 {
                break;
            }
            n += 1;
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text =
                describe_line(&parser, &rules, cfg.source.max_line_bytes, line, f, n, a.json);
            if writeln!(out, "{text}").is_err() {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    out.flush().ok();
    Ok(ExitCode::SUCCESS)
}

/// One line of `parse` output.
fn describe_line(
    parser: &Parser,
    rules: &RuleSet,
    max: usize,
    line: &[u8],
    file: &str,
    n: u64,
    json: bool,
) -> String {
    let parsed = if line.len() > max { Err(Skip::TooLong) } else { parser.parse(line) };
    match parsed {
        Ok(r) => {
            let matched: Vec<&str> = rules
                .rules
                .iter()
                .filter(|ru| ru.matches(&r, line))
                .map(|ru| ru.name.as_str())
                .collect();
            if json {
                record_json(&r, file, n, &matched)
            } else {
                record_text(&r, file, n, &matched)
            }
        }
        Err(e) if json => {
            serde_json::json!({"file": file, "line": n, "error": e.describe(), "reason": e.name()})
                .to_string()
        }
        Err(e) => {
            format!("{}:{n}: error: {} ({})", sanitize(file.as_bytes()), e.describe(), e.name())
        }
    }
}

fn opt(b: Option<&[u8]>) -> serde_json::Value {
    b.map_or(serde_json::Value::Null, |v| sanitize(v).into())
}

fn record_json(r: &Record<'_>, file: &str, n: u64, rules: &[&str]) -> String {
    serde_json::json!({
        "file": file,
        "line": n,
        "format": r.kind.name(),
        "client": r.client.to_string(),
        "time": rfc3339(r.time),
        "method": opt(r.request.map(|_| r.method())),
        "path": opt(r.request.map(|_| r.path())),
        "query": opt(r.request.map(|_| r.query())),
        "request": opt(r.request),
        "status": r.status,
        "referer": opt(r.referer),
        "user_agent": opt(r.user_agent),
        "vhost": opt(r.vhost),
        "rules": rules,
    })
    .to_string()
}

fn record_text(r: &Record<'_>, file: &str, n: u64, rules: &[&str]) -> String {
    let mut s = format!(
        "{}:{n}: {} client={} time={}",
        sanitize(file.as_bytes()),
        r.kind.name(),
        r.client,
        rfc3339(r.time)
    );
    if let Some(req) = r.request {
        s.push_str(&format!(" request=\"{}\"", sanitize(req)));
    }
    if let Some(st) = r.status {
        s.push_str(&format!(" status={st}"));
    }
    s.push_str(&format!(" rules=[{}]", rules.join(",")));
    s
}

fn check(config: Option<&std::path::Path>) -> Result<ExitCode> {
    let cfg = load(config, &Overrides::default())?;
    let from =
        cfg.file.as_ref().map_or("built-in defaults".to_string(), |p| p.display().to_string());
    print!("# effective configuration (from {from})\n{}", cfg.effective_toml());
    eprintln!("configuration OK: {} rule(s), {} output(s)", cfg.rules.len(), cfg.outputs.len());
    Ok(ExitCode::SUCCESS)
}

/// Sets up the daemon's own log: stderr, one line per event, warnings and
/// errors only unless `LOGWARDEN_LOG` (e.g. `info`, `debug`) says otherwise.
fn init_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGWARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// `logwarden run`: follows the configured files until SIGTERM or SIGINT.
fn daemon(config: Option<&std::path::Path>) -> Result<ExitCode> {
    init_log();
    let cfg = load(config, &Overrides::default())?;
    crate::daemon::run(config, cfg)?;
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
        year_hint(),
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
