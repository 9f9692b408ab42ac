//! One daemon per state directory: `logwarden run` holds an exclusive lock
//! on `state.dir/lock` while it uses the directory, so a second one started
//! on the same state (a manual run beside the service, two units with one
//! `state.dir`) refuses to start instead of alerting twice and overwriting
//! the first one's saved positions and windows.
//!
//! The lock is the kernel's (`flock`, through [`File::try_lock`]): it goes
//! with the process, however the process ends (`kill -9` included), so a
//! lock file left behind never blocks a restart. The file holds the
//! holder's pid, for the message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The lock file's name in `state.dir`.
pub const LOCK_NAME: &str = "lock";

/// How long a held lock is waited for: a daemon killed a moment ago holds
/// it until the kernel has closed its files, and `kill -9` returns before
/// that (a restart right after one must not fail).
const WAIT: Duration = Duration::from_secs(2);

/// A state directory held by this process until every clone is dropped.
#[derive(Debug, Clone)]
pub struct DirLock {
    /// The directory, canonical (two spellings of one directory are one).
    dir: PathBuf,
    /// The open lock file: closing it releases the lock. Replaced by
    /// [`DirLock::renew`] when the file was removed.
    file: Arc<Mutex<File>>,
}

/// Why a state directory could not be held.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "state.dir {dir} is in use by another logwarden run{holder}: two daemons on one state would alert twice and overwrite each other's saved positions; stop the other one, or give this one a state.dir of its own"
    )]
    Held {
        /// The directory.
        dir: String,
        /// " (pid N)" when the holder wrote its pid, else empty.
        holder: String,
    },
    /// The directory or its lock file could not be made, opened or locked.
    #[error("cannot use state.dir: {path}: {error} (it must be a directory logwarden can write)")]
    Io {
        /// What failed: the directory or its lock file.
        path: String,
        /// The error.
        error: io::Error,
    },
}

impl DirLock {
    /// Creates `dir` where it is missing and holds it, or says who does.
    pub fn take(dir: &Path) -> Result<DirLock, LockError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let canonical = dir.canonicalize().map_err(io_err(dir))?;
        let file = lock_file(dir, &canonical, WAIT)?;
        Ok(DirLock { dir: canonical, file: Arc::new(Mutex::new(file)) })
    }

    /// Whether this lock holds `dir` (as [`DirLock::take`] would name it).
    pub fn holds(&self, dir: &Path) -> bool {
        dir.canonicalize().is_ok_and(|d| d == self.dir)
    }

    /// Takes the directory again when its lock file is no longer the one
    /// held (the directory, or the file, was removed while this process
    /// ran: a second daemon could have started on it): true when taken
    /// again, an error when another process took it meanwhile.
    pub fn renew(&self) -> Result<bool, LockError> {
        let mut held = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let path = self.dir.join(LOCK_NAME);
        let same =
            |a: std::fs::Metadata, b: std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
        if let (Ok(there), Ok(mine)) = (std::fs::metadata(&path), held.metadata())
            && same(there, mine)
        {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        *held = lock_file(&self.dir, &self.dir, Duration::ZERO)?;
        Ok(true)
    }
}

/// An error making or using `path`.
fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LockError {
    let path = path.display().to_string();
    move |error| LockError::Io { path, error }
}

/// The lock file of the directory `canonical` (`dir` as configured, for the
/// message), opened or made and locked, waiting up to `wait` for another
/// holder; the holder's pid written in it.
fn lock_file(dir: &Path, canonical: &Path, wait: Duration) -> Result<File, LockError> {
    let path = canonical.join(LOCK_NAME);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    match try_lock_for(&file, wait) {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = written_pid(&mut file).map_or(String::new(), |p| format!(" (pid {p})"));
            return Err(LockError::Held { dir: dir.display().to_string(), holder });
        }
        Err(TryLockError::Error(e)) => return Err(io_err(&path)(e)),
    }
    // The pid is only for another process's message: failing to write
    // it leaves the lock as good.
    let pid = file.set_len(0).and_then(|()| file.rewind());
    if let Err(e) = pid.and_then(|()| writeln!(file, "{}", std::process::id())) {
        tracing::debug!(path = %path.display(), error = %e, "Cannot write the pid into the lock file.");
    }
    Ok(file)
}

/// Whether a running logwarden holds `dir` (for `check`, which runs beside
/// the service): `Some` with the holder's pid if it wrote one. Nothing is
/// created; a lock found free is held for a moment only, which a daemon
/// starting then waits out.
pub fn holder(dir: &Path) -> Option<Option<u32>> {
    let mut file = OpenOptions::new().read(true).open(dir.join(LOCK_NAME)).ok()?;
    match file.try_lock() {
        Err(TryLockError::WouldBlock) => Some(written_pid(&mut file)),
        _ => None,
    }
}

/// The pid a holder wrote into the lock file.
fn written_pid(file: &mut File) -> Option<u32> {
    let mut pid = String::new();
    file.read_to_string(&mut pid).ok()?;
    pid.trim().parse().ok()
}

/// `file.try_lock()`, tried again every 20 ms while another holds it, for
/// up to `wait`.
fn try_lock_for(file: &File, wait: Duration) -> Result<(), TryLockError> {
    let end = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_directory_is_refused_until_released() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let first = DirLock::take(&dir).expect("the directory is made and held");
        assert!(first.holds(&dir));
        assert!(first.holds(&tmp.path().join("state/../state")), "one directory, two spellings");
        assert!(!first.holds(tmp.path()));
        // A second open file is refused as another process is: flock locks
        // belong to the open file, not the process.
        let err = DirLock::take(&dir).unwrap_err().to_string();
        let pid = format!("(pid {})", std::process::id());
        assert!(err.contains("is in use by another logwarden run") && err.contains(&pid), "{err}");
        assert_eq!(holder(&dir), Some(Some(std::process::id())));
        // Released while another waits (as by a process just killed): taken.
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(first);
        });
        let again = DirLock::take(&dir).expect("taken once released");
        late.join().unwrap();
        drop(again);
        assert_eq!(holder(&dir), None, "free");
        assert_eq!(holder(tmp.path()), None, "no lock file");
    }

    #[test]
    fn a_lock_removed_with_its_directory_is_taken_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let lock = DirLock::take(&dir).unwrap();
        assert!(!lock.renew().unwrap(), "still held");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(holder(&dir), None, "nothing holds the directory made again");
        assert!(lock.renew().unwrap(), "taken again");
        assert_eq!(holder(&dir), Some(Some(std::process::id())));
        assert!(!lock.renew().unwrap());
        // Taken by another meanwhile: told, with its pid.
        std::fs::remove_dir_all(&dir).unwrap();
        let other = DirLock::take(&dir).unwrap();
        let err = lock.renew().unwrap_err().to_string();
        assert!(err.contains("is in use by another logwarden run (pid"), "{err}");
        drop(other);
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_told() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain");
        std::fs::write(&file, "").unwrap();
        let err = DirLock::take(&file.join("state")).unwrap_err().to_string();
        let expect = format!("cannot use state.dir: {}/state: ", file.display());
        assert!(err.starts_with(&expect), "{err}");
    }
}
