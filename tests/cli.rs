//! The commands as a user runs them.

use crate::util::{json_lines, ok, run, write};
use std::io::Write;

const EXAMPLE: [&str; 4] = ["-c", "examples/logwarden.toml", "replay", "examples/access.log"];

#[test]
fn replay_example_prints_the_expected_alerts() {
    let out = ok(&EXAMPLE);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert_eq!(
        lines[0],
        "2025-07-09T00:02:46+09:00 examples/access.log:167 [today_download] SUSPICIOUS ACTIVITY: \
         IP 188.148.135.137 accessed today_download 10 times in 10 minutes"
    );
    assert!(
        lines[4].starts_with("2025-07-09T00:07:25+09:00 examples/access.log:446 [today_download]")
    );
    assert_eq!(lines.iter().filter(|l| l.contains("[env-probe]")).count(), 4);
}

#[test]
fn replay_json_has_the_documented_fields() {
    let out = ok(&["-c", "examples/logwarden.toml", "replay", "--json", "examples/access.log"]);
    let a = &json_lines(&out)[0];
    for k in ["rule", "key", "count", "window_s", "time", "file", "line", "message"] {
        assert!(a.get(k).is_some(), "missing {k} in {a}");
    }
    assert_eq!(a["key"], "188.148.135.137");
    assert_eq!(a["count"], 10);
    assert_eq!(a["window_s"], 600);
    assert_eq!(a["line"], 167);
}

#[test]
fn replay_summary_goes_to_stderr() {
    let out = run(&EXAMPLE, b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("summary: 600 lines"), "{err}");
    assert!(err.contains("alerts 6"), "{err}");
}

#[test]
fn replay_target_flags_define_a_single_rule() {
    let args = [
        "replay",
        "--json",
        "--target",
        "/.env",
        "--field",
        "path",
        "--threshold",
        "2",
        "--window",
        "1h",
        "--cooldown",
        "0",
        "examples/access.log",
    ];
    let alerts = json_lines(&ok(&args));
    assert!(!alerts.is_empty());
    assert!(alerts.iter().all(|a| a["rule"] == "command-line" && a["window_s"] == 3600));
    // cooldown 0: every hit at or above the threshold alerts, with growing counts.
    assert!(alerts.iter().any(|a| a["count"].as_u64() > Some(2)));
}

#[test]
fn stdin_and_multi_member_gzip_give_the_same_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read("examples/access.log").unwrap();
    let (a, b) = text.split_at(text.len() / 2);
    let mut gz = Vec::new();
    for part in [a, b] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).unwrap();
        gz.extend(e.finish().unwrap());
    }
    let gz_path = write(dir.path(), "access.log.gz", &gz);
    let strip = |s: &str| -> Vec<String> {
        json_lines(s)
            .iter()
            .map(|a| format!("{} {} {} {}", a["rule"], a["key"], a["line"], a["count"]))
            .collect()
    };
    let plain =
        strip(&ok(&["-c", "examples/logwarden.toml", "replay", "--json", "examples/access.log"]));
    let zipped = strip(&ok(&["-c", "examples/logwarden.toml", "replay", "--json", &gz_path]));
    let piped = run(&["-c", "examples/logwarden.toml", "replay", "--json", "-"], &text);
    assert_eq!(plain, zipped);
    assert_eq!(plain, strip(&String::from_utf8(piped.stdout).unwrap()));
}

