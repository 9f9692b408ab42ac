//! Batch scans: compressed files known by their first bytes, files put in
//! time order as logrotate names them, `--since`/`--until` and `--shard`.

use crate::exactness::{CONFIG, alert_lines, generate, sequential};
use crate::util::{ok, run, write};
use logwarden::config::{Config, Overrides};
use std::io::Write as _;

/// `text` compressed as `kind` (gzip, zstd, xz, bzip2).
fn compress(kind: &str, text: &[u8]) -> Vec<u8> {
    match kind {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        }
        "zstd" => zstd::encode_all(text, 1).unwrap(),
        "xz" => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(text).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        }
    }
}

/// Alerts of `replay --json` as `rule key line count` (no file name).
fn alerts_of(cfg: &str, files: &[&str]) -> Vec<String> {
    let args = [&["-c", cfg, "replay", "--json"][..], files].concat();
    alert_keys(&ok(&args))
}

/// `replay --json`'s alerts as `rule key line count`.
fn alert_keys(json: &str) -> Vec<String> {
    let field = |a: &serde_json::Value, k: &str| a[k].to_string();
    let all = crate::util::json_lines(json);
    all.iter().map(|a| ["rule", "key", "line", "count"].map(|k| field(a, k)).join(" ")).collect()
}

/// Each compressed format is read by its first bytes, under any name or on
/// standard input — also two members (or frames, streams) one after
/// another — and gives the same alerts as the plain file.
#[test]
fn every_compression_is_known_by_its_first_bytes_whatever_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.toml", CONFIG.as_bytes());
    let text = generate(7, 1_700_000_000, 20_000);
    let plain = write(dir.path(), "plain.log", text.as_bytes());
    let want = alerts_of(&cfg, &[&plain]);
    assert!(want.len() > 20, "{}", want.len());
    let bytes = text.as_bytes();
    let cut =
        bytes.len() / 2 + bytes[bytes.len() / 2..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let (a, b) = bytes.split_at(cut);
    for kind in ["gzip", "zstd", "xz", "bzip2"] {
        let two = [compress(kind, a), compress(kind, b)].concat();
        for name in [format!("{kind}.log"), format!("{kind}.txt.gz")] {
            let f = write(dir.path(), &name, &two);
            assert_eq!(alerts_of(&cfg, &[&f]), want, "{kind} named {name}");
        }
        let out = run(&["-c", &cfg, "replay", "--json", "-"], &two);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(alert_keys(&String::from_utf8_lossy(&out.stdout)), want, "{kind} on stdin");
    }
}

/// Four hits of one client per file, files two hours apart, windows of an
/// hour: read oldest first, every file alerts; read newest first, the older
/// files' hits are late and only the newest alerts.
fn rotated(dir: &std::path::Path, names: &[&str]) {
    for (k, name) in names.iter().enumerate() {
        let mut text = String::new();
        for s in 0..4 {
            let t = jiff::Timestamp::from_second(1_700_000_000 + k as i64 * 7_200 + s).unwrap();
            let stamp = t.strftime("%d/%b/%Y:%H:%M:%S +0000");
            text += &format!(
                "10.0.0.1 - - [{stamp}] \"GET /today_download HTTP/1.1\" 200 5 \"-\" \"t\"\n"
            );
        }
        let bytes = if name.ends_with(".gz") {
            compress("gzip", text.as_bytes())
        } else {
            text.into_bytes()
        };
        write(dir, name, &bytes);
    }
}

const ROTATED_RULE: &str =
    "[[rule]]\ncontains = \"today_download\"\nthreshold = 4\nwindow = \"1h\"\ncooldown = 0\n";

