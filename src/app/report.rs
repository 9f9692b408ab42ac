//! `replay --report FILE.html`: a self-contained HTML report of a scan —
//! files and time range, lines by outcome, alerts over time, per rule the
//! clients that came highest and how close the others came to the
//! threshold. Inline SVG and CSS only: opening it needs no network.

use crate::alert::Alert;
use crate::parse::Skip;
use crate::pipeline::Summary;
use crate::rules::Rule;
use crate::source::SourceError;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// Clients listed per rule.
const TOP: usize = 20;
/// Alerts listed (the first ones of the scan).
const LISTED_ALERTS: usize = 100;

/// What the report gathers during the scan.
pub struct Report {
    rules: Vec<(String, u32, u32)>,
    /// Per rule: each client's peak (most events a window of it held),
    /// at most the rule's `max_clients` clients.
    peaks: Vec<HashMap<String, u32>>,
    caps: Vec<usize>,
    /// Per rule: how many clients that found the map full peaked at each
    /// count (in the distribution, not listed).
    overflow: Vec<BTreeMap<u32, u64>>,
    /// Alerts per hour (Unix seconds / 3600): bounded by the span, not by
    /// how many alerts there are.
    alert_hours: BTreeMap<i64, u64>,
    /// Per rule: alerts per client, for at most the rule's `max_clients`
    /// clients, and whether a client found the map full (its alerts are
    /// then not known per client).
    alerts_of: Vec<(HashMap<String, u64>, bool)>,
    first_alerts: Vec<Alert>,
}

impl Report {
    /// A report for `rules`.
    pub fn new(rules: &[Rule]) -> Report {
        Report {
            rules: rules
                .iter()
                .map(|r| (r.name.clone(), r.spec.threshold, r.spec.window))
                .collect(),
            peaks: vec![HashMap::new(); rules.len()],
            caps: rules.iter().map(|r| r.max_clients).collect(),
            overflow: vec![BTreeMap::new(); rules.len()],
            alert_hours: BTreeMap::new(),
            alerts_of: vec![(HashMap::new(), false); rules.len()],
            first_alerts: Vec::new(),
        }
    }

    /// An alert of the scan.
    pub fn alert(&mut self, a: &Alert) {
        let rule = self.rules.iter().position(|r| r.0 == a.rule).unwrap_or(0);
        if let Ok(t) = a.time.parse::<jiff::Timestamp>() {
            *self.alert_hours.entry(t.as_second().div_euclid(3_600)).or_default() += 1;
        }
        if let (Some((map, full)), Some(&cap)) = (self.alerts_of.get_mut(rule), self.caps.get(rule))
        {
            let room = map.len() < cap;
            match map.get_mut(&a.key) {
                Some(n) => *n += 1,
                None if room => {
                    map.insert(a.key.clone(), 1);
                }
                None => *full = true,
            }
        }
        if self.first_alerts.len() < LISTED_ALERTS {
            self.first_alerts.push(a.clone());
        }
    }

    /// Peaks of clients of rule `rule` (dropped, or held at the end).
    pub fn peaks(&mut self, rule: usize, peaks: &[(String, u32)]) {
        let (Some(map), Some(&cap)) = (self.peaks.get_mut(rule), self.caps.get(rule)) else {
            return;
        };
        for (k, p) in peaks {
            let (full, p) = (map.len() >= cap, *p);
            match map.get_mut(k) {
                Some(old) => *old = (*old).max(p),
                None if !full => {
                    map.insert(k.clone(), p);
                }
                None => *self.overflow[rule].entry(p).or_default() += 1,
            }
        }
    }

    /// The report as HTML.
    pub fn html(&self, files: &[String], sum: &Summary, damaged: &[SourceError]) -> String {
        let mut h = String::new();
        h += HEAD;
        writeln!(h, "<h1>logwarden report</h1>").unwrap_or(());
        writeln!(
            h,
            "<p class=\"muted\">made {} by logwarden {}</p>",
            esc(&jiff::Timestamp::now().to_string()),
            env!("CARGO_PKG_VERSION")
        )
        .unwrap_or(());
        self.scan_section(&mut h, files, sum, damaged);
        self.alerts_section(&mut h, sum);
        for r in 0..self.rules.len() {
            self.rule_section(&mut h, r, sum);
        }
        self.alert_list(&mut h);
        h += "</body>\n</html>\n";
        h
    }

