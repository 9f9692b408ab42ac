//! Alerts against a real rsyslogd, started here with a private configuration:
//! its own Unix socket in a temporary directory, UDP and TCP on free loopback
//! ports, and a file whose template shows facility, severity, tag and
//! message. Never the system's daemon. The local socket uses rsyslog's
//! regular parser chain (`UseSpecialParser="off"`), which reads both RFC 3164
//! and RFC 5424; the default special parser reads RFC 3164 only.
//! `#[ignore]`d in a plain `cargo test` (rsyslogd may be missing);
//! `scripts/test` installs rsyslog and runs them.

use crate::util::{Reaped, bin, free_port, wait_until, write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

struct Rsyslog {
    child: Child,
    dir: PathBuf,
    conf: String,
    udp: u16,
    tcp: u16,
}

impl Rsyslog {
    fn start(dir: &Path) -> Rsyslog {
        let (udp, tcp) = (free_port(), free_port());
        let d = dir.display();
        let conf = format!(
            r#"global(workDirectory="{d}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{d}/log.sock" CreatePath="on" UseSpecialParser="off")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="shown" type="string" string="%syslogfacility-text%.%syslogseverity-text% tag=%syslogtag% app=%app-name% msg=%msg%\n")
*.* action(type="omfile" file="{d}/out.log" template="shown")
"#
        );
        let conf = write(dir, "rsyslog.conf", conf.as_bytes());
        let child = Rsyslog::spawn(dir, &conf, tcp);
        Rsyslog { child, dir: dir.to_path_buf(), conf, udp, tcp }
    }

    fn spawn(dir: &Path, conf: &str, tcp: u16) -> Child {
        let child = Command::new(RSYSLOGD)
            .args(["-n", "-f", conf, "-i", &format!("{}/rsyslogd.pid", dir.display())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd (apt-get install rsyslog)");
        wait_until("rsyslogd's socket and TCP port", || {
            dir.join("log.sock").exists()
                && std::net::TcpStream::connect(("127.0.0.1", tcp)).is_ok()
        });
        child
    }

    /// Stops rsyslogd (SIGTERM) and waits for it to exit.
    fn stop(&mut self) {
        assert!(
            Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap();
    }

    /// Starts it again on the same socket and ports.
    fn restart(&mut self) {
        self.child = Rsyslog::spawn(&self.dir, &self.conf, self.tcp);
    }

    fn received(&self) -> String {
        std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.child.kill().unwrap_or(());
        self.child.wait().map(|_| ()).unwrap_or(());
    }
}

/// A configuration with one syslog output.
fn config(dir: &Path, target: &str, format: &str, message: &str) -> String {
    let text = format!(
        "[[rule]]\ncontains = \"today_download\"\nthreshold = 3\nmessage = '{message}'\n\
         [[output]]\ntype = \"syslog\"\ntarget = \"{target}\"\nformat = \"{format}\"\n\
         facility = \"local5\"\nseverity = \"warning\"\ntag = \"AlbumMonitor\"\n"
    );
    write(dir, &format!("{}.toml", format), text.as_bytes())
}

#[test]
#[ignore = "needs rsyslogd; run by scripts/test"]
fn every_transport_and_format_arrives_with_exact_facility_severity_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let r = Rsyslog::start(dir.path());
    let targets = [
        format!("unix:{}/log.sock", dir.path().display()),
        format!("udp://127.0.0.1:{}", r.udp),
        format!("tcp://127.0.0.1:{}", r.tcp),
    ];
    for target in &targets {
        for format in ["rfc3164", "rfc5424"] {
            let marker = format!("via {target} as {format}");
            let cfg = config(dir.path(), target, format, &format!("IP {{client}} {marker}"));
            let out = Command::new(bin()).args(["-c", &cfg, "test-alert"]).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
            wait_until(&marker, || r.received().contains(&marker));
            let line = r.received().lines().find(|l| l.contains(&marker)).unwrap().to_string();
            assert!(line.starts_with("local5.warning tag=AlbumMonitor"), "{line}");
            assert!(line.contains("app=AlbumMonitor"), "{line}");
            assert!(line.contains("IP 192.0.2.1"), "{line}");
        }
    }
}

/// The tag arrives as `logger -t AlbumMonitor` sends it — no process id —
/// so filters written for the old script keep working; `pid = true` adds it.
#[test]
#[ignore = "needs rsyslogd; run by scripts/test"]
fn the_tag_is_the_one_logger_sends_and_pid_adds_the_process_id() {
    let dir = tempfile::tempdir().unwrap();
    let r = Rsyslog::start(dir.path());
    let sock = format!("{}/log.sock", dir.path().display());
    let logger = Command::new("logger")
        .args(["-u", &sock, "-t", "AlbumMonitor", "-p", "local5.warning", "from-logger"])
        .status()
        .expect("logger (util-linux) is installed");
    assert!(logger.success());
    wait_until("logger's message", || r.received().contains("from-logger"));
    let tag_of = |marker: &str| {
        let text = r.received();
        let line = text.lines().find(|l| l.contains(marker)).unwrap().to_string();
        line.split(' ').nth(1).unwrap().to_string()
    };
    let cfg = config(dir.path(), &format!("unix:{sock}"), "rfc3164", "IP {client} ours");
    let out = Command::new(bin()).args(["-c", &cfg, "test-alert"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    wait_until("our message", || r.received().contains("ours"));
    assert_eq!(tag_of("ours"), tag_of("from-logger"));
    assert_eq!(tag_of("ours"), "tag=AlbumMonitor:");
    let with_pid =
        std::fs::read_to_string(&cfg).unwrap().replace("ours", "pid-on") + "pid = true\n";
    std::fs::write(&cfg, with_pid).unwrap();
    let out = Command::new(bin()).args(["-c", &cfg, "test-alert"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    wait_until("the message with a pid", || r.received().contains("pid-on"));
    let tag = tag_of("pid-on");
    assert!(tag.starts_with("tag=AlbumMonitor[") && tag.ends_with("]:"), "{tag}");
}

#[test]
#[ignore = "needs rsyslogd; run by scripts/test"]
fn attacker_text_arrives_as_one_escaped_line() {
    let dir = tempfile::tempdir().unwrap();
    let r = Rsyslog::start(dir.path());
    let target = format!("tcp://127.0.0.1:{}", r.tcp);
    let log = dir.path().join("access.log");
    // A user agent with raw control bytes, Apache's own escapes, a fake
    // syslog header and a forged client.
    let ua = "evil\r\x00\x1b[31m \\n<13>Nov 28 00:00:00 host AlbumMonitor: IP 6.6.6.6 accessed today_download";
    let mut text = String::new();
    for s in 0..3 {
        text.push_str(&format!(
            "203.0.113.9 - - [28/Nov/2026:10:00:0{s} +0000] \"GET /today_download HTTP/1.1\" 200 5 \"-\" \"{ua}\"\n"
        ));
    }
    std::fs::write(&log, text).unwrap();
    let cfg_text = format!(
        "[[rule]]\ncontains = \"today_download\"\nthreshold = 3\nmessage = 'IP {{client}} ua={{user_agent}}'\n\
         [[output]]\ntype = \"syslog\"\ntarget = \"{target}\"\nfacility = \"user\"\nseverity = \"err\"\ntag = \"AlbumMonitor\"\n\
         [source]\npath = \"{}\"\nstart_at = \"beginning\"\n[state]\ndir = \"{}/state\"\n",
        log.display(),
        dir.path().display()
    );
    let cfg = write(dir.path(), "c.toml", cfg_text.as_bytes());
    let mut daemon =
        Command::new(bin()).args(["-c", &cfg, "run"]).stderr(Stdio::null()).spawn().unwrap();
    wait_until("the alert", || r.received().contains("IP 203.0.113.9"));
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let got = r.received();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 1, "one alert, one line: {got:?}");
    let line = lines[0];
    assert!(line.starts_with("user.err tag=AlbumMonitor"), "{line}");
    assert!(line.contains(r"ua=evil\x0d\x00\x1b[31m \n<13>Nov 28"), "{line}");
    assert!(
        line.contains("IP 6.6.6.6 accessed"),
        "the forged text stays inside the one line: {line}"
    );
}

#[test]
#[ignore = "needs rsyslogd; run by scripts/test"]
fn alerts_held_while_rsyslogd_restarts_arrive_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Rsyslog::start(dir.path());
    let log = dir.path().join("access.log");
    std::fs::write(&log, b"").unwrap();
    let cfg_text = format!(
        "[source]\npath = \"{}\"\nstart_at = \"beginning\"\n[state]\ndir = \"{d}/state\"\n\
         [[rule]]\ncontains = \"today_download\"\nthreshold = 2\nmessage = 'hit {{client}}'\n\
         [[output]]\ntype = \"syslog\"\ntarget = \"tcp://127.0.0.1:{}\"\ntag = \"ViaTcp\"\n\
         [[output]]\ntype = \"syslog\"\ntarget = \"unix:{d}/log.sock\"\ntag = \"ViaUnix\"\n",
        log.display(),
        r.tcp,
        d = dir.path().display()
    );
    let cfg = write(dir.path(), "c.toml", cfg_text.as_bytes());
    let mut daemon =
        Command::new(bin()).args(["-c", &cfg, "run"]).stderr(Stdio::null()).spawn().unwrap();
    let hit = |client: u32| {
        let line = format!(
            "10.1.0.{client} - - [28/Nov/2026:10:00:00 +0000] \"GET /today_download HTTP/1.1\" 200 5\n"
        );
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, line.repeat(2).as_bytes()).unwrap();
    };
    let count = |r: &Rsyslog, tag: &str, client: u32| {
        r.received()
            .lines()
            .filter(|l| l.contains(tag) && l.contains(&format!("hit 10.1.0.{client}")))
            .count()
    };
    hit(1);
    wait_until("the first alert", || count(&r, "ViaTcp", 1) == 1 && count(&r, "ViaUnix", 1) == 1);
    r.stop();
    for client in 2..=5 {
        hit(client);
    }
    std::thread::sleep(Duration::from_millis(700));
    r.restart();
    for client in 2..=5 {
        wait_until(&format!("held alert {client}"), || {
            count(&r, "ViaTcp", client) >= 1 && count(&r, "ViaUnix", client) >= 1
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    for client in 1..=5 {
        assert_eq!(
            (count(&r, "ViaTcp", client), count(&r, "ViaUnix", client)),
            (1, 1),
            "{}",
            r.received()
        );
    }
}

/// Syslog across kill -9: alerts decided again from lines read again after
/// the crash (the state is set back to a checkpoint from before them) reach
/// rsyslogd once, over TCP and the local socket.
#[test]
#[ignore = "needs rsyslogd; run by scripts/test"]
fn no_syslog_alert_twice_across_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let r = Rsyslog::start(dir.path());
    let log = dir.path().join("access.log");
    std::fs::write(&log, b"").unwrap();
    let d = dir.path().display();
    let cfg_text = format!(
        "[source]\npath = \"{}\"\nstart_at = \"beginning\"\n[state]\ndir = \"{d}/state\"\n\
         [[rule]]\ncontains = \"today_download\"\nthreshold = 2\ncooldown = \"1h\"\nmessage = 'hit {{client}}'\n\
         [[output]]\ntype = \"syslog\"\ntarget = \"tcp://127.0.0.1:{}\"\ntag = \"ViaTcp\"\n\
         [[output]]\ntype = \"syslog\"\ntarget = \"unix:{d}/log.sock\"\ntag = \"ViaUnix\"\n",
        log.display(),
        r.tcp,
    );
    let cfg = write(dir.path(), "c.toml", cfg_text.as_bytes());
    let start = || {
        Reaped(Command::new(bin()).args(["-c", &cfg, "run"]).stderr(Stdio::null()).spawn().unwrap())
    };
    let hit = |client: u32| {
        let line = format!(
            "10.2.0.{client} - - [28/Nov/2026:10:00:00 +0000] \"GET /today_download HTTP/1.1\" 200 5\n"
        );
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, line.repeat(2).as_bytes()).unwrap();
    };
    let count = |tag: &str, client: u32| {
        let needle = format!("hit 10.2.0.{client}");
        r.received().lines().filter(|l| l.contains(tag) && l.ends_with(&needle)).count()
    };
    let daemon = start();
    hit(1);
    wait_until("the first alert", || count("ViaTcp", 1) == 1 && count("ViaUnix", 1) == 1);
    std::thread::sleep(Duration::from_millis(1500));
    let state = dir.path().join("state");
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = ["state.bin", "state.wal"]
        .iter()
        .map(|n| (state.join(n), std::fs::read(state.join(n)).unwrap()))
        .collect();
    for c in 2..=11 {
        hit(c);
    }
    let journaled = |n: usize| {
        let journals = crate::util::journals(&state, "syslog");
        journals.get(n).and_then(|j| std::fs::read_to_string(j).ok()).unwrap_or_default()
    };
    wait_until("every alert taken", || {
        (2..=11).all(|c| count("ViaTcp", c) == 1 && count("ViaUnix", c) == 1)
            && (0..2).all(|n| journaled(n).lines().count() >= 11)
    });
    drop(daemon);
    for (path, bytes) in &saved {
        std::fs::write(path, bytes).unwrap();
    }
    let _daemon = start();
    hit(12);
    wait_until("the alert after the restart", || {
        count("ViaTcp", 12) == 1 && count("ViaUnix", 12) == 1
    });
    for c in 1..=12 {
        assert_eq!(
            (count("ViaTcp", c), count("ViaUnix", c)),
            (1, 1),
            "client {c}: {}",
            r.received()
        );
    }
}