#[test]
fn bad_lines_are_counted_and_skipped_and_line_numbers_stay_right() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Vec::new();
    let hit = |ip: &str, s: u32| {
        format!(
            "{ip} - - [10/Oct/2025:13:55:{s:02} +0000] \"GET /today_download HTTP/1.1\" 200 5 \"-\" \"x\"\n"
        )
    };
    log.extend(b"\x00\xff garbage today_download \x1b[31m\n");
    log.extend(
        b"9.9.9.9 - - [31/Feb/2025:13:55:00 +0000] \"GET /today_download HTTP/1.1\" 200 5\n",
    );
    log.extend(b"9.9.9.9 - - [10/Oct/2025:13:55:00 +0000] \"GET /today_download");
    log.extend(std::iter::repeat_n(b'a', 70_000));
    log.extend(b" HTTP/1.1\" 200 5\n");
    log.extend(b"\n");
    for s in 0..3 {
        log.extend(hit("1.2.3.4", s).as_bytes());
    }
    let path = write(dir.path(), "bad.log", &log);
    let out =
        run(&["replay", "--json", "--threshold", "3", "--target", "today_download", &path], b"");
    assert!(out.status.success());
    let alerts = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["line"], 7);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("summary: 7 lines"), "{err}");
    assert!(
        err.contains("bad_client 1") && err.contains("bad_time 1") && err.contains("too_long 1"),
        "{err}"
    );
}

#[test]
fn parse_shows_fields_errors_and_matching_rules() {
    let dir = tempfile::tempdir().unwrap();
    let log = concat!(
        "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /today_download?x=1 HTTP/1.1\" 404 5 \"-\" \"ua \\\"q\\\"\"\n",
        "[Thu Jul 11 01:21:41 2013] [error] [client 194.228.20.113] File does not exist: /x [client 6.6.6.6]\n",
        "not a log line\n",
    );
    let path = write(dir.path(), "p.log", log.as_bytes());
    let out = json_lines(&ok(&[
        "-c",
        "examples/logwarden.toml",
        "parse",
        "--format",
        "auto",
        "--json",
        &path,
    ]));
    assert_eq!(out[0]["format"], "combined");
    assert_eq!(out[0]["client"], "1.2.3.4");
    assert_eq!(out[0]["time"], "2000-10-10T13:55:36-07:00");
    assert_eq!(out[0]["method"], "GET");
    assert_eq!(out[0]["path"], "/today_download");
    assert_eq!(out[0]["status"], 404);
    assert_eq!(out[0]["user_agent"], "ua \\\"q\\\"");
    assert_eq!(out[0]["rules"], serde_json::json!(["today_download"]));
    assert_eq!(out[1]["format"], "apache_error");
    assert_eq!(out[1]["client"], "194.228.20.113");
    assert_eq!(out[2]["line"], 3);
    assert!(out[2]["error"].as_str().unwrap().contains("format"));
    let text = ok(&["parse", "--format", "auto", &path]);
    assert!(text.lines().next().unwrap().contains("client=1.2.3.4"));
}

#[test]
fn check_prints_effective_config_and_rejects_bad_ones() {
    let out = ok(&["-c", "examples/logwarden.toml", "check"]);
    assert!(
        out.contains("poll_interval = \"1s\"") && out.contains("name = \"env-probe\""),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.toml", b"[[rule]]\ncontains = \"x\"\n\nthreshold = 0\n");
    let out = run(&["-c", &bad, "check"], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{bad}:4: rule[1].threshold: must be from 1 to 4294967295")),
        "{err}"
    );
}