    fn scan_section(
        &self,
        h: &mut String,
        files: &[String],
        sum: &Summary,
        damaged: &[SourceError],
    ) {
        h.push_str("<h2>Scan</h2>\n<table>\n");
        for f in files {
            let size = std::fs::metadata(f).map(|m| m.len().to_string()).unwrap_or_default();
            writeln!(
                h,
                "<tr><td>file</td><td class=\"wrap\">{}</td><td class=\"n\">{}</td></tr>",
                esc(f),
                size
            )
            .unwrap_or(());
        }
        for d in damaged {
            writeln!(
                h,
                "<tr><td>not read to its end</td><td class=\"wrap\">{}</td><td></td></tr>",
                esc(&d.to_string())
            )
            .unwrap_or(());
        }
        if let Some((a, b)) = sum.span {
            writeln!(
                h,
                "<tr><td>events from</td><td>{}</td><td></td></tr><tr><td>events to</td><td>{}</td><td></td></tr>",
                stamp(a),
                stamp(b)
            ).unwrap_or(());
        }
        let skipped: u64 = sum.skipped.iter().sum();
        // (name, value, a skip reason under "lines skipped")
        let mut rows = vec![
            ("lines read", sum.lines, false),
            ("lines parsed", sum.parsed, false),
            ("lines skipped", skipped, false),
        ];
        rows.extend(Skip::ALL.map(|r| (r.name(), sum.skipped[r.index()], true)));
        rows.extend([
            ("lines allowed", sum.allowed, false),
            ("events", sum.events, false),
            ("late events", sum.late, false),
            ("alerts", sum.alerts, false),
        ]);
        for (name, v, reason) in rows {
            let class = if reason { " class=\"sub\"" } else { "" };
            writeln!(
                h,
                "<tr{class}><td>{name}</td><td class=\"n\" id=\"{}\">{v}</td><td></td></tr>",
                name.replace(' ', "-")
            )
            .unwrap_or(());
        }
        h.push_str("</table>\n");
    }

    /// Alerts per hour, or per day when the scan spans more than three days.
    fn alerts_section(&self, h: &mut String, sum: &Summary) {
        h.push_str("<h2>Alerts over time</h2>\n");
        let Some((a, b)) = sum.span else {
            h.push_str("<p class=\"muted\">no events</p>\n");
            return;
        };
        let step: i64 = if b - a > 3 * 86_400 { 86_400 } else { 3_600 };
        let (from, to) = (i64::from(a) / step * step, i64::from(b) / step * step);
        let n = usize::try_from((to - from) / step + 1).unwrap_or(1).min(10_000);
        let mut bins = vec![0u64; n];
        for (&hour, &alerts) in &self.alert_hours {
            let bin = usize::try_from((hour * 3_600 - from) / step).ok();
            if let Some(bin) = bin.and_then(|i| bins.get_mut(i)) {
                *bin += alerts;
            }
        }
        let unit = if step == 3_600 { "hour" } else { "day" };
        writeln!(h, "<p class=\"muted\">alerts per {unit}, from {} (UTC)</p>", stamp(from as u32))
            .unwrap_or(());
        let labels: Vec<String> = (0..n).map(|i| stamp((from + i as i64 * step) as u32)).collect();
        h.push_str(&bar_chart(&bins, &labels, None, "alerts"));
    }

    fn rule_section(&self, h: &mut String, r: usize, sum: &Summary) {
        let (name, threshold, window) = &self.rules[r];
        let counts = sum.rules.get(r).copied().unwrap_or_default();
        writeln!(h, "<h2>Rule {} ({threshold} in {window} s)</h2>", esc(name)).unwrap_or(());
        writeln!(
            h,
            "<p>{} events, {} alerts, {} late</p>",
            counts.events, counts.alerts, counts.late
        )
        .unwrap_or(());
        let mut top: Vec<(&String, &u32)> = self.peaks[r].iter().collect();
        top.sort_unstable_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        h.push_str("<table class=\"top\"><tr><th>client</th><th class=\"n\">peak in a window</th><th class=\"n\">alerts</th><th></th></tr>\n");
        for (k, p) in top.into_iter().take(TOP) {
            let client = k;
            let alerts = match &self.alerts_of[r] {
                (map, _) if map.contains_key(client) => map[client].to_string(),
                (_, true) => "?".to_string(),
                _ => "0".to_string(),
            };
            let width =
                (u64::from(*p).min(u64::from(*threshold)) * 200) / u64::from((*threshold).max(1));
            let hot = if p >= threshold { " hot" } else { "" };
            writeln!(
                h,
                "<tr><td class=\"client\">{}</td><td class=\"n peak\">{p}</td><td class=\"n\">{alerts}</td><td><span class=\"bar{hot}\" style=\"width:{width}px\"></span></td></tr>",
                esc(client)
            ).unwrap_or(());
        }
        h.push_str("</table>\n");
        self.distribution(h, r);
    }

