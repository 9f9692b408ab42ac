//! A daemon under test and a writer of log lines.

use super::{DEADLINE, bin, json_lines_so_far, wait_until_or, write};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `logwarden run` with its directory, configuration and log.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// Its directory: configuration, state, alerts.jsonl.
    pub dir: PathBuf,
    log: PathBuf,
}

impl Daemon {
    pub fn start(dir: &Path, path: &str) -> Daemon {
        Daemon::start_with(dir, path, &[], "")
    }

    /// With extra environment variables and `[state]` settings.
    pub fn start_with(dir: &Path, path: &str, env: &[(&str, &str)], state: &str) -> Daemon {
        Daemon::start_config(dir, &Daemon::config(dir, path, state), env)
    }

    /// The tests' configuration: `path` from its beginning, a threshold of 3
    /// without cooldown, alerts to `alerts.jsonl`, state in `state/`, and
    /// `extra` appended.
    pub fn config(dir: &Path, path: &str, extra: &str) -> String {
        format!(
            "[source]\npath = \"{path}\"\nstart_at = \"beginning\"\npoll_interval = \"100ms\"\nrotate_wait = \"1s\"\n\
             [[rule]]\ncontains = \"today_download\"\nthreshold = 3\nwindow = \"10m\"\ncooldown = 0\n\
             [[output]]\ntype = \"jsonl\"\npath = \"{d}/alerts.jsonl\"\n[state]\ndir = \"{d}/state\"\n{extra}",
            d = dir.display()
        )
    }

    /// With a whole configuration and extra environment variables.
    pub fn start_config(dir: &Path, config: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_wrapped(dir, config, env, &[])
    }

    /// The same, started through `wrapper` (a program and its arguments,
    /// which runs the daemon's command line as its own process, as
    /// `prlimit` does); none if empty.
    pub fn start_wrapped(
        dir: &Path,
        config: &str,
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Daemon {
        let cfg = write(dir, "logwarden.toml", config.as_bytes());
        let log = dir.join("daemon.log");
        let mut cmd = match wrapper {
            [program, args @ ..] => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
            [] => Command::new(bin()),
        };
        // The tests read the daemon's info lines; `("LOGWARDEN_LOG", "")`
        // leaves the variable unset, for the default level.
        match env.iter().find(|(k, _)| *k == "LOGWARDEN_LOG") {
            Some((_, "")) => cmd.env_remove("LOGWARDEN_LOG"),
            _ => cmd.env("LOGWARDEN_LOG", "info"),
        };
        let child = cmd
            .args(["-c", &cfg, "run"])
            .envs(env.iter().copied().filter(|(_, v)| !v.is_empty()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start daemon");
        Daemon { child, dir: dir.to_path_buf(), log }
    }

    /// The alerts delivered so far (a line still being appended is left out).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join("alerts.jsonl")).unwrap_or_default();
        json_lines_so_far(&text)
    }

    /// The counts of `key`'s alerts delivered so far, in order.
    pub fn counts_of(&self, key: &str) -> Vec<u64> {
        let of_key = self.alerts().into_iter().filter(|a| a["key"] == key);
        of_key.map(|a| a["count"].as_u64().unwrap()).collect()
    }

    pub fn wait_for_marker(&self, n: u32) {
        let key = marker_ip(n);
        let marked = || self.alerts().iter().any(|a| a["key"] == key.as_str());
        let said = || {
            let alerts = self.alerts();
            let last = &alerts[alerts.len().saturating_sub(5)..];
            format!("--- log\n{}--- {} alerts, the last: {last:?}", self.log_text(), alerts.len())
        };
        wait_until_or(&format!("marker {key}"), marked, said);
    }

    /// The daemon's threads now.
    pub fn threads(&self) -> usize {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id()));
        tasks.map_or(0, Iterator::count)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    /// `kill -9`: no chance to save anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; the daemon must exit 0.
    pub fn stop(self) -> String {
        self.signal("-TERM");
        self.stop_after_signal()
    }

    /// Waits for the daemon to exit 0 after a stop signal.
    pub fn stop_after_signal(mut self) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "daemon exited with {status}: {}", self.log_text());
                return self.log_text();
            }
            assert!(Instant::now() < end, "daemon did not stop: {}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Never leave a daemon behind when a test fails.
        self.child.kill().unwrap_or(());
        self.child.wait().map(|_| ()).unwrap_or(());
    }
}

/// A combined-format line of `client` asking for `target` at `t` (UTC).
pub fn request_at(client: &str, target: &str, t: jiff::Timestamp) -> String {
    let stamp = t.strftime("%d/%b/%Y:%H:%M:%S +0000");
    format!("{client} - - [{stamp}] \"GET {target} HTTP/1.1\" 200 5 \"-\" \"t\"\n")
}

/// The client of marker `n`.
pub fn marker_ip(n: u32) -> String {
    format!("198.51.100.{n}")
}

/// Writes lines in order and remembers them for the `replay` comparison.
pub struct Writer {
    /// Unix seconds of the last line.
    pub clock: u64,
    /// Everything written so far.
    pub written: Vec<u8>,
}

impl Writer {
    /// Starts at a fixed time in 2025.
    pub fn new() -> Writer {
        Writer { clock: 1_751_000_000, written: Vec::new() }
    }

    /// One hit on today_download by `client`, a second after the last line.
    pub fn line(&mut self, client: &str) -> Vec<u8> {
        self.clock += 1;
        let t = jiff::Timestamp::from_second(self.clock as i64).unwrap();
        request_at(client, "/today_download", t).into_bytes()
    }

    /// `n` hits by `client`, a second apart.
    pub fn hits(&mut self, client: &str, n: usize) -> Vec<u8> {
        (0..n).flat_map(|_| self.line(client)).collect()
    }

    /// Appends bytes to `path` (creating it).
    pub fn append_raw(&mut self, path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
        self.written.extend_from_slice(bytes);
    }

    /// `n` lines from a few clients, then marker `m`'s three hits.
    pub fn phase(&mut self, path: &Path, clients: &[&str], n: usize, m: u32) {
        let mut buf = Vec::new();
        for i in 0..n {
            buf.extend(self.line(clients[i % clients.len()]));
        }
        for _ in 0..3 {
            buf.extend(self.line(&marker_ip(m)));
        }
        self.append_raw(path, &buf);
    }
}