#[test]
fn missing_files_are_errors() {
    let out = run(&["replay", "/nonexistent/access.log"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/access.log"));
}

#[test]
fn test_alert_reports_each_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.json");
    let cfg = format!(
        "[[output]]\ntype = \"exec\"\ncommand = [\"sh\", \"-c\", \"cat > {}\"]\n\
         [[output]]\ntype = \"exec\"\ncommand = [\"sh\", \"-c\", \"echo broken >&2; exit 4\"]\n\
         [[output]]\ntype = \"syslog\"\ntarget = \"unix:{}/no.sock\"\n",
        out.display(),
        dir.path().display()
    );
    let cfg = write(dir.path(), "c.toml", cfg.as_bytes());
    let res = run(&["-c", &cfg, "test-alert"], b"");
    assert_eq!(res.status.code(), Some(1));
    let text = String::from_utf8_lossy(&res.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ok      exec"), "{text}");
    assert!(
        lines[1].starts_with("FAILED  exec")
            && lines[1].contains("exit status: 4")
            && lines[1].contains("broken"),
        "{text}"
    );
    assert!(lines[2].starts_with("FAILED  syslog unix:"), "{text}");
    let sent: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(sent["key"], "192.0.2.1");
    assert!(sent["message"].as_str().unwrap().starts_with("TEST ALERT"));
}

/// A webhook's `headers` (an API key, a content type) are sent with each
/// alert; `check` prints their names, not their values; a header with a line
/// break in its value is refused, naming the key.
#[test]
fn a_webhook_sends_its_headers() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let head = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut lines = Vec::new();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 2 {
            lines.push(line.trim_end().to_ascii_lowercase());
            line.clear();
        }
        let reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        stream.write_all(reply.as_bytes()).unwrap_or(());
        lines
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[[output]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
         headers = {{ Authorization = \"GenieKey s3cret\", Content-Type = \"application/vnd.api+json\" }}\n"
    );
    let cfg = write(dir.path(), "c.toml", cfg.as_bytes());
    let res = run(&["-c", &cfg, "test-alert"], b"");
    assert!(res.status.success(), "{res:?}");
    let head = head.join().unwrap();
    assert!(head.contains(&"authorization: geniekey s3cret".to_string()), "{head:?}");
    let types: Vec<&String> = head.iter().filter(|l| l.starts_with("content-type:")).collect();
    assert_eq!(types, ["content-type: application/vnd.api+json"], "{head:?}");
    let checked = run(&["-c", &cfg, "check"], b"");
    let shown = String::from_utf8_lossy(&checked.stdout);
    assert!(shown.contains("Authorization") && !shown.contains("s3cret"), "{shown}");
    // Another Content-Type: a plain-text body (ntfy), its values sanitized.
    let (port, bodies) = crate::util::webhook_server(0);
    let cfg = format!(
        "[[output]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/topic\"\nbody = \"{{message}} ({{client}})\"\n\
         headers = {{ Content-Type = \"text/plain\", Title = \"logwarden\" }}\n"
    );
    let cfg = write(dir.path(), "text.toml", cfg.as_bytes());
    let res = run(&["-c", &cfg, "test-alert"], b"");
    assert!(res.status.success(), "{res:?}");
    let body = bodies.lock().unwrap()[0].clone();
    assert!(body.starts_with("TEST ALERT") && body.ends_with(" (192.0.2.1)"), "{body}");
    let bad = "[[output]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nheaders = { X-Key = \"a\\nb\" }\n";
    let bad = write(dir.path(), "bad.toml", bad.as_bytes());
    let res = run(&["-c", &bad, "check"], b"");
    let text = String::from_utf8_lossy(&res.stderr);
    assert!(
        text.contains(":4: output[1].headers: the value of \"X-Key\" holds a control character"),
        "{text}"
    );
}

/// A webhook that answers with a redirect or a 404 has not taken the alert:
/// `test-alert` says so (it said "ok" for a 404), and a redirect is not
/// followed (a 301 or 302 turned the POST into a GET, whose 200 passed for
/// a delivery).
#[test]
fn test_alert_reports_a_webhook_that_refuses_or_redirects() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = String::new();
            BufReader::new(stream.try_clone().unwrap()).read_line(&mut request).unwrap_or(0);
            let words: Vec<&str> = request.split(' ').take(2).collect();
            record.lock().unwrap().push(words.join(" "));
            let answer = match words.get(1).copied() {
                Some("/moved") => {
                    "301 Moved Permanently\r\nLocation: https://new.example/hook/SECRET"
                }
                Some("/found") => "302 Found\r\nLocation: /elsewhere",
                Some("/gone") => "404 Not Found",
                _ => "200 OK",
            };
            let reply =
                format!("HTTP/1.1 {answer}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.write_all(reply.as_bytes()).unwrap_or(());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("/moved", "refused (HTTP status 301, moved to https://new.example/…); not retried"),
        ("/found", "refused (HTTP status 302, moved to another path of this host); not retried"),
        ("/gone", "refused (HTTP status 404); not retried"),
    ];
    for (path, why) in cases {
        let cfg =
            format!("[[output]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}{path}\"\n");
        let cfg = write(dir.path(), "c.toml", cfg.as_bytes());
        let res = run(&["-c", &cfg, "test-alert"], b"");
        let text = String::from_utf8_lossy(&res.stdout);
        assert_eq!(res.status.code(), Some(1), "{path}: {text}");
        assert_eq!(text.trim(), format!("FAILED  webhook http://127.0.0.1:{port}/…: {why}"));
    }
    let cfg = format!("[[output]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/ok\"\n");
    let cfg = write(dir.path(), "c.toml", cfg.as_bytes());
    assert_eq!(run(&["-c", &cfg, "test-alert"], b"").status.code(), Some(0));
    assert_eq!(*seen.lock().unwrap(), ["POST /moved", "POST /found", "POST /gone", "POST /ok"]);
}

/// A configuration holding secrets (a webhook's token, the status page's)
/// that every user may read is told by `check` and at the daemon's start,
/// naming the keys, not their values; one only its group reads is not.
#[test]
fn secrets_every_user_may_read_are_told() {
    use crate::util::{daemon::Daemon, wait_until};
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "access.log", b"");
    let log = dir.path().join("access.log");
    let secrets = "[[output]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook?token=SECRETTOKEN\"\n\
                   [http]\nlisten = \"127.0.0.1:0\"\ntoken = \"SECRETPAGE\"\n";
    let config = Daemon::config(dir.path(), log.to_str().unwrap(), secrets);
    let told = "holds secrets (http.token, output[2].url) and every user of this machine may read it (mode 644)";
    for mode in ["644", "640"] {
        // The wrapper sets the mode of the configuration the helper wrote
        // ($3: `bin -c FILE run`), then runs the daemon.
        let chmod = format!("chmod {mode} \"$3\" && exec \"$@\"");
        let d = Daemon::start_wrapped(dir.path(), &config, &[], &["sh", "-c", &chmod, "sh"]);
        wait_until("the start", || d.log_text().contains("Following"));
        let cfg = dir.path().join("logwarden.toml");
        let check = run(&["-c", cfg.to_str().unwrap(), "check"], b"");
        let check = format!(
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = d.stop();
        for text in [&check, &log] {
            assert_eq!(text.contains(told), mode == "644", "mode {mode}: {text}");
            assert!(!text.contains("SECRET"), "{text}");
        }
    }
}

/// Standard output and error already closed (`… 2>&1 | head` once head has
/// gone): a command ends with its own exit code, not a panic (SIGABRT) over
/// a line it could not write.
#[test]
fn a_closed_terminal_ends_a_command_normally() {
    let cases: [(&[&str], i32); 3] = [
        (&["replay", "examples/access.log"], 0),
        (&["check"], 0),
        (&["replay", "/nonexistent/access.log"], 2),
    ];
    for (args, code) in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let status = std::process::Command::new(crate::util::bin())
            .args(["-c", "examples/logwarden.toml"])
            .args(args)
            .current_dir(crate::util::root())
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code), "{args:?}: {status}");
    }
}

