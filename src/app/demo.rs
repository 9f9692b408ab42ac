//! `logwarden demo`: live detection in the first minute, with no
//! configuration and no root. It writes the load generator's traffic
//! (ordinary clients, a few attackers over the threshold, near misses under
//! it) into a dated log series in a temporary directory, follows it with the
//! default rule exactly as `run` does, prints each alert as it fires and
//! serves the status page. Ctrl-C or `--duration` ends it; the directory is
//! removed.

use super::cli::DemoArgs;
use crate::alert::Alert;
use crate::config::{Config, Overrides};
use anyhow::{Context, Result};
use loadgen::generate::{Generator, Plan, Style};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs the demo until Ctrl-C or the duration.
pub fn demo(a: &DemoArgs) -> Result<ExitCode> {
    let duration = crate::units::parse_duration(&a.duration)
        .map_err(|e| anyhow::anyhow!("--duration {:?}: {e}", a.duration))?;
    // The page's address is tried first, so a taken port is told with the
    // demo's own option, before the demo says where its page is.
    std::net::TcpListener::bind(&a.listen).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {} for the status page ({e}); choose another address with --listen",
            a.listen
        )
    })?;
    let dir = Scratch::new()?;
    let config = dir.0.join("logwarden.toml");
    std::fs::write(&config, config_text(&dir.0, &a.listen))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let cfg = Config::load(Some(&config), &Overrides::default())?;
    // Today's file exists from the start: the daemon finds it at once.
    let today = jiff::Timestamp::now().strftime("ssl_www_log-%Y-%m-%d").to_string();
    std::fs::write(dir.0.join(today), b"").context("cannot create the demo's log file")?;
    say!(
        "logwarden demo: status page at http://{}/ — traffic is written to {}; Ctrl-C stops it (or after {}).",
        a.listen,
        dir.0.display(),
        crate::units::human_duration(duration.as_secs())
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn("demo-traffic", {
        let (dir, stop, rate) = (dir.0.clone(), Arc::clone(&stop), a.rate);
        move || write_traffic(&dir, rate, duration, &stop)
    })?;
    let printer = spawn("demo-alerts", {
        let (path, stop) = (dir.0.join("alerts.jsonl"), Arc::clone(&stop));
        move || print_alerts(&path, &stop)
    })?;
    spawn("demo-timer", move || {
        std::thread::sleep(duration);
        // Ends the daemon as Ctrl-C would.
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM)
            .unwrap_or(());
        Ok(0)
    })?;
    let ran = super::daemon::run(Some(&config), cfg);
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap_or(Ok(0));
    let alerts = printer.join().unwrap_or(Ok(0));
    ran?;
    let shown = dir.0.display().to_string();
    drop(dir);
    say!("demo over: {} lines written, {} alerts; {shown} removed.", written?, alerts?);
    Ok(ExitCode::SUCCESS)
}

/// The demo's configuration: the default rule over a dated series in `dir`.
fn config_text(dir: &Path, listen: &str) -> String {
    let d = dir.display();
    format!(
        "[source]\npath = \"{d}/ssl_www_log-%Y-%m-%d\"\ntimezone = \"UTC\"\nstart_at = \"beginning\"\npoll_interval = \"200ms\"\n\
         [[output]]\ntype = \"jsonl\"\npath = \"{d}/alerts.jsonl\"\n\
         [state]\ndir = \"{d}/state\"\n[http]\nlisten = \"{listen}\"\n"
    )
}

fn spawn(
    name: &str,
    f: impl FnOnce() -> Result<u64> + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<u64>>> {
    std::thread::Builder::new().name(name.into()).spawn(f).context("starting a demo thread")
}

/// Appends the generator's lines at `rate` lines/s, each when its time
/// comes, to the file of its day; returns how many.
fn write_traffic(dir: &Path, rate: u32, duration: Duration, stop: &AtomicBool) -> Result<u64> {
    let rate = f64::from(rate.max(1));
    let plan = Plan {
        lines: (duration.as_secs_f64() * rate) as u64 + 1,
        seed: 7,
        style: Style::Combined,
        ips: 300,
        v6_share: 0.1,
        target: "today_download".into(),
        target_share: 0.02,
        attackers: 3,
        near_miss: 4,
        threshold: 10,
        window: 600,
        log_rate: rate,
        start: jiff::Timestamp::now().as_second(),
        offset: 0,
        jitter: 0,
    };
    let mut generator = Generator::new(plan);
    let started = Instant::now();
    let mut line = Vec::new();
    let mut n = 0u64;
    // The file of the day the last line went to: opened again only when a
    // line's day changes (at midnight UTC).
    let mut file: Option<(String, std::fs::File)> = None;
    while !stop.load(Ordering::SeqCst) && generator.next_line(&mut line).is_some() {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let day = jiff::Timestamp::from_second(generator.last_time())
            .map(|t| t.strftime("ssl_www_log-%Y-%m-%d").to_string())
            .unwrap_or_default();
        if file.as_ref().is_none_or(|(open, _)| *open != day) {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(&day))?;
            file = Some((day, f));
        }
        if let Some((_, f)) = file.as_mut() {
            f.write_all(&line)?;
        }
        n += 1;
    }
    Ok(n)
}

/// Prints each alert the jsonl output writes, until stopped; returns how many.
fn print_alerts(path: &Path, stop: &AtomicBool) -> Result<u64> {
    let (mut offset, mut count, mut partial) = (0u64, 0u64, String::new());
    loop {
        let last = stop.load(Ordering::SeqCst);
        if let Ok(mut f) = std::fs::File::open(path) {
            f.seek(SeekFrom::Start(offset))?;
            let mut text = String::new();
            offset += f.read_to_string(&mut text)? as u64;
            partial.push_str(&text);
            while let Some(i) = partial.find('\n') {
                let l: String = partial.drain(..=i).collect();
                if let Ok(a) = serde_json::from_str::<Alert>(&l) {
                    say!("ALERT {}", a.to_text());
                    count += 1;
                }
            }
        }
        if last {
            return Ok(count);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A directory of the demo's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("logwarden-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tell!("cannot remove {}: {e}", self.0.display());
        }
    }
}
