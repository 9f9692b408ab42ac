//! Rule files (`include`) and the example rules in `examples/rules.d/`.

use crate::util::daemon::Daemon;
use crate::util::{replay_alerts, replay_alerts_with, root, run, wait_until, write};

/// Each example rule raises exactly one alert on its own test log, and no
/// other example rule fires there.
#[test]
fn each_example_rule_catches_its_test_log() {
    let dir = tempfile::tempdir().unwrap();
    let rules_d = root().join("examples/rules.d");
    let cfg = write(
        dir.path(),
        "lw.toml",
        format!("include = [\"{}/*.toml\"]\n", rules_d.display()).as_bytes(),
    );
    for (log, rule) in [
        ("sensitive-files.log", "sensitive-files"),
        ("path-traversal.log", "path-traversal"),
        ("login-brute-force.log", "login-brute-force"),
        ("login-per-user.log", "login-brute-force-per-user"),
        ("scanner-404s.log", "scanner-404s"),
        ("today-download.log", "today_download"),
    ] {
        let alerts = replay_alerts(&cfg, rules_d.join(log).to_str().unwrap());
        assert_eq!(alerts.len(), 1, "{log}: {alerts:?}");
        assert_eq!(alerts[0]["rule"], rule, "{log}: {alerts:?}");
    }
}

/// An error in an included file names that file and its line; `check`
/// lists the files it included.
#[test]
fn an_error_in_an_included_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("rules.d");
    std::fs::create_dir(&d).unwrap();
    write(&d, "a.toml", b"[[rule]]\ncontains = \"/a\"\n");
    write(&d, "b.toml", b"# b\n[[rule]]\ncontains = \"/b\"\nwindow = \"ten minutes\"\n");
    let cfg = write(
        dir.path(),
        "lw.toml",
        format!(
            "include = [\"{}/*.toml\"]\n[state]\ndir = \"{}\"\n",
            d.display(),
            dir.path().display()
        )
        .as_bytes(),
    );
    let out = run(&["-c", &cfg, "check"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}/b.toml:4: rule[1].window: ", d.display())), "{err}");
    write(&d, "b.toml", b"[[rule]]\ncontains = \"/b\"\n");
    let out = run(&["-c", &cfg, "check"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("include {}/a.toml: 1 rule(s)", d.display())), "{err}");
    assert!(err.contains("configuration OK: 2 rule(s)"), "{err}");
}

/// `run` with rule files: a rule file added later counts after SIGHUP.
#[test]
fn run_reads_rule_files_again_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("rules.d");
    std::fs::create_dir(&d).unwrap();
    write(&d, "10-a.toml", b"[[rule]]\ncontains = \"/alpha\"\nthreshold = 2\n");
    let log = write(dir.path(), "access.log", b"");
    let config = Daemon::config(dir.path(), &log, "").replace(
        "[[rule]]\ncontains = \"today_download\"\nthreshold = 3\nwindow = \"10m\"\ncooldown = 0\n",
        "",
    );
    let config = format!("include = [\"{}/*.toml\"]\n{config}", d.display());
    let daemon = Daemon::start_config(dir.path(), &config, &[]);
    let line = |client: &str, path: &str| {
        let stamp = jiff::Timestamp::now().strftime("%d/%b/%Y:%H:%M:%S +0000");
        format!("{client} - - [{stamp}] \"GET {path} HTTP/1.1\" 200 5 \"-\" \"t\"\n")
    };
    let append = |text: String| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    append(line("10.1.1.1", "/alpha").repeat(2) + &line("10.2.2.2", "/beta").repeat(2));
    wait_until("the first rule's alert", || daemon.alerts().iter().any(|a| a["rule"] == "10-a"));
    assert!(daemon.alerts().iter().all(|a| a["rule"] == "10-a"), "{:?}", daemon.alerts());
    write(&d, "20-b.toml", b"[[rule]]\ncontains = \"/beta\"\nthreshold = 2\n");
    daemon.signal("-HUP");
    wait_until("the reload", || daemon.log_text().contains("Configuration reloaded"));
    append(line("10.3.3.3", "/beta").repeat(2));
    wait_until("the new rule's alert", || daemon.alerts().iter().any(|a| a["rule"] == "20-b"));
    daemon.stop();
}