/// Standard output on a full disk (`/dev/full`): the command fails, saying
/// so, where it ended 0 with its output lost (`parse`, `check`), as `replay`
/// already did; a closed pipe (above, and `parse … | head`) stays no error.
#[test]
fn a_full_disk_under_standard_output_fails_the_command() {
    let cases: [&[&str]; 3] =
        [&["parse", "examples/access.log"], &["check"], &["replay", "examples/access.log"]];
    for args in cases {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = std::process::Command::new(crate::util::bin())
            .args(["-c", "examples/logwarden.toml"])
            .args(args)
            .current_dir(crate::util::root())
            .stdout(full)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains("standard output: No space left on device"), "{args:?}: {text}");
    }
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = std::process::Command::new(crate::util::bin())
        .args(["-c", "examples/logwarden.toml", "parse", "examples/access.log"])
        .current_dir(crate::util::root())
        .stdout(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Times written with `%{…}t` (Apache formats them with strftime): ISO
/// 8601, Apache's own milliseconds example, and a wall time in the
/// source's zone give the same alerts, at the same instants, as `%t`
/// lines; a pattern that cannot give a whole time back is refused at
/// `check`. Before, such a format was refused: "has no %t".
#[test]
fn a_time_written_with_strftime_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // 2025-10-10T11:55:00Z + i seconds, hits of one client.
    let stamp = |i: u32, pattern: &str| {
        let t = jiff::Timestamp::from_second(1_760_097_300 + i64::from(i)).unwrap();
        t.to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Berlin").unwrap())
            .strftime(pattern)
            .to_string()
    };
    let formats = [
        ("%h %l %u %t \"%r\" %>s %b", "%d/%b/%Y:%H:%M:%S %z", "[", "]"),
        ("%h %l %u [%{%Y-%m-%dT%H:%M:%S%z}t] \"%r\" %>s %b", "%Y-%m-%dT%H:%M:%S%z", "[", "]"),
        (
            "%h %l %u [%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t] \"%r\" %>s %b",
            "%d/%b/%Y %T.123 %z",
            "[",
            "]",
        ),
        ("%h %l %u %{%Y-%m-%d %H:%M:%S}t \"%r\" %>s %b", "%Y-%m-%d %H:%M:%S", "", ""),
    ];
    let mut seen = Vec::new();
    for (k, (format, pattern, open, close)) in formats.iter().enumerate() {
        let log: String = (0..12)
            .map(|i| {
                let t = stamp(i * 7, pattern);
                format!("203.0.113.5 - - {open}{t}{close} \"GET /today_download HTTP/1.1\" 200 5\n")
            })
            .collect();
        let f = write(dir.path(), &format!("{k}.log"), log.as_bytes());
        let toml = format!(
            "[source]\nformat = '{format}'\ntimezone = \"Europe/Berlin\"\n[[rule]]\nthreshold = 10\n"
        );
        let cfg = write(dir.path(), &format!("{k}.toml"), toml.as_bytes());
        let alerts = crate::util::replay_alerts(&cfg, &f);
        let got: Vec<(String, u64, u64)> = alerts
            .iter()
            .map(|a| {
                (
                    a["time"].as_str().unwrap().to_string(),
                    a["line"].as_u64().unwrap(),
                    a["count"].as_u64().unwrap(),
                )
            })
            .collect();
        seen.push(got);
    }
    assert_eq!(seen[0], [("2025-10-10T13:56:03+02:00".to_string(), 10, 10)]);
    assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
    let bad = write(dir.path(), "bad.toml", b"[source]\nformat = '%h [%{%Y-%m-%d}t] \"%r\"'\n");
    let out = run(&["-c", &bad, "check"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("it needs a whole date and time"), "{err}");
}

/// An `https://` webhook whose certificate an internal CA signed is
/// trusted when the machine trusts that CA (here through `SSL_CERT_FILE`,
/// as for a `rediss://` farm): `test-alert` delivers it. Only Mozilla's
/// roots were trusted, so an internal alerting endpoint could not be used.
#[test]
#[ignore = "needs openssl; run by scripts/test"]
fn a_webhook_signed_by_a_ca_the_machine_trusts_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (port, ca, _server) = crate::util::https_once(dir.path());
    let cfg = write(
        dir.path(),
        "w.toml",
        format!("[[output]]\ntype = \"webhook\"\nurl = \"https://127.0.0.1:{port}/hook\"\ntimeout = \"5s\"\n").as_bytes(),
    );
    let out = std::process::Command::new(crate::util::bin())
        .args(["-c", &cfg, "test-alert"])
        .env("SSL_CERT_FILE", &ca)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("ok"), "{text}");
    let received = std::fs::read_to_string(dir.path().join("received")).unwrap();
    assert!(
        received.contains("POST /hook HTTP/1.1") && received.contains("\"key\":\"192.0.2.1\""),
        "{received}"
    );
}

