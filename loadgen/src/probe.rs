//! Latency probe: how long from a line being written to its alert being in
//! the daemon's jsonl output.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where to write and where to look.
pub struct Probe {
    pub path: PathBuf,
    pub alerts: PathBuf,
    pub threshold: u32,
    pub target: String,
    pub timeout: Duration,
    /// The first probe client's number in 198.18.0.0/15 (default: from the
    /// process id, so concurrent probes differ).
    pub first: Option<u32>,
}

/// Times `count` alerts and prints median, p99 and maximum.
pub fn run(p: &Probe, count: u32, pause: Duration) -> Result<()> {
    let mut log =
        OpenOptions::new().create(true).append(true).open(&p.path).context("opening the log")?;
    let mut seen = File::open(&p.alerts).map(|f| f.metadata().map_or(0, |m| m.len())).unwrap_or(0);
    let mut times = Vec::with_capacity(count as usize);
    let first = p.first.unwrap_or(std::process::id() % 250 * 512);
    for i in 0..count {
        // A client no one used before, from the benchmarking block
        // 198.18.0.0/15 (an IPv4 address is its own key, whatever the IPv6
        // grouping).
        let n = first.wrapping_add(i) % (1 << 17);
        let client = std::net::Ipv4Addr::from(0xC612_0000 | n).to_string();
        let stamp = jiff::Timestamp::now().strftime("%d/%b/%Y:%H:%M:%S +0000").to_string();
        let line = format!(
            "{client} - - [{stamp}] \"GET /{} HTTP/1.1\" 200 5 \"-\" \"probe\"\n",
            p.target
        );
        let burst = line.repeat(p.threshold as usize);
        log.write_all(burst.as_bytes())?;
        let written = Instant::now();
        let needle = format!("\"key\":\"{client}\"");
        loop {
            if scan(&p.alerts, &mut seen, &needle)? {
                times.push(written.elapsed());
                break;
            }
            if written.elapsed() > p.timeout {
                bail!("no alert for {client} within {:?}", p.timeout);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(pause);
    }
    times.sort();
    let pct = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    // Not println!: a closed standard output must not panic.
    writeln!(
        std::io::stdout(),
        "latency over {} alerts: median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        times.last().map_or(0.0, |t| t.as_secs_f64() * 1e3)
    )?;
    Ok(())
}

/// Reads what the alerts file gained since `seen`; whether it holds `needle`.
fn scan(path: &PathBuf, seen: &mut u64, needle: &str) -> Result<bool> {
    let Ok(mut f) = File::open(path) else { return Ok(false) };
    let len = f.metadata()?.len();
    if len <= *seen {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(*seen))?;
    let mut buf = String::new();
    f.read_to_string(&mut buf)?;
    let complete = buf.rfind('\n').map_or(0, |i| i + 1);
    *seen += complete as u64;
    Ok(buf.get(..complete).is_some_and(|b| b.contains(needle)))
}
