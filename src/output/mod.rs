//! Outputs: where alerts go.
//!
//! - `syslog`: the local socket, UDP or TCP (see [`syslog`]);
//! - `jsonl`: one JSON object per alert (the fields of `replay --json`),
//!   appended and flushed before the alert counts as delivered;
//! - `exec`: a program run per alert (see [`exec`]);
//! - `webhook`: an HTTP(S) POST per alert (see [`webhook`]).
//!
//! In the daemon every output has its own thread and bounded queue
//! ([`Running`], in [`queue`]); each journals the ids it took ([`journal`]).

pub mod exec;
mod journal;
pub mod jsonl;
mod queue;
mod stderr;
pub mod syslog;
pub mod webhook;

pub use queue::{OutputStats, OutputsView, Running};

use crate::alert::Alert;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Alerts queued per output, by default: beyond, new ones are dropped and counted.
pub const MAX_QUEUED: usize = 100_000;

/// Something that takes alerts one at a time.
pub trait Deliver: Send {
    /// A name for messages (`syslog tcp://…`).
    fn name(&self) -> String;
    /// Delivers one alert; an error means it was not delivered.
    fn send(&mut self, alert: &Alert) -> io::Result<()>;
    /// Ids of alerts this output already holds (for the jsonl file).
    fn delivered_ids(&self) -> Vec<String> {
        Vec::new()
    }
    /// Called when the queue is empty; returns when to be called again.
    fn idle(&mut self) -> Option<Duration> {
        None
    }
    /// `Some(d)` when it cannot take an alert now: ask again after `d`.
    fn busy(&mut self) -> Option<Duration> {
        None
    }
    /// Called once when the output stops: end what it started.
    fn shutdown(&mut self) {}
    /// Called instead of [`Deliver::shutdown`] when the output stops for a
    /// reload, the process going on: what it started may run to its end.
    fn hand_over(&mut self) {
        self.shutdown();
    }
    /// Waits for work started by `send` to end and reports how it ended
    /// (for `test-alert`; an exec action runs after `send` returns).
    fn settle(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One output alerts go to: its kind with its settings, and its queue's bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    /// What it is.
    pub kind: OutputKind,
    /// Alerts queued for it at most (while it is slow or down).
    pub max_queued: usize,
    /// The rules whose alerts it gets, as names or globs (`login-*`);
    /// `None`: every rule's.
    pub rules: Option<Vec<String>>,
}

/// One entry of an output's `rules`: a rule's name, or a glob over the
/// names (`login-*`). A name matches itself even where it reads as a
/// glob (a rule named `a[1]`).
pub struct RuleEntry {
    text: String,
    glob: Result<globset::GlobMatcher, globset::Error>,
}

impl RuleEntry {
    /// The entry as written.
    pub fn new(text: &str) -> RuleEntry {
        let glob = globset::Glob::new(text).map(|g| g.compile_matcher());
        RuleEntry { text: text.to_string(), glob }
    }

    /// Whether it names the rule `name`.
    pub fn takes(&self, name: &str) -> bool {
        self.text == name || self.glob.as_ref().is_ok_and(|g| g.is_match(name))
    }