/// A webhook behind the proxy the environment names (`HTTP_PROXY`, as a
/// drop-in's `Environment=` sets it) goes through it: the host, which does
/// not resolve here, is only ever asked of the proxy; `NO_PROXY` naming
/// the host sends it straight (and it fails to resolve).
#[test]
fn a_webhook_goes_through_the_proxy_the_environment_names() {
    let dir = tempfile::tempdir().unwrap();
    let (port, seen) = crate::util::webhook_server(0);
    let hook = "[[output]]\ntype = \"webhook\"\nurl = \"http://hooks.example.invalid/hook\"\ntimeout = \"5s\"\n";
    let cfg = write(dir.path(), "w.toml", hook.as_bytes());
    let proxy = format!("http://127.0.0.1:{port}");
    let test_alert = |no_proxy: &str| {
        let out = std::process::Command::new(crate::util::bin())
            .args(["-c", &cfg, "test-alert"])
            .env("HTTP_PROXY", &proxy)
            .env("NO_PROXY", no_proxy)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = test_alert("");
    assert!(text.starts_with("ok"), "{text}");
    let seen_now = seen.lock().unwrap().clone();
    assert_eq!(seen_now.len(), 2, "{seen_now:?}");
    assert_eq!(seen_now[0], "CONNECT hooks.example.invalid:80");
    assert!(seen_now[1].contains("\"key\":\"192.0.2.1\""), "{seen_now:?}");
    let text = test_alert("hooks.example.invalid");
    assert!(text.starts_with("FAILED"), "{text}");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

/// An nginx `log_format` pasted as the format (its `main`, with the client
/// in `$http_x_forwarded_for` behind a proxy) reads the lines as the same
/// format written with Apache's directives does: the same alerts. Before,
/// such a format was refused ("unknown format").
#[test]
fn an_nginx_log_format_reads_as_its_apache_counterpart() {
    let dir = tempfile::tempdir().unwrap();
    let log: String = (0..6)
        .map(|i| {
            let client = ["203.0.113.7", "198.51.100.9"][i % 2];
            format!("10.0.0.2 - - [10/Oct/2025:13:55:3{i} +0200] \"GET /today_download HTTP/1.1\" 200 612 \"-\" \"curl/8\" \"{client}, 10.0.0.2\"\n")
        })
        .collect();
    let f = write(dir.path(), "nginx.log", log.as_bytes());
    let nginx = r#"format = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for"'
client = "$http_x_forwarded_for""#;
    let apache = r#"format = '%a - %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" "%{X-Forwarded-For}i"'
client = "%{X-Forwarded-For}i""#;
    let alerts = |source: &str, name: &str| {
        let toml = format!(
            "[source]\n{source}\ntrusted_proxies = [\"10.0.0.0/8\"]\n[[rule]]\nthreshold = 3\n"
        );
        crate::util::replay_alerts(&write(dir.path(), name, toml.as_bytes()), &f)
    };
    let (from_nginx, from_apache) = (alerts(nginx, "nginx.toml"), alerts(apache, "apache.toml"));
    let keys: Vec<&str> = from_nginx.iter().map(|a| a["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["203.0.113.7", "198.51.100.9"]);
    assert_eq!(from_nginx, from_apache);
}

/// Access lines behind a syslog prefix (nginx's `access_log syslog:…`,
/// Apache's `CustomLog "|logger …"`, collected by rsyslog in its
/// traditional or high-precision file format, or relayed once more) raise
/// the alerts of the same lines without it, with `combined` and `auto`.
/// Before, every such line was skipped as malformed.
#[test]
fn access_lines_behind_a_syslog_prefix_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let prefixes = [
        "",
        "Oct 10 11:55:31 web01 nginx: ",
        "2025-10-10T11:55:31.123456+00:00 web01 apache2[812]: ",
        "Oct 10 11:55:32 loghost web01: Oct 10 11:55:31 web01 nginx: ",
    ];
    let mut seen = Vec::new();
    for (k, prefix) in prefixes.iter().enumerate() {
        let log: String = (0..10)
            .map(|i| format!("{prefix}203.0.113.{} - - [10/Oct/2025:11:55:{i:02} +0000] \"GET /today_download HTTP/1.1\" 200 5 \"-\" \"x\"\n", i % 2))
            .collect();
        let f = write(dir.path(), &format!("{k}.log"), log.as_bytes());
        for format in ["combined", "auto"] {
            let toml = format!("[source]\nformat = \"{format}\"\n[[rule]]\nthreshold = 5\n");
            let cfg = write(dir.path(), &format!("{k}-{format}.toml"), toml.as_bytes());
            let alerts = crate::util::replay_alerts(&cfg, &f);
            let got: Vec<(String, u64)> = alerts
                .iter()
                .map(|a| (a["key"].as_str().unwrap().to_string(), a["line"].as_u64().unwrap()))
                .collect();
            seen.push((k, format, got));
        }
    }
    let want = vec![("203.0.113.0".to_string(), 9), ("203.0.113.1".to_string(), 10)];
    for (k, format, got) in &seen {
        assert_eq!(*got, want, "prefix {k}, {format}");
    }
}

/// `check` reads the last lines of each log `run` would follow: a format
/// that reads none of them (a wrong `format`, hostnames for `%h`) fails,
/// naming the reason and a line; one that reads them says so; an error
/// log's lines without a client are read as they should be. Before, a
/// wrong format passed `check`, and `run` skipped every line.
#[test]
fn check_reads_the_end_of_each_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let combined =
        "203.0.113.5 - - [10/Oct/2025:11:55:31 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"x\"\n";
    let vhost = format!("www.example.com:443 {combined}");
    let named = combined.replacen("203.0.113.5", "crawler-66-249-66-1.googlebot.com", 1);
    let notice = "[Fri Oct 10 11:55:31.000000 2025] [mpm_event:notice] [pid 1:tid 1] AH00489: Apache configured\n";
    let cases = [
        (
            "good",
            "combined",
            combined.repeat(30),
            0,
            "its last 20 lines read with the configured format",
        ),
        (
            "vhost",
            "combined",
            vhost.repeat(30),
            1,
            "0 of its last 20 lines read with the configured format; one that does not: the line does not have the configured format (malformed): www.example.com:443",
        ),
        (
            "named",
            "combined",
            named.repeat(3),
            1,
            "0 of its last 3 lines read with the configured format; one that does not: the client is not an IP address (bad_client): crawler-66-249-66-1.googlebot.com",
        ),
        (
            "error",
            "apache_error",
            notice.repeat(5),
            0,
            "its last 5 lines read with the configured format",
        ),
        ("empty", "combined", String::new(), 0, "no line yet"),
    ];
    for (name, format, text, code, said) in cases {
        write(dir.path(), &format!("{name}.log"), text.as_bytes());
        let toml = format!(
            "[source]\npath = \"{d}/{name}.log\"\nformat = \"{format}\"\n[[rule]]\nthreshold = 3\n[state]\ndir = \"{d}/state-{name}\"\n\
             [[output]]\ntype = \"jsonl\"\npath = \"{d}/alerts.jsonl\"\n"
        );
        let cfg = write(dir.path(), &format!("{name}.toml"), toml.as_bytes());
        let out = run(&["-c", &cfg, "check"], b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {err}");
        assert!(err.contains(&format!("{d}/{name}.log: readable; {said}")), "{name}: {err}");
    }
}
