//! Exec: runs a program per alert — no shell unless the command is
//! `sh -c …` — with the alert's fields in `LOGWARDEN_*` environment variables
//! and as JSON on its standard input.
//!
//! An alert counts as delivered once its program started; runs are not
//! repeated (a ban or an SMS is not idempotent). At most `max_concurrent`
//! run at once; one running past `timeout` is killed with its process group
//! (what it started too), and so is every run still going when logwarden
//! stops; at a reload, runs going on are watched to their end (or timeout)
//! by a thread of their own. Exit status and standard error of every run
//! that did not succeed are logged. Writing standard input and reading
//! standard error (one thread for all runs: [`super::stderr`]) never block
//! the output's thread.

use super::Deliver;
use super::stderr::Stderr;
use crate::alert::Alert;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often running programs are checked.
const CHECK_EVERY: Duration = Duration::from_millis(20);

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

/// One running program, in a process group of its own.
struct Run {
    child: Child,
    started: Instant,
    id: String,
    /// What it wrote to standard error (the first bytes), read while it
    /// runs, so a chatty program never blocks on a full pipe.
    stderr: Arc<Stderr>,
}

impl Drop for Run {
    /// Done with: its standard error, if something it started still holds
    /// it, may be closed at the bound.
    fn drop(&mut self) {
        self.stderr.run_ended();
    }
}

impl Run {
    /// Kills the program and everything it started (its process group).
    fn kill(&mut self) {
        let group = rustix::process::Pid::from_child(&self.child);
        // Already gone: nothing to kill.
        rustix::process::kill_process_group(group, rustix::process::Signal::KILL).unwrap_or(());
        self.child.wait().map(|_| ()).unwrap_or(());
    }

    fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Feeds the alert's JSON to its standard input and hands its standard
    /// error to the reader.
    fn attach(&mut self, alert: &Alert) -> io::Result<()> {
        if let Some(mut stdin) = self.child.stdin.take() {
            let json = format!("{}\n", alert.to_json());
            // A program that ignores its input may close it early; that is fine.
            std::thread::Builder::new()
                .name("exec-stdin".into())
                .spawn(move || stdin.write_all(json.as_bytes()).unwrap_or(()))?;
        }
        if let Some(err) = self.child.stderr.take() {
            self.stderr = super::stderr::watch(err)?;
        }
        Ok(())
    }
}

/// A program run per alert.
pub struct Exec {
    cfg: ExecSettings,
    running: Vec<Run>,
}

impl Exec {
    /// A runner for a validated output.
    pub fn new(cfg: ExecSettings) -> Exec {
        Exec { cfg, running: Vec::new() }
    }

    /// Logs finished runs and kills those past the timeout.
    fn reap(&mut self) {
        let name = self.name();
        reap(&mut self.running, self.cfg.timeout, &name);
    }

    /// Starts the program for one alert: the JSON is written to its standard
    /// input by a thread (a program that never reads it blocks only that
    /// thread, until it ends or is killed), and its standard error is read
    /// with every other run's ([`super::stderr`]). A run that cannot be set
    /// up so is killed, not left running unwatched.
    fn start(&self, alert: &Alert) -> io::Result<Run> {
        let (program, args) = self.cfg.command.split_first().expect("validated: not empty");
        let child = Command::new(program)
            .args(args)
            .envs(env_of(alert))
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let id = alert.id.clone().unwrap_or_default();
        let mut run = Run { child, started: Instant::now(), id, stderr: Arc::default() };
        if let Err(e) = run.attach(alert) {
            run.kill();
            return Err(e);
        }
        Ok(run)
    }
}

impl Deliver for Exec {
    /// The program alone: its arguments may hold a secret (`curl -H
    /// "Authorization: …"`), and the name is a metric's label.
    fn name(&self) -> String {
        match self.cfg.command.as_slice() {
            [program] => format!("exec {program}"),
            [program, ..] => format!("exec {program} …"),
            [] => "exec".to_string(),
        }
    }

    fn send(&mut self, alert: &Alert) -> io::Result<()> {
        self.reap();
        let run = self.start(alert)?;
        self.running.push(run);
        Ok(())
    }

    fn idle(&mut self) -> Option<Duration> {
        self.reap();
        (!self.running.is_empty()).then_some(CHECK_EVERY)
    }

    /// Every slot taken: come back when a run may have ended.
    fn busy(&mut self) -> Option<Duration> {
        self.reap();
        (self.running.len() >= self.cfg.max_concurrent).then_some(CHECK_EVERY)
    }