    /// Why it is no glob, if it is none.
    pub fn glob_error(&self) -> Option<String> {
        self.glob.as_ref().err().map(ToString::to_string)
    }
}

/// For each rule of `names`, the bits of the outputs that get its alerts.
pub fn rule_masks(configs: &[OutputConfig], names: &[&str]) -> Vec<u64> {
    let takes: Vec<Option<Vec<RuleEntry>>> = configs
        .iter()
        .map(|c| c.rules.as_ref().map(|r| r.iter().map(|e| RuleEntry::new(e)).collect()))
        .collect();
    let mask = |name: &str| {
        let gets = |t: &Option<Vec<RuleEntry>>| {
            t.as_ref().is_none_or(|entries| entries.iter().any(|e| e.takes(name)))
        };
        let bits = takes.iter().enumerate().filter(|(i, t)| *i < 64 && gets(t));
        bits.fold(0, |m, (i, _)| m | 1 << i)
    };
    names.iter().map(|n| mask(n)).collect()
}

/// What names each output across a change of the configuration, for the
/// alerts saved held for it: its kind, its place among the outputs of that
/// kind and a digest of what it delivers to (`webhook#1@…`: the URL, the
/// file, the command, the syslog target and tag; a digest, as a webhook's
/// URL may hold a secret). [`held_for_now`] finds an output by what it
/// delivers to first, so reordering outputs keeps each one's alerts, and by
/// its kind and place otherwise, so mending a URL keeps them too.
pub fn keys(configs: &[OutputConfig]) -> Vec<String> {
    let keys = configs.iter().enumerate().map(|(i, c)| {
        let nth = configs[..=i].iter().filter(|o| o.kind.name() == c.kind.name()).count();
        let to = crate::rules::digest(&c.kind.destination());
        format!("{}#{nth}@{}", c.kind.name(), to.get(..16).unwrap_or(&to))
    });
    keys.collect()
}

/// The bits of `mask`, which stand for the outputs `saved` ([`keys`]),
/// moved to where those outputs are among the outputs `now`; an output gone
/// loses its bit. An output is found by its kind and destination, else by
/// its kind and place among the outputs not found so (keys saved before
/// they had a destination have only those).
pub fn held_for_now(mask: u64, saved: &[String], now: &[String]) -> u64 {
    fn kind_to(k: &str) -> Option<(&str, &str)> {
        let p = KeyParts::of(k);
        (!p.to.is_empty()).then_some((p.kind, p.to))
    }
    let mut found: Vec<Option<usize>> = vec![None; saved.len()];
    let mut taken = vec![false; now.len()];
    let mut pass = |same: &dyn Fn(&str, &str) -> bool| {
        for (i, s) in saved.iter().enumerate() {
            let free = (0..now.len()).find(|j| !taken[*j] && same(s, &now[*j]));
            if found[i].is_none()
                && let Some(j) = free
            {
                (found[i], taken[j]) = (Some(j), true);
            }
        }
    };
    pass(&|s, n| s == n);
    pass(&|s, n| kind_to(s).is_some() && kind_to(s) == kind_to(n));
    pass(&|s, n| KeyParts::of(s).place == KeyParts::of(n).place);
    let bits = found.iter().enumerate().filter(|(i, _)| *i < 64 && mask >> i & 1 == 1);
    bits.filter_map(|(_, j)| *j).filter(|j| *j < 64).fold(0, |m, j| m | 1 << j)
}

/// An output's key ([`keys`]) read back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KeyParts<'k> {
    /// `webhook`.
    pub kind: &'k str,
    /// The kind and the place among that kind: `webhook#1`.
    pub place: &'k str,
    /// The destination's digest; empty in a key saved before keys had one.
    pub to: &'k str,
}

impl KeyParts<'_> {
    /// The parts of `key`.
    pub fn of(key: &str) -> KeyParts<'_> {
        let (place, to) = key.split_once('@').unwrap_or((key, ""));
        KeyParts { kind: place.split('#').next().unwrap_or(place), place, to }
    }
}

/// The kinds of output, with their settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    /// The system log.
    Syslog(syslog::SyslogSettings),
    /// One JSON object per alert, appended to a file.
    Jsonl(PathBuf),
    /// A program run per alert.
    Exec(exec::ExecSettings),
    /// An HTTP(S) POST per alert.
    Webhook(webhook::WebhookSettings),
}

impl OutputKind {
    /// The kind's name, as in the configuration.
    fn name(&self) -> &'static str {
        match self {
            OutputKind::Syslog(_) => "syslog",
            OutputKind::Jsonl(_) => "jsonl",
            OutputKind::Exec(_) => "exec",
            OutputKind::Webhook(_) => "webhook",
        }
    }

    /// What the output delivers to, as text.
    fn destination(&self) -> String {
        match self {
            OutputKind::Syslog(s) => format!("{} {}", s.target, s.tag),
            OutputKind::Jsonl(path) => path.display().to_string(),
            OutputKind::Exec(e) => e.command.join("\0"),
            OutputKind::Webhook(w) => w.url.clone(),
        }
    }
}