    /// How many clients peaked at each count, up to the threshold and beyond.
    fn distribution(&self, h: &mut String, r: usize) {
        let threshold = self.rules[r].1.max(1);
        // One bin per count below the threshold up to 40, else 20 bins below
        // it; the last bin holds the clients at or over the threshold.
        let per = if threshold <= 40 { 1 } else { threshold.div_ceil(20) };
        let below = (threshold - 1).div_ceil(per) as usize;
        let mut bins = vec![0u64; below + 1];
        let listed = self.peaks[r].values().map(|&p| (p, 1));
        for (p, n) in listed.chain(self.overflow[r].iter().map(|(&p, &n)| (p, n))) {
            let i = if p >= threshold { below } else { ((p.max(1) - 1) / per) as usize };
            bins[i.min(below)] += n;
        }
        let labels: Vec<String> = (0..=below)
            .map(|i| match (i == below, per) {
                (true, _) => format!("≥ {threshold}"),
                (false, 1) => (i + 1).to_string(),
                (false, _) => {
                    format!("{}–{}", i as u32 * per + 1, ((i as u32 + 1) * per).min(threshold - 1))
                }
            })
            .collect();
        let reached = bins[below];
        let near = bins[..below].iter().rev().take(below.div_ceil(5)).sum::<u64>();
        let clients: u64 = bins.iter().sum();
        writeln!(
            h,
            "<p>{clients} clients; {reached} reached the threshold; {near} came within the top fifth below it.</p>"
        ).unwrap_or(());
        if !self.overflow[r].is_empty() {
            h.push_str("<p class=\"muted\">More clients than max_clients: those beyond it are counted below, not listed above.</p>\n");
        }
        h.push_str("<p class=\"muted\">clients by their peak count in a window</p>\n");
        h.push_str(&bar_chart(&bins, &labels, Some(below), "clients"));
    }

    fn alert_list(&self, h: &mut String) {
        writeln!(h, "<h2>Alerts (the first {LISTED_ALERTS})</h2>").unwrap_or(());
        h.push_str("<table><tr><th>time</th><th>rule</th><th>client</th><th class=\"n\">count</th><th>file:line</th><th>message</th></tr>\n");
        for a in &self.first_alerts {
            writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"client\">{}</td><td class=\"n\">{}</td><td class=\"wrap\">{}:{}</td><td class=\"wrap\">{}</td></tr>",
                esc(&a.time),
                esc(&a.rule),
                esc(&a.key),
                a.count,
                esc(&a.file),
                a.line,
                esc(&a.message)
            ).unwrap_or(());
        }
        h.push_str("</table>\n");
    }
}

/// A bar chart as inline SVG; the bar at `mark` (the threshold) in red.
fn bar_chart(bins: &[u64], labels: &[String], mark: Option<usize>, what: &str) -> String {
    let (w, ht) = (900.0_f64, 160.0_f64);
    let max = bins.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bw = (w - 20.0) / bins.len().max(1) as f64;
    let mut s = format!(
        "<svg class=\"chart\" width=\"{w}\" height=\"{}\" role=\"img\" aria-label=\"{what}\">\n",
        ht + 30.0
    );
    for (i, &v) in bins.iter().enumerate() {
        let bh = v as f64 / max * ht;
        let (x, y) = (10.0 + i as f64 * bw, ht - bh + 5.0);
        let fill = if Some(i) == mark { "#c0392b" } else { "#4a7ab5" };
        let label = esc(labels.get(i).map_or("", String::as_str));
        writeln!(
            s,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{fill}\"><title>{label}: {v} {what}</title></rect>",
            (bw - 1.0).max(0.5)
        ).unwrap_or(());
    }
    let first = esc(labels.first().map_or("", String::as_str));
    let last = esc(labels.last().map_or("", String::as_str));
    writeln!(s, "<text x=\"10\" y=\"{}\" font-size=\"11\">{first}</text>", ht + 22.0).unwrap_or(());
    writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{last}</text>",
        w - 10.0,
        ht + 22.0
    )
    .unwrap_or(());
    writeln!(
        s,
        "<text x=\"{}\" y=\"14\" font-size=\"11\" text-anchor=\"end\">max {} {what}</text>",
        w - 10.0,
        max as u64
    )
    .unwrap_or(());
    s + "</svg>\n"
}

