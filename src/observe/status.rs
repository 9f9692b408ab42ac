//! `GET /api/status`: the board as JSON, for the status page and
//! `logwarden status`.

use super::{Board, unix_now};
use crate::alert::Alert;
use crate::parse::Skip;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The daemon's status.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusDoc {
    /// logwarden's version.
    pub version: String,
    /// The node's name in a farm.
    pub node: Option<String>,
    /// Seconds since the daemon started.
    pub uptime_seconds: u64,
    /// Empty when healthy, else why not.
    pub problems: Vec<String>,
    /// Lines read, skipped by reason, allowed.
    pub lines: Lines,
    /// Files followed now.
    pub files: Vec<FileDoc>,
    /// Per rule.
    pub rules: Vec<RuleDoc>,
    /// The clients nearest the threshold were listed at (Unix seconds).
    pub nearest_at: Option<u64>,
    /// Recent alerts, newest first.
    pub alerts: Vec<Alert>,
    /// Outputs, in configuration order.
    pub outputs: Vec<OutputDoc>,
    /// Lines per second, one point per 10 s over the last 15 minutes.
    pub throughput: Vec<Point>,
    /// With `[cluster]`: how the node decides.
    #[serde(default)]
    pub farm: Option<FarmDoc>,
}

/// A farm node: with Redis or alone, and its link's counters.
#[derive(Debug, Serialize, Deserialize)]
pub struct FarmDoc {
    /// Seconds this node has decided alone (Redis does not answer); absent
    /// while it decides with the farm.
    pub alone_seconds: Option<u64>,
    /// Why it decides alone: Redis's last error, in words (no answer in
    /// time, a refused connection, an error reply such as OOM).
    pub alone_because: Option<String>,
    /// Round trips to Redis answered.
    pub round_trips: u64,
    /// Times Redis stopped answering.
    pub outages: u64,
    /// Events decided alone.
    pub events_alone: u64,
    /// Events Redis had applied before (read again after a crash).
    pub events_repeated: u64,
    /// How this node differs from the others (rules, name, clock), in
    /// words, at the last registration.
    pub differences: Vec<String>,
    /// This machine's clock minus the Redis server's, in seconds.
    pub clock_offset_seconds: Option<f64>,
}

/// Line counters.
#[derive(Debug, Serialize, Deserialize)]
pub struct Lines {
    /// Lines read.
    pub read: u64,
    /// Lines skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Lines an allow-list kept from the windows.
    pub allowed: u64,
}

/// One followed file.
#[derive(Debug, Serialize, Deserialize)]
pub struct FileDoc {
    /// Its path.
    pub path: String,
    /// Where reading stands.
    pub offset: u64,
    /// Its size now (absent when it cannot be read).
    pub size: Option<u64>,
    /// Wall clock minus its newest event's time, in seconds.
    pub delay_seconds: Option<i64>,
}

/// One rule.
#[derive(Debug, Serialize, Deserialize)]
pub struct RuleDoc {
    /// Its name.
    pub name: String,
    /// Events in the window that alert.
    pub threshold: u32,
    /// The window, in seconds.
    pub window_seconds: u32,
    /// Events counted, late, alerts raised.
    pub events: u64,
    /// Events older than their client's window.
    pub late: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Clients held now.
    pub clients: u64,
    /// The clients with the most events in the window now, most first.
    pub nearest: Vec<Near>,
}

/// A client near the threshold.
#[derive(Debug, Serialize, Deserialize)]
pub struct Near {
    /// The client.
    pub client: String,
    /// Its events in the window.
    pub count: u32,
}

/// One output.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutputDoc {
    /// Its name.
    pub name: String,
    /// "ok" or "failing".
    pub state: String,
    /// Seconds it has been failing.
    pub failing_seconds: Option<u64>,
    /// Alerts delivered.
    pub delivered: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Alerts waiting.
    pub queued: u64,
    /// Alerts dropped at a full queue.
    pub dropped: u64,
}

/// Throughput over 10 s.
#[derive(Debug, Serialize, Deserialize)]
pub struct Point {
    /// End of the interval (Unix seconds).
    pub time: u64,
    /// Lines read per second in it.
    pub lines_per_second: f64,
}

/// The board as a status document.
pub fn document(board: &Board) -> StatusDoc {
    let snap = board.snapshot();
    let now = unix_now();
    let s = &snap.summary;
    let skipped = Skip::ALL.iter().map(|r| (r.name().to_string(), s.skipped[r.index()])).collect();
    let files = snap
        .files
        .iter()
        .map(|f| FileDoc {
            path: f.path.clone(),
            offset: f.offset,
            size: std::fs::metadata(&f.path).ok().map(|m| m.len()),
            delay_seconds: (f.newest > 0).then(|| now as i64 - i64::from(f.newest)),
        })
        .collect();
    let rules = board
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let c = s.rules.get(i).copied().unwrap_or_default();
            let near = snap.nearest.get(i).map(Vec::as_slice).unwrap_or_default();
            RuleDoc {
                name: r.name.clone(),
                threshold: r.spec.threshold,
                window_seconds: r.spec.window,
                events: c.events,
                late: c.late,
                alerts: c.alerts,
                clients: c.clients,
                nearest: near.iter().map(|(k, n)| Near { client: k.clone(), count: *n }).collect(),
            }
        })
        .collect();
    let outputs = board
        .outputs()
        .into_iter()
        .map(|o| OutputDoc {
            state: if o.failing_for.is_some() { "failing" } else { "ok" }.into(),
            failing_seconds: o.failing_for.map(|f| f.as_secs()),
            name: o.name,
            delivered: o.delivered,
            failures: o.failures,
            queued: o.queued,
            dropped: o.dropped,
        })
        .collect();
    let throughput = snap
        .points
        .windows(2)
        .map(|w| Point {
            time: w[1].0,
            lines_per_second: (w[1].1 - w[0].1) as f64
                / (w[1].0.saturating_sub(w[0].0)).max(1) as f64,
        })
        .collect();
    let nearest_at = snap.nearest_at.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    StatusDoc {
        version: env!("CARGO_PKG_VERSION").into(),
        node: board.node.clone(),
        uptime_seconds: board.uptime().as_secs(),
        problems: board.problems(),
        lines: Lines { read: s.lines, skipped, allowed: s.allowed },
        files,
        rules,
        nearest_at: nearest_at.map(|d| d.as_secs()),
        alerts: snap.alerts.iter().rev().map(|a| Alert::clone(a)).collect(),
        outputs,
        throughput,
        farm: s.farm.as_ref().map(|f| farm_doc(f, now)),
    }
}

/// A farm node's counters at `now` (Unix seconds).
fn farm_doc(f: &crate::pipeline::FarmCounts, now: u64) -> FarmDoc {
    FarmDoc {
        alone_seconds: f.link.alone_since.map(|t| now.saturating_sub(t)),
        alone_because: f.why_alone.clone(),
        round_trips: f.link.round_trips,
        outages: f.link.outages,
        events_alone: f.alone,
        events_repeated: f.repeated,
        differences: f.differences.clone(),
        clock_offset_seconds: f.link.clock_offset_ms.map(|ms| ms as f64 / 1000.0),
    }
}
