//! What the engine hands out: alerts and state to a [`Sink`], counters in a
//! [`Summary`].

use super::ScanStats;
use crate::alert::Alert;
use crate::farm::link::LinkCounts;
use crate::parse::Skip;
use crate::source::{Chunk, Position};
use crate::state::codec::Entries;
use crate::window::Windows;
use std::time::Duration;

/// Counters for a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Lines parsed (candidates for some rule, or all lines without a literal).
    pub parsed: u64,
    /// Lines skipped, by [`Skip::index`].
    pub skipped: [u64; Skip::COUNT],
    /// Lines an allow-list kept from a rule's windows.
    pub allowed: u64,
    /// Events (lines matching a rule).
    pub events: u64,
    /// Events older than their key's window.
    pub late: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Keys evicted by the cleanup.
    pub evicted: u64,
    /// Keys forgotten at a rule's `max_clients`.
    pub forgotten: u64,
    /// Oldest and newest event time (Unix seconds), once there are events.
    pub span: Option<(u32, u32)>,
    /// Per rule, in rule order.
    pub rules: Vec<RuleCounts>,
    /// In a farm: events the farm had applied before (read again after a
    /// crash), and events this node decided alone (Redis did not answer).
    pub farm: Option<FarmCounts>,
    /// How long the run took.
    pub elapsed: Duration,
}

/// The summary line: `summary: 1000 lines, 0.2 MB in 0.01 s (20 MB/s); …`.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let skipped: u64 = self.skipped.iter().sum();
        let reasons: Vec<String> = Skip::ALL
            .iter()
            .filter(|r| self.skipped[r.index()] > 0)
            .map(|r| format!("{} {}", r.name(), self.skipped[r.index()]))
            .collect();
        let reasons =
            if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) };
        let mb = self.bytes as f64 / 1e6;
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "summary: {} lines, {:.1} MB in {:.2} s ({:.0} MB/s); parsed {}, skipped {}{}; allowed {}; events {}, late {}; alerts {}; evicted {}, forgotten {}",
            self.lines,
            mb,
            secs,
            mb / secs.max(1e-9),
            self.parsed,
            skipped,
            reasons,
            self.allowed,
            self.events,
            self.late,
            self.alerts,
            self.evicted,
            self.forgotten
        )?;
        match &self.farm {
            Some(c) => write!(
                f,
                "; farm: repeated {}, decided alone {}, round trips {} ({:.3} s)",
                c.repeated,
                c.alone,
                c.link.round_trips,
                c.link.round_trip_micros as f64 / 1e6
            ),
            None => Ok(()),
        }
    }
}

/// One rule's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleCounts {
    /// Events (lines the rule counts).
    pub events: u64,
    /// Events older than their key's window.
    pub late: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Clients whose windows are held now.
    pub clients: u64,
}

/// How things stand, handed to a sink that asks for it (a status page)
/// after each source event is completed.
pub struct Status<'a> {
    /// The counters so far.
    pub summary: &'a Summary,
    /// The file the event moved (by tag id): where its reading stands
    /// now, or `None` once it is no longer followed. A file is listed from
    /// its [`SourceEvent::Opened`](crate::source::SourceEvent::Opened) on.
    pub file: Option<&'a (u64, Option<FileStatus>)>,
    /// Newest event time of the stream (Unix seconds; 0 before any).
    pub watermark: u32,
    /// After a [`SourceEvent::Probe`](crate::source::SourceEvent::Probe): per rule, the clients with the most
    /// events in the window that ends at the watermark, most first.
    pub nearest: Option<&'a [Vec<(String, u32)>]>,
}

/// Where reading of one followed file stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// The name it is followed under.
    pub path: String,
    /// Offset after the last line decided.
    pub offset: u64,
    /// Newest time of its events so far (Unix seconds; 0 before any).
    pub newest: u32,
}

/// Clients listed per rule after a probe.
pub const NEAREST: usize = 20;

/// A farm node's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FarmCounts {
    /// Events the farm had applied before.
    pub repeated: u64,
    /// Events decided on this node's windows alone.
    pub alone: u64,
    /// The link's own: round trips, outages, clock, since when alone.
    pub link: LinkCounts,
    /// How this node differs from the others (rules, name, clock), in
    /// words, as the link's last registration found.
    pub differences: Vec<String>,
    /// While this node decides alone: Redis's last error, in words.
    pub why_alone: Option<String>,
}

impl Summary {
    pub(super) fn add_scan(&mut self, s: &ScanStats) {
        if s.events > 0 {
            let (a, b) = self.span.unwrap_or((s.oldest, s.newest));
            self.span = Some((a.min(s.oldest), b.max(s.newest)));
        }
        self.parsed += s.parsed;
        self.allowed += s.allowed;
        self.events += s.events;
        for (a, b) in self.skipped.iter_mut().zip(s.skipped) {
            *a += b;
        }
    }
}

/// Where the alert thread hands its results; it runs on the caller's thread.
pub trait Sink {
    /// One alert, in the order of the lines that raised them.
    fn alert(&mut self, alert: Alert);
    /// A chunk is finished (its `read` says how far its input is read).
    fn progress(&mut self, _chunk: &Chunk) {}
    /// A consistent state: positions after, and windows as of, the same chunk.
    fn checkpoint(&mut self, _cp: &Checkpoint<'_>) {}
    /// Whether the sink wants [`Sink::status`] (building it costs a little
    /// per chunk: the counters are copied).
    fn wants_status(&self) -> bool {
        false
    }
    /// How things stand after a source event was completed.
    fn status(&mut self, _s: &Status<'_>) {}
    /// With [`EngineSettings::peaks`](super::EngineSettings::peaks): clients of rule `rule` and the most
    /// events their window held, as they are dropped and at the end (a
    /// client dropped and seen again comes again).
    fn peaks(&mut self, _rule: usize, _peaks: &[(String, u32)]) {}
}

/// State as of one source event, for saving.
pub struct Checkpoint<'a> {
    /// Where reading of each followed file stands.
    pub positions: Vec<Position>,
    /// When each source's follower last began to look for files (by
    /// source name), where it has.
    pub looked: Vec<(String, std::time::SystemTime)>,
    /// Windows, encoded: per shard, one per rule (in rule order) — every
    /// key when `full`, else the keys changed since the last checkpoint.
    pub windows: &'a [Vec<Entries>],
    /// Whether `windows` holds every key.
    pub full: bool,
    /// Newest event time of the stream.
    pub watermark: u32,
}

/// Saved windows to start from.
pub struct Restore {
    /// One per rule, in rule order (empty ones for new or changed rules).
    pub windows: Vec<Windows>,
    /// Newest event time of the stream when saved.
    pub watermark: u32,
}
