//! An output's journal: the ids of the alerts it took, one a line, in
//! `state.dir/delivered-<kind>-<digest>.ids` (named by where the output
//! delivers, see `queue::journal_path`), so that an alert decided again
//! from lines read again after a crash is not sent again.
//!
//! Each id is appended with one `write` as soon as the output took the
//! alert (it survives a crash of logwarden), and the file is synced at most
//! every [`SYNC_EVERY`] and before the output waits for work (a crash of the
//! machine loses at most that much). Past [`JOURNAL_MAX`] it is cut back to
//! its last [`JOURNAL_KEEP`] bytes by writing a new file and renaming it
//! over the old one, so a crash leaves one or the other. A write error is
//! logged once, not ignored, and what it left of its line is cut.

use super::read_tail;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The journal is cut back to its tail past this size.
const JOURNAL_MAX: u64 = 8 << 20;
/// What is kept of it then: about twenty thousand ids.
const JOURNAL_KEEP: u64 = 1 << 20;
/// Longest time an appended id stays unsynced while the output is busy.
const SYNC_EVERY: Duration = Duration::from_millis(100);

/// The journal of one output.
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
    unsynced: bool,
    last_sync: Instant,
    failing: bool,
}

impl Journal {
    /// Opens (creates) the journal at `path`; returns it and the ids it
    /// holds, oldest first.
    pub fn open(path: &Path) -> io::Result<(Journal, Vec<String>)> {
        let named =
            |e: io::Error| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()));
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(named)?;
        let len = file.metadata().map_err(named)?.len();
        let bytes = read_tail(path, JOURNAL_MAX).map_err(named)?;
        // A journal longer than what was read starts mid-line: skip that line.
        let skip = usize::from(len > JOURNAL_MAX);
        let text = String::from_utf8_lossy(&bytes);
        let ids = text.lines().skip(skip).filter(|l| !l.is_empty()).map(str::to_string).collect();
        let j = Journal {
            path: path.to_path_buf(),
            file,
            len,
            unsynced: false,
            last_sync: Instant::now(),
            failing: false,
        };
        Ok((j, ids))
    }

    /// Records that the output took alert `id`.
    pub fn record(&mut self, id: &str) {
        let line = format!("{id}\n");
        match self.file.write_all(line.as_bytes()) {
            Ok(()) => {
                self.len += line.len() as u64;
                self.unsynced = true;
                self.failing = false;
            }
            Err(e) => {
                self.report(&e);
                // A line half written (the disk full) would garble the next.
                if let Err(e) = self.file.set_len(self.len) {
                    self.report(&e);
                }
            }
        }
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync();
        }
        if self.len > JOURNAL_MAX {
            self.cut_back();
        }
    }

    /// Syncs what was appended (before the output waits for work).
    pub fn sync(&mut self) {
        if self.unsynced {
            if let Err(e) = self.file.sync_data() {
                self.report(&e);
            }
            self.unsynced = false;
            self.last_sync = Instant::now();
        }
    }

    /// Replaces the journal by its last lines, atomically.
    fn cut_back(&mut self) {
        let result = (|| -> io::Result<File> {
            let tail = read_tail(&self.path, JOURNAL_KEEP)?;
            let start = memchr::memchr(b'\n', &tail).map_or(tail.len(), |i| i + 1);
            let tmp = self.path.with_extension("ids.tmp");
            let mut f = File::create(&tmp)?;
            f.write_all(&tail[start..])?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
            OpenOptions::new().append(true).open(&self.path)
        })();
        match result {
            Ok(f) => {
                self.len = f.metadata().map_or(0, |m| m.len());
                self.file = f;
            }
            Err(e) => self.report(&e),
        }
    }

    fn report(&mut self, e: &io::Error) {
        if !self.failing {
            self.failing = true;
            tracing::error!(path = %self.path.display(), error = %e, "Cannot write the journal of delivered alerts; after a crash they may be sent again.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_reopening_and_cutting_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("delivered-0.ids");
        let (mut j, ids) = Journal::open(&p).unwrap();
        assert!(ids.is_empty());
        for n in 0..200_000u32 {
            j.record(&format!("id-{n:06}-{}", "x".repeat(40)));
        }
        j.sync();
        let size = std::fs::metadata(&p).unwrap().len();
        assert!(size <= JOURNAL_MAX, "cut back: {size} bytes");
        let (_, ids) = Journal::open(&p).unwrap();
        assert!(ids.len() > 10_000, "{} ids kept", ids.len());
        assert!(ids.last().unwrap().starts_with("id-199999-"));
        assert!(ids.iter().all(|i| i.len() == 50), "no line cut in the middle");
        assert!(!dir.path().join("delivered-0.ids.tmp").exists());
    }

    /// A journal that cannot be written (a full disk: `/dev/full`) says so
    /// once, naming its path, and counts nothing as written.
    #[test]
    fn a_write_error_is_logged_once() {
        let path = PathBuf::from("/dev/full");
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        let mut j = Journal {
            path,
            file,
            len: 0,
            unsynced: false,
            last_sync: Instant::now(),
            failing: false,
        };
        let text = crate::testing::logged(|| {
            j.record("a");
            j.record("b");
        });
        assert_eq!(text.matches("Cannot write the journal").count(), 1, "{text}");
        assert!(text.contains("/dev/full"), "{text}");
        assert_eq!(j.len, 0);
    }
}