/// The files alerts came from, in order.
fn alert_files(cfg: &str, args: &[&str]) -> Vec<String> {
    let all = [&["-c", cfg, "replay", "--json"][..], args].concat();
    crate::util::json_lines(&ok(&all))
        .iter()
        .map(|a| {
            std::path::Path::new(a["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn rotations_are_read_oldest_first_as_logrotate_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.toml", ROTATED_RULE.as_bytes());
    let logs = dir.path().join("numbered");
    std::fs::create_dir(&logs).unwrap();
    // Oldest first: .10.gz, .2.gz, .1, then the current file.
    rotated(&logs, &["access.log.10.gz", "access.log.2.gz", "access.log.1", "access.log"]);
    let d = logs.display().to_string();
    let want = ["access.log.10.gz", "access.log.2.gz", "access.log.1", "access.log"];
    assert_eq!(alert_files(&cfg, &[&d]), want, "a directory");
    assert_eq!(alert_files(&cfg, &[&format!("{d}/access.log*")]), want, "a glob");
    let given: Vec<String> = ["access.log", "access.log.1", "access.log.10.gz", "access.log.2.gz"]
        .iter()
        .map(|n| format!("{d}/{n}"))
        .collect();
    let given: Vec<&str> = given.iter().map(String::as_str).collect();
    assert_eq!(alert_files(&cfg, &given), want, "files named in another order");
    let kept = alert_files(&cfg, &[&["--no-sort"][..], &given].concat());
    assert_eq!(kept, ["access.log"], "--no-sort: newest first, the rest late");
    let dated = dir.path().join("dated");
    std::fs::create_dir(&dated).unwrap();
    rotated(
        &dated,
        &["ssl_www_log-2025-11-02.gz", "ssl_www_log-2025-11-09", "ssl_www_log-2025-11-10"],
    );
    let want = ["ssl_www_log-2025-11-02.gz", "ssl_www_log-2025-11-09", "ssl_www_log-2025-11-10"];
    assert_eq!(alert_files(&cfg, &[&dated.display().to_string()]), want);
}

/// `--since`/`--until` raise what a plain loop over the lines from one
/// window before `since` to `until` raises, alerting from `since` on; a
/// file wholly before that is left out unread.
#[test]
fn since_and_until_match_a_sequential_loop_over_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = write(dir.path(), "c.toml", CONFIG.as_bytes());
    let cfg = Config::parse(CONFIG, None, &Overrides::default()).unwrap();
    let files: Vec<(String, String)> = (0..3u64)
        .map(|k| {
            let text = generate(k + 11, 1_700_000_000 + k * 2_000, 30_000);
            (write(dir.path(), &format!("day{k}.log"), text.as_bytes()), text)
        })
        .collect();
    // 1_700_002_500 is inside day1; 1_700_004_900 inside day2.
    let (since, until) = (1_700_002_500u32, 1_700_004_900u32);
    let want = sequential(&cfg, &files, (since, until));
    assert!(want.len() > 20, "{}", want.len());
    let unbounded = sequential(&cfg, &files, (0, u32::MAX));
    assert_ne!(want, unbounded);
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    let rfc = |t: u32| jiff::Timestamp::from_second(i64::from(t)).unwrap().to_string();
    let (s, u) = (rfc(since), rfc(until));
    let args =
        [&["-c", &cfg_path, "replay", "--json", "--since", &s, "--until", &u][..], &names].concat();
    let out = run(&args, b"");
    assert!(out.status.success(), "{out:?}");
    let got = alert_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(got, want);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 file(s) left out"), "day0 ends before since − window: {err}");
    let bad = run(&["-c", &cfg_path, "replay", "--since", "yesterday", names[0]], b"");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a time"));
}

/// With `--since`, a named pipe (`<(zcat …)`) is read once, whole: its
/// first line is not read away to see whether it is in the range, so the
/// alerts are those of the same lines in a file.
#[test]
fn since_reads_a_pipe_whole() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.toml", CONFIG.as_bytes());
    let text = generate(13, 1_700_000_000, 20_000);
    let plain = write(dir.path(), "a.log", text.as_bytes());
    let since = jiff::Timestamp::from_second(1_700_000_600).unwrap().to_string();
    let want = alert_keys(&ok(&["-c", &cfg, "replay", "--json", "--since", &since, &plain]));
    assert!(want.len() > 10, "{}", want.len());
    let fifo = dir.path().join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let to_pipe = fifo.clone();
    // Writes once; a reader that closes the pipe early ends it.
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(&to_pipe).unwrap();
        f.write_all(text.as_bytes()).unwrap_or(());
    });
    let pipe = fifo.to_str().unwrap();
    let mut child = std::process::Command::new(crate::util::bin())
        .args(["-c", &cfg, "replay", "--json", "--since", &since, pipe])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).map(|_| out)
    });
    // Reading the pipe's head and then the pipe again would wait for a
    // writer that is gone.
    assert!(crate::util::exit_status(&mut child).success());
    writer.join().unwrap();
    assert_eq!(alert_keys(&reader.join().unwrap().unwrap()), want);
}

