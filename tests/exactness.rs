//! The pipeline decides exactly what a plain sequential loop over the same
//! lines decides, for every thread count, across chunk, segment and file
//! boundaries, with out-of-order lines and evictions.

use crate::util::{Kept, Scripted, json_lines, ok, write};
use logwarden::config::{Config, Overrides};
use logwarden::parse::client::Key;
use logwarden::source::{Chunk, Data, FileTag, SourceEvent};
use logwarden::window::{Outcome, Windows};
use std::fmt::Write as _;
use std::sync::Arc;

pub(crate) const CONFIG: &str = r#"
[source]
format = "combined"
timezone = "UTC"

[[rule]]
name = "dl"
contains = "today_download"
threshold = 5
window = "2m"
cooldown = "1m"

[[rule]]
name = "notfound"
status = [404]
threshold = 4
window = 90

[[rule]]
name = "scan"
status = [404]
distinct = "path"
threshold = 3
window = 90

[[rule]]
name = "user"
contains = "today_download"
key = "user"
threshold = 6
window = "2m"

[state]
cleanup_interval = "1m"
"#;

/// A deterministic log: many clients, bursts, lines up to 40 s out of order.
pub(crate) fn generate(seed: u64, start: u64, lines: usize) -> String {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = String::new();
    for i in 0..lines {
        let r = next();
        let t = start + (i as u64) / 20 - if r % 10 == 0 { r % 41 } else { 0 };
        let dt = jiff::Timestamp::from_second(t as i64)
            .unwrap()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC);
        let client = if r % 7 == 0 {
            format!("2001:db8::{:x}", r % 50)
        } else {
            format!("10.0.{}.{}", r % 3, (r >> 8) % 60)
        };
        let path = match (r >> 16) % 8 {
            0 | 1 => "/today_download?f=1".to_string(),
            2 => format!("/p{}", (r >> 28) % 9),
            _ => "/index.html".to_string(),
        };
        let user = if (r >> 32) % 3 == 0 { format!("u{}", (r >> 36) % 5) } else { "-".into() };
        let status = if (r >> 20) % 5 == 0 { 404 } else { 200 };
        writeln!(
            out,
            r#"{client} - {user} [{}] "GET {path} HTTP/1.1" {status} 512 "-" "agent {} \"q\"""#,
            dt.strftime("%d/%b/%Y:%H:%M:%S %z"),
            "x".repeat((r >> 24) as usize % 200)
        )
        .expect("writing to a String");
    }
    out
}

/// Alerts as `rule key file line count`, from a plain loop over the lines
/// (rules keyed by the user and counting distinct paths too); with `range`
/// `(since, until)`, only lines from one window (the rule's) before `since`
/// to `until` count, and only those from `since` on alert.
pub(crate) fn sequential(
    cfg: &Config,
    files: &[(String, String)],
    (since, until): (u32, u32),
) -> Vec<String> {
    let engine = cfg.engine();
    let mut windows: Vec<Windows> = cfg.rules.iter().map(|r| Windows::new(r.spec)).collect();
    let mut out = Vec::new();
    for (name, text) in files {
        for (n, line) in text.lines().enumerate() {
            let Ok(rec) = engine.parser(0).parse(line.as_bytes()) else { continue };
            let prefix = cfg.sources[0].ipv6_prefix;
            let key = Key::of(rec.client, prefix);
            let t = rec.time.epoch as u32;
            for (i, rule) in cfg.rules.iter().enumerate() {
                let (Some(k), Some(v)) = (rule.key_of(&rec, key), rule.value_of(&rec)) else {
                    continue;
                };
                if u64::from(t) + u64::from(rule.spec.window) < u64::from(since) || t > until {
                    continue;
                }
                if rule.matches(&rec, line.as_bytes(), None)
                    && let Outcome::Alert(c) = windows[i].record_value(k, t, v)
                    && t >= since
                {
                    let key = rule.key_text(&rec, key, prefix);
                    out.push(format!("{} {key} {name} {} {c}", rule.name, n + 1));
                }
            }
        }
    }
    out
}

/// `replay --json` output as `rule key file line count` lines.
pub(crate) fn alert_lines(json: &str) -> Vec<String> {
    json_lines(json)
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {} {}",
                a["rule"].as_str().unwrap(),
                a["key"].as_str().unwrap(),
                a["file"].as_str().unwrap(),
                a["line"],
                a["count"]
            )
        })
        .collect()
}

