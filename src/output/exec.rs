//! Exec: runs a program per alert — no shell unless the command is
//! `sh -c …` — with the alert's fields in `LOGWARDEN_*` environment variables
//! and as JSON on its standard input.
//!
//! An alert counts as delivered once its program started; runs are not
//! repeated (a ban or an SMS is not idempotent). At most `max_concurrent`
//! run at once; one running past `timeout` is killed. Exit status and
//! standard error of every run that did not succeed are logged.

use super::Deliver;
use crate::alert::Alert;
use crate::template::sanitize;
use std::io::{self, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often running programs are checked.
const CHECK_EVERY: Duration = Duration::from_millis(20);
/// Standard error kept for the log, per run.
const STDERR_KEPT: u64 = 4096;

/// Settings of an exec output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSettings {
    /// Program and arguments (no shell).
    pub command: Vec<String>,
    /// A run is killed after this long.
    pub timeout: Duration,
    /// Runs at once, at most.
    pub max_concurrent: usize,
}

/// A program run per alert.
pub struct Exec {
    cfg: ExecSettings,
    running: Vec<(Child, Instant, String)>,
}

impl Exec {
    /// A runner for a validated output.
    pub fn new(cfg: ExecSettings) -> Exec {
        Exec { cfg, running: Vec::new() }
    }

    /// Logs finished runs and kills those past the timeout.
    fn reap(&mut self) {
        let timeout = self.cfg.timeout;
        let name = self.name();
        self.running.retain_mut(|(child, started, id)| match child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    let err = stderr_of(child);
                    tracing::error!(output = %name, alert = %id, %status, stderr = %err, "Action failed.");
                }
                false
            }
            Ok(None) if started.elapsed() >= timeout => {
                child.kill().unwrap_or(());
                child.wait().map(|_| ()).unwrap_or(());
                tracing::error!(output = %name, alert = %id, ?timeout, "Action killed at its timeout.");
                false
            }
            Ok(None) => true,
            Err(e) => {
                tracing::error!(output = %name, alert = %id, error = %e, "Cannot wait for action.");
                false
            }
        });
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut buf = Vec::new();
    if let Some(e) = child.stderr.as_mut() {
        e.take(STDERR_KEPT).read_to_end(&mut buf).unwrap_or(0);
    }
    sanitize(buf.trim_ascii_end())
}

impl Deliver for Exec {
    fn name(&self) -> String {
        format!("exec {}", self.cfg.command.join(" "))
    }

    fn send(&mut self, alert: &Alert) -> io::Result<()> {
        self.reap();
        while self.running.len() >= self.cfg.max_concurrent {
            std::thread::sleep(CHECK_EVERY);
            self.reap();
        }
        let (program, args) = self.cfg.command.split_first().expect("validated: not empty");
        let mut child = Command::new(program)
            .args(args)
            .envs(env_of(alert))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            // A program that ignores its input may close it early; that is fine.
            stdin
                .write_all(alert.to_json().as_bytes())
                .and_then(|()| stdin.write_all(b"\n"))
                .unwrap_or(());
        }
        self.running.push((child, Instant::now(), alert.id.clone().unwrap_or_default()));
        Ok(())
    }

    fn idle(&mut self) -> Option<Duration> {
        self.reap();
        (!self.running.is_empty()).then_some(CHECK_EVERY)
    }

    fn settle(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for (mut child, started, _) in std::mem::take(&mut self.running) {
            let left = self.cfg.timeout.saturating_sub(started.elapsed());
            let end = Instant::now() + left;
            let status = loop {
                if let Some(st) = child.try_wait()? {
                    break Some(st);
                }
                if Instant::now() >= end {
                    child.kill().unwrap_or(());
                    child.wait()?;
                    break None;
                }
                std::thread::sleep(CHECK_EVERY);
            };
            let err = match status {
                Some(st) if st.success() => continue,
                Some(st) => format!("{st}; stderr: {}", stderr_of(&mut child)),
                None => format!("killed at its timeout of {:?}", self.cfg.timeout),
            };
            result = Err(io::Error::other(err));
        }
        result
    }
}

/// The alert's fields as `LOGWARDEN_*` variables.
fn env_of(a: &Alert) -> Vec<(&'static str, String)> {
    vec![
        ("LOGWARDEN_RULE", a.rule.clone()),
        ("LOGWARDEN_CLIENT", a.key.clone()),
        ("LOGWARDEN_COUNT", a.count.to_string()),
        ("LOGWARDEN_THRESHOLD", a.threshold.to_string()),
        ("LOGWARDEN_WINDOW", a.window_s.to_string()),
        ("LOGWARDEN_TIME", a.time.clone()),
        ("LOGWARDEN_FILE", a.file.clone()),
        ("LOGWARDEN_LINE", a.line.to_string()),
        ("LOGWARDEN_MESSAGE", a.message.clone()),
        ("LOGWARDEN_ID", a.id.clone().unwrap_or_default()),
    ]
}