/// `field = "vhost"` on `vhost_combined`: a rule that watches one virtual
/// host counts only its lines.
#[test]
fn a_rule_on_the_virtual_host_counts_that_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for (i, vhost) in
        ["shop.example:443", "blog.example:443", "shop.example:443", "shop.example:443"]
            .iter()
            .enumerate()
    {
        text += &format!(
            "{vhost} 203.0.113.9 - - [08/Jul/2025:15:00:0{i} +0000] \"GET /cart HTTP/1.1\" 200 5 \"-\" \"t\"\n"
        );
    }
    let log = write(dir.path(), "access.log", text.as_bytes());
    let cfg = write(
        dir.path(),
        "lw.toml",
        b"[source]\nformat = \"vhost_combined\"\n[[rule]]\nname = \"shop\"\nfield = \"vhost\"\ncontains = \"shop.\"\nthreshold = 3\n",
    );
    let alerts = replay_alerts(&cfg, &log);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (alerts[0]["count"].as_u64(), alerts[0]["line"].as_u64()),
        (Some(3), Some(4)),
        "{alerts:?}"
    );
}

/// `field = "user"` and `field = "host"`: `parse --json` shows both, and
/// rules on them count only the lines they match.
#[test]
fn rules_on_the_user_and_the_host_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for (i, (user, host)) in
        [("admin", "a.example"), ("bob", "b.example"), ("admin", "b.example"), ("-", "a.example")]
            .iter()
            .enumerate()
    {
        text += &format!(
            "203.0.113.9 - {user} [08/Jul/2025:15:00:0{i} +0000] \"POST /login HTTP/1.1\" 401 5 \"{host}\"\n"
        );
    }
    let log = write(dir.path(), "access.log", text.as_bytes());
    let format = r#"format = '%h %l %u %t \"%r\" %>s %b \"%{Host}i\"'"#;
    let cfg = write(
        dir.path(),
        "lw.toml",
        format!("[source]\n{format}\n[[rule]]\nname = \"admin\"\nfield = \"user\"\ncontains = \"admin\"\nthreshold = 2\n[[rule]]\nname = \"a-site\"\nfield = \"host\"\ncontains = \"a.example\"\nthreshold = 2\n").as_bytes(),
    );
    let out = run(&["-c", &cfg, "parse", "--json", &log], b"");
    let lines = crate::util::json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        (lines[0]["user"].as_str(), lines[0]["host"].as_str()),
        (Some("admin"), Some("a.example")),
        "{lines:?}"
    );
    assert_eq!(lines[0]["rules"], serde_json::json!(["admin", "a-site"]), "{lines:?}");
    assert_eq!(lines[1]["rules"], serde_json::json!([]), "{lines:?}");
    let alerts = replay_alerts(&cfg, &log);
    let got: Vec<(String, u64)> = alerts
        .iter()
        .map(|a| (a["rule"].as_str().unwrap().to_string(), a["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, [("admin".to_string(), 3), ("a-site".to_string(), 4)], "{alerts:?}");
}

/// The lines of [`keys_distinct_and_headers_in_replay_and_run`], in two
/// parts: per-user logins, 404s of two clients, and a header rule.
fn keyed_lines() -> (String, String) {
    let line = |s: u32, client: &str, user: &str, req: &str, status: u16, tenant: &str| {
        format!(
            "{client} - {user} [08/Jul/2025:15:00:{s:02} +0000] \"{req}\" {status} 5 \"-\" \"t\" \"{tenant}\"\n"
        )
    };
    let login = "POST /login HTTP/1.1";
    let mut first = String::new();
    for (s, client) in ["10.0.1.1", "10.0.1.2"].iter().enumerate() {
        first += &line(s as u32, client, "alice", login, 401, "-");
    }
    for s in 2..7 {
        first += &line(s, "10.0.2.1", "-", login, 401, "-"); // no user: not counted
    }
    for (s, path) in [(7, "/a"), (8, "/a"), (9, "/a"), (10, "/b")] {
        first += &line(s, "10.0.0.5", "-", &format!("GET {path} HTTP/1.1"), 404, "-");
    }
    first += &line(11, "10.0.0.7", "-", "GET / HTTP/1.1", 200, "acme");
    let mut second = String::new();
    for (s, client) in ["10.0.1.3", "10.0.1.4"].iter().enumerate() {
        second += &line(20 + s as u32, client, "alice", login, 401, "-");
    }
    for s in 22..25 {
        second += &line(s, "10.0.3.1", "bob", login, 401, "-");
    }
    for s in 25..35 {
        second += &line(s, "10.0.0.6", "-", "GET /x HTTP/1.1", 404, "-");
    }
    second += &line(35, "10.0.0.5", "-", "GET /c HTTP/1.1", 404, "-");
    second += &line(36, "10.0.0.7", "-", "GET / HTTP/1.1", 200, "acme");
    second += &line(37, "10.0.0.8", "-", "GET / HTTP/1.1", 200, "acme");
    second += &line(38, "10.0.0.8", "-", "GET / HTTP/1.1", 200, "other");
    (first, second)
}

const KEYED_RULES: &str = r#"
[[rule]]
name = "per-user"
field = "path"
contains = "/login"
status = [401]
key = "user"
threshold = 4
message = "{user} failed {count} times, last from {client} ({key})"
[[rule]]
name = "scanner"
field = "status"
status = [404]
distinct = "path"
threshold = 3
window = "1m"
[[rule]]
name = "tenant"
field = "header:X-Tenant"
contains = "acme"
key = ["client", "header:X-Tenant"]
threshold = 2
message = "{key} for tenant {header:X-Tenant}"
"#;

const KEYED_FORMAT: &str =
    r#"format = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" "%{X-Tenant}i"'"#;

/// Per-user keys (many addresses, `-` ignored), a distinct-path count
/// (repeated paths count once) and a rule on a logged header keyed by
/// client and header: `replay` raises exactly the expected alerts, and
/// `run` — stopped between the two halves of the log and started again,
/// so the distinct paths come back from its saved state — raises the same.
#[test]
fn keys_distinct_and_headers_in_replay_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = keyed_lines();
    let whole = write(dir.path(), "whole.log", (first.clone() + &second).as_bytes());
    let cfg = write(
        dir.path(),
        "replay.toml",
        format!("[source]\n{KEYED_FORMAT}\n{KEYED_RULES}").as_bytes(),
    );
    // An alert of a rule keyed by other parts than the client carries the
    // client of the line that raised it too (`client`; none when the key is
    // the client).
    let summary = |alerts: &[serde_json::Value]| -> Vec<(String, String, String, u64, String)> {
        let mut v: Vec<_> = alerts
            .iter()
            .map(|a| {
                let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
                (s("rule"), s("key"), s("client"), a["count"].as_u64().unwrap(), s("message"))
            })
            .collect();
        v.sort();
        v
    };
    let expected = vec![
        (
            "per-user".to_string(),
            "alice".to_string(),
            "10.0.1.4".to_string(),
            4,
            "alice failed 4 times, last from 10.0.1.4 (alice)".to_string(),
        ),
        (
            "scanner".to_string(),
            "10.0.0.5".to_string(),
            String::new(),
            3,
            "SUSPICIOUS ACTIVITY: IP 10.0.0.5 accessed status [404] 3 times in 1 minute"
                .to_string(),
        ),
        (
            "tenant".to_string(),
            "10.0.0.7 acme".to_string(),
            "10.0.0.7".to_string(),
            2,
            "10.0.0.7 acme for tenant acme".to_string(),
        ),
    ];
    assert_eq!(summary(&replay_alerts(&cfg, &whole)), expected);

    // Three hits of the daemon config's own rule mark the end of each part.
    let marker = |n: u32, s: u32| {
        let ip = crate::util::daemon::marker_ip(n);
        format!("{ip} - - [08/Jul/2025:15:00:{s:02} +0000] \"GET /today_download HTTP/1.1\" 200 5 \"-\" \"t\" \"-\"\n").repeat(3)
    };
    let log = write(dir.path(), "access.log", (first + &marker(1, 12)).as_bytes());
    // An action gets the line's client as LOGWARDEN_CLIENT (before, a
    // per-user rule's action got the user name there), the key as
    // LOGWARDEN_KEY.
    let action = format!(
        "[[output]]\ntype = \"exec\"\ncommand = [\"sh\", \"-c\", \"echo \\\"$LOGWARDEN_RULE $LOGWARDEN_CLIENT|$LOGWARDEN_KEY\\\" >> {}/runs\"]\n",
        dir.path().display()
    );
    let config = Daemon::config(dir.path(), &log, &action).replacen(
        "[source]\n",
        &format!("[source]\n{KEYED_FORMAT}\n"),
        1,
    ) + KEYED_RULES;
    let keyed = |d: &Daemon| {
        let all = d.alerts();
        all.into_iter().filter(|a| a["rule"] != "today_download").collect::<Vec<_>>()
    };
    let daemon = Daemon::start_config(dir.path(), &config, &[]);
    daemon.wait_for_marker(1);
    assert!(keyed(&daemon).is_empty(), "{:?}", daemon.alerts());
    daemon.stop();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all((second + &marker(2, 39)).as_bytes()).unwrap();
    }
    let daemon = Daemon::start_config(dir.path(), &config, &[]);
    daemon.wait_for_marker(2);
    assert_eq!(summary(&keyed(&daemon)), expected);
    let runs = || std::fs::read_to_string(dir.path().join("runs")).unwrap_or_default();
    wait_until("the actions", || runs().lines().count() >= 5);
    let runs = runs();
    for line in
        ["per-user 10.0.1.4|alice", "scanner 10.0.0.5|10.0.0.5", "tenant 10.0.0.7|10.0.0.7 acme"]
    {
        assert!(runs.lines().any(|l| l == line), "{line}: {runs}");
    }
    daemon.stop();
}

