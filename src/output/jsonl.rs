//! jsonl: one JSON object per alert (the fields of `replay --json`, plus
//! `id`), appended and flushed before the alert counts as delivered. The
//! file itself records what it received: its ids are read back at start.
//! A file rotated away (renamed or deleted, as logrotate does) is followed
//! by a new one under the path at the next alert: otherwise alerts would go
//! on into the renamed file, or into a deleted one once it is compressed.

use super::{Deliver, OutputError, read_tail};
use crate::alert::Alert;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A jsonl file.
pub struct Jsonl {
    path: PathBuf,
    file: File,
    /// The open file's device and inode, to see the path name another.
    id: (u64, u64),
    /// A write failed, maybe half done (the disk full): its piece of a line
    /// is cut before the next one, which would be glued to it.
    cut: bool,
}

impl Jsonl {
    /// Opens (creates) the file for appending, cutting a line left
    /// incomplete by a crash.
    pub fn open(path: &Path) -> Result<Jsonl, OutputError> {
        let file = open_append(path)?;
        drop_partial_line(&file, path);
        let id = file_id(
            &file
                .metadata()
                .map_err(|error| OutputError { path: path.display().to_string(), error })?,
        );
        Ok(Jsonl { path: path.to_path_buf(), file, id, cut: false })
    }

    /// Opens the file under the path again if it is no longer the one open
    /// (rotated away: renamed, or deleted).
    fn follow_rotation(&mut self) -> io::Result<()> {
        if std::fs::metadata(&self.path).is_ok_and(|md| file_id(&md) == self.id) {
            return Ok(());
        }
        let fresh = Jsonl::open(&self.path).map_err(|e| e.error)?;
        tracing::info!(path = %self.path.display(), "The jsonl file was rotated away; writing to a new one.");
        *self = fresh;
        Ok(())
    }
}

fn file_id(md: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (md.dev(), md.ino())
}

impl Deliver for Jsonl {
    fn name(&self) -> String {
        format!("jsonl {}", self.path.display())
    }

    fn send(&mut self, alert: &Alert) -> io::Result<()> {
        self.follow_rotation()?;
        if self.cut {
            drop_partial_line(&self.file, &self.path);
        }
        let line = format!("{}\n", alert.to_json());
        let written = self.file.write_all(line.as_bytes()).and_then(|()| self.file.flush());
        self.cut = written.is_err();
        written
    }

    /// The ids in the file's last 16 MiB.
    fn delivered_ids(&self) -> Vec<String> {
        const TAIL: u64 = 16 << 20;
        let Ok(bytes) = read_tail(&self.path, TAIL) else { return Vec::new() };
        bytes
            .split(|&c| c == b'\n')
            .filter_map(|l| serde_json::from_slice::<Alert>(l).ok()?.id)
            .collect()
    }
}

/// Cuts a last line without newline, left by a crash or a failed write in
/// the middle of a line: that alert was not delivered (it is sent again),
/// and the next line must not be glued to it.
fn drop_partial_line(file: &File, path: &Path) {
    let Ok(tail) = read_tail(path, 64 << 10) else { return };
    if tail.is_empty() || tail.ends_with(b"\n") {
        return;
    }
    let len = file.metadata().map_or(0, |m| m.len());
    let keep = match memchr::memrchr(b'\n', &tail) {
        Some(i) => len - tail.len() as u64 + i as u64 + 1,
        None if len <= tail.len() as u64 => 0,
        None => return,
    };
    if let Err(e) = file.set_len(keep) {
        tracing::warn!(path = %path.display(), error = %e, "Cannot cut an incomplete last line.");
    }
}

fn open_append(path: &Path) -> Result<File, OutputError> {
    let failed = |error| OutputError { path: path.display().to_string(), error };
    // Opening a named pipe would wait for a reader, and reading its tail
    // back would take the reader's data.
    if let Ok(md) = std::fs::metadata(path)
        && !md.is_file()
    {
        let what = "not a regular file (a pipe, a device or a directory): jsonl appends to a file; an exec action feeds a program";
        return Err(failed(io::Error::new(io::ErrorKind::InvalidInput, what)));
    }
    OpenOptions::new().create(true).append(true).open(path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::super::{MAX_QUEUED, OutputConfig, OutputKind, open};

    fn jsonl(p: &std::path::Path) -> OutputConfig {
        OutputConfig {
            kind: OutputKind::Jsonl(p.to_path_buf()),
            max_queued: MAX_QUEUED,
            rules: None,
        }
    }

    #[test]
    fn a_line_cut_by_a_crash_is_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(&p, b"{\"a\":1}\n{\"b\":").unwrap();
        let outputs = open(&[jsonl(&p)]).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"a\":1}\n");
        drop(outputs);
        std::fs::write(&p, b"{\"b\":").unwrap();
        drop(open(&[jsonl(&p)]).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"");
    }
}