/// Unix seconds as `2026-11-29 10:00` (UTC).
fn stamp(t: u32) -> String {
    jiff::Timestamp::from_second(i64::from(t))
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Text for HTML: log lines are attacker-controlled.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>logwarden report</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; max-width: 1000px; }
  h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
  .muted { color: #777; }
  table { border-collapse: collapse; background: #fff; }
  th, td { text-align: left; padding: .2em .6em; border-bottom: 1px solid #eee; vertical-align: top; }
  td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
  tr.sub td:first-child { padding-left: 2em; color: #555; }
  .wrap { word-break: break-all; }
  .bar { height: .9em; background: #4a7ab5; display: inline-block; }
  .bar.hot { background: #c0392b; }
  svg.chart { background: #fff; border: 1px solid #eee; display: block; }
</style>
</head>
<body>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_per_client_are_kept_for_max_clients_and_unknown_past_them() {
        let text = "[[rule]]\nname = \"r\"\ncontains = \"x\"\nthreshold = 1\nmax_clients = 2\n";
        let ov = crate::config::Overrides::default();
        let cfg = crate::config::Config::parse(text, None, &ov).unwrap();
        let mut report = Report::new(&cfg.rules);
        for key in ["a", "b", "a", "c"] {
            let json = format!(
                r#"{{"rule":"r","key":"{key}","count":1,"threshold":1,"window_s":600,"time":"2026-01-01T00:00:00Z","file":"f","line":1,"message":""}}"#
            );
            report.alert(&serde_json::from_str(&json).unwrap());
        }
        assert_eq!(report.alerts_of[0].0.len(), 2);
        report.peaks(0, &[("c".into(), 5), ("a".into(), 3)]);
        let html = report.html(&[], &Summary::default(), &[]);
        let row = |k: &str, peak: u32, alerts: &str| {
            format!("{k}</td><td class=\"n peak\">{peak}</td><td class=\"n\">{alerts}</td>")
        };
        assert!(html.contains(&row("a", 3, "2")), "{html}");
        assert!(html.contains(&row("c", 5, "?")), "{html}");
    }

    /// The bins below the threshold end one below it: a bin labelled with
    /// the threshold itself was always empty, beside the "≥" bin.
    #[test]
    fn peak_bins_end_below_the_threshold() {
        for (threshold, last_below) in [(10, "9"), (1, ""), (43, "40–42"), (100, "96–99")] {
            let text =
                format!("[[rule]]\nname = \"r\"\ncontains = \"x\"\nthreshold = {threshold}\n");
            let cfg = crate::config::Config::parse(&text, None, &Default::default()).unwrap();
            let mut report = Report::new(&cfg.rules);
            report.peaks(0, &[("a".into(), threshold), ("b".into(), threshold.max(2) - 1)]);
            let html = report.html(&[], &Summary::default(), &[]);
            let chart = html.split("aria-label=\"clients\"").nth(1).unwrap();
            let titles: Vec<&str> =
                chart.split("<title>").skip(1).map(|t| t.split(':').next().unwrap()).collect();
            let want_last = format!("≥ {threshold}");
            assert_eq!(titles.last(), Some(&want_last.as_str()), "{titles:?}");
            let before_last = titles.get(titles.len().wrapping_sub(2)).copied().unwrap_or("");
            assert_eq!(before_last, last_below, "{threshold}: {titles:?}");
            let reached = if threshold == 1 { 2 } else { 1 };
            assert!(chart.contains(&format!("<title>{want_last}: {reached} clients")), "{chart}");
        }
    }

    #[test]
    fn escapes_what_html_would_read() {
        assert_eq!(
            esc("<script>a&b</script>\"'"),
            "&lt;script&gt;a&amp;b&lt;/script&gt;&quot;&#39;"
        );
    }
}
