//! Conformance with real-world lines: every line of `../shared/corpus/fail2ban/`
//! annotated with a `host` must be attributed to that client by
//! `parse --format auto`, and every `"match": true` line whose date has a year
//! must carry the annotated time.
//!
//! fail2ban's tests run in the Europe/Zurich zone and its annotations give
//! times in that zone, so lines written without an offset are read in it and
//! lines with an offset are compared after conversion to it.

use crate::util::{json_lines, ok, shared, write};

struct Expect {
    file: String,
    line: u64,
    text: String,
    host: Option<String>,
    time: Option<String>,
}

fn annotations() -> Vec<Expect> {
    let dir = shared().join("corpus/fail2ban");
    let mut out = Vec::new();
    let mut entries: Vec<_> =
        std::fs::read_dir(&dir).expect("../shared/corpus/fail2ban").flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "log") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let lines: Vec<&[u8]> = bytes.split(|&c| c == b'\n').collect();
        for (i, l) in lines.iter().enumerate() {
            let Some(json) = l.strip_prefix(b"# failJSON:") else { continue };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else { continue };
            let Some(next) = lines.get(i + 1) else { continue };
            let text = String::from_utf8_lossy(next).into_owned();
            let time = v["time"].as_str().filter(|_| v["match"] == true).map(String::from);
            let year_written =
                time.as_ref().is_some_and(|t| t.get(..4).is_some_and(|y| text.contains(y)));
            out.push(Expect {
                file: path.display().to_string(),
                line: i as u64 + 2,
                text,
                host: v["host"].as_str().map(String::from),
                time: time.filter(|_| year_written),
            });
        }
    }
    out
}

/// The wall time in Europe/Zurich of an RFC 3339 instant, as `YYYY-MM-DDTHH:MM:SS`.
fn zurich(rfc3339: &str) -> String {
    let ts: jiff::Timestamp = rfc3339.parse().unwrap();
    let tz = jiff::tz::TimeZone::get("Europe/Zurich").unwrap();
    ts.to_zoned_datetime(tz).strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

#[test]
#[ignore = "reads ../shared/corpus; run by scripts/test"]
fn corpus_clients_and_times() {
    let expects = annotations();
    let with_host = expects.iter().filter(|e| e.host.is_some()).count();
    let with_time = expects.iter().filter(|e| e.time.is_some()).count();
    assert!(
        with_host >= 150 && with_time >= 130,
        "corpus too small: {with_host} hosts, {with_time} times"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "z.toml", b"[source]\ntimezone = \"Europe/Zurich\"\n");
    let mut failures = Vec::new();
    let mut files: Vec<&str> = expects.iter().map(|e| e.file.as_str()).collect();
    files.dedup();
    for file in files {
        let out = json_lines(&ok(&["-c", &cfg, "parse", "--format", "auto", "--json", file]));
        for e in expects.iter().filter(|e| e.file == file) {
            let got = &out[e.line as usize - 1];
            if let Some(h) = &e.host
                && got["client"].as_str() != Some(h)
            {
                failures.push(format!(
                    "{}:{}: client {} != {h}: {}",
                    e.file, e.line, got["client"], e.text
                ));
            }
            if let Some(t) = &e.time {
                let have = got["time"].as_str().map(zurich);
                if have.as_deref() != Some(t) {
                    failures
                        .push(format!("{}:{}: time {have:?} != {t}: {}", e.file, e.line, e.text));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} annotated lines wrong:\n{}",
        failures.len(),
        expects.len(),
        failures.join("\n")
    );
}
