//! The commands: the binary's edge, where configuration, files, clock and
//! terminal meet the pure core. Errors here are `anyhow` with context.
//! [`cli`] mirrors the flags; [`replay`], [`inspect`] (`parse`),
//! [`daemon`] (`run`) and [`status`] are the larger commands.

// The terminal's lines: a reader gone (`logwarden replay … 2>&1 | head`)
// drops them, where `eprintln!` and `println!` would panic. Any other
// failure to write standard output (a full disk) is kept by `written` and
// makes the command fail.

/// A line to standard error.
macro_rules! tell {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stderr(), $($t)*).unwrap_or(())
    }};
}

/// A line to standard output.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        $crate::app::written(writeln!(std::io::stdout(), $($t)*));
    }};
}

/// Text to standard output, as it is.
macro_rules! put {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        $crate::app::written(write!(std::io::stdout(), $($t)*));
    }};
}

pub mod cli;
pub mod daemon;
mod demo;
mod inspect;
mod progress;
mod replay;
mod report;
mod status;

use crate::alert::Alert;
use crate::config::{Config, Overrides};
use crate::parse::Parser;
use crate::source::{Input, Opened};
use anyhow::{Context, Result};
use cli::{Cli, Command};
use std::process::ExitCode;

/// The first failure to write standard output other than its reader gone.
static STDOUT_FAILED: std::sync::OnceLock<std::io::Error> = std::sync::OnceLock::new();

/// Whether a write to standard output went through: a reader gone is no
/// error (`| head`), any other failure is kept for the exit status.
pub(crate) fn written(result: std::io::Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => false,
        Err(e) => {
            STDOUT_FAILED.get_or_init(|| e);
            false
        }
    }
}

/// Runs one command; returns the process exit code. Output that could not
/// be written (a full disk) is an error, whatever the command's outcome.
pub fn run(cli: Cli) -> Result<ExitCode> {
    use std::io::Write as _;
    let code = command(cli)?;
    written(std::io::stdout().flush());
    match STDOUT_FAILED.get() {
        Some(e) => Err(anyhow::anyhow!("cannot write to standard output: {e}")),
        None => Ok(code),
    }
}