/// `--shard I/N`: for N = 1, 2, 3 and 7 the shards' alerts together are the
/// whole run's, each key in exactly one shard.
#[test]
fn shards_together_raise_the_whole_runs_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.toml", CONFIG.as_bytes());
    let log = write(dir.path(), "a.log", generate(5, 1_700_000_000, 60_000).as_bytes());
    let mut whole = alert_lines(&ok(&["-c", &cfg, "replay", "--json", &log]));
    whole.sort();
    assert!(whole.len() > 50, "{}", whole.len());
    for n in [1u32, 2, 3, 7] {
        let mut union = Vec::new();
        for i in 0..n {
            let shard = format!("{i}/{n}");
            let part = alert_lines(&ok(&["-c", &cfg, "replay", "--json", "--shard", &shard, &log]));
            assert!(n == 1 || part.len() < whole.len(), "shard {shard} has every alert");
            union.extend(part);
        }
        union.sort();
        assert_eq!(union, whole, "N = {n}");
    }
    let bad = run(&["-c", &cfg, "replay", "--shard", "3/3", &log], b"");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("0 <= I < N"));
}

/// `replay --merge`: four servers' dated series from `loadgen farm` (a
/// client's requests spread at random over them, about an hour of log time
/// across midnight) merged by time raise exactly the farm-wide alerts of
/// loadgen's model; the same files read one server after another do not.
#[test]
fn merge_of_four_servers_alerts_as_loadgen_farms_model() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = format!("{}/web{{n}}/ssl_www_log-%Y-%m-%d", dir.path().display());
    let expect = dir.path().join("expect.jsonl");
    let out = std::process::Command::new(crate::util::loadgen())
        .args(["farm", "--nodes", "4", "--spread", "random", "--path", &pattern])
        .args(["--lines", "120000", "--attackers", "100", "--log-rate", "30"])
        .args(["--start", "2025-07-09T23:30:00+00:00", "--expect", expect.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key_count = |a: &serde_json::Value| {
        (a["key"].as_str().unwrap().to_string(), a["count"].as_u64().unwrap())
    };
    let mut want: Vec<(String, u64)> =
        crate::util::json_lines(&std::fs::read_to_string(&expect).unwrap())
            .iter()
            .map(key_count)
            .collect();
    want.sort();
    assert!(want.len() >= 100, "{} expected alerts", want.len());
    let cfg = write(dir.path(), "c.toml", b"[source]\ntimezone = \"UTC\"\nipv6_prefix = 128\n");
    let servers: Vec<String> =
        (1..=4).map(|n| format!("{}/web{n}", dir.path().display())).collect();
    assert_eq!(std::fs::read_dir(&servers[0]).unwrap().count(), 2, "a day's file and the next");
    let replay = |merge: bool| {
        let mut args = vec!["-c", &cfg, "replay", "--json"];
        if merge {
            args.push("--merge");
        }
        args.extend(servers.iter().map(String::as_str));
        let mut got: Vec<(String, u64)> =
            crate::util::json_lines(&ok(&args)).iter().map(key_count).collect();
        got.sort();
        got
    };
    assert_eq!(replay(true), want);
    assert_ne!(replay(false), want, "server after server, the later servers' lines come late");
}

/// Compressed files decompressed ahead, several at once, raise exactly the
/// alerts (files and lines too) of reading them one after another, for any
/// number of threads.
#[test]
fn decompressing_ahead_changes_no_alert_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.toml", CONFIG.as_bytes());
    let files: Vec<String> = (0..4u64)
        .map(|k| {
            let text = generate(k + 21, 1_700_000_000 + k * 2_000, 25_000);
            let kind = ["gzip", "zstd", "xz", "bzip2"][k as usize];
            write(dir.path(), &format!("day{k}.log"), &compress(kind, text.as_bytes()))
        })
        .collect();
    let names: Vec<&str> = files.iter().map(String::as_str).collect();
    let alerts = |extra: &[&str]| {
        let args = [&["-c", &cfg, "replay", "--json", "--no-sort"][..], extra, &names].concat();
        alert_lines(&ok(&args))
    };
    let want = alerts(&["--read-ahead", "0", "--threads", "1"]);
    assert!(want.len() > 50, "{}", want.len());
    for threads in ["1", "2", "3", "8"] {
        assert_eq!(alerts(&["--threads", threads]), want, "--threads {threads}");
    }
    assert_eq!(alerts(&["--read-ahead", "8", "--threads", "4"]), want, "a small read-ahead");
    // A read-ahead past the bound is refused, not allocated.
    let out = run(&[&["replay", "--read-ahead", "100000000000"][..], &names].concat(), b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--read-ahead") && err.contains("65536"), "{err}");
}

/// On a terminal, the progress bar covers every file: the bytes of all of
/// them on disk (the compressed bytes of compressed ones), counted chunk by
/// chunk to the total, and the files done — also for a merge of servers.
/// (`script` gives the run a terminal.)
#[test]
fn the_progress_bar_covers_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.toml", CONFIG.as_bytes());
    let text = generate(3, 1_700_000_000, 20_000);
    // One server's series of two files, and another's one file.
    let series = dir.path().join("web1");
    std::fs::create_dir(&series).unwrap();
    let files = [
        write(&series, "access.log.1.gz", &compress("gzip", text.as_bytes())),
        write(&series, "access.log", text.as_bytes()),
        write(dir.path(), "web2.log.zst", &compress("zstd", text.as_bytes())),
    ];
    let total: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    let bytes = indicatif::HumanBytes(total).to_string();
    let web1 = series.display();
    for how in [
        format!("--no-sort '{web1}/access.log.1.gz' '{web1}/access.log'"),
        format!("--merge '{web1}'"),
    ] {
        let cmd =
            format!("'{}' -c '{cfg}' replay {how} '{}' > /dev/null", crate::util::bin(), files[2]);
        let out = std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("script (util-linux) runs");
        let screen = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{screen}");
        assert!(screen.contains(&format!("{bytes}/{bytes}")), "{how}: {bytes} in {screen}");
        assert!(screen.contains("3/3 files: done"), "{how}: {screen}");
    }
}