#[test]
fn every_thread_count_decides_like_a_sequential_loop() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = write(dir.path(), "c.toml", CONFIG.as_bytes());
    // Dated files follow each other in time, as a day's log follows the last.
    let files: Vec<(String, String)> = (0..3u64)
        .map(|k| {
            let text =
                generate(k + 1, 1_700_000_000 + k * 7_000, if k == 1 { 120_000 } else { 9_000 });
            (write(dir.path(), &format!("day{k}.log"), text.as_bytes()), text)
        })
        .collect();
    let cfg = Config::parse(CONFIG, None, &Overrides::default()).unwrap();
    let want = sequential(&cfg, &files, (0, u32::MAX));
    assert!(want.len() > 100, "the generated log should raise many alerts, got {}", want.len());
    for rule in ["scan", "user"] {
        let n = want.iter().filter(|a| a.starts_with(&format!("{rule} "))).count();
        assert!(n > 10, "rule {rule} should raise alerts too, got {n}");
    }
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    for threads in ["1", "2", "3", "8"] {
        let mut args = vec!["-c", &cfg_path, "replay", "--json", "--threads", threads];
        args.extend(&names);
        let got = alert_lines(&ok(&args));
        let first_diff = got.iter().zip(&want).position(|(g, w)| g != w);
        assert!(
            got.len() == want.len() && first_diff.is_none(),
            "threads = {threads}: {} alerts, {} expected; first difference at {first_diff:?}: {:?} vs {:?}",
            got.len(),
            want.len(),
            first_diff.map(|i| &got[i]),
            first_diff.map(|i| &want[i])
        );
    }
}

/// With several sources, one catching up on old lines while another is an
/// hour ahead: the cleanup that the newer source's lines set off must not
/// forget the windows the older one is still filling; once both are past
/// them, it does.
#[test]
fn a_source_far_ahead_does_not_evict_the_windows_of_one_catching_up() {
    let config = r#"
[[source]]
name = "www"
path = "/w"
format = "combined"
timezone = "UTC"
[[source]]
name = "api"
path = "/a"
format = "combined"
timezone = "UTC"
[state]
cleanup_interval = "60s"
[[rule]]
name = "dl"
contains = "today_download"
threshold = 5
window = "2m"
"#;
    let cfg = Config::parse(config, None, &Overrides::default()).unwrap();
    let t0 = 1_751_986_800; // 2025-07-08T15:00:00Z
    let file = |id: u64, source: usize| {
        let name = format!("source{source}.log");
        Arc::new(FileTag { name, id, start_line: 0, identity: None, source })
    };
    let (www, api) = (file(1, 0), file(2, 1));
    const X: &str = "192.0.2.7";
    const Y: &str = "192.0.2.9";
    const DL: &str = "/today_download";
    let mut offsets = [0u64; 2];
    let mut chunk = |tag: &Arc<FileTag>, lines: &[(i64, &str, &str)]| {
        let text: String = lines
            .iter()
            .map(|(dt, client, path)| {
                let stamp = jiff::Timestamp::from_second(t0 + dt)
                    .unwrap()
                    .strftime("%d/%b/%Y:%H:%M:%S +0000");
                format!("{client} - - [{stamp}] \"GET {path} HTTP/1.1\" 200 5 \"-\" \"t\"\n")
            })
            .collect();
        let offset = std::mem::replace(&mut offsets[tag.source], text.len() as u64);
        SourceEvent::Lines(Chunk::new(Arc::clone(tag), offset, Data::Owned(text.into_bytes()), 0))
    };
    let events = vec![
        chunk(&api, &[(3600, Y, DL)]),
        chunk(&www, &[(0, X, DL), (1, X, DL), (2, X, DL)]),
        // Crosses the next cleanup step of the newest time read.
        chunk(&api, &[(3700, Y, DL)]),
        chunk(&www, &[(30, X, DL), (31, X, DL)]),
        // Both sources past it now (a line that is no event tells the
        // time a source has read to): the client is forgotten.
        chunk(&www, &[(3800, X, "/")]),
    ];
    let mut kept = Kept::default();
    let summary = cfg.engine().run(Box::new(Scripted::new(events)), None, &mut kept).unwrap();
    let got: Vec<(&str, u32)> = kept.0.iter().map(|a| (a.key.as_str(), a.count)).collect();
    assert_eq!(got, [(X, 5)], "{summary:?}");
    assert_eq!(summary.evicted, 1, "X: {summary:?}");
}