/// Runs one command.
fn command(cli: Cli) -> Result<ExitCode> {
    // The daemon says what it does; the other commands only warn.
    init_log(if matches!(cli.command, Command::Run) { "info" } else { "warn" });
    match cli.command {
        Command::Demo(args) => demo::demo(&args),
        Command::Replay(args) => replay::replay(cli.config.as_deref(), &args),
        Command::Parse(args) => inspect::parse(cli.config.as_deref(), &args),
        Command::Check => check(cli.config.as_deref()),
        Command::Run => run_daemon(cli.config.as_deref()),
        Command::TestAlert => test_alert(cli.config.as_deref()),
        Command::Status => status::status(cli.config.as_deref()),
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

/// `logwarden check`: the effective configuration, then whether this user
/// can read the log files and write the state directory (exit 1 if not).
fn check(config: Option<&std::path::Path>) -> Result<ExitCode> {
    let cfg = load(config, &Overrides::default())?;
    let from =
        cfg.file.as_ref().map_or("built-in defaults".to_string(), |p| p.display().to_string());
    put!("# effective configuration (from {from})\n{}", cfg.effective_toml());
    for (path, n) in &cfg.included {
        tell!("include {}: {n} rule(s)", path.display());
    }
    tell!("configuration OK: {} rule(s), {} output(s)", cfg.rules.len(), cfg.outputs.len());
    for name in cfg.rules_without_output() {
        tell!(
            "rule {name:?}: no output gets its alerts (every output's rules leaves it out); they are counted, and delivered nowhere"
        );
    }
    if let Some(w) = exposed_secrets(&cfg) {
        tell!("warning: {w}");
    }
    let readable = check_sources(&cfg);
    let outputs = check_jsonl_outputs(&cfg);
    let writable = check_state_dir(&cfg.state_dir);
    let farm = cfg.cluster.as_ref().is_none_or(|c| check_farm(c, &cfg));
    let ok = readable && outputs && writable && farm;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A warning when the configuration file holds secrets ([`Config::secret_keys`])
/// and every user of this machine may read it.
pub(crate) fn exposed_secrets(cfg: &Config) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let file = cfg.file.as_ref()?;
    let mode = std::fs::metadata(file).ok()?.permissions().mode() & 0o777;
    let keys = cfg.secret_keys();
    (mode & 0o004 != 0 && !keys.is_empty()).then(|| {
        let f = file.display();
        format!(
            "{f} holds secrets ({}) and every user of this machine may read it (mode {mode:o}): \
             make it readable by root and the service's group only, \
             `chown root:logwarden {f} && chmod 640 {f}`",
            keys.join(", ")
        )
    })
}

/// Says whether the farm's Redis answers, and what it is, and whether the
/// other nodes' rules are these; false if it does not answer, if a cluster
/// does not serve every hash slot, or if another node's rules differ.
fn check_farm(s: &crate::farm::FarmSettings, cfg: &Config) -> bool {
    use crate::farm::{Topology, probe};
    tell!("cluster: node {:?}, key prefix {:?}", s.node, s.prefix);
    match probe(s) {
        Ok(p) => {
            tell!("cluster: {p}");
            if let Some(warning) = p.eviction_warning() {
                tell!("cluster: warning: {warning}");
            }
            let served = !matches!(p.topology, Topology::Cluster { ok: false, .. });
            served && check_farm_rules(s, cfg)
        }
        Err(e) => {
            tell!("cluster: {e}");
            false
        }
    }
}

/// Compares this configuration's rules, and this machine's clock, with
/// those the farm's other nodes registered lately, and tries the farm's
/// script; false if one differs, if another machine registered under this
/// node's name, or if this user may not run the script.
fn check_farm_rules(s: &crate::farm::FarmSettings, cfg: &Config) -> bool {
    let c = match crate::farm::link::compare_rules(s, &cfg.farm_rules()) {
        Ok(c) => c,
        Err(e) => {
            tell!("cluster: could not read the other nodes' rules: {e}");
            return false;
        }
    };
    match &c.clock_ms {
        Ok(ms) => tell!(
            "cluster: this machine's clock is {:+.3} s off the Redis server's",
            *ms as f64 / 1000.0
        ),
        Err(e) => {
            tell!("cluster: Redis did not tell its clock (TIME: {e}): clocks not compared")
        }
    }
    if let Some(e) = &c.no_script {
        tell!(
            "cluster: this user may not run the farm's script ({e}): run would decide alone; \
             give the user +script|load and +evalsha in the server's ACL"
        );
    }
    for f in &c.findings {
        tell!("cluster: {f}");
    }
    match (c.findings.is_empty(), c.nodes.is_empty()) {
        (false, _) => tell!(
            "cluster: every node needs the same rules, a name of its own and a clock that agrees with the others'"
        ),
        (true, true) => {
            tell!("cluster: no other node has registered its rules in the last two hours")
        }
        (true, false) => {
            let clocks = match c.clock_ms {
                Ok(_) => format!(
                    ", and no clock is more than {} ms from this one's",
                    crate::farm::agree::CLOCK_TOLERANCE_MS
                ),
                Err(_) => String::new(),
            };
            tell!("cluster: the rules are those of node(s) {}{clocks}", c.nodes.join(", "))
        }
    }
    c.findings.is_empty() && c.no_script.is_none()
}

/// Says whether each file `run` would follow now can be read; false if one
/// cannot, or if a rule would read one through two sources.
fn check_sources(cfg: &Config) -> bool {
    // Every source is checked and reported, also after a failing one.
    let each: Vec<bool> = (0..cfg.sources.len()).map(|i| check_source(cfg, i)).collect();
    let twice = cfg.read_twice();
    for t in &twice {
        tell!("{t}");
    }
    each.into_iter().all(|ok| ok) && twice.is_empty()
}

/// [`check_sources`] for source `i`.
fn check_source(cfg: &Config, i: usize) -> bool {
    let s = &cfg.sources[i];
    let label = match s.name.as_str() {
        "default" => "source".to_string(),
        name => format!("source {name}"),
    };
    let files = match cfg.follow(i).current_files() {
        Ok(files) => files,
        Err(e) => {
            tell!("{label}.path {}: its directory cannot be listed: {e}", s.path);
            return false;
        }
    };
    if files.is_empty() {
        tell!("{label}.path {}: no file there yet; run waits for it", s.path);
    }
    let mut ok = true;
    for f in files {
        // Looked at before it is opened: opening a named pipe waits for a writer.
        let opened = std::fs::metadata(&f).and_then(|md| match md.is_file() {
            true => std::fs::File::open(&f).map(|_| md),
            false => Ok(md),
        });
        match opened {
            Ok(md) if md.is_file() => {
                let (read, said) = sample_lines(cfg, i, &f);
                ok &= read;
                tell!("{label} {}: readable; {said}", f.display());
            }
            Ok(md) => {
                ok = false;
                let what = crate::source::not_a_log(md.file_type()).unwrap_or("is a pipe");
                tell!("{label} {}: {what}", f.display());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tell!("{label} {}: no such file yet; run waits for it", f.display());
            }
            Err(e) => {
                ok = false;
                tell!("{label} {}: cannot be read by this user: {e}", f.display());
            }
        }
    }
    ok
}

/// Lines of a log's end that [`sample_lines`] reads.
const SAMPLED: usize = 20;

/// Whether the last lines of `file` read with source `i`'s format, and
/// what to say: a wrong `format` (or `HostnameLookups On`) would make `run`
/// skip every line, told only by its counters. False when none reads.
fn sample_lines(cfg: &Config, i: usize, file: &std::path::Path) -> (bool, String) {
    const TAIL: u64 = 64 << 10;
    let bytes = match crate::output::read_tail(file, TAIL) {
        Ok(bytes) => bytes,
        Err(e) => return (false, format!("its end cannot be read: {e}")),
    };
    // Whole lines only: the first may be cut by the tail, the last unended.
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    lines.pop();
    if bytes.len() as u64 >= TAIL && !lines.is_empty() {
        lines.remove(0);
    }
    let lines: Vec<&[u8]> = (lines.into_iter().rev())
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .take(SAMPLED)
        .collect();
    if lines.is_empty() {
        return (true, "no line yet".into());
    }
    use crate::parse::Skip;
    let parser = cfg.parser(i);
    // An error log's lines without a client are read as they should be.
    let unread = |l: &[u8]| match parser.parse(l) {
        Err(e @ (Skip::Malformed | Skip::BadClient | Skip::BadTime)) => Some(e),
        _ => None,
    };
    let failed: Vec<(&[u8], Skip)> =
        lines.iter().filter_map(|l| unread(l).map(|e| (*l, e))).collect();
    let n = lines.len();
    let Some(&(line, why)) = failed.last() else {
        return (true, format!("its last {n} lines read with the configured format"));
    };
    let shown = crate::template::sanitize(&line[..line.len().min(160)]);
    let said = format!(
        "{} of its last {n} lines read with the configured format; one that does not: {} ({}): {shown}",
        n - failed.len(),
        why.describe(),
        why.name()
    );
    let hint = match why {
        Skip::BadClient => {
            " — hostnames instead of addresses (HostnameLookups On)? log %a, or set client"
        }
        Skip::Malformed => {
            " — check source.format (`logwarden parse FILE` shows how lines are read)"
        }
        _ => "",
    };
    (failed.len() < n, said + hint)
}

/// Says whether each jsonl output's file can be appended to, or created
/// (nothing is written, nothing is left behind); false if one cannot —
/// `run` would not start. (`test-alert` tries every output for real.)
fn check_jsonl_outputs(cfg: &Config) -> bool {
    let mut ok = true;
    for o in &cfg.outputs {
        let crate::output::OutputKind::Jsonl(path) = &o.kind else { continue };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let found = match path.exists() {
            true => std::fs::OpenOptions::new().append(true).open(path).map(|_| "writable"),
            false => {
                tempfile_in(dir.unwrap_or(std::path::Path::new("."))).map(|()| "can be created")
            }
        };
        match found {
            Ok(what) => tell!("output jsonl {}: {what}", path.display()),
            Err(e) => {
                ok = false;
                let why = "its directory must exist and be writable by this user";
                tell!("output jsonl {}: cannot be written: {e} ({why})", path.display());
            }
        }
    }
    ok
}

/// Says whether the state directory can be written, or created where it is
/// missing (nothing is left behind), and whether a running logwarden holds
/// it (which changes nothing: `check` runs beside the service).
fn check_state_dir(dir: &std::path::Path) -> bool {
    let existing = dir.ancestors().find(|a| a.exists()).unwrap_or(std::path::Path::new("/"));
    let probe = if existing.is_dir() {
        tempfile_in(existing)
    } else {
        Err(std::io::Error::other(format!("{} is not a directory", existing.display())))
    };
    let what = if existing == dir { "writable" } else { "can be created" };
    match &probe {
        Ok(()) => tell!("state.dir {}: {what}", dir.display()),
        Err(e) => tell!("state.dir {}: not writable by this user: {e}", dir.display()),
    }
    match crate::state::lock::holder(dir) {
        Some(Some(pid)) => {
            tell!("state.dir {}: in use by a running logwarden (pid {pid})", dir.display())
        }
        Some(None) => tell!("state.dir {}: in use by a running logwarden", dir.display()),
        None => {}
    }
    probe.is_ok()
}

/// Creates and removes a file in `dir`.
fn tempfile_in(dir: &std::path::Path) -> std::io::Result<()> {
    let p = dir.join(format!(".logwarden-check-{}", std::process::id()));
    std::fs::File::create(&p)?;
    std::fs::remove_file(&p)
}

/// Sets up logwarden's own log: stderr, one line per event, at `default`
/// level or what `LOGWARDEN_LOG` (e.g. `warn`, `debug`) says. For the
/// daemon, `info` shows starting, following a file, switching files,
/// reloading, stopping, and problems.
fn init_log(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGWARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// `logwarden run`: follows the configured files until SIGTERM or SIGINT.
fn run_daemon(config: Option<&std::path::Path>) -> Result<ExitCode> {
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
            Ok(()) => say!("ok      {name}"),
            Err(e) => {
                failed = true;
                say!("FAILED  {name}: {e}");
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