/// An output that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot open the jsonl output {path}: {error} (check that its directory exists and is writable)"
)]
pub struct OutputError {
    /// The file.
    pub path: String,
    /// Why.
    pub error: io::Error,
}

/// Opens every configured output, in configuration order.
pub fn open(configs: &[OutputConfig]) -> Result<Vec<Box<dyn Deliver>>, OutputError> {
    configs
        .iter()
        .map(|c| -> Result<Box<dyn Deliver>, OutputError> {
            Ok(match &c.kind {
                OutputKind::Jsonl(path) => Box::new(jsonl::Jsonl::open(path)?),
                OutputKind::Syslog(s) => Box::new(syslog::Syslog::new(s.clone())),
                OutputKind::Exec(e) => Box::new(exec::Exec::new(e.clone())),
                OutputKind::Webhook(w) => Box::new(webhook::Webhook::new(w.clone())),
            })
        })
        .collect()
}

/// The last `n` bytes of a file (more if it grows meanwhile).
pub(crate) fn read_tail(path: &Path, n: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(n)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jsonl(p: &str) -> OutputConfig {
        OutputConfig { kind: OutputKind::Jsonl(p.into()), max_queued: 1, rules: None }
    }

    #[test]
    fn held_alerts_follow_their_output_when_outputs_are_reordered() {
        let saved = keys(&[jsonl("/a"), jsonl("/b")]);
        assert!(saved[0].starts_with("jsonl#1@") && saved[1].starts_with("jsonl#2@"));
        let now = keys(&[jsonl("/b"), jsonl("/a")]);
        assert_eq!(held_for_now(0b01, &saved, &now), 0b10);
        assert_eq!(held_for_now(0b10, &saved, &now), 0b01);
        // An output added before: each keeps its alerts.
        let now = keys(&[jsonl("/c"), jsonl("/a"), jsonl("/b")]);
        assert_eq!(held_for_now(0b10, &saved, &now), 0b100);
        // No longer configured: nothing left to deliver to.
        assert_eq!(held_for_now(0b10, &saved, &keys(&[jsonl("/a")])), 0);
    }

    #[test]
    fn held_alerts_follow_an_output_whose_destination_was_mended() {
        let saved = keys(&[jsonl("/a"), jsonl("/typo")]);
        let now = keys(&[jsonl("/a"), jsonl("/b")]);
        assert_eq!(held_for_now(0b10, &saved, &now), 0b10);
        // Keys saved before they had a destination: by kind and place.
        let old: Vec<String> = ["jsonl#1", "jsonl#2"].map(String::from).to_vec();
        let now = keys(&[OutputConfig {
            kind: OutputKind::Exec(exec_echo()),
            max_queued: 1,
            rules: None,
        }])
        .into_iter()
        .chain(keys(&[jsonl("/b"), jsonl("/a")]))
        .collect::<Vec<_>>();
        assert_eq!(held_for_now(0b10, &old, &now), 0b100);
        assert_eq!(held_for_now(0b11, &old, &now), 0b110);
    }

    #[test]
    fn an_output_gets_the_alerts_of_the_rules_it_names() {
        let mut a = jsonl("/a");
        a.rules = Some(vec!["login-*".into(), "today_download".into(), "b[1]".into()]);
        let b = jsonl("/b");
        let masks =
            rule_masks(&[a, b], &["today_download", "login-brute-force", "10-env", "b[1]", "b1"]);
        assert_eq!(masks, [0b11, 0b11, 0b10, 0b11, 0b11]);
        assert!(RuleEntry::new("a[").takes("a[") && RuleEntry::new("a[").glob_error().is_some());
    }

    fn exec_echo() -> exec::ExecSettings {
        exec::ExecSettings {
            command: vec!["echo".into()],
            timeout: std::time::Duration::from_secs(1),
            max_concurrent: 1,
        }
    }
}
