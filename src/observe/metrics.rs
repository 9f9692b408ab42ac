//! `GET /metrics`: the board in the OpenMetrics text format (which
//! Prometheus scrapes), built anew from a snapshot at each scrape — the
//! engine keeps plain counters and never touches a metric.

use super::{Board, Snapshot, unix_now};
use crate::parse::Skip;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;
type CounterF = Counter<f64, AtomicU64>;
type GaugeF = Gauge<f64, AtomicU64>;

/// Every metric, as text.
pub fn render(board: &Board) -> String {
    let snap = board.snapshot();
    let mut reg = Registry::with_prefix("logwarden");
    lines(&mut reg, &snap);
    rules(&mut reg, board, &snap);
    outputs(&mut reg, board);
    files(&mut reg, &snap);
    farm(&mut reg, &snap);
    reg.register("state_save_seconds", "How long saving state took", board.saves.clone());
    counter(&mut reg, "state_save_failures", "State saves that failed", board.save_failures());
    let version = vec![("version", env!("CARGO_PKG_VERSION").to_string())];
    reg.register("build", "This build", Info::new(version));
    let mut text = String::new();
    // Writing to a String cannot fail.
    encode(&mut text, &reg).unwrap_or(());
    text
}

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn lines(reg: &mut Registry, s: &Snapshot) {
    counter(reg, "lines_read", "Lines read", s.summary.lines);
    let skipped = Family::<Labels, Counter>::default();
    for r in Skip::ALL {
        skipped
            .get_or_create(&vec![("reason", r.name().to_string())])
            .inc_by(s.summary.skipped[r.index()]);
    }
    reg.register("lines_skipped", "Lines skipped, by reason", skipped);
    counter(
        reg,
        "lines_allowed",
        "Lines an allow-list kept from a rule's windows",
        s.summary.allowed,
    );
    let delay = GaugeF::default();
    if s.watermark > 0 {
        delay.set(unix_now() as f64 - f64::from(s.watermark));
    }
    reg.register("log_delay_seconds", "Wall clock minus the newest event time", delay);
}

fn rules(reg: &mut Registry, board: &Board, s: &Snapshot) {
    let rows = board.rules.iter().zip(&s.summary.rules);
    let rows = rows.map(|(info, c)| (info.name.clone(), [c.events, c.late, c.alerts], c.clients));
    let names = [
        ("events", "Lines a rule counts"),
        ("late_events", "Events older than their client's window"),
        ("alerts", "Alerts raised"),
        ("clients", "Clients whose windows are held now"),
    ];
    labelled(reg, "rule", rows, names);
}

fn outputs(reg: &mut Registry, board: &Board) {
    let rows = board.outputs().into_iter();
    let rows = rows.map(|o| (o.name, [o.delivered, o.failures, o.dropped], o.queued));
    let names = [
        ("output_delivered", "Alerts an output delivered"),
        ("output_failures", "Failed attempts to deliver"),
        ("output_dropped", "Alerts dropped at a full queue"),
        ("output_queued", "Alerts waiting for an output"),
    ];
    labelled(reg, "output", rows, names);
}

/// Three counters and a gauge over one label (a rule, an output), one row
/// per value of the label; `names` in that order.
fn labelled(
    reg: &mut Registry,
    label: &'static str,
    rows: impl Iterator<Item = (String, [u64; 3], u64)>,
    names: [(&str, &str); 4],
) {
    let counters: [Family<Labels, Counter>; 3] = Default::default();
    let gauge = Family::<Labels, Gauge>::default();
    for (value, counts, now) in rows {
        let l = vec![(label, value)];
        for (family, v) in counters.iter().zip(counts) {
            family.get_or_create(&l).inc_by(v);
        }
        gauge.get_or_create(&l).set(i64::try_from(now).unwrap_or(i64::MAX));
    }
    for (family, (name, help)) in counters.into_iter().zip(names) {
        reg.register(name, help, family);
    }
    reg.register(names[3].0, names[3].1, gauge);
}

fn files(reg: &mut Registry, s: &Snapshot) {
    let offset = Family::<Labels, Gauge>::default();
    let size = Family::<Labels, Gauge>::default();
    for f in &s.files {
        let l = vec![("path", f.path.clone())];
        offset.get_or_create(&l).set(i64::try_from(f.offset).unwrap_or(i64::MAX));
        // The size now (a file gone since shows none).
        if let Ok(m) = std::fs::metadata(&f.path) {
            size.get_or_create(&l).set(i64::try_from(m.len()).unwrap_or(i64::MAX));
        }
    }
    reg.register("file_offset_bytes", "Where reading of a followed file stands", offset);
    reg.register("file_size_bytes", "A followed file's size", size);
}

fn farm(reg: &mut Registry, s: &Snapshot) {
    let Some(f) = &s.summary.farm else { return };
    counter(reg, "farm_round_trips", "Round trips to Redis answered", f.link.round_trips);
    let rtt = CounterF::default();
    rtt.inc_by(f.link.round_trip_micros as f64 / 1e6);
    reg.register("farm_round_trip_seconds", "Time spent in answered round trips to Redis", rtt);
    counter(reg, "farm_outages", "Times Redis stopped answering", f.link.outages);
    let alone: Gauge = Gauge::default();
    alone.set(i64::from(f.link.alone_since.is_some()));
    reg.register(
        "farm_deciding_alone",
        "1 while Redis does not answer and this node decides alone",
        alone,
    );
    counter(
        reg,
        "farm_events_alone",
        "Events this node decided alone (Redis did not answer)",
        f.alone,
    );
    counter(
        reg,
        "farm_events_repeated",
        "Events Redis had applied before (read again after a crash)",
        f.repeated,
    );
    let differences: Gauge = Gauge::default();
    differences.set(i64::try_from(f.differences.len()).unwrap_or(i64::MAX));
    reg.register(
        "farm_rule_differences",
        "How this node's rules differ from the other nodes' (or another machine has its name, or a clock too far from this one's), at the last check",
        differences,
    );
    if let Some(ms) = f.link.clock_offset_ms {
        let offset = GaugeF::default();
        offset.set(ms as f64 / 1000.0);
        reg.register(
            "farm_clock_offset_seconds",
            "This machine's clock minus the Redis server's, at the last registration",
            offset,
        );
    }
}