    /// At a reload, runs going on are not killed (a ban half done, an SMS
    /// not sent): a thread watches them to their end or their timeout.
    fn hand_over(&mut self) {
        let mut running = std::mem::take(&mut self.running);
        if running.is_empty() {
            return;
        }
        let (timeout, name) = (self.cfg.timeout, self.name());
        let watched = std::thread::Builder::new().name("exec-reload".into()).spawn(move || {
            while !running.is_empty() {
                std::thread::sleep(CHECK_EVERY);
                reap(&mut running, timeout, &name);
            }
        });
        if let Err(e) = watched {
            tracing::error!(error = %e, "Cannot watch running actions over the reload; they go on unwatched.");
        }
    }

    /// Kills what still runs: nothing is left behind when logwarden stops.
    fn shutdown(&mut self) {
        for mut run in std::mem::take(&mut self.running) {
            tracing::warn!(output = %self.name(), alert = %run.id, "Ending a running action as logwarden stops (its process group is killed).");
            run.kill();
        }
    }

    fn settle(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for mut run in std::mem::take(&mut self.running) {
            let end = run.started + self.cfg.timeout;
            let status = loop {
                if let Some(st) = run.child.try_wait()? {
                    break Some(st);
                }
                if Instant::now() >= end {
                    run.kill();
                    break None;
                }
                std::thread::sleep(CHECK_EVERY);
            };
            let err = match status {
                Some(st) if st.success() => continue,
                Some(st) => format!("{st}; stderr: {}", run.stderr()),
                None => format!("killed at its timeout of {:?}", self.cfg.timeout),
            };
            result = Err(io::Error::other(err));
        }
        result
    }
}

/// Logs the runs that ended and kills those past `timeout`; keeps the rest.
fn reap(running: &mut Vec<Run>, timeout: Duration, name: &str) {
    running.retain_mut(|run| match run.child.try_wait() {
        Ok(Some(status)) => {
            if !status.success() {
                let (id, err) = (&run.id, run.stderr());
                tracing::error!(output = %name, alert = %id, %status, stderr = %err, "Action failed.");
            }
            false
        }
        Ok(None) if run.started.elapsed() >= timeout => {
            run.kill();
            tracing::error!(output = %name, alert = %run.id, ?timeout, "Action killed at its timeout.");
            false
        }
        Ok(None) => true,
        Err(e) => {
            tracing::error!(output = %name, alert = %run.id, error = %e, "Cannot wait for action.");
            false
        }
    });
}

/// The alert's fields as `LOGWARDEN_*` variables.
fn env_of(a: &Alert) -> Vec<(&'static str, String)> {
    vec![
        ("LOGWARDEN_RULE", a.rule.clone()),
        ("LOGWARDEN_CLIENT", a.client_or_key().to_string()),
        ("LOGWARDEN_KEY", a.key.clone()),
        ("LOGWARDEN_COUNT", a.count.to_string()),
        ("LOGWARDEN_THRESHOLD", a.threshold.to_string()),
        ("LOGWARDEN_WINDOW", a.window_s.to_string()),
        ("LOGWARDEN_TIME", a.time.clone()),
        ("LOGWARDEN_FILE", a.file.clone()),
        ("LOGWARDEN_LINE", a.line.to_string()),
        ("LOGWARDEN_MESSAGE", a.message.clone()),
        ("LOGWARDEN_ID", a.id.clone().unwrap_or_default()),
        // In a farm: the node whose line raised it, and who decided it
        // (`farm`, or `local` while Redis did not answer); else empty.
        ("LOGWARDEN_NODE", a.node.clone().unwrap_or_default()),
        ("LOGWARDEN_SCOPE", a.scope.map(|s| s.name().to_string()).unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_farm_alert_tells_its_node_and_scope() {
        let mut a =
            Alert { key: "alice".into(), client: Some("192.0.2.7".into()), ..Alert::sample() };
        let var = |a: &Alert, k: &str| env_of(a).into_iter().find(|(n, _)| *n == k).unwrap().1;
        assert_eq!(
            (var(&a, "LOGWARDEN_CLIENT"), var(&a, "LOGWARDEN_KEY")),
            ("192.0.2.7".into(), "alice".into())
        );
        assert_eq!(
            (var(&a, "LOGWARDEN_NODE"), var(&a, "LOGWARDEN_SCOPE")),
            (String::new(), String::new())
        );
        (a.node, a.scope) = (Some("web01".into()), Some(crate::alert::Scope::Local));
        assert_eq!(
            (var(&a, "LOGWARDEN_NODE"), var(&a, "LOGWARDEN_SCOPE")),
            ("web01".into(), "local".into())
        );
    }
}