/// Two `[[source]]` blocks with different formats: the sources' lines as
/// `(www, api)`, the api log in `vhost_combined`.
fn two_sources_lines(s0: u32, hits: &[(&str, &str, &str)]) -> (String, String) {
    let (mut www, mut api) = (String::new(), String::new());
    for (i, (source, client, path)) in hits.iter().enumerate() {
        let t = format!("[08/Jul/2025:15:00:{:02} +0000]", s0 + i as u32);
        let req = format!("\"GET {path} HTTP/1.1\" 200 5 \"-\" \"t\"\n");
        match *source {
            "www" => www += &format!("{client} - - {t} {req}"),
            _ => api += &format!("api.example:443 {client} - - {t} {req}"),
        }
    }
    (www, api)
}

const TWO_SOURCES_RULES: &str = r#"
[[rule]]
name = "both"
contains = "/x"
threshold = 4
[[rule]]
name = "api-only"
sources = ["api"]
contains = "/y"
threshold = 2
[[rule]]
name = "www-only"
sources = ["www"]
contains = "/y"
threshold = 2
"#;

/// `run` follows two sources with different formats at once: one client's
/// hits in both count together for a rule that reads both, a rule limited
/// to one source counts only its lines, and after a restart each source
/// resumes from its own saved position (nothing is read twice).
#[test]
fn run_follows_several_sources_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (www, api) = two_sources_lines(
        0,
        &[
            ("www", "10.0.0.1", "/x"),
            ("api", "10.0.0.1", "/x"),
            ("www", "10.0.0.1", "/x"),
            ("api", "10.0.0.1", "/x"),
            ("www", "10.0.0.2", "/y"),
            ("api", "10.0.0.2", "/y"),
            ("api", "10.0.0.3", "/y"),
            ("api", "10.0.0.3", "/y"),
        ],
    );
    let www_log = write(dir.path(), "www.log", www.as_bytes());
    let api_log = write(dir.path(), "api.log", api.as_bytes());
    let source = |name: &str, path: &str, format: &str| {
        format!(
            "[[source]]\nname = \"{name}\"\npath = \"{path}\"\nformat = \"{format}\"\nstart_at = \"beginning\"\npoll_interval = \"100ms\"\n"
        )
    };
    let d = dir.path().display();
    let config = format!(
        "{}{}{TWO_SOURCES_RULES}[[output]]\ntype = \"jsonl\"\npath = \"{d}/alerts.jsonl\"\n[state]\ndir = \"{d}/state\"\n",
        source("www", &www_log, "combined"),
        source("api", &api_log, "vhost_combined"),
    );
    let got = |daemon: &Daemon| {
        let mut v: Vec<(String, String, u64)> = daemon
            .alerts()
            .iter()
            .map(|a| {
                let s = |k: &str| a[k].as_str().unwrap().to_string();
                (s("rule"), s("key"), a["count"].as_u64().unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let daemon = Daemon::start_config(dir.path(), &config, &[]);
    wait_until("two alerts", || daemon.alerts().len() >= 2);
    let first = vec![
        ("api-only".to_string(), "10.0.0.3".to_string(), 2),
        ("both".to_string(), "10.0.0.1".to_string(), 4),
    ];
    assert_eq!(got(&daemon), first);
    daemon.stop();
    let (www2, api2) = two_sources_lines(
        20,
        &[("www", "10.0.0.4", "/y"), ("api", "10.0.0.4", "/x"), ("www", "10.0.0.4", "/y")],
    );
    for (path, text) in [(&www_log, www2), (&api_log, api2)] {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
    let daemon = Daemon::start_config(dir.path(), &config, &[]);
    wait_until("the third alert", || daemon.alerts().len() >= 3);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut all = first;
    all.push(("www-only".to_string(), "10.0.0.4".to_string(), 2));
    all.sort();
    assert_eq!(got(&daemon), all, "each source resumed where it stood");
    let log = daemon.stop();
    for (path, text) in [(&www_log, &www), (&api_log, &api)] {
        let resumed = format!("path={path} offset={}", text.len());
        assert!(log.contains(&resumed), "{resumed} not in {log}");
    }
}

/// `replay --source NAME` reads files as that source: its format and the
/// rules that read it.
#[test]
fn replay_reads_files_as_the_source_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, api) = two_sources_lines(
        0,
        &[("api", "10.0.0.3", "/y"), ("api", "10.0.0.3", "/y"), ("api", "10.0.0.5", "/x")],
    );
    let api_log = write(dir.path(), "api.log", api.as_bytes());
    let cfg = write(
        dir.path(),
        "lw.toml",
        format!("[[source]]\nname = \"www\"\npath = \"/w\"\n[[source]]\nname = \"api\"\npath = \"/a\"\nformat = \"vhost_combined\"\n{TWO_SOURCES_RULES}").as_bytes(),
    );
    let alerts = replay_alerts_with(&cfg, &api_log, &["--source", "api"]);
    let rules: Vec<&str> = alerts.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["api-only"], "{alerts:?}");
    let out = run(&["-c", &cfg, "replay", "--json", &api_log], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.stdout.is_empty() && err.contains("skipped 3"), "read as www: {err}");
    let out = run(&["-c", &cfg, "replay", "--source", "web", &api_log], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("the sources are www, api"), "{err}");
}

/// `run` catching up on two sources: one with an hour and a half of old
/// lines, the other quiet, with a line at the start of that time, one in
/// the middle and one of now (one chunk). A client's ten hits in the
/// middle of the old lines still count together (before, the quiet
/// source's chunk was handed on whole, its line of now first, and they
/// were late).
#[test]
fn sources_catching_up_are_read_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = jiff::Timestamp::now().as_second() - 5400;
    let line = |t: i64, client: &str, path: &str| {
        let stamp = jiff::Timestamp::from_second(t).unwrap().strftime("%d/%b/%Y:%H:%M:%S +0000");
        format!("{client} - - [{stamp}] \"GET {path} HTTP/1.1\" 200 5 \"-\" \"t\"\n")
    };
    let mut old = String::new();
    for i in 0..300_000i64 {
        let t = t0 + i * 5400 / 300_000;
        old += &line(t, &format!("10.1.{}.{}", i / 250 % 250, i % 250), "/");
        if (240_000..240_010).contains(&i) {
            old += &line(t, "10.0.0.9", "/today_download");
        }
    }
    let now = line(t0, "10.2.0.1", "/")
        + &line(t0 + 2700, "10.2.0.2", "/")
        + &line(t0 + 5400, "10.0.0.9", "/today_download");
    let (old_log, now_log) = (
        write(dir.path(), "old.log", old.as_bytes()),
        write(dir.path(), "now.log", now.as_bytes()),
    );
    let source = |name: &str, path: &str| {
        format!(
            "[[source]]\nname = \"{name}\"\npath = \"{path}\"\nstart_at = \"beginning\"\npoll_interval = \"100ms\"\n"
        )
    };
    let d = dir.path().display();
    let config = format!(
        "{}{}[[rule]]\nname = \"dl\"\ncontains = \"today_download\"\nthreshold = 10\nwindow = \"10m\"\n\
         [[output]]\ntype = \"jsonl\"\npath = \"{d}/alerts.jsonl\"\n[state]\ndir = \"{d}/state\"\n",
        source("old", &old_log),
        source("now", &now_log),
    );
    let daemon = Daemon::start_config(dir.path(), &config, &[]);
    wait_until("the alert", || !daemon.alerts().is_empty());
    let alerts = daemon.alerts();
    assert_eq!(
        (alerts[0]["key"].as_str(), alerts[0]["count"].as_u64()),
        (Some("10.0.0.9"), Some(10))
    );
    daemon.stop();
}
