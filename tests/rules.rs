//! Rule files (`include`) and the example rules in `examples/rules.d/`.

use crate::util::daemon::Daemon;
use crate::util::{replay_alerts, root, run, wait_until, write};

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
