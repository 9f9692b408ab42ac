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
    let events = Family::<Labels, Counter>::default();
    let late = Family::<Labels, Counter>::default();
    let alerts = Family::<Labels, Counter>::default();
    let clients = Family::<Labels, Gauge>::default();
    for (info, c) in board.rules.iter().zip(&s.summary.rules) {
        let l = vec![("rule", info.name.clone())];
        events.get_or_create(&l).inc_by(c.events);
        late.get_or_create(&l).inc_by(c.late);
        alerts.get_or_create(&l).inc_by(c.alerts);
        clients.get_or_create(&l).set(i64::try_from(c.clients).unwrap_or(i64::MAX));
    }
    reg.register("events", "Lines a rule counts", events);
    reg.register("late_events", "Events older than their client's window", late);
    reg.register("alerts", "Alerts raised", alerts);
    reg.register("clients", "Clients whose windows are held now", clients);
}

fn outputs(reg: &mut Registry, board: &Board) {
    let delivered = Family::<Labels, Counter>::default();
    let failures = Family::<Labels, Counter>::default();
    let dropped = Family::<Labels, Counter>::default();
    let queued = Family::<Labels, Gauge>::default();
    for o in board.outputs() {
        let l = vec![("output", o.name.clone())];
        delivered.get_or_create(&l).inc_by(o.delivered);
        failures.get_or_create(&l).inc_by(o.failures);
        dropped.get_or_create(&l).inc_by(o.dropped);
        queued.get_or_create(&l).set(i64::try_from(o.queued).unwrap_or(i64::MAX));
    }
    reg.register("output_delivered", "Alerts an output delivered", delivered);
    reg.register("output_failures", "Failed attempts to deliver", failures);
    reg.register("output_dropped", "Alerts dropped at a full queue", dropped);
    reg.register("output_queued", "Alerts waiting for an output", queued);
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
    counter(reg, "farm_round_trips", "Round trips to Redis answered", f.round_trips);
    let rtt = CounterF::default();
    rtt.inc_by(f.round_trip_micros as f64 / 1e6);
    reg.register("farm_round_trip_seconds", "Time spent in answered round trips to Redis", rtt);
    counter(reg, "farm_outages", "Times Redis stopped answering", f.outages);
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
}
