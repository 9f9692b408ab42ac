//! Outputs: where alerts go, delivered on the alert thread.
//!
//! - `jsonl`: one JSON object per alert (the fields of `replay --json`),
//!   appended and flushed before the alert counts as delivered.
//! - `syslog`: the local socket, UDP or TCP (see [`syslog`]).
//!
//! Each output keeps its own state: an alert that reached one output and
//! not another is retried on the failing one only. A failing output is
//! logged once per outage.

pub mod syslog;

use crate::alert::Alert;
use crate::config::OutputConfig;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What an output is.
enum Kind {
    Jsonl { path: PathBuf, file: File },
    Syslog(Box<syslog::Syslog>),
}

/// One opened output.
struct Sink {
    kind: Kind,
    /// Whether it is in an outage (already reported).
    failing: bool,
}

impl Sink {
    fn name(&self) -> String {
        match &self.kind {
            Kind::Jsonl { path, .. } => format!("jsonl {}", path.display()),
            Kind::Syslog(s) => format!("syslog {}", s.target()),
        }
    }

    fn send(&mut self, alert: &Alert) -> io::Result<()> {
        match &mut self.kind {
            Kind::Jsonl { file, .. } => {
                let line = format!("{}\n", alert.to_json());
                file.write_all(line.as_bytes()).and_then(|()| file.flush())
            }
            Kind::Syslog(s) => s.send(alert),
        }
    }
}

/// The configured outputs, opened.
pub struct Outputs(Vec<Sink>);

/// An output that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot open the jsonl output {path}: {source} (check that its directory exists and is writable)"
)]
pub struct OutputError {
    /// The file.
    pub path: String,
    /// Why.
    pub source: io::Error,
}

impl Outputs {
    /// Opens every configured output (syslog connections open on first use).
    pub fn open(configs: &[OutputConfig]) -> Result<Outputs, OutputError> {
        let mut sinks = Vec::new();
        for c in configs {
            let kind = match c {
                OutputConfig::Jsonl(path) => {
                    Kind::Jsonl { path: path.clone(), file: open_append(path)? }
                }
                OutputConfig::Syslog(s) => Kind::Syslog(Box::new(syslog::Syslog::new(s.clone()))),
            };
            sinks.push(Sink { kind, failing: false });
        }
        Ok(Outputs(sinks))
    }

    /// Delivers one alert to every output not yet in `done` (a bit per
    /// output, set on success); returns whether all have it now. Failures
    /// are logged once per outage and retried by the caller.
    pub fn deliver(&mut self, alert: &Alert, done: &mut u64) -> bool {
        for (i, sink) in self.0.iter_mut().enumerate() {
            if *done & (1 << i) != 0 {
                continue;
            }
            match sink.send(alert) {
                Ok(()) => {
                    *done |= 1 << i;
                    if std::mem::take(&mut sink.failing) {
                        tracing::warn!(output = %sink.name(), "Output works again; delivering held alerts.");
                    }
                }
                Err(e) if !sink.failing => {
                    sink.failing = true;
                    tracing::error!(output = %sink.name(), error = %e, "Cannot deliver alerts; holding them and retrying.");
                }
                Err(_) => {}
            }
        }
        self.0.iter().enumerate().all(|(i, _)| *done & (1 << i) != 0)
    }

    /// Sends `alert` to every output; the name and result of each.
    pub fn test(&mut self, alert: &Alert) -> Vec<(String, io::Result<()>)> {
        self.0.iter_mut().map(|s| (s.name(), s.send(alert))).collect()
    }

    /// Ids of alerts already in the jsonl outputs (their last 16 MiB), so a
    /// restart does not append them again.
    pub fn delivered_ids(&self) -> Vec<String> {
        const TAIL: u64 = 16 << 20;
        let mut ids = Vec::new();
        for sink in &self.0 {
            let Kind::Jsonl { path, .. } = &sink.kind else { continue };
            let Ok(bytes) = read_tail(path, TAIL) else { continue };
            for line in bytes.split(|&c| c == b'\n') {
                if let Ok(a) = serde_json::from_slice::<Alert>(line) {
                    ids.extend(a.id);
                }
            }
        }
        ids
    }
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

fn open_append(path: &Path) -> Result<File, OutputError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| OutputError { path: path.display().to_string(), source })
}
