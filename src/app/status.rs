//! `logwarden status`: the running daemon's `/api/status`, in the terminal.

use crate::config::{Config, Overrides};
use crate::observe::status::{FarmDoc, StatusDoc};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Prints how the daemon stands; exit 1 when it reports problems.
pub fn status(config: Option<&std::path::Path>) -> Result<ExitCode> {
    let cfg = Config::load(config, &Overrides::default())?;
    let Some(http) = &cfg.http else {
        bail!(
            "the configuration has no [http] section: `logwarden status` asks the daemon's HTTP endpoint (add [http] listen = \"127.0.0.1:9745\" and restart it)"
        );
    };
    let addr = reachable(http.listen);
    let body = get(addr, "/api/status", http.token.as_deref())
        .with_context(|| format!("cannot reach logwarden at http://{addr}/ (is `logwarden run` running with this configuration?)"))?;
    let doc: StatusDoc = serde_json::from_str(&body)
        .with_context(|| format!("http://{addr}/api/status did not answer with a status"))?;
    put!("{}", render(&doc));
    Ok(if doc.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Where to connect for a listening address (an unspecified one means this
/// machine).
fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port())
        }
        _ => listen,
    }
}

/// One GET; the body of a 200 answer.
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("the answer has no end of header")?;
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        bail!("the daemon answered {status:?}: {}", body.trim());
    }
    Ok(body.to_string())
}

/// Text from log lines may hold terminal control sequences: shown escaped.
fn shown(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

/// How a farm node decides, and its link's counters.
fn farm_line(f: &FarmDoc) -> String {
    let how = match f.alone_seconds {
        Some(s) => {
            let why = f.alone_because.as_deref().unwrap_or("Redis does not answer");
            format!("DECIDING ALONE for {s} s ({})", shown(why))
        }
        None => "deciding with Redis".to_string(),
    };
    let clock = f.clock_offset_seconds.map(|c| format!(", clock {c:+.3} s")).unwrap_or_default();
    let mut o = format!(
        "farm: {how}; {} round trips, {} outages, {} events decided alone, {} repeated, {} differences with other nodes{clock}\n",
        f.round_trips,
        f.outages,
        f.events_alone,
        f.events_repeated,
        f.differences.len()
    );
    for d in &f.differences {
        o += &format!("  {}\n", shown(d));
    }
    o
}

/// The status as terminal text.
pub fn render(d: &StatusDoc) -> String {
    let mut o = String::new();
    let node = d.node.as_ref().map(|n| format!(" (node {})", shown(n))).unwrap_or_default();
    let health = if d.problems.is_empty() {
        "healthy".to_string()
    } else {
        format!("UNHEALTHY: {}", d.problems.join("; "))
    };
    o += &format!("logwarden {}{node}, up {} s, {health}\n", d.version, d.uptime_seconds);
    let skipped: u64 = d.lines.skipped.values().sum();
    let rate = d
        .throughput
        .last()
        .map(|p| format!("; {:.0} lines/s", p.lines_per_second))
        .unwrap_or_default();
    o += &format!(
        "lines: {} read, {skipped} skipped, {} allowed{rate}\n",
        d.lines.read, d.lines.allowed
    );
    if let Some(f) = &d.farm {
        o += &farm_line(f);
    }
    for f in &d.files {
        let size = f.size.map_or("?".to_string(), |s| s.to_string());
        let delay =
            f.delay_seconds.map(|s| format!(", newest event {s} s ago")).unwrap_or_default();
        o += &format!("file {}: at {} of {size} bytes{delay}\n", shown(&f.path), f.offset);
    }
    let whose = if d.farm.is_some() { " (this node's events)" } else { "" };
    for r in &d.rules {
        o += &format!(
            "rule {} ({} in {} s): {} events, {} late, {} alerts, {} clients{whose}\n",
            shown(&r.name),
            r.threshold,
            r.window_seconds,
            r.events,
            r.late,
            r.alerts,
            r.clients
        );
        for n in &r.nearest {
            let bar = "#".repeat(
                (n.count.min(r.threshold) as usize * 30).div_ceil(r.threshold.max(1) as usize),
            );
            o += &format!("  {:<40} {:>6} {bar}\n", shown(&n.client), n.count);
        }
    }
    for out in &d.outputs {
        let failing = out.failing_seconds.map(|s| format!(" for {s} s")).unwrap_or_default();
        o += &format!(
            "output {}: {}{failing}; delivered {}, failures {}, queued {}, dropped {}\n",
            shown(&out.name),
            out.state,
            out.delivered,
            out.failures,
            out.queued,
            out.dropped
        );
    }
    for a in d.alerts.iter().take(10) {
        o += &format!(
            "alert {} {} {} count {}\n",
            shown(&a.time),
            shown(&a.rule),
            shown(&a.key),
            a.count
        );
    }
    o
}
