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
}

/// What names each output across a change of the configuration, for the
/// alerts saved held for it: its kind and its place among the outputs of
/// that kind (`webhook#1`). An output added or removed before it, or its
/// settings changed (a webhook's URL mended), leave it the same output.
pub fn keys(configs: &[OutputConfig]) -> Vec<String> {
    let kind = |c: &OutputConfig| match c.kind {
        OutputKind::Syslog(_) => "syslog",
        OutputKind::Jsonl(_) => "jsonl",
        OutputKind::Exec(_) => "exec",
        OutputKind::Webhook(_) => "webhook",
    };
    let keys = configs.iter().enumerate().map(|(i, c)| {
        let nth = configs[..=i].iter().filter(|o| kind(o) == kind(c)).count();
        format!("{}#{nth}", kind(c))
    });
    keys.collect()
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

/// The last `n` bytes of a file.
fn read_tail(path: &Path, n: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(n)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}
