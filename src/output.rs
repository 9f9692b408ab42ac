//! Outputs: where alerts go. Each is delivered on the alert thread.
//!
//! - `jsonl`: one JSON object per alert (the fields of `replay --json`),
//!   appended and flushed before the alert counts as delivered.
//! - `syslog`: validated here; its delivery arrives with the syslog issue.
//!   Until then the daemon writes such alerts to its own log, so none is lost
//!   from sight.

use crate::alert::Alert;
use crate::config::OutputConfig;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One opened output.
enum Sink {
    Jsonl { path: PathBuf, file: File },
    DaemonLog,
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
    /// Opens every configured output.
    pub fn open(configs: &[OutputConfig]) -> Result<Outputs, OutputError> {
        let mut sinks = Vec::new();
        for c in configs {
            match c {
                OutputConfig::Jsonl(path) => {
                    sinks.push(Sink::Jsonl { path: path.clone(), file: open_append(path)? })
                }
                OutputConfig::Syslog(s) => {
                    tracing::warn!(
                        target = %s.target,
                        "Syslog delivery is not available in this version; alerts for this output go to the daemon log."
                    );
                    sinks.push(Sink::DaemonLog);
                }
            }
        }
        Ok(Outputs(sinks))
    }

    /// Delivers one alert to every output; returns false when an output
    /// failed (it is logged; the others still get the alert).
    pub fn deliver(&mut self, alert: &Alert) -> bool {
        let mut ok = true;
        for sink in &mut self.0 {
            match sink {
                Sink::Jsonl { path, file } => {
                    let line = format!("{}\n", alert.to_json());
                    if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
                        tracing::error!(path = %path.display(), error = %e, "Cannot append alert to jsonl output.");
                        ok = false;
                    }
                }
                Sink::DaemonLog => {
                    tracing::warn!(rule = %alert.rule, key = %alert.key, "{}", alert.message)
                }
            }
        }
        ok
    }

    /// Ids of alerts already in the jsonl outputs (their last 16 MiB), so a
    /// restart does not append them again.
    pub fn delivered_ids(&self) -> Vec<String> {
        const TAIL: u64 = 16 << 20;
        let mut ids = Vec::new();
        for sink in &self.0 {
            let Sink::Jsonl { path, .. } = sink else { continue };
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