/// A compressed file cut short (a crash while logrotate compressed it) in
/// the middle of a series: its lines before the damage count, the files
/// after it are read, the summary is printed, and the run ends with exit 2
/// naming the file — alone, read ahead, merged, and in the report. It used
/// to end the whole scan at the damage.
#[test]
fn a_damaged_file_is_told_and_the_scan_goes_on() {
    let top = tempfile::tempdir().unwrap();
    let cfg = write(top.path(), "c.toml", ROTATED_RULE.as_bytes());
    let dir = top.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let hits = |client: &str, k: i64| -> String {
        let t = jiff::Timestamp::from_second(1_700_000_000 + k * 7_200).unwrap();
        let stamp = t.strftime("%d/%b/%Y:%H:%M:%S +0000");
        format!("{client} - - [{stamp}] \"GET /today_download HTTP/1.1\" 200 5 \"-\" \"t\"\n")
            .repeat(4)
    };
    write(&dir, "access.log.3.gz", &compress("gzip", hits("10.0.0.1", 0).as_bytes()));
    let filler = "10.9.9.9 - - [14/Nov/2023:22:13:20 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"t\"\n";
    let damaged = compress("gzip", (hits("10.0.0.2", 1) + &filler.repeat(200_000)).as_bytes());
    write(&dir, "access.log.2.gz", &damaged[..damaged.len() / 2]);
    write(&dir, "access.log.1.gz", &compress("gzip", hits("10.0.0.3", 2).as_bytes()));
    // The whole lines before the damage, as a decoder reading up to it gives them.
    let mut decoded = Vec::new();
    let mut gz = flate2::read::GzDecoder::new(&damaged[..damaged.len() / 2]);
    assert!(std::io::Read::read_to_end(&mut gz, &mut decoded).is_err());
    let lines = 8 + decoded.iter().filter(|&&b| b == b'\n').count();
    let d = dir.display().to_string();
    let report = format!("{}/r.html", top.path().display());
    for how in [&["--threads", "1"][..], &["--report", &report], &["--merge"]] {
        let args = [&["-c", &cfg, "replay", "--json"][..], how, &[&d]].concat();
        let out = run(&args, b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{how:?}: {err}");
        let keys: Vec<String> = crate::util::json_lines(&String::from_utf8_lossy(&out.stdout))
            .iter()
            .map(|a| a["key"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(keys, ["10.0.0.1", "10.0.0.2", "10.0.0.3"], "{how:?}: {err}");
        assert!(err.contains(&format!("summary: {lines} lines")), "{how:?}: {err}");
        let told = format!(
            "the scan is incomplete: 1 file(s) could not be read to the end (reading {d}/access.log.2.gz"
        );
        assert!(err.contains(&told), "{how:?}: {err}");
    }
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("not read to its end"), "{html}");
}
