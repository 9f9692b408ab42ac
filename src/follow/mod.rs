//! Follow: live log files as they grow — a dated series, a plain path or a
//! glob — across date switches and every logrotate style, as a
//! [`Source`] for the pipeline. [`pattern`] names the files, [`listing`]
//! looks at a directory a rotation may be renaming, [`reader`]
//! reads one; this module finds them and handles their rotation.
//!
//! Growing files are read with positioned reads into owned buffers, never
//! memory-mapped: touching a mapped page past the end of a file truncated
//! under the mapping (copytruncate) raises SIGBUS and kills the process. The
//! copy costs a `memcpy` per byte, far below parsing.
//!
//! A file is known by device + inode and a checksum of its first bytes, so a
//! reused inode is not mistaken for the old file. On each wake-up (a file
//! system event, or `poll_interval` without one) the follower:
//! 1. finds the current files: the newest file of a dated series, the file a
//!    plain path names now, or every glob match (with file events, only when
//!    one said a name changed, or a second after the last look);
//! 2. opens files it does not know, from their beginning (or, on a first
//!    start without state and `start_at = "end"`, from their end), and
//!    generations rotated away before any look found them; a file no
//!    longer current is drained: read while it grows, and closed once quiet
//!    for `rotate_wait` (Apache writes late lines to yesterday's file);
//! 3. reads each file from its offset to its size: a shrink or a changed
//!    checksum means it was truncated or replaced, and reading restarts at 0
//!    (a file of the same size and modification time as when last read to
//!    its end is left alone; with file events, between two looks for names
//!    only the files events said were written to are looked at) — several
//!    files in about the order of their lines' times
//!    ([`Follower::with_times`]).
//!
//! Only whole lines are handed on; a last line without newline waits until
//! its file is finished (drained and quiet).

mod listing;
mod pattern;
mod reader;
pub mod several;

pub use pattern::PathSpec;
pub use several::Several;

use crate::parse::Parser;
use crate::parse::time::Zone;
use crate::source::buffer::Spares;
use crate::source::{
    CHUNK_BYTES, FileId, FileTag, IN_PIPELINE, Position, Source, SourceError, SourceEvent,
};
use listing::{Files, Moved, same_file};
use notify::Watcher as _;
use pattern::{DateKey, later_day, rotated_from};
use reader::{Stamp, Tracked, Until, count_lines, fingerprint, last_line_start};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// State is saved at most this often while lines flow.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// With file events, files are still re-checked this often.
const SAFETY_POLL: Duration = Duration::from_secs(60);
/// How long the copy of a truncated file is looked for, a listing each
/// pass ([`Follower::adopt_copies`]): a rotation renames its generations
/// within milliseconds, and a truncation without a copy must not list the
/// directory at every pass for long.
const COPY_SOUGHT: Duration = Duration::from_secs(1);
/// After a read that found lines, the next read waits until this long
/// after it began. A web server writes each request's line on its own, and
/// a pass of the pipeline per line cost most of a core in thread wake-ups
/// (5,000 lines/s written one at a time: 59 % of a core; README,
/// "Performance"); lines that keep coming are now read in one pass per
/// 10 ms, polling or not; file events wake the follower no more often
/// ([`on_file_events`]). The first line after a quiet spell is read at
/// once.
const GATHER: Duration = Duration::from_millis(10);
/// With file events, the current files are looked for at least this often
/// even when no event said a name changed (a dated file becoming today's
/// as the clock turns; events lost); when polling, at least every
/// `poll_interval` up to this.
const DISCOVER_EVERY: Duration = Duration::from_secs(1);
/// How far a file's modification time may lag the clock: the kernel stamps
/// files from a coarse clock, a tick behind at most (seen: 49 files a look's
/// listing missed, stamped up to 5 ms before the look).
const STAMP_LAG: Duration = Duration::from_millis(100);
/// Finished files remembered, the oldest forgotten first (each rotation
/// adds one); one found again once forgotten is read as a new file.
const FINISHED_KEPT: usize = 4096;

/// The file event handler: wakes the follower through `tx`, and sets
/// `names` on any event but data written to a file (a file created,
/// renamed, removed, its mode changed; an error, such as events lost): only
/// then may the directory's names have changed, and a pass look for the
/// current files again ([`Follower::must_discover`]).
///
/// A server writes each line on its own, an event each: when an event
/// repeats the one before while a wake-up is already waiting, the handler
/// sleeps `gap`, so that the events that come meanwhile wait in the kernel,
/// which merges a file's repeated events into one (at 20,000 lines/s,
/// handling each took this thread alone 8 % of a core). Not a sleep per
/// event: thousands of files under a glob raise as many distinct events
/// (the follower's own opens among them), which the kernel does not merge;
/// a sleep each kept the follower passing over every file, at 100 % of a
/// core, for minutes. A file opened or closed (an access) is no change to
/// read: the follower's own listing of a dated series' or glob's directory
/// opens it, and woke the follower again, about 100 times a second while
/// nothing was written.
fn on_file_events(
    gap: Duration,
    tx: crossbeam_channel::Sender<()>,
    names: Arc<AtomicBool>,
    written: Arc<Mutex<Written>>,
) -> impl FnMut(notify::Result<notify::Event>) + Send + 'static {
    let mut last: Option<(notify::EventKind, Vec<PathBuf>)> = None;
    move |event| {
        use notify::EventKind::{Access, Modify};
        use notify::event::ModifyKind::Data;
        match &event {
            Ok(e) if matches!(e.kind, Access(_)) => return,
            Ok(e) if matches!(e.kind, Modify(Data(_))) => {
                // Looked at before the lock: the follower takes it each pass.
                // One no longer there is gone, or found by the next look
                // for names.
                let files = e.paths.iter().filter_map(|p| std::fs::metadata(p).ok());
                let files: Vec<(u64, u64)> = files.map(|md| (md.dev(), md.ino())).collect();
                let mut w = written.lock().unwrap_or_else(PoisonError::into_inner);
                files.into_iter().for_each(|f| w.add(f));
            }
            _ => names.store(true, Ordering::SeqCst),
        }
        let this = event.ok().map(|e| (e.kind, e.paths));
        let again = this.is_some() && this == last;
        last = this;
        // A full channel already holds a wake-up; this event adds nothing.
        if tx.try_send(()).is_err() && again {
            std::thread::sleep(gap);
        }
    }
}

/// Files file events said were written to since the follower last took
/// them, by device and inode (a file renamed by a rotation, or reached
/// through a symlink, is named by another path than the one it is
/// followed under). A pass between two looks for names reads only these:
/// sizing every followed file at every pass cost a fifth of a core with
/// 2000 files under a glob while lines came.
#[derive(Debug, Default)]
struct Written {
    files: HashSet<(u64, u64)>,
    /// More were written to than [`WRITTEN_KEPT`]: every file is looked at.
    overflowed: bool,
}

/// Files [`Written`] lists at most between two passes.
const WRITTEN_KEPT: usize = 65_536;

impl Written {
    /// Notes the file with this device and inode as written to.
    fn add(&mut self, file: (u64, u64)) {
        if self.files.len() >= WRITTEN_KEPT {
            self.overflowed = true;
            self.files.clear();
        }
        if !self.overflowed {
            self.files.insert(file);
        }
    }
}

/// Where reading starts in a file seen for the first time without saved state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// At its end, like the old script.
    End,
    /// At its beginning.
    Beginning,
}

/// Settings of a follower.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// What to follow.
    pub spec: PathSpec,
    /// Zone for "today" in messages.
    pub zone: Zone,
    /// Where a file found at the first start begins to be read.
    pub start_at: StartAt,
    /// Wake-up period without file system events.
    pub poll_interval: Duration,
    /// How long a file no longer current is read after it went quiet.
    pub rotate_wait: Duration,
    /// After this long without lines, an idle tick lets the cleanup run.
    pub cleanup_interval: Duration,
    /// Use file system events (inotify); false polls every `poll_interval`
    /// (for network file systems, whose changes raise no events).
    pub file_events: bool,
}

impl FollowConfig {
    /// The files `run` would follow now.
    pub fn current_files(&self) -> io::Result<Vec<PathBuf>> {
        self.spec.current(tomorrow(&self.zone))
    }
}

/// Tomorrow's date (our clock, `zone`): a dated file may be dated a day
/// ahead (another server's zone), not more.
fn tomorrow(zone: &Zone) -> DateKey {
    let (y, m, d) = zone.date_of(jiff::Timestamp::now().as_second() + 86_400);
    [u32::try_from(y).unwrap_or(0), u32::from(m), u32::from(d), 0, 0]
}

/// A regular file found by what it is (device and inode, first bytes), held
/// open from that look on: a rotation may give its name to another file
/// before it is followed, and a file opened again by name then was another
/// than the one found (a copy read from its start as a rotated file).
struct Found {
    path: PathBuf,
    file: File,
    /// The open file's own (`fstat`), not its name's.
    md: std::fs::Metadata,
}

impl Found {
    /// Opens `path` if it names a regular file ([`open_regular`]).
    fn open(path: &Path) -> Option<Found> {
        let (file, md) = open_regular(path).ok()?;
        Some(Found { path: path.to_path_buf(), file, md })
    }

    /// Opens the file a listing found at `path` (`listed`, its metadata
    /// then): [`Moved`] when the name is gone or names another file now,
    /// `None` when it cannot be opened otherwise (no permission).
    fn open_listed(path: &Path, listed: &std::fs::Metadata) -> Result<Option<Found>, Moved> {
        match open_regular(path) {
            Ok((file, md)) if same_file(listed, &md) => {
                Ok(Some(Found { path: path.to_path_buf(), file, md }))
            }
            Err(NotOpened::Failed(e)) if e.kind() != io::ErrorKind::NotFound => Ok(None),
            _ => Err(Moved),
        }
    }
}

/// The names a copy copytruncate made of `of` begins with: the name of
/// `of`, or of the file it links to, without a rotation's suffix.
fn copy_heads(of: &Path) -> Vec<String> {
    let target = std::fs::canonicalize(of).ok();
    let names = [Some(of), target.as_deref()].into_iter().flatten();
    let names = names.filter_map(|p| p.file_name()?.to_str());
    names.map(|n| rotated_from(n).unwrap_or(n).to_string()).collect()
}

/// Whether `name` is one of `heads` and more (`access.log.1` of
/// `access.log`).
fn copy_named(heads: &[String], name: &str) -> bool {
    heads.iter().any(|h| name.len() > h.len() && name.starts_with(h.as_str()))
}

/// Why a path was not opened.
enum NotOpened {
    /// It names a directory, a pipe, a device: which.
    NotRegular(std::fs::FileType),
    /// Looking at it or opening it failed.
    Failed(io::Error),
}

/// Opens `path` if it names a regular file, with the open file's own
/// metadata. Looked at before it is opened: opening a named pipe waits for
/// a writer, which would stall the follower. The open file is looked at
/// again: its name may have been given to another file in between.
fn open_regular(path: &Path) -> Result<(File, std::fs::Metadata), NotOpened> {
    let regular = |md: std::fs::Metadata| match md.is_file() {
        true => Ok(md),
        false => Err(NotOpened::NotRegular(md.file_type())),
    };
    regular(std::fs::metadata(path).map_err(NotOpened::Failed)?)?;
    let file = File::open(path).map_err(NotOpened::Failed)?;
    let md = regular(file.metadata().map_err(NotOpened::Failed)?)?;
    Ok((file, md))
}

/// A file found truncated in a pass, its copy looked for after the pass's
/// looks: its name, and the first bytes, offset and identity its old
/// content had.
struct Truncated {
    of: PathBuf,
    fp: Option<u32>,
    offset: u64,
    was: FileId,
    /// When its copy was first looked for.
    since: Instant,
}

/// What a pass found changed in the files followed.
#[derive(Default)]
struct Changes {
    /// The files to read (index, stamp now).
    due: Vec<(usize, Stamp)>,
    /// The files truncated.
    truncated: Vec<Truncated>,
    /// Empty files at their first change: their names and since when they
    /// were empty ([`Follower::first_change_of_empty`]).
    unread_empty: Vec<(PathBuf, SystemTime)>,
}

/// What a look found at the paths the configuration names.
#[derive(Default)]
struct AtPaths {
    /// The files there (device, inode).
    current: HashSet<(u64, u64)>,
    /// Paths that could not be looked at (other than missing): what they
    /// name now is unknown, so the file followed there is not retired.
    unknown: Vec<PathBuf>,
    /// Paths with no file.
    missing: Vec<PathBuf>,
}

/// The watched directory's files ([`listing::settled`]), and by device and
/// inode (an index into `files`).
struct Looked {
    files: Files,
    by_inode: HashMap<(u64, u64), usize>,
}

/// Follows live files; see the module documentation.
pub struct Follower {
    cfg: FollowConfig,
    tracked: Vec<Tracked>,
    /// The index of the configured source it follows.
    source: usize,
    /// The last file tag id given; ids of source `i` start at `i << 48`, so
    /// they are unique across the sources' followers.
    next_id: u64,
    first_scan: bool,
    stop: Arc<AtomicBool>,
    wake: crossbeam_channel::Receiver<()>,
    wake_tx: crossbeam_channel::Sender<()>,
    watcher: Option<notify::RecommendedWatcher>,
    /// Set by the file event handler when a name may have changed.
    names_changed: Arc<AtomicBool>,
    /// Filled by the file event handler: files written to.
    written: Arc<Mutex<Written>>,
    /// When the current files were last looked for.
    discovered: Option<Instant>,
    /// When the last look began, by the wall clock: saved with each
    /// checkpoint ([`Follower::with_saved_at`]).
    looked_at: Option<SystemTime>,
    /// Directories watched besides the configured one (symlink targets').
    watched: HashSet<PathBuf>,
    /// Problems already reported, so each is logged once per occurrence.
    reported: HashSet<String>,
    /// Positions from the saved state, used at the first scan.
    saved: Option<Vec<Position>>,
    /// Saved files the first look did not find, looked for once more at
    /// the next: a rotation renaming each generation in turn during the
    /// look can keep one's name from its listing. Two soak losses (a
    /// copy's rest, 291 and 230 hits) fit this: each copy was not found
    /// at a restart whose look met a rotation of some 200 generations.
    unfound: Vec<Position>,
    /// Truncations whose copies were not found yet ([`Follower::adopt_copies`]).
    copies_unfound: Vec<Truncated>,
    /// With saved state and `start_at = "beginning"`, since when files
    /// not in it may be unread ([`Follower::with_saved_at`]): files new to
    /// it are read whole, and so are their generations written since
    /// ([`Follower::new_names`]).
    resume_since: Option<SystemTime>,
    /// The newest date of a dated series at the first scan: files dated
    /// later appeared while we ran and are all read, even one that was
    /// already superseded when we first saw it.
    /// `None` until the first scan; `Some(None)` when the series was empty.
    series_baseline: Option<Option<DateKey>>,
    /// Files finished (drained and closed), the newest last, each with the
    /// offset it was read to: one found again under a followed path (a
    /// symlink turned back to it, a rotation undone) goes on from there, not
    /// from its beginning. At most [`FINISHED_KEPT`].
    finished: VecDeque<(FileId, u64)>,
    /// Since when every file read is remembered (followed, in `finished`,
    /// or in the saved positions): the first look (or, resuming, about when
    /// the run before last looked: [`Follower::first_remembered`]), or when a finished
    /// file was last forgotten, less [`Follower::lag`]. A file last written
    /// before it may have been read.
    remembered_since: Option<SystemTime>,
    /// Files opened since the last wake-up, to be announced to the pipeline
    /// (so their positions are saved before any line arrives).
    opened: Vec<SourceEvent>,
    /// Lines were handed on since the last checkpoint.
    dirty: bool,
    /// A file was opened or finished: save at once, so that a file rotated
    /// away during a crash is found again from its saved position.
    urgent: bool,
    last_checkpoint: Instant,
    /// Set while it waits for its files to grow (everything read so far
    /// handed on): [`Several`] then holds no other source's lines for it.
    idle: Arc<AtomicBool>,
    /// Called on every wake-up: the service manager's watchdog ping.
    heartbeat: Option<Box<dyn FnMut() + Send>>,
    /// The longest sleep the heartbeat allows.
    heartbeat_every: Option<Duration>,
    /// When lines last arrived, or the last idle tick.
    last_activity: Instant,
    /// The next checkpoint saves everything.
    want_full: Arc<AtomicBool>,
    /// Set (with a wake-up) to ask for a [`SourceEvent::Probe`].
    want_probe: Arc<AtomicBool>,
    /// Chunk buffers given back by the pipeline, for the next reads: a new
    /// buffer per chunk cost the kernel's page faults on fresh memory (a
    /// farm node catching up, with more chunks in flight, faulted 4× as
    /// often as one alone). Kept: at most as many as were in flight at once.
    spares: Spares,
    /// Reads the lines' times, so that several files' new lines are handed
    /// on in about their order ([`Follower::read_due`]); none: file by file.
    times: Option<Parser>,
    /// How far (seconds) a file's lines may go past where another stands.
    slack: i64,
}

impl Follower {
    /// A follower that ends when `stop` becomes true, resuming from `saved`
    /// positions when there is saved state.
    pub fn new(cfg: FollowConfig, stop: Arc<AtomicBool>, saved: Option<Vec<Position>>) -> Follower {
        let (wake_tx, wake) = crossbeam_channel::bounded(1);
        Follower {
            cfg,
            tracked: Vec::new(),
            source: 0,
            next_id: 0,
            first_scan: true,
            stop,
            wake,
            wake_tx,
            watcher: None,
            names_changed: Arc::new(AtomicBool::new(true)),
            written: Arc::new(Mutex::new(Written::default())),
            discovered: None,
            looked_at: None,
            watched: HashSet::new(),
            reported: HashSet::new(),
            saved,
            unfound: Vec::new(),
            copies_unfound: Vec::new(),
            resume_since: None,
            series_baseline: None,
            finished: VecDeque::new(),
            remembered_since: None,
            opened: Vec::new(),
            dirty: false,
            urgent: false,
            last_checkpoint: Instant::now(),
            idle: Arc::new(AtomicBool::new(false)),
            heartbeat: None,
            heartbeat_every: None,
            want_full: Arc::new(AtomicBool::new(false)),
            want_probe: Arc::new(AtomicBool::new(false)),
            last_activity: Instant::now(),
            spares: Spares::new(IN_PIPELINE),
            times: None,
            slack: 0,
        }
    }

    /// Hands on several files' new lines in about the order of their times,
    /// as `parser` reads them: none more than `slack` seconds past where
    /// another file with lines to read stands ([`Follower::read_due`]).
    pub fn with_times(mut self, parser: Parser, slack: i64) -> Follower {
        self.times = Some(parser);
        self.slack = slack;
        self
    }

    /// The saved positions were saved at `at`, and the run that saved them
    /// had last begun to look for files at `looked` (when saved): with
    /// `start_at = "beginning"`, files never followed and last written
    /// since then are read at the first look ([`Follower::new_names`]).
    /// Since that look, as a file made and rotated away after it was never
    /// seen; but not earlier than half `rotate_wait` before the save, as a
    /// file that run finished (not among the positions) had been quiet
    /// `rotate_wait` by then and is not to be read again.
    pub fn with_saved_at(mut self, at: Option<SystemTime>, looked: Option<SystemTime>) -> Follower {
        let resumes = self.saved.is_some() && self.cfg.start_at == StartAt::Beginning;
        // `first_remembered` takes `lag` off again.
        let reach = (self.cfg.rotate_wait / 2).saturating_sub(self.lag());
        let since = at.map(|at| match looked {
            Some(l) if l < at => l.max(at.checked_sub(reach).unwrap_or(at)),
            _ => at,
        });
        self.resume_since = since.filter(|_| resumes);
        self
    }

    /// Calls `beat` on every wake-up, at least every `every`, as proof that
    /// reading goes on.
    pub fn with_heartbeat(
        mut self,
        every: Option<Duration>,
        beat: Box<dyn FnMut() + Send>,
    ) -> Follower {
        self.heartbeat = Some(beat);
        self.heartbeat_every = every;
        self
    }

    /// This follower reads source `index` of the configuration.
    pub fn for_source(mut self, index: usize) -> Follower {
        self.source = index;
        self.next_id = (index as u64) << 48;
        self
    }

    /// Sets `idle` while it waits for its files to grow.
    pub fn with_idle(mut self, idle: Arc<AtomicBool>) -> Follower {
        self.idle = idle;
        self
    }

    /// Shares a wake-up channel (a signal thread sends on it).
    pub fn with_wake(
        mut self,
        tx: crossbeam_channel::Sender<()>,
        rx: crossbeam_channel::Receiver<()>,
    ) -> Follower {
        self.wake_tx = tx;
        self.wake = rx;
        self
    }

    /// How long to sleep when nothing is left to read: until the next thing
    /// due (a checkpoint, a rotated file's quiet period, the idle cleanup,
    /// the watchdog), a file system event or a signal's wake-up. Without
    /// file events the follower polls every `poll_interval`; with them it
    /// still re-checks every [`SAFETY_POLL`], in case events go missing.
    fn idle_wait(&self) -> Duration {
        let mut wait = match self.watcher {
            Some(_) if self.cfg.file_events => SAFETY_POLL,
            _ => self.cfg.poll_interval,
        };
        let mut until = |elapsed: Duration, period: Duration| {
            wait = wait.min(period.saturating_sub(elapsed).max(Duration::from_millis(10)));
        };
        for t in self.tracked.iter().filter(|t| t.retired_at.is_some()) {
            until(
                t.last_growth.elapsed().min(t.retired_at.map_or(Duration::ZERO, |r| r.elapsed())),
                self.cfg.rotate_wait,
            );
        }
        if self.to_save() {
            until(self.last_checkpoint.elapsed(), CHECKPOINT_EVERY);
        }
        until(self.last_activity.elapsed(), self.cfg.cleanup_interval);
        if let Some(every) = self.heartbeat_every {
            wait = wait.min(every);
        }
        wait
    }

    /// Whether a checkpoint is owed: lines read since the last, or a new
    /// base asked for (a save that failed, a removed change log), which a
    /// quiet log must not put off until its next line.
    fn to_save(&self) -> bool {
        self.dirty || self.want_full.load(Ordering::SeqCst)
    }

    /// Asks the pipeline to save state once what was read so far is done:
    /// everything when asked for (a new base), else what changed.
    fn checkpoint(&mut self) -> SourceEvent {
        self.dirty = false;
        self.urgent = false;
        self.last_checkpoint = Instant::now();
        SourceEvent::Checkpoint {
            full: self.want_full.swap(false, Ordering::SeqCst),
            looked: self.looked(),
        }
    }

    /// This follower's source and when its last look began; none while
    /// saved files its first look did not find wait for the next
    /// ([`Follower::unfound`]): no state is saved before every follower has
    /// looked, so the state saved before, which holds their positions,
    /// stands until then. A state saved without them lost their rest when
    /// the daemon was killed before that next look.
    fn looked(&self) -> Option<(usize, SystemTime)> {
        let looked = self.looked_at.filter(|_| self.unfound.is_empty());
        looked.map(|t| (self.source, t))
    }

    /// Shares the flag that asks for a full checkpoint (a new base): the
    /// state store sets it when its change log has grown.
    pub fn with_full_checkpoints(mut self, flag: Arc<AtomicBool>) -> Follower {
        self.want_full = flag;
        self
    }

    /// Shares the flag that asks for a probe (set it, then wake the
    /// follower): a status page wants the clients nearest the threshold.
    pub fn with_probes(mut self, flag: Arc<AtomicBool>) -> Follower {
        self.want_probe = flag;
        self
    }

    /// Files of the saved state that are not current any more (rotated while
    /// the daemon was down) are found again — by device and inode when
    /// renamed, by the checksum of their first bytes when copied away by
    /// copytruncate — and drained from their saved position: at the first
    /// look, and those it did not find once more at the next.
    fn adopt_rotated(&mut self) {
        if let Some(saved) = self.saved.take() {
            self.resume_saved(saved, true);
        } else if !self.unfound.is_empty() {
            let again = std::mem::take(&mut self.unfound);
            self.resume_saved(again, false);
        }
    }

    /// [`Follower::adopt_rotated`] for the positions `saved`; those not
    /// found are kept for the next look when `again`.
    fn resume_saved(&mut self, saved: Vec<Position>, again: bool) {
        let first = self.tracked.len();
        // Looked for once every saved file is followed again, so none of
        // them is taken for a generation never followed.
        let mut rotated = Vec::new();
        let resumed_since = self.resume_since.and(self.remembered_since);
        let mut looked = None;
        for pos in saved {
            // Files another configuration followed are left alone; a copy
            // copytruncate made is saved under its own name.
            let path = Path::new(&pos.path);
            if !self.cfg.spec.covers(path) && !self.cfg.spec.covers_rotated(path) {
                continue;
            }
            let id = pos.id;
            if self.tracked.iter().any(|t| id.matches(t.id.dev, t.id.ino, t.id.fingerprint)) {
                // Saved with nothing of it read (killed just after opening
                // it), it shows no truncation: a copy copytruncate made of
                // it while we were stopped holds its unread lines (a soak
                // lost 9 hits so), and is looked for as a generation.
                if let (0, Some(since)) = (pos.offset, resumed_since) {
                    rotated.push((PathBuf::from(&pos.path), since));
                }
                continue;
            }
            if let Some(found) = self.find_saved(&mut looked, &pos) {
                let path = found.path.clone();
                if path.to_str() == Some(pos.path.as_str()) {
                    // Still under its name: superseded (yesterday's dated file), not rotated.
                    tracing::info!(path = %path.display(), "Finishing a file that is no longer the current one.");
                } else {
                    tracing::info!(path = %path.display(), was = %pos.path, "Draining a file rotated while stopped.");
                }
                // Its generations are those written since it was: but one
                // saved unread shows no truncation, and its copies, made
                // before its last line, hold lines unread since the save (a
                // soak lost such a copy's 716 hits).
                let since = match (pos.offset, resumed_since) {
                    (0, Some(since)) => Ok(since),
                    _ => found.md.modified(),
                };
                self.open_retired(found, (pos.offset, pos.lines), Some(id));
                if let Ok(since) = since {
                    rotated.push((PathBuf::from(&pos.path), since));
                }
            } else if again {
                self.unfound.push(pos);
            } else {
                tracing::warn!(path = %pos.path, offset = pos.offset, "A saved log file was not found at two looks (deleted, or moved out of the directory, while stopped); what it held after the saved offset is not read.");
            }
        }
        self.adopt_missed(&rotated);
        // Drained in the order they were last written, so that lines go on
        // in about the order they were written: a copy before the file it
        // was copied from, renamed away since.
        let last_written = |t: &Tracked| t.file.metadata().and_then(|m| m.modified()).ok();
        self.tracked[first..].sort_by_cached_key(last_written);
    }

    /// A saved file not followed under its name: renamed (found by device
    /// and inode) or copied away by copytruncate (by its first bytes). The
    /// directory is listed, and its files' inodes taken, for the first such
    /// file (`looked`), once for all (again when a file moved since).
    fn find_saved(&self, looked: &mut Option<Looked>, pos: &Position) -> Option<Found> {
        // Renamed, it may have any name.
        self.search_listed(looked, &|_| true, |l| {
            let id = pos.id;
            // Not followed now: a file opened since the listing may be it.
            let listed =
                l.by_inode.get(&(id.dev, id.ino)).filter(|_| !self.is_tracked(id.dev, id.ino));
            if let Some(&i) = listed {
                let (path, listed) = &l.files[i];
                let f = Found::open_listed(path, listed)?;
                let fp = |f: &Found| fingerprint(&f.file, f.md.len());
                if let Some(f) = f.filter(|f| id.matches(f.md.dev(), f.md.ino(), fp(f))) {
                    return Ok(Some(f));
                }
            }
            self.find_copy(&l.files, Path::new(&pos.path), id.fingerprint, pos.offset)
        })
    }

    /// What `search` finds in the watched directory's files under names
    /// `wanted` takes (`looked`, listed when `None`), listed again while it
    /// finds a file moved since the listing, at most [`listing::SEARCHES`] times.
    fn search_listed<T>(
        &self,
        looked: &mut Option<Looked>,
        wanted: &dyn Fn(&str) -> bool,
        search: impl Fn(&Looked) -> Result<Option<T>, Moved>,
    ) -> Option<T> {
        let found = listing::searched(&self.cfg.spec.dir(), || {
            let found = search(looked.get_or_insert_with(|| self.look(wanted)));
            if found.is_err() {
                *looked = None;
            }
            found
        });
        found.flatten()
    }

    /// Files of a dated series that appeared while we ran but were already
    /// superseded when first seen (two dates within one wake-up) are read
    /// from their beginning and drained like any retired file.
    fn adopt_superseded(&mut self) {
        let limit = self.tomorrow();
        let Ok(mut series) = self.cfg.spec.series() else { return };
        series.retain(|(k, _)| !later_day(k, &limit));
        let baseline = *self.series_baseline.get_or_insert(series.last().map(|(k, _)| *k));
        let Some((newest, _)) = series.last() else { return };
        for (key, path) in series.iter().filter(|(k, _)| baseline.is_none_or(|b| *k > b)) {
            if key >= newest {
                continue;
            }
            let Some(found) = Found::open(path) else { continue };
            let id = (found.md.dev(), found.md.ino());
            let known = self.is_tracked(id.0, id.1) || self.finished_at(id.0, id.1, None).is_some();
            if !known {
                self.open_retired(found, (0, 0), None);
            }
        }
    }

    /// Follows a file found as a retired file (drained until quiet) from
    /// `start` (offset, lines before it), as `identity` when given.
    fn open_retired(&mut self, found: Found, start: (u64, u64), identity: Option<FileId>) {
        if self.follow_file(&found.path, found.file, &found.md, Some(start), identity)
            && let Some(t) = self.tracked.last_mut()
        {
            t.retired_at = Some(Instant::now());
        }
    }

    /// The offset a finished file with this device and inode (and first
    /// bytes, when given) was read to.
    fn finished_at(&self, dev: u64, ino: u64, fingerprint: Option<u32>) -> Option<u64> {
        let found = self.finished.iter().rev().find(|(id, _)| {
            (id.dev, id.ino) == (dev, ino)
                && (fingerprint.is_none() || id.matches(dev, ino, fingerprint))
        });
        found.map(|(_, offset)| *offset)
    }

    /// Whether a followed file has this device and inode.
    fn is_tracked(&self, dev: u64, ino: u64) -> bool {
        self.tracked.iter().any(|t| (t.id.dev, t.id.ino) == (dev, ino))
    }

    /// The watched directory's regular files under names `wanted` takes
    /// ([`listing::settled`], a `stat` each), listed once for several
    /// searches: listed for each,
    /// 2000 files copytruncated at once cost 13-17 s of CPU
    /// (`benches/many.sh`), and 2000 files rotated while stopped 29-36 s
    /// at the restart. Taken after the looks that called for the searches,
    /// so the files they look for are in it.
    fn look(&self, wanted: &dyn Fn(&str) -> bool) -> Looked {
        let dir = self.cfg.spec.dir();
        let files = listing::settled(&dir, wanted, |p| std::fs::metadata(p)).unwrap_or_default();
        let by_inode = files.iter().enumerate().map(|(i, (_, md))| ((md.dev(), md.ino()), i));
        Looked { by_inode: by_inode.collect(), files }
    }

    /// A regular file of `files` (the watched directory's), not followed
    /// yet, whose name `named` takes and for which `pred(metadata,
    /// fingerprint)` holds; [`Moved`] if none does and a file was not the
    /// one listed.
    fn find_untracked(
        &self,
        files: &Files,
        named: impl Fn(&str) -> bool,
        pred: impl Fn(&std::fs::Metadata, Option<u32>) -> bool,
    ) -> Result<Option<Found>, Moved> {
        let mut moved = false;
        let name = |p: &Path| p.file_name().and_then(|n| n.to_str()).is_some_and(&named);
        // Looked at by name first, opened only when not followed.
        let candidates =
            files.iter().filter(|(p, md)| name(p) && !self.is_tracked(md.dev(), md.ino()));
        for (path, listed) in candidates {
            match Found::open_listed(path, listed) {
                Ok(Some(f)) if pred(&f.md, fingerprint(&f.file, f.md.len())) => return Ok(Some(f)),
                Ok(_) => {}
                Err(Moved) => moved = true,
            }
        }
        if moved { Err(Moved) } else { Ok(None) }
    }

    /// The copy copytruncate made of `of` (or of the file `of` is a
    /// rotation of, or links to), which we had read up to `offset`: named
    /// as its rotations are (its name and more: `access.log.1`,
    /// `access.log-2026-12-01`), same first bytes, at least as long. Its
    /// lines after `offset` were written just before the truncation and
    /// exist nowhere else. Any name was taken before: a file that only
    /// began with the log's lines (a soak's record of every line) was read
    /// as the copy, its later lines counted twice.
    fn find_copy(
        &self,
        files: &Files,
        of: &Path,
        fp: Option<u32>,
        offset: u64,
    ) -> Result<Option<Found>, Moved> {
        let Some(fp) = fp else { return Ok(None) };
        let heads = copy_heads(of);
        let named = |n: &str| copy_named(&heads, n);
        self.find_untracked(files, named, |m, f| f == Some(fp) && m.len() >= offset)
    }

    /// Generations of each `(head, since)` rotated away before they were
    /// ever followed — two rotations between two looks, or while stopped —
    /// are read from their beginning, oldest first, as retired files: files
    /// named as logrotate names them ([`rotated_from`]), not followed, not a
    /// copy of a followed file, last written after `since` (when the
    /// generation before them was; for a name never followed, since
    /// `remembered_since`) — also after the file `head` names now: a server writes
    /// its last requests to the file it had open after the rotation.
    /// Each directory is listed once, however many of its files rotated.
    fn adopt_missed(&mut self, rotated: &[(PathBuf, SystemTime)]) {
        if rotated.is_empty() || matches!(self.cfg.spec, PathSpec::Dated { .. }) {
            return;
        }
        // By directory, then by name: since of each head.
        let mut heads: HashMap<&Path, HashMap<&str, SystemTime>> = HashMap::new();
        for (head, since) in rotated {
            let (Some(dir), Some(name)) =
                (head.parent(), head.file_name().and_then(|n| n.to_str()))
            else {
                continue;
            };
            heads.entry(dir).or_default().insert(name, *since);
        }
        // First bytes of the files followed: a file with the same is a copy.
        let firsts: HashSet<u32> = self.tracked.iter().filter_map(|t| t.id.fingerprint).collect();
        let mut missed: Vec<(SystemTime, Found)> = Vec::new();
        for (dir, names) in &heads {
            let since_of = |n: &str| rotated_from(n).and_then(|h| names.get(h)).copied();
            listing::searched(dir, || {
                let wanted = |n: &str| since_of(n).is_some();
                let files = listing::settled(dir, wanted, |p| std::fs::metadata(p));
                self.missed_in(&files.unwrap_or_default(), since_of, &firsts, &mut missed)
            });
        }
        missed.sort_by(|a, b| (a.0, &a.1.path).cmp(&(b.0, &b.1.path)));
        for (_, found) in missed {
            tracing::warn!(path = %found.path.display(), "Reading from its beginning a rotated log file never followed (rotated before a look found it: new and rotated, or rotated twice, between two looks, or while stopped).");
            self.open_retired(found, (0, 0), None);
        }
    }

    /// Adds to `missed` the generations never followed among `files` (a
    /// directory's rotated files, of heads each written since
    /// `since_of(name)`), each once; [`Moved`] when a file was not the one
    /// listed.
    fn missed_in(
        &self,
        files: &Files,
        since_of: impl Fn(&str) -> Option<SystemTime>,
        firsts: &HashSet<u32>,
        missed: &mut Vec<(SystemTime, Found)>,
    ) -> Result<(), Moved> {
        let mut moved = false;
        for (path, listed) in files {
            let Some(since) = path.file_name().and_then(|n| since_of(n.to_str()?)) else {
                continue;
            };
            // The name's stat first: most generations are older than
            // `since` or known, and are not opened.
            let (dev, ino) = (listed.dev(), listed.ino());
            let known = missed.iter().any(|(_, f)| (f.md.dev(), f.md.ino()) == (dev, ino));
            if known || self.unfollowed_since(listed, since).is_none() {
                continue;
            }
            match Found::open_listed(path, listed) {
                Ok(Some(found)) => {
                    if let Some(written) = self.never_followed(&found, since, firsts) {
                        missed.push((written, found));
                    }
                }
                Ok(None) => {}
                Err(Moved) => moved = true,
            }
        }
        if moved { Err(Moved) } else { Ok(()) }
    }

    /// When the file found was last written, if it is a regular file never
    /// followed, written since `since`, whose first bytes are none of
    /// `firsts`.
    fn never_followed(
        &self,
        found: &Found,
        since: SystemTime,
        firsts: &HashSet<u32>,
    ) -> Option<SystemTime> {
        let written = self.unfollowed_since(&found.md, since)?;
        let fp = fingerprint(&found.file, found.md.len());
        (!fp.is_some_and(|fp| firsts.contains(&fp))).then_some(written)
    }

    /// When a file was last written, if neither followed nor finished and
    /// written since `since`.
    fn unfollowed_since(&self, md: &std::fs::Metadata, since: SystemTime) -> Option<SystemTime> {
        let written = md.modified().ok()?;
        let (dev, ino) = (md.dev(), md.ino());
        let followed = self.is_tracked(dev, ino) || self.finished_at(dev, ino, None).is_some();
        (!followed && written >= since).then_some(written)
    }

    /// Watches the directory for changes; without it the follower polls.
    fn ensure_watch(&mut self) {
        if self.watcher.is_some() || !self.cfg.file_events {
            return;
        }
        let (names, written) = (Arc::clone(&self.names_changed), Arc::clone(&self.written));
        let handler = on_file_events(GATHER, self.wake_tx.clone(), names, written);
        let dir = self.cfg.spec.dir();
        let watched = notify::recommended_watcher(handler)
            .and_then(|mut w| w.watch(&dir, notify::RecursiveMode::NonRecursive).map(|()| w));
        match watched {
            Ok(w) => {
                self.watcher = Some(w);
                // Names changed before the watch began raised no event.
                self.names_changed.store(true, Ordering::SeqCst);
                tracing::debug!(dir = %dir.display(), "Watching for file events.");
            }
            Err(e) => {
                self.report_once(format!("nowatch:{}", dir.display()), || {
                    tracing::info!(dir = %dir.display(), error = %e, "No file events for this directory yet; polling.");
                });
            }
        }
    }

    /// A symlink's target may live in another directory, whose changes the
    /// configured directory's watch does not see: watch that one too.
    fn watch_link_target(&mut self, path: &Path) {
        let Some(w) = self.watcher.as_mut() else { return };
        let Some(dir) =
            std::fs::canonicalize(path).ok().and_then(|t| t.parent().map(Path::to_path_buf))
        else {
            return;
        };
        if dir != self.cfg.spec.dir() && !self.watched.contains(&dir) {
            if w.watch(&dir, notify::RecursiveMode::NonRecursive).is_ok() {
                tracing::debug!(dir = %dir.display(), "Watching a symlink target's directory.");
            }
            self.watched.insert(dir);
        }
    }

    fn report_once(&mut self, key: String, log: impl FnOnce()) {
        if self.reported.insert(key) {
            log();
        }
    }

    fn tomorrow(&self) -> DateKey {
        tomorrow(&self.cfg.zone)
    }

    /// Files of the dated series dated after `limit` are never the current
    /// file (a wrong clock or name would otherwise end the following of
    /// today's); each is reported once.
    fn warn_future(&mut self, limit: DateKey) {
        for (key, path) in self.cfg.spec.series().unwrap_or_default() {
            if later_day(&key, &limit) {
                self.report_once(format!("future:{}", path.display()), || {
                    tracing::warn!(path = %path.display(), "Dated more than a day after today (our clock); not taken as the current file.");
                });
            }
        }
    }

    /// Since when files read are remembered at the first look: with saved
    /// state and `start_at = "beginning"`, since the run that saved it last
    /// looked, or (at most half `rotate_wait`) before it saved
    /// ([`Follower::with_saved_at`]); else from now — what was written
    /// before, while stopped, is not ours to read from its beginning.
    fn first_remembered(&self) -> SystemTime {
        match self.resume_since {
            Some(at) => at.checked_sub(self.lag()).unwrap_or(at),
            None => self.lagging_now(),
        }
    }

    /// How far back from a time files may be taken as written after it:
    /// [`STAMP_LAG`], for the coarse clock they are stamped by, and less than
    /// half `rotate_wait`, as a file finished (by this follower and
    /// forgotten, or by the run before) had been quiet `rotate_wait` by then
    /// and must not be taken for one never read.
    fn lag(&self) -> Duration {
        STAMP_LAG.min(self.cfg.rotate_wait / 2)
    }

    /// The clock less [`Follower::lag`].
    fn lagging_now(&self) -> SystemTime {
        let now = SystemTime::now();
        now.checked_sub(self.lag()).unwrap_or(now)
    }

    /// A file's [`Tracked::empty_since`] when it is `empty` now (opened or
    /// truncated), its stamp `stamp`.
    fn empty_since(&self, empty: bool, stamp: Stamp) -> Option<(SystemTime, Stamp)> {
        empty.then(|| (self.lagging_now(), stamp))
    }

    /// Whether this pass looks for the current files: with file events,
    /// when one said a name changed, or [`DISCOVER_EVERY`] after the last
    /// look; when polling, `poll_interval` (at most [`DISCOVER_EVERY`])
    /// after the last look. Data written to followed files needs none: a
    /// glob of 2000 files was listed and each of its paths looked at 100
    /// times a second while lines came.
    fn must_discover(&mut self) -> bool {
        let changed = self.names_changed.swap(false, Ordering::SeqCst);
        let every = match self.watcher.is_some() && self.cfg.file_events {
            true => DISCOVER_EVERY,
            false => self.cfg.poll_interval.min(DISCOVER_EVERY),
        };
        changed || self.discovered.is_none_or(|t| t.elapsed() >= every)
    }

    /// Finds current files, opens new ones and retires replaced ones.
    fn discover(&mut self) {
        self.discovered = Some(Instant::now());
        self.looked_at = Some(SystemTime::now());
        if self.remembered_since.is_none() {
            self.remembered_since = Some(self.first_remembered());
        }
        // Each file is checked whole at each look, at least once a second:
        // one rewritten to the same size within the clock's tick has the
        // same stamp.
        for t in &mut self.tracked {
            t.seen = None;
        }
        let Some(paths) = self.current_paths() else { return };
        let before = self.tracked.len();
        let found = self.open_paths(paths);
        // Before the saved positions are used, and their files opened.
        let new_names = self.new_names(before);
        self.adopt_rotated();
        self.adopt_superseded();
        let mut rotated = self.retire_gone(&found);
        rotated.extend(new_names);
        rotated.extend(self.resumed_without_file(found.missing));
        self.adopt_missed(&rotated);
        self.first_scan = false;
    }

    /// The paths the configuration names now (warning when there is none
    /// yet); `None` when the directory cannot be listed.
    fn current_paths(&mut self) -> Option<Vec<PathBuf>> {
        let limit = self.tomorrow();
        self.warn_future(limit);
        let dir = self.cfg.spec.dir();
        let heads = match self.cfg.spec.current(limit) {
            Ok(heads) => {
                self.reported.remove(&format!("list:{}", dir.display()));
                heads
            }
            // Nothing is known of the directory: no file is taken as
            // rotated away (it would be read again from its beginning once
            // found again), none is opened; the next wake-up tries again.
            Err(e) => {
                self.report_once(format!("list:{}", dir.display()), || {
                    tracing::error!(path = %dir.display(), error = %e, "Cannot list the log directory; retrying, and taking no file as rotated away meanwhile.");
                });
                return None;
            }
        };
        if heads.is_empty() {
            let now = jiff::Timestamp::now().as_second();
            let expected = self.cfg.spec.expected(&self.cfg.zone, now);
            self.report_once(format!("wait:{expected}"), || {
                tracing::warn!(path = %expected, "Waiting for log file.");
            });
        }
        Some(heads)
    }

    /// Looks at each path of `paths`: a file not followed yet is opened, a
    /// retired one the path names again is followed on.
    fn open_paths(&mut self, paths: Vec<PathBuf>) -> AtPaths {
        let mut found = AtPaths::default();
        // Sets and maps, not lists searched: a glob may match thousands of
        // files, each looked up on every pass.
        let mut followed: HashMap<(u64, u64), usize> = HashMap::new();
        for (i, t) in self.tracked.iter().enumerate() {
            followed.entry((t.id.dev, t.id.ino)).or_insert(i);
        }
        for path in paths {
            // One look at a path that is no symlink, two at one that is.
            let looked = match std::fs::symlink_metadata(&path) {
                Ok(md) if md.file_type().is_symlink() => {
                    self.watch_link_target(&path);
                    std::fs::metadata(&path)
                }
                other => other,
            };
            match looked {
                Ok(md) => {
                    if !self.reported.is_empty() {
                        self.reported.remove(&format!("wait:{}", path.display()));
                    }
                    found.current.insert((md.dev(), md.ino()));
                    self.open_head(&path, &md, &mut followed);
                }
                // A glob's match gone since the listing was renamed by a
                // rotation meanwhile: no file to wait for (its new file, if
                // any, is found at the next look).
                Err(e) if e.kind() == io::ErrorKind::NotFound && self.cfg.spec.is_glob() => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.report_once(format!("wait:{}", path.display()), || {
                        tracing::warn!(path = %path.display(), "Waiting for log file.");
                    });
                    found.missing.push(path);
                }
                Err(e) => {
                    self.report_open_error(&path, &e);
                    found.unknown.push(path);
                }
            }
        }
        found
    }

    /// Opens the file at `path` (`md`) unless it is followed (`followed`:
    /// by device and inode); a file still draining that the path names
    /// again (a symlink turned back to it) is followed on, not opened a
    /// second time and read again.
    fn open_head(
        &mut self,
        path: &Path,
        md: &std::fs::Metadata,
        followed: &mut HashMap<(u64, u64), usize>,
    ) {
        match followed.get(&(md.dev(), md.ino())) {
            Some(&i) => {
                if self.tracked[i].retired_at.take().is_some() {
                    tracing::info!(path = %path.display(), "Log file current again; following it on.");
                }
            }
            None => {
                if self.open_at(path, None, None)
                    && let Some(t) = self.tracked.last()
                {
                    let at = self.tracked.len() - 1;
                    followed.entry((t.id.dev, t.id.ino)).or_insert(at);
                }
            }
        }
    }

    /// Retires the files followed that no path names now (`found`; but
    /// those at a path that could not be looked at); returns their names,
    /// each with when it was last written.
    fn retire_gone(&mut self, found: &AtPaths) -> Vec<(PathBuf, SystemTime)> {
        let now = Instant::now();
        let mut rotated = Vec::new();
        for t in &mut self.tracked {
            let gone =
                !found.current.contains(&(t.id.dev, t.id.ino)) && !found.unknown.contains(&t.path);
            if t.retired_at.is_none() && gone {
                tracing::info!(path = %t.path.display(), "Log file rotated away; draining it.");
                t.retired_at = Some(now);
                if let Ok(since) = t.file.metadata().and_then(|m| m.modified()) {
                    rotated.push((t.path.clone(), since));
                }
            }
        }
        rotated
    }

    /// At a restart's first look, the names `missing` (no file now), each
    /// with since when its generations are unread: one made and rotated
    /// away after the run before last looked, the name's new file not made
    /// yet, was never seen (a soak lost such a file amid reloads), and no
    /// file opened under the name asks for them ([`Follower::new_names`]).
    fn resumed_without_file(&self, missing: Vec<PathBuf>) -> Vec<(PathBuf, SystemTime)> {
        let resumed = self.resume_since.and(self.remembered_since).filter(|_| self.first_scan);
        let Some(since) = resumed else { return Vec::new() };
        missing.into_iter().map(|p| (p, since)).collect()
    }

    /// The files opened by this look (followed from `before` on) under a
    /// name with no file followed as current, with the time since which
    /// their name's generations are unread:
    /// - a name no file was followed under: since `remembered_since`. A
    ///   file created, written and rotated away between two looks (on a
    ///   loaded machine, 200 new files under a glob rotated at once lost
    ///   20–60 of them) was never seen, and only its name's new file is;
    /// - a name whose file an earlier look found rotated away (its new file
    ///   made later, as with logrotate's `nocreate`): since that file was
    ///   last written. A generation made and rotated away before this look
    ///   was never seen either (a soak lost one such file of 138 lines).
    ///
    /// A name whose current file is replaced at this look is not among
    /// them: the look finds that file gone and looks for its generations.
    /// At the first look only when resuming (`resume_since`), the saved
    /// files' names known too: called before [`Follower::adopt_rotated`]
    /// takes them (and opens files of its own).
    fn new_names(&self, before: usize) -> Vec<(PathBuf, SystemTime)> {
        if before == self.tracked.len() {
            return Vec::new();
        }
        let first = self.first_scan && self.resume_since.is_none();
        let Some(since) = self.remembered_since.filter(|_| !first) else {
            return Vec::new();
        };
        let (earlier, opened) = self.tracked.split_at(before);
        let saved = self.saved.iter().flatten().map(|p| Path::new(&p.path));
        let current = earlier.iter().filter(|t| t.retired_at.is_none()).map(|t| t.path.as_path());
        let current: HashSet<&Path> = current.chain(saved).collect();
        let mut retired: HashMap<&Path, SystemTime> = HashMap::new();
        for t in earlier.iter().filter(|t| t.retired_at.is_some()) {
            if let Ok(written) = t.file.metadata().and_then(|m| m.modified()) {
                let last = retired.entry(t.path.as_path()).or_insert(written);
                *last = (*last).max(written);
            }
        }
        let opened = opened.iter().map(|t| &t.path).filter(|p| !current.contains(p.as_path()));
        opened.map(|p| (p.clone(), retired.get(p.as_path()).copied().unwrap_or(since))).collect()
    }

    /// A read error is logged once and the file retried at the next wake-up.
    fn report_read_error(&mut self, i: usize, e: &io::Error) {
        let path = self.tracked[i].path.clone();
        self.report_once(format!("read:{}", path.display()), || {
            tracing::error!(path = %path.display(), error = %e, "Cannot read log file; retrying.");
        });
    }

    fn report_open_error(&mut self, path: &Path, e: &io::Error) {
        let key = format!("err:{}", path.display());
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            " logwarden needs read permission on the file and search (x) permission on its directories, e.g. membership in the adm group"
        } else {
            ""
        };
        self.report_once(key, || {
            tracing::error!(path = %path.display(), error = %e, "Cannot open log file; retrying.{hint}");
        });
    }

    /// Says (once) that `path` is not a regular file; returns false.
    fn not_regular(&mut self, path: &Path, kind: std::fs::FileType) -> bool {
        let what = crate::source::not_a_log(kind).unwrap_or("is a pipe, which cannot be followed");
        self.report_once(format!("err:{}", path.display()), || {
            tracing::warn!(path = %path.display(), "The path {what}; waiting for a regular file there.");
        });
        false
    }

    /// Opens a file at `start` (offset, lines before it), or where
    /// [`Follower::start_of`] says. `identity` overrides the identity its
    /// alerts and saved position carry: a copy made by copytruncate goes on
    /// as the file it was copied from, so alert ids stay the same. Returns
    /// whether the file is now followed.
    fn open_at(
        &mut self,
        path: &Path,
        start: Option<(u64, u64)>,
        identity: Option<FileId>,
    ) -> bool {
        let (file, md) = match open_regular(path) {
            Ok(opened) => opened,
            Err(NotOpened::NotRegular(kind)) => return self.not_regular(path, kind),
            Err(NotOpened::Failed(e)) => {
                self.report_open_error(path, &e);
                return false;
            }
        };
        self.reported.remove(&format!("err:{}", path.display()));
        self.follow_file(path, file, &md, start, identity)
    }

    /// Follows an opened file, found at `path`, unless it is followed
    /// already (its name may have been given to a followed file since it
    /// was looked at). See [`Follower::open_at`].
    fn follow_file(
        &mut self,
        path: &Path,
        file: File,
        md: &std::fs::Metadata,
        start: Option<(u64, u64)>,
        identity: Option<FileId>,
    ) -> bool {
        if self.is_tracked(md.dev(), md.ino()) {
            return false;
        }
        let id = FileId { dev: md.dev(), ino: md.ino(), fingerprint: fingerprint(&file, md.len()) };
        let (offset, start_line) = start.unwrap_or_else(|| self.start_of(path, &file, md, id));
        // Not at a first start's first look: a generation written since
        // holds lines from before it (a server not yet told of a rotation
        // writes on to the old file), which were read whole.
        let first_start = self.first_scan && self.resume_since.is_none();
        let empty = offset == 0 && md.len() == 0 && !first_start;
        let empty_since = self.empty_since(empty, Stamp::of(md));
        let name = path.display().to_string();
        tracing::info!(path = %name, offset, "Following log file.");
        self.next_id += 1;
        self.urgent = true;
        let tag = Arc::new(FileTag {
            name,
            id: self.next_id,
            start_line,
            // A given identity saved before its file had its first bytes
            // takes their checksum now, as the run before did once they came
            // (its alerts' ids changed then): else its lines read again
            // carried other ids than those delivered, and went out twice.
            identity: Some(identity.map_or(id, |given| given.recognised(id.fingerprint))),
            source: self.source,
        });
        self.opened.push(SourceEvent::Opened { file: Arc::clone(&tag), offset });
        self.tracked.push(Tracked {
            tag,
            path: path.to_path_buf(),
            file,
            id,
            offset,
            retired_at: None,
            last_growth: Instant::now(),
            spares: self.spares.clone(),
            seen: None,
            reached: None,
            want: CHUNK_BYTES,
            empty_since,
        });
        true
    }

    /// Where to start reading a newly opened file, and the lines before it:
    /// its saved position if the state knows it; else, at the first scan,
    /// where `start_at` says — unless it succeeds a file the state knows
    /// (the next file of the dated series, or the new file under a rotated
    /// file's name), which is read from its beginning like any file that
    /// appears while running.
    fn start_of(&self, path: &Path, file: &File, md: &std::fs::Metadata, id: FileId) -> (u64, u64) {
        if let Some(offset) = self.finished_at(id.dev, id.ino, id.fingerprint)
            && offset <= md.len()
        {
            return (offset, count_lines(file, offset));
        }
        let saved = self.saved.as_deref().unwrap_or_default();
        match saved.iter().find(|p| p.id.matches(id.dev, id.ino, id.fingerprint)) {
            Some(p) if p.offset <= md.len() => (p.offset, p.lines),
            Some(_) => (0, 0),
            None if self.first_scan
                && self.cfg.start_at == StartAt::End
                && !self.succeeds_saved(path, saved) =>
            {
                let offset = last_line_start(file, md.len());
                (offset, if offset > 0 { count_lines(file, offset) } else { 0 })
            }
            None => (0, 0),
        }
    }

    /// Whether `path` takes over from a file in the saved state: it has a
    /// saved file's name (that file was rotated away while we were stopped),
    /// or it is a later file of the same dated series.
    fn succeeds_saved(&self, path: &Path, saved: &[Position]) -> bool {
        let date = self.cfg.spec.date_of(path);
        saved.iter().any(|p| {
            let was = Path::new(&p.path);
            was == path || date.is_some_and(|d| self.cfg.spec.date_of(was).is_some_and(|w| w < d))
        })
    }

    /// The files this pass reads besides those never read whole (by device
    /// and inode): those file events said were written to; `None`, every
    /// file, when names were `looked` for this pass, when polling, or when
    /// more were written to than were kept.
    fn take_written(&mut self, looked: bool) -> Option<HashSet<(u64, u64)>> {
        let w = std::mem::take(&mut *self.written.lock().unwrap_or_else(PoisonError::into_inner));
        let watched = self.watcher.is_some() && self.cfg.file_events;
        (watched && !looked && !w.overflowed).then_some(w.files)
    }

    /// [`Follower::read_all`], beating the heartbeat as chunks go on and
    /// saving state every [`CHECKPOINT_EVERY`] meanwhile: one pass reads
    /// all that files gained, and over a long backlog (a day of a busy log
    /// after an outage) it beat once and saved nothing until its end — a
    /// pass longer than the service's `WatchdogSec` had the daemon killed,
    /// and started again from the same state, for ever.
    fn read_paced(
        &mut self,
        emit: &mut dyn FnMut(SourceEvent) -> bool,
        only: Option<&HashSet<(u64, u64)>>,
    ) -> Result<Option<bool>, SourceError> {
        let mut pace = Pace {
            heartbeat: self.heartbeat.take(),
            last_checkpoint: self.last_checkpoint,
            want_full: Arc::clone(&self.want_full),
            looked: self.looked(),
        };
        let read = self.read_all(&mut |ev| pace.pass_on(ev, emit), only);
        self.heartbeat = pace.heartbeat;
        self.last_checkpoint = pace.last_checkpoint;
        read
    }

    /// Reads what every file has gained (of those not yet read whole, only
    /// the files in `only` when given); returns whether anything was read,
    /// or `None` when `emit` asked to stop.
    fn read_all(
        &mut self,
        emit: &mut dyn FnMut(SourceEvent) -> bool,
        only: Option<&HashSet<(u64, u64)>>,
    ) -> Result<Option<bool>, SourceError> {
        let mut progressed = false;
        if !self.emit_opened(emit) {
            return Ok(None);
        }
        // Retired files first: their lines are older.
        self.tracked.sort_by_key(|t| t.retired_at.is_none());
        let Some(Changes { due, truncated, mut unread_empty }) = self.changes(emit, only) else {
            return Ok(None);
        };
        // The copies of the files truncated or opened empty, and copies
        // made since, were written before their new lines: read first, so
        // lines go in the order they were written (else counts differ from
        // replay's). Looked for once for all: one look a file listed a
        // directory of 2000 logs once for each, 7 s at their first lines.
        let first_new = self.tracked.len();
        unread_empty.extend(self.adopt_copies(truncated));
        self.adopt_missed(&unread_empty);
        if !self.read_from(first_new, emit, &mut progressed)
            || !self.read_due(due, emit, &mut progressed)
            || !self.finish_quiet(emit)
        {
            return Ok(None);
        }
        Ok(Some(progressed))
    }

    /// Looks at the files followed (of those not yet read whole, only the
    /// files in `only` when given): which changed, which were truncated,
    /// which were empty and changed first. `None` when `emit` asked to stop.
    fn changes(
        &mut self,
        emit: &mut dyn FnMut(SourceEvent) -> bool,
        only: Option<&HashSet<(u64, u64)>>,
    ) -> Option<Changes> {
        let mut changes = Changes::default();
        for i in 0..self.tracked.len() {
            let t = &self.tracked[i];
            if t.seen.is_some() && only.is_some_and(|o| !o.contains(&(t.id.dev, t.id.ino))) {
                continue;
            }
            let stamp = match self.tracked[i].look() {
                Ok(Some(stamp)) => stamp,
                Ok(None) => continue,
                Err(e) => {
                    self.report_read_error(i, &e);
                    continue;
                }
            };
            if self.change_of(i, stamp, emit, &mut changes)? {
                changes.due.push((i, stamp));
            }
        }
        Some(changes)
    }

    /// Files the changed file `i` (its stamp now `stamp`) in `changes`: a
    /// truncation starts its new content; an empty file's first change
    /// calls for its generations. Whether it is to be read (not after a
    /// read error); `None` when `emit` asked to stop.
    fn change_of(
        &mut self,
        i: usize,
        stamp: Stamp,
        emit: &mut dyn FnMut(SourceEvent) -> bool,
        changes: &mut Changes,
    ) -> Option<bool> {
        let old_tag = Arc::clone(&self.tracked[i].tag);
        let was = old_tag.identity;
        match self.tracked[i].check_rewritten(stamp.len, &mut self.next_id) {
            Ok(Some((fp, offset))) => {
                // The old content's position goes (a copy found below
                // carries it on); the new content starts at 0.
                let file = Arc::clone(&self.tracked[i].tag);
                if !emit(SourceEvent::FileDone(old_tag))
                    || !emit(SourceEvent::Opened { file, offset: 0 })
                {
                    return None;
                }
                let (of, since) = (self.tracked[i].path.clone(), Instant::now());
                changes.truncated.extend(was.map(|was| Truncated { of, fp, offset, was, since }));
                // Emptied: copytruncated again before its next line is
                // read, it would show no truncation (its offset is 0),
                // so its first change looks for that copy as for a file
                // opened empty (a soak lost such a copy's lines).
                self.tracked[i].empty_since = self.empty_since(stamp.len == 0, stamp);
            }
            // A file that just became recognisable by its first bytes
            // is saved after this pass, not a checkpoint period later:
            // saved without them, a copy copytruncate made of it while
            // we were stopped was not found again (its lines read twice
            // as a file never followed, or lost).
            Ok(None) => {
                if was.is_some_and(|w| w.fingerprint.is_none())
                    && self.tracked[i].id.fingerprint.is_some()
                {
                    self.urgent = true;
                }
                changes.unread_empty.extend(self.first_change_of_empty(i, stamp));
            }
            Err(e) => {
                self.report_read_error(i, &e);
                return Some(false);
            }
        }
        Some(true)
    }

    /// Finishes the retired files quiet for `rotate_wait`: their positions
    /// dropped, their ends remembered. False if `emit` asked to stop.
    fn finish_quiet(&mut self, emit: &mut dyn FnMut(SourceEvent) -> bool) -> bool {
        let wait = self.cfg.rotate_wait;
        let mut keep = Vec::with_capacity(self.tracked.len());
        for mut t in std::mem::take(&mut self.tracked) {
            let quiet = t.last_growth.elapsed() >= wait
                && t.retired_at.is_some_and(|r| r.elapsed() >= wait);
            if quiet {
                // Dropping its position is a change to save.
                self.dirty = true;
                self.urgent = true;
                if !t.finish(emit) {
                    return false;
                }
                tracing::info!(path = %t.path.display(), "Finished rotated log file.");
                if self.finished.len() == FINISHED_KEPT {
                    self.finished.pop_front();
                    self.remembered_since = Some(self.lagging_now());
                }
                self.finished.push_back((t.id, t.offset));
            } else {
                keep.push(t);
            }
        }
        self.tracked = keep;
        true
    }

    /// A file opened empty (or emptied by a truncation), written to and
    /// copytruncated before its next read is still empty at the offset read
    /// to: no truncation shows (a soak lost such a copy's 9 hits). So at its
    /// first change (`stamp`), before its new lines are read (a look for
    /// names, which may come after them, came too late), its name and since
    /// when it was empty are returned: its generations never followed and
    /// written since are read first. Also when a look found it rotated away
    /// meanwhile: that look takes generations written before the file's last
    /// line as older than it, and its copies were (a soak lost two so).
    fn first_change_of_empty(&mut self, i: usize, stamp: Stamp) -> Option<(PathBuf, SystemTime)> {
        let t = &mut self.tracked[i];
        let (since, _) = t.empty_since.take_if(|(_, then)| *then != stamp)?;
        Some((t.path.clone(), since))
    }

    /// The copies copytruncate made of the files `truncated`, followed from
    /// where the old content was read to, as that content; returns the
    /// truncated files' names, each with when its copy was last written
    /// (copies made since are generations never followed).
    /// A copy not found is looked for again at each pass for
    /// [`COPY_SOUGHT`]: a rotation renaming each generation in turn while
    /// the directory is listed can keep its name from the listing (as at
    /// a restart, [`Follower::unfound`]).
    fn adopt_copies(&mut self, mut truncated: Vec<Truncated>) -> Vec<(PathBuf, SystemTime)> {
        truncated.append(&mut self.copies_unfound);
        if truncated.is_empty() {
            return Vec::new();
        }
        // Only the names a copy may have are looked at: a truncation
        // without a copy lists the directory at each pass for a second.
        let names: Vec<String> = truncated.iter().flat_map(|t| copy_heads(&t.of)).collect();
        let wanted = |n: &str| copy_named(&names, n);
        let mut looked = None;
        let mut heads = Vec::new();
        for t in truncated {
            let copy = self.search_listed(&mut looked, &wanted, |l| {
                self.find_copy(&l.files, &t.of, t.fp, t.offset)
            });
            let Some(copy) = copy else {
                if t.since.elapsed() < COPY_SOUGHT {
                    self.copies_unfound.push(t);
                } else {
                    tracing::info!(path = %t.of.display(), offset = t.offset, "No copy of the truncated log file was found within a second: lines written after the offset read and before the truncation, if any, are not read (a truncation that copies nothing away, as truncate -s 0, leaves none to read).");
                }
                continue;
            };
            tracing::info!(path = %copy.path.display(), "Reading the end of the copy made before the truncation.");
            let lines = count_lines(&copy.file, t.offset);
            let since = copy.md.modified();
            self.open_retired(copy, (t.offset, lines), Some(t.was));
            heads.extend(since.ok().map(|since| (t.of, since)));
        }
        heads
    }

    /// Reads the files followed from `first` on (copies, generations never
    /// followed) to their ends. False if `emit` asked to stop.
    fn read_from(
        &mut self,
        first: usize,
        emit: &mut dyn FnMut(SourceEvent) -> bool,
        progressed: &mut bool,
    ) -> bool {
        if !self.emit_opened(emit) {
            return false;
        }
        for j in first..self.tracked.len() {
            let Ok(Some(copied)) = self.tracked[j].look() else { continue };
            if self.read_to(j, copied, None, emit, progressed).is_none() {
                return false;
            }
        }
        true
    }

    /// Emits the files opened since the last pass; false if `emit` asked
    /// to stop.
    fn emit_opened(&mut self, emit: &mut dyn FnMut(SourceEvent) -> bool) -> bool {
        for ev in std::mem::take(&mut self.opened) {
            self.dirty = true;
            if !emit(ev) {
                return false;
            }
        }
        true
    }

    /// Reads file `i` up to `stamp` (or `until`'s bound): `Some(true)` when
    /// it reached the stamp (or failed: reported, and tried again next
    /// pass), `Some(false)` when it was cut, `None` when `emit` asked to
    /// stop.
    fn read_to(
        &mut self,
        i: usize,
        stamp: Stamp,
        until: Option<Until>,
        emit: &mut dyn FnMut(SourceEvent) -> bool,
        progressed: &mut bool,
    ) -> Option<bool> {
        match self.tracked[i].read(stamp.len, until, emit) {
            Ok(Some(read)) => {
                *progressed |= read.grew;
                self.dirty |= read.grew;
                if !read.cut {
                    self.tracked[i].seen = Some(stamp);
                }
                Some(!read.cut)
            }
            Ok(None) => None,
            Err(e) => {
                self.report_read_error(i, &e);
                Some(true)
            }
        }
    }

    /// Reads the files in `due` (in the order given) to their stamps. With
    /// the lines' times known ([`Follower::with_times`]), several files'
    /// lines go in about their order: the file that stands earliest in time
    /// is read first, up to the slack past where the next one stands, then
    /// again the earliest — as several sources' are — so that after a long
    /// stop a client's hits in one file are not counted late behind its
    /// newer hits in another. A file whose time is not known
    /// (no line of it read yet, and none readable at its offset) goes first,
    /// whole. False if `emit` asked to stop.
    fn read_due(
        &mut self,
        due: Vec<(usize, Stamp)>,
        emit: &mut dyn FnMut(SourceEvent) -> bool,
        progressed: &mut bool,
    ) -> bool {
        let times = self.times.take();
        // Every read keeps `reached`; only several files are put in order.
        let until = |bound| times.as_ref().map(|parser| Until { parser, bound });
        let order = times.as_ref().filter(|_| due.len() > 1);
        let mut by_time = BinaryHeap::new();
        let mut ok = true;
        for (seq, &(i, stamp)) in due.iter().enumerate() {
            let t = &mut self.tracked[i];
            if let Some(p) = order {
                t.reached = t.reached.or_else(|| t.next_time(p, stamp.len));
            }
            match t.reached.filter(|_| order.is_some()) {
                Some(at) => by_time.push(Reverse((at, seq))),
                None => {
                    ok = ok && self.read_to(i, stamp, until(i64::MAX), emit, progressed).is_some()
                }
            }
        }
        while let (true, Some(Reverse((_, seq)))) = (ok, by_time.pop()) {
            let (i, stamp) = due[seq];
            let next = by_time.peek().map(|Reverse((at, ..))| *at);
            let bound = next.map_or(i64::MAX, |at| at.saturating_add(self.slack));
            match self.read_to(i, stamp, until(bound), emit, progressed) {
                None => ok = false,
                Some(true) => {}
                Some(false) => {
                    let at = self.tracked[i].reached.unwrap_or(i64::MAX);
                    by_time.push(Reverse((at, seq)));
                }
            }
        }
        self.times = times;
        ok
    }
}

/// What a pass does between its chunks ([`Follower::read_paced`]).
struct Pace {
    heartbeat: Option<Box<dyn FnMut() + Send>>,
    last_checkpoint: Instant,
    want_full: Arc<AtomicBool>,
    looked: Option<(usize, SystemTime)>,
}

impl Pace {
    /// Passes `ev` on; after a chunk, beats and, a checkpoint period after
    /// the last, asks for one. False if `emit` asked to stop.
    fn pass_on(&mut self, ev: SourceEvent, emit: &mut dyn FnMut(SourceEvent) -> bool) -> bool {
        let lines = matches!(ev, SourceEvent::Lines(_));
        if !emit(ev) {
            return false;
        }
        if !lines {
            return true;
        }
        if let Some(beat) = &mut self.heartbeat {
            beat();
        }
        if self.last_checkpoint.elapsed() < CHECKPOINT_EVERY {
            return true;
        }
        self.last_checkpoint = Instant::now();
        let full = self.want_full.swap(false, Ordering::SeqCst);
        emit(SourceEvent::Checkpoint { full, looked: self.looked })
    }
}

impl Follower {
    /// At a stop: the files not opened yet are (see below), and the final
    /// state saved whole once everything read so far is done.
    fn stop_here(&mut self, emit: &mut dyn FnMut(SourceEvent) -> bool) {
        // Stopped before the first look (a reload at once after another):
        // the saved files are opened at their saved offsets first, or the
        // final state would hold no position and the next start read them
        // again. So are saved files the first look did not find, before a
        // look of their own (a soak lost a copy's 387 hits in a way this
        // fits: a reload after one long first pass, which had not drained a
        // saved file, and the next run took that look as seen).
        if self.first_scan || !self.unfound.is_empty() {
            self.discover();
            if !self.emit_opened(emit) {
                return;
            }
        }
        self.want_full.store(true, Ordering::SeqCst);
        let last = self.checkpoint();
        emit(last);
    }

    /// After a pass that `read` lines (or not): a checkpoint when one is
    /// due, a tick when no lines came for a while. False if `emit` asked
    /// to stop.
    fn after_pass(&mut self, read: bool, emit: &mut dyn FnMut(SourceEvent) -> bool) -> bool {
        if self.to_save()
            && (self.urgent || self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY)
            && !emit(self.checkpoint())
        {
            return false;
        }
        if read {
            self.last_activity = Instant::now();
        } else if self.last_activity.elapsed() >= self.cfg.cleanup_interval {
            // No lines for a while: let the cleanup evict as time goes on.
            let idle = u32::try_from(self.last_activity.elapsed().as_secs()).unwrap_or(u32::MAX);
            self.last_activity = Instant::now();
            let clock = u32::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0);
            return emit(SourceEvent::Tick { clock, idle, source: self.source });
        }
        true
    }

    /// Waits before the next pass: after lines, until `GATHER` after the
    /// pass `began`; else until woken or `idle_wait`. False when nothing
    /// can wake it any more.
    fn rest(&self, read: bool, began: Instant) -> bool {
        if read {
            std::thread::sleep(GATHER.saturating_sub(began.elapsed()));
            return true;
        }
        self.idle.store(true, Ordering::SeqCst);
        let woken = self.wake.recv_timeout(self.idle_wait());
        self.idle.store(false, Ordering::SeqCst);
        woken != Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    }
}

impl Source for Follower {
    fn run(
        mut self: Box<Self>,
        emit: &mut dyn FnMut(SourceEvent) -> bool,
    ) -> Result<(), SourceError> {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                self.stop_here(emit);
                return Ok(());
            }
            if let Some(beat) = &mut self.heartbeat {
                beat();
            }
            self.ensure_watch();
            let looked = self.must_discover();
            if looked {
                self.discover();
            }
            let only = self.take_written(looked);
            let began = Instant::now();
            let Some(read) = self.read_paced(emit, only.as_ref())? else { return Ok(()) };
            if self.want_probe.swap(false, Ordering::SeqCst) && !emit(SourceEvent::Probe) {
                return Ok(());
            }
            if !self.after_pass(read, emit) || !self.rest(read, began) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::testing;
    use crate::parse::time::Zone;

    /// Following `path` (a pattern) in UTC, polling every second unless
    /// `file_events`.
    fn config(path: &str, start_at: StartAt, file_events: bool) -> FollowConfig {
        FollowConfig {
            spec: PathSpec::parse(path).unwrap(),
            zone: Zone::Utc,
            start_at,
            poll_interval: Duration::from_secs(1),
            rotate_wait: Duration::from_secs(1),
            cleanup_interval: Duration::from_secs(60),
            file_events,
        }
    }

    /// A follower of `access.log` (holding `text`) in a directory of its
    /// own, after its first look.
    fn following_one(text: &[u8]) -> (tempfile::TempDir, Follower) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        std::fs::write(&log, text).unwrap();
        let cfg = config(&log.display().to_string(), StartAt::Beginning, false);
        let mut f = Follower::new(cfg, Arc::default(), None);
        f.discover();
        (dir, f)
    }

    /// A follower of `access.log`, empty at its first pass, which then
    /// holds the line returned (a line longer than its first bytes' 64).
    /// It appears after the first look. Its time when opened is an hour
    /// ago: a file's time has the kernel's coarse clock, and emptied within
    /// the same tick it would look the same.
    fn an_empty_file_written_to() -> (tempfile::TempDir, Follower, PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let cfg = config(&log.display().to_string(), StartAt::Beginning, false);
        let mut f = Follower::new(cfg, Arc::default(), None);
        f.discover();
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        File::create(&log).unwrap().set_modified(hour_ago).unwrap();
        f.discover();
        assert_eq!(read_pass(&mut f), "");
        let line = testing::common_line("192.0.2.1", "/a", 0);
        std::fs::write(&log, &line).unwrap();
        (dir, f, log, line)
    }

    #[test]
    fn a_file_opened_empty_and_copytruncated_before_its_first_read_has_its_copy_read() {
        let (dir, mut f, log, line) = an_empty_file_written_to();
        std::fs::copy(&log, dir.path().join("access.log.1")).unwrap();
        std::fs::write(&log, b"").unwrap();
        f.discover();
        assert_eq!(read_pass(&mut f), line);
        // Read once: the copy is followed now.
        f.discover();
        assert_eq!(read_pass(&mut f), "");
    }

    #[test]
    fn a_file_opened_empty_and_copytruncated_then_written_to_has_its_copy_read_first() {
        let (dir, mut f, log, line) = an_empty_file_written_to();
        std::fs::copy(&log, dir.path().join("access.log.1")).unwrap();
        let next = testing::common_line("192.0.2.1", "/b", 1);
        std::fs::write(&log, &next).unwrap();
        // No look between: the file's new line is read in the same pass.
        assert_eq!(read_pass(&mut f), line + &next);
        f.discover();
        assert_eq!(read_pass(&mut f), "");
    }

    /// What logrotate's copytruncate does: copy the file, then empty it.
    fn copytruncate(path: &Path, copy: &Path) {
        std::fs::copy(path, copy).unwrap();
        File::options().write(true).open(path).unwrap().set_len(0).unwrap();
    }

    #[test]
    fn a_file_copytruncated_twice_before_a_line_between_is_read_has_both_copies_read() {
        let (dir, mut f) = following_one(testing::common_line("192.0.2.1", "/a", 0).as_bytes());
        assert_eq!(read_pass(&mut f).lines().count(), 1);
        let log = dir.path().join("access.log");
        let (copy, older) = (dir.path().join("access.log.1"), dir.path().join("access.log.2"));
        copytruncate(&log, &copy);
        assert_eq!(read_pass(&mut f), "");
        // Written to and copytruncated again, then written to: its offset
        // was 0 all along, so no truncation shows.
        let between = testing::common_line("192.0.2.1", "/b", 1);
        std::fs::write(&log, &between).unwrap();
        std::fs::rename(&copy, &older).unwrap();
        copytruncate(&log, &copy);
        let next = testing::common_line("192.0.2.1", "/c", 2);
        std::fs::write(&log, &next).unwrap();
        assert_eq!(read_pass(&mut f), between + &next);
    }

    /// Renames `log` to `.1` behind its copies `.1` and `.2` (shifted to
    /// `.2` and `.3`), as logrotate's `create` does, and makes it again empty.
    fn rotated_behind_two_copies(log: &Path, at: &dyn Fn(u32) -> PathBuf) {
        std::fs::rename(at(2), at(3)).unwrap();
        std::fs::rename(at(1), at(2)).unwrap();
        std::fs::rename(log, at(1)).unwrap();
        std::fs::write(log, b"").unwrap();
    }

    /// Copytruncated (the truncation found, its copy being read), then in
    /// the same pass written to, copytruncated again and written to (and,
    /// with `renamed`, renamed away after its last line, as logrotate's
    /// `create` does, before the next look): the second copy's lines are
    /// read too. (Written for a soak's loss of such a copy, whose cause this
    /// did not find: it passed before any change.)
    fn copytruncated_again_while_its_first_copy_is_read(renamed: bool) {
        let first = testing::common_line("192.0.2.1", "/a", 0);
        let (dir, mut f) = following_one(first.as_bytes());
        assert_eq!(read_pass(&mut f), first);
        let log = dir.path().join("access.log");
        let at = |k: u32| dir.path().join(format!("access.log.{k}"));
        let more = testing::common_line("192.0.2.1", "/b", 1);
        std::fs::write(&log, first.clone() + &more).unwrap();
        copytruncate(&log, &at(1));
        let (second, last) = (
            testing::common_line("192.0.2.1", "/c", 2),
            testing::common_line("192.0.2.1", "/d", 3),
        );
        let mut read = Vec::new();
        let mut acted = false;
        let mut emit = |ev: SourceEvent| {
            if let SourceEvent::Lines(c) = &ev {
                read.extend_from_slice(c.bytes());
                if !acted {
                    acted = true;
                    std::fs::write(&log, &second).unwrap();
                    std::fs::rename(at(1), at(2)).unwrap();
                    copytruncate(&log, &at(1));
                    std::fs::write(&log, &last).unwrap();
                }
            }
            true
        };
        f.read_all(&mut emit, None).unwrap();
        assert!(acted, "the first copy was read");
        let mut text = String::from_utf8(read).unwrap();
        if renamed {
            written_later(&log);
            rotated_behind_two_copies(&log, &at);
        }
        f.discover();
        text += &read_passes(&mut f).join("\n");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        assert_eq!(lines, [&more, &second, &last].map(|l| l.trim_end()));
    }

    #[test]
    fn a_file_copytruncated_again_while_its_first_copy_is_read_has_both_copies_read() {
        copytruncated_again_while_its_first_copy_is_read(false);
        copytruncated_again_while_its_first_copy_is_read(true);
    }

    /// Opened empty, copytruncated twice and renamed away before the next
    /// look: the look finds it rotated away and its copies were written
    /// before its last line, so only its first change tells they are new
    /// (a 300-s two-source soak lost two such copies' 617 hits).
    #[test]
    fn a_file_opened_empty_copytruncated_twice_and_renamed_has_both_copies_read() {
        let (dir, mut f, log, first) = an_empty_file_written_to();
        let at = |k: u32| dir.path().join(format!("access.log.{k}"));
        copytruncate(&log, &at(1));
        let second = testing::common_line("192.0.2.1", "/b", 1);
        std::fs::write(&log, &second).unwrap();
        std::fs::rename(at(1), at(2)).unwrap();
        copytruncate(&log, &at(1));
        let last = testing::common_line("192.0.2.1", "/c", 2);
        std::fs::write(&log, &last).unwrap();
        // Its last line a moment after its copies were made (on the coarse
        // clock of file times, not always a later tick).
        written_later(&log);
        rotated_behind_two_copies(&log, &at);
        f.discover();
        let read = read_passes(&mut f);
        assert_eq!(read.join("\n") + "\n", first + &second + &last);
    }

    /// Opened unread, then copytruncated and renamed away empty: its
    /// offset is 0, so no shrink shows, and its copy has the first bytes
    /// it had, so it was not taken for a generation either (a 300-s
    /// two-source soak lost such a copy's 140 hits).
    #[test]
    fn a_file_copytruncated_before_its_first_read_and_renamed_empty_has_its_copy_read() {
        let text = testing::common_line("192.0.2.1", "/a", 0);
        let (dir, mut f) = following_one(text.as_bytes());
        let (log, at) =
            (dir.path().join("access.log"), |k| dir.path().join(format!("access.log.{k}")));
        copytruncate(&log, &at(1));
        std::fs::rename(at(1), at(2)).unwrap();
        std::fs::rename(&log, at(1)).unwrap();
        std::fs::write(&log, b"").unwrap();
        f.discover();
        assert_eq!(read_passes(&mut f).join("\n") + "\n", text);
    }

    #[test]
    fn a_copy_missing_from_the_listing_when_its_truncation_shows_is_found_at_the_next_pass() {
        let line = |k: i64| testing::common_line("192.0.2.1", &format!("/{k}"), k);
        let (dir, mut f) = following_one(line(0).as_bytes());
        assert_eq!(read_pass(&mut f), line(0));
        let log = dir.path().join("access.log");
        std::fs::write(&log, line(0) + &line(1)).unwrap();
        // Copied away under a name a rotation has not given it yet.
        let moving = dir.path().join("moving");
        copytruncate(&log, &moving);
        std::fs::write(&log, line(2)).unwrap();
        assert_eq!(read_pass(&mut f), line(2), "the copy is not found yet");
        std::fs::rename(&moving, dir.path().join("access.log.1")).unwrap();
        assert_eq!(read_pass(&mut f), line(1));
    }

    #[test]
    fn files_copytruncated_in_one_pass_have_their_copies_ends_read_before_their_new_lines() {
        let dir = tempfile::tempdir().unwrap();
        let at = |n: &str| dir.path().join(n);
        let line = |k: i64| testing::common_line("192.0.2.1", &format!("/{k}"), k);
        std::fs::write(at("a.log"), line(0)).unwrap();
        std::fs::write(at("b.log"), line(1)).unwrap();
        let cfg = config(&at("*.log").display().to_string(), StartAt::Beginning, false);
        let mut f = Follower::new(cfg, Arc::default(), None);
        f.discover();
        assert_eq!(read_pass(&mut f).lines().count(), 2);
        // Each written to, copied away and emptied, written to again.
        for (name, first, end, new) in [("a.log", 0, 2, 4), ("b.log", 1, 3, 5)] {
            std::fs::write(at(name), line(first) + &line(end)).unwrap();
            std::fs::copy(at(name), at(&format!("{name}.1"))).unwrap();
            std::fs::write(at(name), line(new)).unwrap();
        }
        let read = read_pass(&mut f);
        let pos = |k| read.find(&line(k)).unwrap_or_else(|| panic!("/{k} not read: {read}"));
        assert_eq!(read.lines().count(), 4, "{read}");
        assert!(pos(2) < pos(4) && pos(3) < pos(5), "{read}");
    }

    #[test]
    fn at_a_first_start_an_empty_file_does_not_have_its_older_generation_read() {
        // Rotated with `create`, the server not yet told: it still writes
        // to the old file, now `access.log.1`.
        let dir = tempfile::tempdir().unwrap();
        let (log, old) = (dir.path().join("access.log"), dir.path().join("access.log.1"));
        let before = testing::common_line("192.0.2.1", "/before", 0);
        std::fs::write(&old, &before).unwrap();
        std::fs::write(&log, b"").unwrap();
        let cfg = config(&log.display().to_string(), StartAt::End, false);
        let mut f = Follower::new(cfg, Arc::default(), None);
        f.discover();
        assert_eq!(read_pass(&mut f), "");
        let late = testing::common_line("192.0.2.1", "/late", 1);
        std::fs::write(&old, before + &late).unwrap();
        let next = testing::common_line("192.0.2.1", "/next", 2);
        std::fs::write(&log, &next).unwrap();
        // Lines from before the first start are not read.
        assert_eq!(read_pass(&mut f), next);
    }

    /// A follower of `log` (stopped by `stop`) resuming from `saved`, saved
    /// a minute ago, after its first look.
    fn resumed(log: &Path, stop: Arc<AtomicBool>, saved: Vec<Position>) -> Follower {
        let cfg = config(&log.display().to_string(), StartAt::Beginning, false);
        let saved_at = SystemTime::now() - Duration::from_secs(60);
        let mut f = Follower::new(cfg, stop, Some(saved)).with_saved_at(Some(saved_at), None);
        f.discover();
        f
    }

    /// Gives `path` a last write a second from now: a line after copies
    /// just made, on the coarse clock of file times not always a later tick.
    fn written_later(path: &Path) {
        let later = SystemTime::now() + Duration::from_secs(1);
        File::options().append(true).open(path).unwrap().set_modified(later).unwrap();
    }

    /// What a follower reads at its restart, and what was written in
    /// order, when `access.log`, saved unread (empty), was written to,
    /// copied away and emptied, and written to while stopped — and with
    /// `renamed`, renamed away then (its last line after the copy was made).
    fn resuming_an_unread_copytruncated_file(renamed: bool) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let at = |k: u32| dir.path().join(format!("access.log.{k}"));
        let md = File::create(&log).unwrap().metadata().unwrap();
        let id = FileId { dev: md.dev(), ino: md.ino(), fingerprint: None };
        let path = log.display().to_string();
        let saved = Position { source: String::new(), path: path.clone(), id, offset: 0, lines: 0 };
        let line = testing::common_line("192.0.2.1", "/a", 0);
        let next = testing::common_line("192.0.2.1", "/b", 1);
        std::fs::write(&log, &line).unwrap();
        std::fs::copy(&log, at(1)).unwrap();
        std::fs::write(&log, &next).unwrap();
        if renamed {
            written_later(&log);
            std::fs::rename(at(1), at(2)).unwrap();
            std::fs::rename(&log, at(1)).unwrap();
            std::fs::write(&log, b"").unwrap();
        }
        let mut f = resumed(&log, Arc::default(), vec![saved]);
        (read_passes(&mut f).join("\n") + "\n", line + &next)
    }

    #[test]
    fn a_file_saved_unread_and_copytruncated_while_stopped_has_its_copy_read_first() {
        let (read, written) = resuming_an_unread_copytruncated_file(false);
        assert_eq!(read, written);
    }

    #[test]
    fn a_file_saved_unread_copytruncated_and_renamed_while_stopped_has_its_copy_read_first() {
        let (read, written) = resuming_an_unread_copytruncated_file(true);
        assert_eq!(read, written);
    }

    /// What a follower reads at its restart, and what it should: the run
    /// before read a copy to its second line, and the file from which it
    /// was copied not at all; while stopped, the file was written to (its
    /// last line after the copy was made) and renamed away. With `hidden`,
    /// the copy's name is missing from the first look's listing (a
    /// rotation renaming each generation in turn meanwhile).
    fn resuming_a_copy_under_its_files_identity(hidden: bool) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let (log, at) =
            (dir.path().join("access.log"), |k| dir.path().join(format!("access.log.{k}")));
        let line = |k: i64| testing::common_line("192.0.2.1", &format!("/{k}"), k);
        std::fs::write(at(1), line(0) + &line(1) + &line(2)).unwrap();
        std::fs::write(&log, line(3)).unwrap();
        let md = std::fs::metadata(&log).unwrap();
        let fp = |p: &Path| fingerprint(&File::open(p).unwrap(), 64);
        let file = FileId { dev: md.dev(), ino: md.ino(), fingerprint: fp(&log) };
        let copy = FileId { fingerprint: fp(&at(1)), ..file };
        let pos = |path: &Path, id, offset, lines| {
            let path = path.display().to_string();
            Position { source: String::new(), path, id, offset, lines }
        };
        let read_to = (line(0) + &line(1)).len() as u64;
        let saved = vec![pos(&log, file, 0, 0), pos(&at(1), copy, read_to, 2)];
        written_later(&log);
        let hiding = dir.path().join("moving");
        std::fs::rename(at(1), if hidden { hiding.clone() } else { at(2) }).unwrap();
        std::fs::rename(&log, at(1)).unwrap();
        let mut f = resumed(&log, Arc::default(), saved);
        let mut read = read_passes(&mut f);
        if hidden {
            std::fs::rename(&hiding, at(2)).unwrap();
            f.discover();
            read.extend(read_passes(&mut f));
        }
        (read.join("\n") + "\n", line(2) + &line(3))
    }

    #[test]
    fn a_copy_saved_under_its_files_identity_is_found_after_that_file_is_renamed() {
        let (read, unread) = resuming_a_copy_under_its_files_identity(false);
        assert_eq!(read, unread);
    }

    #[test]
    fn a_saved_file_missing_from_the_first_looks_listing_is_found_at_the_next() {
        let (read, unread) = resuming_a_copy_under_its_files_identity(true);
        let mut lines: Vec<&str> = read.lines().collect();
        lines.sort();
        assert_eq!(lines.join("\n") + "\n", unread, "each line once, in any order");
    }

    #[test]
    fn a_saved_file_not_found_yet_is_looked_for_again_before_the_last_save() {
        let dir = tempfile::tempdir().unwrap();
        let (log, at) =
            (dir.path().join("access.log"), |k| dir.path().join(format!("access.log.{k}")));
        let line = |k: i64| testing::common_line("192.0.2.1", &format!("/{k}"), k);
        std::fs::write(at(1), line(0) + &line(1)).unwrap();
        std::fs::write(&log, line(2)).unwrap();
        let md = std::fs::metadata(at(1)).unwrap();
        let id = FileId { dev: md.dev(), ino: md.ino(), fingerprint: None };
        let path = at(1).display().to_string();
        let read_to = line(0).len() as u64;
        let saved = Position { source: String::new(), path, id, offset: read_to, lines: 1 };
        // Missing from the first look's listing, then named again.
        let moving = dir.path().join("elsewhere/moving");
        std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
        std::fs::rename(at(1), &moving).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let f = resumed(&log, Arc::clone(&stop), vec![saved]);
        std::fs::rename(&moving, at(2)).unwrap();
        // Stopped (a reload) before a look of its own found it: the last
        // save holds its position, for the next run.
        stop.store(true, Ordering::SeqCst);
        let mut opened = Vec::new();
        let mut emit = |ev: SourceEvent| {
            if let SourceEvent::Opened { file, offset } = &ev {
                opened.push((file.name.clone(), *offset));
            }
            true
        };
        Box::new(f).run(&mut emit).unwrap();
        assert!(opened.contains(&(at(2).display().to_string(), read_to)), "{opened:?}");
    }

    /// The identities a pass's lines carry (their alerts' ids), in order.
    fn identities_of_a_pass(f: &mut Follower) -> Vec<Option<FileId>> {
        let mut seen = Vec::new();
        let mut emit = |ev: SourceEvent| {
            if let SourceEvent::Lines(c) = &ev {
                seen.push(c.file.identity);
            }
            true
        };
        f.read_all(&mut emit, None).unwrap();
        seen
    }

    #[test]
    fn a_file_saved_short_and_renamed_while_stopped_keeps_the_identity_it_grew_into() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        std::fs::write(&log, "short\n").unwrap();
        let path = log.display().to_string();
        let cfg = || config(&path, StartAt::Beginning, false);
        let mut f = Follower::new(cfg(), Arc::default(), None);
        f.discover();
        let short = identities_of_a_pass(&mut f)[0].unwrap();
        assert_eq!(short.fingerprint, None, "shorter than its checksummed bytes");
        // The run before saved it short, then read it grown, and was killed.
        let saved =
            Position { source: String::new(), path: path.clone(), id: short, offset: 6, lines: 1 };
        let line = testing::common_line("192.0.2.1", "/a", 0);
        std::fs::write(&log, format!("short\n{line}")).unwrap();
        let grown = identities_of_a_pass(&mut f)[0].unwrap();
        assert!(grown.fingerprint.is_some());
        drop(f);
        // While stopped: rotated away.
        std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
        std::fs::write(&log, "").unwrap();
        let mut f = resumed(&log, Arc::default(), vec![saved]);
        // Its line read again carries the id it had: delivered once.
        assert_eq!(identities_of_a_pass(&mut f), vec![Some(grown)]);
    }

    /// What a follower of `*.log` in `dir` reads at its first pass,
    /// resuming from `a.log`'s saved position (at its end), saved at
    /// `saved_at` by a run whose last look began at `looked`.
    fn read_resuming(dir: &Path, saved_at: SystemTime, looked: Option<SystemTime>) -> String {
        let a = dir.join("a.log");
        let md = std::fs::metadata(&a).unwrap();
        let id = FileId { dev: md.dev(), ino: md.ino(), fingerprint: None };
        let path = a.display().to_string();
        let saved = Position { source: String::new(), path, id, offset: md.len(), lines: 0 };
        let cfg = config(&format!("{}/*.log", dir.display()), StartAt::Beginning, false);
        let f = Follower::new(cfg, Arc::default(), Some(vec![saved]));
        let mut f = f.with_saved_at(Some(saved_at), looked);
        f.discover();
        read_pass(&mut f)
    }

    /// A directory holding `a.log` (empty: the saved file) and a name
    /// `name` new to the saved state, its file empty and its generation
    /// `name.1` holding a line: the directory, the line and its file's time.
    fn with_a_new_names_generation(name: &str) -> (tempfile::TempDir, String, SystemTime) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), "").unwrap();
        let line = testing::common_line("192.0.2.1", &format!("/{name}"), 0);
        let old = dir.path().join(format!("{name}.1"));
        std::fs::write(&old, &line).unwrap();
        std::fs::write(dir.path().join(name), "").unwrap();
        let at = std::fs::metadata(&old).unwrap().modified().unwrap();
        (dir, line, at)
    }

    #[test]
    fn a_file_made_and_rotated_away_after_the_last_look_is_read_at_the_restart() {
        // After the run before last looked, and before it last saved, a new
        // name's file was written and rotated away, and the name's new
        // file made (logrotate's `create`).
        let (dir, line, at) = with_a_new_names_generation("b.log");
        let (looked, saved_at) = (at - Duration::from_millis(50), at + Duration::from_millis(300));
        assert_eq!(read_resuming(dir.path(), saved_at, Some(looked)), line);
        // Since the save alone, it was not (a soak lost such a file's lines).
        assert_eq!(read_resuming(dir.path(), saved_at, None), "");
    }

    #[test]
    fn a_file_made_and_rotated_away_after_the_last_look_is_read_though_its_name_has_no_file() {
        // As above, but the name's new file is not made yet at the restart
        // (a server writes it at its next request): the run before did not
        // see the generation, and this look finds no file under the name.
        let (dir, line, at) = with_a_new_names_generation("b.log");
        std::fs::remove_file(dir.path().join("b.log")).unwrap();
        let a = dir.path().join("a.log");
        let md = std::fs::metadata(&a).unwrap();
        let id = FileId { dev: md.dev(), ino: md.ino(), fingerprint: None };
        let path = a.display().to_string();
        let saved = Position { source: String::new(), path, id, offset: 0, lines: 0 };
        let cfg =
            config(&dir.path().join("b.log").display().to_string(), StartAt::Beginning, false);
        let (looked, saved_at) = (at - Duration::from_millis(50), at + Duration::from_millis(300));
        let mut f = Follower::new(cfg, Arc::default(), Some(vec![saved]))
            .with_saved_at(Some(saved_at), Some(looked));
        f.discover();
        assert_eq!(read_pass(&mut f), line);
    }

    #[test]
    fn a_file_the_run_before_finished_is_not_read_again_after_a_late_save() {
        // The run before finished `c.log` (quiet `rotate_wait`, so not in the
        // saved positions) after its name's file was rotated away with no
        // new one (logrotate's `nocreate`); the new one came while stopped.
        // That run's last look was long before its save.
        let (dir, _, at) = with_a_new_names_generation("c.log");
        let saved_at = at + Duration::from_secs(1);
        let long_before = Some(at - Duration::from_secs(10));
        assert_eq!(read_resuming(dir.path(), saved_at, long_before), "");
    }

    #[test]
    fn a_file_that_becomes_recognisable_is_saved_at_once() {
        let (_dir, mut f, log, line) = an_empty_file_written_to();
        f.checkpoint();
        assert_eq!(read_pass(&mut f), line);
        assert!(f.to_save() && f.urgent, "its first bytes saved after this pass");
        // Later lines wait for the checkpoint period.
        f.checkpoint();
        std::fs::write(&log, line.repeat(2)).unwrap();
        assert_eq!(read_pass(&mut f), line);
        assert!(f.to_save() && !f.urgent);
    }

    /// A follower of `dir/access.log`, beside `access.log.1` holding
    /// `first` and `access.log.2`; and the inode of `access.log.1`.
    fn followed_with_two_generations(dir: &Path, first: &[u8]) -> (Follower, u64) {
        std::fs::write(dir.join("access.log"), b"head\n").unwrap();
        std::fs::write(dir.join("access.log.1"), first).unwrap();
        std::fs::write(dir.join("access.log.2"), b"other\n").unwrap();
        let ino = std::fs::metadata(dir.join("access.log.1")).unwrap().ino();
        let log = dir.join("access.log").display().to_string();
        (Follower::new(config(&log, StartAt::Beginning, false), Arc::default(), None), ino)
    }

    /// A follower whose first look did not find a saved file says it has
    /// not looked (so no state is saved) until its next look has looked
    /// for that file again; given up then, the file is named in a warning.
    #[test]
    fn a_follower_has_not_looked_while_a_saved_file_waits_for_the_next_look() {
        let dir = tempfile::tempdir().unwrap();
        let (log, gone) = (dir.path().join("access.log"), dir.path().join("gone.log"));
        std::fs::write(&log, testing::common_line("192.0.2.1", "/", 0)).unwrap();
        let looked = |f: &mut Follower| match f.checkpoint() {
            SourceEvent::Checkpoint { looked, .. } => looked,
            _ => unreachable!("a checkpoint"),
        };
        let mut f = resumed(&log, Arc::default(), Vec::new());
        assert!(looked(&mut f).is_some(), "nothing saved was missing");
        std::fs::write(&gone, b"x\n").unwrap();
        let md = std::fs::metadata(&gone).unwrap();
        let id = FileId { dev: md.dev(), ino: md.ino(), fingerprint: None };
        std::fs::remove_file(&gone).unwrap();
        let path = log.display().to_string();
        let saved = Position { source: String::new(), path, id, offset: 2, lines: 1 };
        let mut f = resumed(&log, Arc::default(), vec![saved]);
        assert_eq!(looked(&mut f), None, "the saved file waits for the next look");
        let told = crate::testing::logged(|| f.discover());
        assert!(looked(&mut f).is_some(), "looked for twice, it is given up");
        assert_eq!(told.matches("was not found at two looks").count(), 1, "{told}");
        assert!(told.contains(&log.display().to_string()), "{told}");
    }

    /// A truncated file's copy is looked for for a second; not found by
    /// then, the search ends, and says so.
    #[test]
    fn a_copy_not_found_within_a_second_is_given_up_and_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, ino) = followed_with_two_generations(dir.path(), b"first\n");
        let log = dir.path().join("access.log");
        let truncated = |since| Truncated {
            of: log.clone(),
            fp: Some(7),
            offset: 5,
            was: FileId { dev: 0, ino, fingerprint: Some(7) },
            since,
        };
        let told = crate::testing::logged(|| {
            f.adopt_copies(vec![truncated(Instant::now())]);
        });
        assert_eq!(f.copies_unfound.len(), 1, "looked for again");
        assert_eq!(told, "");
        f.copies_unfound.clear();
        let told = crate::testing::logged(|| {
            f.adopt_copies(vec![truncated(Instant::now() - COPY_SOUGHT)]);
        });
        assert!(f.copies_unfound.is_empty(), "given up");
        assert_eq!(told.matches("No copy of the truncated log file").count(), 1, "{told}");
        assert!(told.contains(&log.display().to_string()), "{told}");
    }

    #[test]
    fn a_file_renamed_after_the_listing_is_found_by_a_listing_again() {
        let dir = tempfile::tempdir().unwrap();
        let at = |n: &str| dir.path().join(n);
        let (f, ino) = followed_with_two_generations(dir.path(), b"sought\n");
        let mut looked = Some(f.look(&|_| true));
        // A rotation between the listing and the search.
        std::fs::rename(at("access.log.2"), at("access.log.3")).unwrap();
        std::fs::rename(at("access.log.1"), at("access.log.2")).unwrap();
        let sought = |l: &Looked| f.find_untracked(&l.files, |_| true, |m, _| m.ino() == ino);
        let found = f.search_listed(&mut looked, &|_| true, sought).unwrap();
        assert_eq!(found.path, at("access.log.2"));
    }

    #[test]
    fn a_file_found_is_followed_though_its_name_is_given_to_another_before() {
        let dir = tempfile::tempdir().unwrap();
        let at = |n: &str| dir.path().join(n);
        let (mut f, ino) = followed_with_two_generations(dir.path(), b"found\n");
        let files = f.look(&|_| true).files;
        let found = f.find_untracked(&files, |_| true, |m, _| m.ino() == ino).unwrap().unwrap();
        // A rotation between the look and the open.
        std::fs::rename(at("access.log.2"), at("access.log.1")).unwrap();
        f.open_retired(found, (0, 0), None);
        assert_eq!(read_pass(&mut f), "found\n");
    }

    #[test]
    fn a_followed_file_whose_new_name_is_opened_is_not_followed_twice() {
        let (dir, mut f) = following_one(b"one\n");
        let log = dir.path().join("access.log");
        assert_eq!(read_pass(&mut f), "one\n");
        // Renamed after a look saw its name free: opened there as new.
        let moved = dir.path().join("access.log.1");
        std::fs::rename(&log, &moved).unwrap();
        assert!(!f.open_at(&moved, None, None));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&moved)
            .and_then(|mut w| std::io::Write::write_all(&mut w, b"two\n"))
            .unwrap();
        assert_eq!(read_pass(&mut f), "two\n");
    }

    #[test]
    fn every_file_found_at_a_first_start_begins_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["a_access.log", "b_access.log"] {
            std::fs::write(dir.path().join(n), b"old line\n").unwrap();
        }
        let glob = format!("{}/*access.log", dir.path().display());
        let cfg = config(&glob, StartAt::End, false);
        let mut f = Follower::new(cfg, Arc::new(AtomicBool::new(false)), None);
        f.discover();
        let offsets: Vec<u64> = f.tracked.iter().map(|t| t.offset).collect();
        assert_eq!(offsets, vec![9, 9]);
        // A file that appears later is read from its beginning.
        std::fs::write(dir.path().join("c_access.log"), b"new line\n").unwrap();
        f.discover();
        assert_eq!(f.tracked.last().map(|t| t.offset), Some(0));
    }

    /// What one pass reads, every file.
    fn read_pass(f: &mut Follower) -> String {
        let mut read = Vec::new();
        let mut emit = |ev: SourceEvent| {
            if let SourceEvent::Lines(c) = &ev {
                read.extend_from_slice(c.bytes());
            }
            true
        };
        f.read_all(&mut emit, None).unwrap();
        String::from_utf8(read).unwrap()
    }

    /// The lines of every pass until one reads none, in order.
    fn read_passes(f: &mut Follower) -> Vec<String> {
        let mut read = Vec::new();
        loop {
            let pass = read_pass(f);
            if pass.is_empty() {
                return read;
            }
            read.extend(pass.lines().map(String::from));
        }
    }

    /// Lines of `file` at each of `times` (seconds after [`testing::T0`]),
    /// each naming its file and second in its path.
    fn timed_lines(file: &str, times: impl Iterator<Item = i64>) -> String {
        times.map(|t| testing::common_line("192.0.2.1", &format!("/{file}/{t}"), t)).collect()
    }

    #[test]
    fn files_with_long_backlogs_are_read_in_about_the_order_of_their_times() {
        let dir = tempfile::tempdir().unwrap();
        // Two hours of each, interleaved; the third file has no times.
        std::fs::write(dir.path().join("a.log"), timed_lines("a", (0..=7200).step_by(100)))
            .unwrap();
        std::fs::write(dir.path().join("b.log"), timed_lines("b", (50..7200).step_by(100)))
            .unwrap();
        std::fs::write(dir.path().join("c.log"), "no time\n").unwrap();
        let glob = format!("{}/*.log", dir.path().display());
        let mut f = Follower::new(config(&glob, StartAt::Beginning, false), Arc::default(), None)
            .with_times(testing::common(), several::SLACK);
        f.discover();
        let times = |read: &str| -> Vec<i64> {
            let mut newest = i64::MIN;
            let mut seen = Vec::new();
            for line in read.lines().filter(|l| *l != "no time") {
                let path = line.split_once("GET /").unwrap().1;
                let t: i64 = path.split(['/', ' ']).nth(1).unwrap().parse().unwrap();
                assert!(t >= newest.saturating_sub(several::SLACK), "{t} after {newest}: {read}");
                newest = newest.max(t);
                seen.push(t);
            }
            seen.sort();
            seen
        };
        let read = read_pass(&mut f);
        assert_eq!(times(&read), (0..=7200).step_by(50).collect::<Vec<_>>(), "every line once");
        assert!(read.contains("no time"));
        assert_eq!(read_pass(&mut f), "", "all read in one pass");
        // More lines; in a.log more lines without a time than are looked
        // at for one before its next lines, which are far ahead of b.log's.
        let append = |name: &str, text: String| {
            let mut file = File::options().append(true).open(dir.path().join(name)).unwrap();
            std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        };
        append("a.log", "no time\n".repeat(20) + &timed_lines("a", (7500..9000).step_by(100)));
        append("b.log", timed_lines("b", (7250..9000).step_by(100)));
        let read = read_pass(&mut f);
        let mut want: Vec<i64> =
            (7250..9000).step_by(100).chain((7500..9000).step_by(100)).collect();
        want.sort();
        assert_eq!(times(&read), want);
        assert_eq!(read.matches("no time").count(), 20);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever files hold (times in any order, lines without a time,
        /// lines dated years ahead), one pass reads every line once, each
        /// file's in its order; where each file is in time order, no line
        /// comes more than the slack behind one read before it.
        #[test]
        fn every_line_is_read_once_and_in_about_time_order(
            files in proptest::collection::vec(
                proptest::collection::vec((0u8..8, 0i64..5000), 0..60), 2..5),
            sorted: bool,
            slack in 1i64..400,
        ) {
            let dir = tempfile::tempdir().unwrap();
            for (n, lines) in files.iter().enumerate() {
                let mut lines = lines.clone();
                if sorted {
                    lines.sort_by_key(|l| l.1);
                }
                let text: String = lines.iter().enumerate().map(|(id, &(kind, t))| match kind {
                    0 => format!("no time {n} {id}\n"),
                    1 => timed_lines(&format!("f{n}/{id}"), std::iter::once(400_000_000)),
                    _ => timed_lines(&format!("f{n}/{id}"), std::iter::once(t)),
                }).collect();
                std::fs::write(dir.path().join(format!("{n}.log")), text).unwrap();
            }
            let glob = format!("{}/*.log", dir.path().display());
            let cfg = config(&glob, StartAt::Beginning, false);
            let mut f = Follower::new(cfg, Arc::default(), None).with_times(testing::common(), slack);
            f.discover();
            let read = read_pass(&mut f);
            let mut next = vec![0usize; files.len()];
            let mut newest = i64::MIN;
            for line in read.lines() {
                let (n, id, t) = match line.strip_prefix("no time ") {
                    Some(rest) => {
                        let (n, id) = rest.split_once(' ').unwrap();
                        (n.parse::<usize>().unwrap(), id.parse::<usize>().unwrap(), None)
                    }
                    None => {
                        let path = line.split_once("GET /f").unwrap().1;
                        let mut parts = path.split(['/', ' ']);
                        let mut num = || parts.next().unwrap().parse::<i64>().unwrap();
                        let (n, id, t) = (num(), num(), num());
                        (n as usize, id as usize, Some(t).filter(|t| *t < 400_000_000))
                    }
                };
                proptest::prop_assert_eq!(id, next[n], "{}", read);
                next[n] += 1;
                if let (true, Some(t)) = (sorted, t) {
                    proptest::prop_assert!(t >= newest.saturating_sub(slack), "{} after {}", t, newest);
                    newest = newest.max(t);
                }
            }
            let lens: Vec<usize> = files.iter().map(Vec::len).collect();
            proptest::prop_assert_eq!(next, lens);
        }
    }

    #[test]
    fn a_file_created_and_rotated_between_two_looks_is_read_whole() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = |n: &str| dir.path().join(n);
        std::fs::write(log("a.log"), "a\n").unwrap();
        // Rotated away before the first look, long ago: not ours to read.
        std::fs::write(log("old.log.1"), "before\n").unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        File::options().write(true).open(log("old.log.1")).unwrap().set_modified(long_ago).unwrap();
        let glob = format!("{}/*.log", dir.path().display());
        let mut f = Follower::new(config(&glob, StartAt::Beginning, false), Arc::default(), None);
        let first_look = SystemTime::now();
        f.discover();
        assert_eq!(read_passes(&mut f), ["a"]);
        // Created, written and rotated away between two looks; a line
        // written late to it after its new file appeared.
        for n in ["b", "c"] {
            std::fs::write(log(&format!("{n}.log")), format!("{n} first\n")).unwrap();
            std::fs::rename(log(&format!("{n}.log")), log(&format!("{n}.log.1"))).unwrap();
            std::fs::write(log(&format!("{n}.log")), format!("{n} new\n")).unwrap();
        }
        std::fs::write(log("old.log"), "old new\n").unwrap();
        let mut late = File::options().append(true).open(log("b.log.1")).unwrap();
        late.write_all(b"b late\n").unwrap();
        // Stamped by a clock a tick behind: just before the first look.
        let behind = first_look - Duration::from_millis(4);
        File::options().write(true).open(log("c.log.1")).unwrap().set_modified(behind).unwrap();
        f.discover();
        let mut read = read_passes(&mut f);
        read.sort();
        assert_eq!(read, ["b first", "b late", "b new", "c first", "c new", "old new"]);
        // A name followed before: its generations are not looked for again.
        std::fs::rename(log("b.log"), log("b.log.2")).unwrap();
        std::fs::write(log("b.log"), "b newer\n").unwrap();
        f.discover();
        assert_eq!(read_passes(&mut f), ["b newer"]);
    }

    #[test]
    fn a_generation_made_and_rotated_away_while_its_name_had_no_file_is_read() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = |n: &str| dir.path().join(n);
        std::fs::write(log("a.log"), "a 1\n").unwrap();
        let glob = format!("{}/*.log", dir.path().display());
        let mut f = Follower::new(config(&glob, StartAt::Beginning, false), Arc::default(), None);
        f.discover();
        assert_eq!(read_passes(&mut f), ["a 1"]);
        // Rotated, its new file made later (logrotate's `nocreate`, the
        // server making it when it reopens): a look finds no file there.
        std::fs::rename(log("a.log"), log("a.log.1")).unwrap();
        let mut late = File::options().append(true).open(log("a.log.1")).unwrap();
        late.write_all(b"a 1 late\n").unwrap();
        f.discover();
        assert_eq!(read_passes(&mut f), ["a 1 late"]);
        // Before the next look: a new file, written and rotated away, and
        // the one after it.
        std::fs::write(log("a.log"), "a 2\n").unwrap();
        std::fs::rename(log("a.log.1"), log("a.log.2")).unwrap();
        std::fs::rename(log("a.log"), log("a.log.1")).unwrap();
        std::fs::write(log("a.log"), "a 3\n").unwrap();
        f.discover();
        let mut read = read_passes(&mut f);
        read.sort();
        assert_eq!(read, ["a 2", "a 3"]);
        // A rotation seen as it happens still reads nothing twice.
        std::fs::rename(log("a.log"), log("a.log.0")).unwrap();
        std::fs::write(log("a.log"), "a 4\n").unwrap();
        f.discover();
        assert_eq!(read_passes(&mut f), ["a 4"]);
    }

    #[test]
    fn a_file_rewritten_to_its_size_within_a_tick_is_read_at_the_next_look() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let (old, new) = ("o".repeat(79) + "\n", "n".repeat(79) + "\n");
        std::fs::write(&path, &old).unwrap();
        let cfg = config(&path.display().to_string(), StartAt::Beginning, true);
        let mut f = Follower::new(cfg, Arc::new(AtomicBool::new(false)), None);
        let pass = read_pass;
        f.discover();
        assert_eq!(pass(&mut f), old);
        // Rewritten in place to the same size, its modification time the
        // same (as within one tick of the clock).
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, &new).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(written).unwrap();
        assert_eq!(pass(&mut f), "", "the same stamp: not looked at between looks");
        f.discover();
        assert_eq!(pass(&mut f), new, "checked whole at the next look");
    }

    #[test]
    fn names_are_looked_for_when_an_event_says_or_a_period_after_the_last_look() {
        let dir = tempfile::tempdir().unwrap();
        let glob = format!("{}/*.log", dir.path().display());
        let mut cfg = config(&glob, StartAt::Beginning, false);
        cfg.poll_interval = Duration::from_millis(50);
        let mut f = Follower::new(cfg, Arc::new(AtomicBool::new(false)), None);
        assert!(f.must_discover(), "never looked");
        f.discover();
        assert!(!f.must_discover(), "polling, just looked");
        std::thread::sleep(Duration::from_millis(60));
        assert!(f.must_discover(), "polling, poll_interval after the last look");
        f.discover();
        f.names_changed.store(true, Ordering::SeqCst);
        assert!(f.must_discover(), "an event said a name changed");
        assert!(!f.must_discover(), "the event is used up");
    }

    #[test]
    fn between_looks_for_names_only_the_files_written_to_are_read() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> =
            ["a", "b"].iter().map(|n| dir.path().join(format!("{n}.log"))).collect();
        for p in &paths {
            std::fs::write(p, "first\n").unwrap();
        }
        let glob = format!("{}/*.log", dir.path().display());
        let mut f = Follower::new(config(&glob, StartAt::Beginning, true), Arc::default(), None);
        let pass = |f: &mut Follower, only: Option<&HashSet<(u64, u64)>>| {
            let mut lines = 0;
            let mut emit = |ev: SourceEvent| {
                if let SourceEvent::Lines(c) = &ev {
                    lines += bytecount::count(c.bytes(), b'\n');
                }
                true
            };
            f.read_all(&mut emit, only).unwrap();
            lines
        };
        f.discover();
        assert_eq!(pass(&mut f, None), 2);
        for p in &paths {
            std::fs::OpenOptions::new().append(true).open(p).unwrap().write_all(b"more\n").unwrap();
        }
        let md = std::fs::metadata(&paths[0]).unwrap();
        let a = HashSet::from([(md.dev(), md.ino())]);
        assert_eq!(pass(&mut f, Some(&a)), 1, "only a.log, which an event named");
        assert_eq!(pass(&mut f, None), 1, "b.log at the next look at every file");
        // Too many to list: every file.
        let mut w = Written::default();
        (0..=WRITTEN_KEPT as u64).for_each(|i| w.add((1, i)));
        *f.written.lock().unwrap() = w;
        f.ensure_watch();
        assert!(f.watcher.is_some());
        assert_eq!(f.take_written(false), None, "overflowed: every file");
        f.written.lock().unwrap().add((1, 2));
        assert_eq!(f.take_written(false), Some(HashSet::from([(1, 2)])));
        f.written.lock().unwrap().add((1, 2));
        assert_eq!(f.take_written(true), None, "names looked for: every file");
    }

    #[test]
    fn lines_written_one_at_a_time_are_read_together() {
        use std::io::Write;
        const LINES: usize = 300;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, b"").unwrap();
        let cfg = config(&path.display().to_string(), StartAt::Beginning, true);
        let stop = Arc::new(AtomicBool::new(false));
        let follower = Box::new(Follower::new(cfg, Arc::clone(&stop), None));
        let wake = follower.wake_tx.clone();
        let (mut reads, mut lines) = (0, 0);
        let (done, ended) = crossbeam_channel::bounded::<()>(0);
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                // As a web server writes: a write per line, a line every ms.
                let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
                for i in 0..LINES {
                    file.write_all(format!("line {i}\n").as_bytes()).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
                // Ends the follower should a line never come.
                ended.recv_timeout(Duration::from_secs(10)).ok();
                stop.store(true, Ordering::SeqCst);
                wake.try_send(()).unwrap_or(());
            });
            let mut emit = |ev: SourceEvent| {
                if let SourceEvent::Lines(c) = &ev {
                    reads += 1;
                    lines += bytecount::count(c.bytes(), b'\n');
                }
                lines < LINES
            };
            follower.run(&mut emit).unwrap();
            drop(done);
        });
        assert_eq!(lines, LINES);
        // A read that finds lines is at least GATHER after the last one.
        let most = started.elapsed().as_millis() / GATHER.as_millis() + 2;
        assert!(reads as u128 <= most, "{reads} reads, at most {most} expected");
    }

    #[test]
    fn repeated_file_events_are_slowed_and_distinct_ones_are_not() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let gap = Duration::from_millis(20);
        let names = Arc::new(AtomicBool::new(false));
        let written = Arc::new(Mutex::new(Written::default()));
        let mut handler = on_file_events(gap, tx, Arc::clone(&names), Arc::clone(&written));
        let modified = |name: &str| {
            let data = notify::event::DataChange::Any;
            let kind = notify::EventKind::Modify(notify::event::ModifyKind::Data(data));
            Ok(notify::Event::new(kind).add_path(PathBuf::from(name)))
        };
        let started = Instant::now();
        handler(modified("a.log"));
        assert!(rx.try_recv().is_ok(), "the first event wakes at once");
        let opened = notify::EventKind::Access(notify::event::AccessKind::Open(
            notify::event::AccessMode::Any,
        ));
        handler(Ok(notify::Event::new(opened).add_path(PathBuf::from("a.log"))));
        assert!(rx.try_recv().is_err(), "a file opened is no change to read");
        // One file's stream while a wake-up waits: a gap after each, for
        // the kernel to merge what comes meanwhile.
        for _ in 0..5 {
            handler(modified("a.log"));
        }
        assert!(started.elapsed() >= 4 * gap, "{:?}", started.elapsed());
        // Distinct files (500 opened at once) while a wake-up waits: not
        // a gap each (10 s).
        let started = Instant::now();
        for i in 0..500 {
            handler(modified(&format!("v{i}.log")));
        }
        assert!(started.elapsed() < 10 * gap, "{:?}", started.elapsed());
        assert!(rx.try_recv().is_ok(), "the waiting wake-up is still there");
        handler(modified("v0.log"));
        assert!(rx.try_recv().is_ok(), "taken, the next event wakes again at once");
        assert!(!names.load(Ordering::SeqCst), "lines written change no name");
        let file = tempfile::NamedTempFile::new().unwrap();
        let md = file.as_file().metadata().unwrap();
        handler(modified(&file.path().display().to_string()));
        let files = std::mem::take(&mut written.lock().unwrap().files);
        assert_eq!(files, HashSet::from([(md.dev(), md.ino())]), "the file written to, by inode");
        let created = notify::EventKind::Create(notify::event::CreateKind::File);
        handler(Ok(notify::Event::new(created).add_path(PathBuf::from("b.log"))));
        assert!(names.load(Ordering::SeqCst), "a file created is a name to look at");
    }

    /// Passes a follower of `spec` makes over 1.5 s while nothing is written
    /// (after reading what its files hold: the heartbeat beats once a pass
    /// and once a chunk).
    fn passes_at_rest(spec: &str) -> usize {
        let cfg = config(spec, StartAt::Beginning, true);
        let stop = Arc::new(AtomicBool::new(false));
        let passes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&passes);
        let count = Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let follower = Follower::new(cfg, Arc::clone(&stop), None).with_heartbeat(None, count);
        let wake = follower.wake_tx.clone();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(1500));
                stop.store(true, Ordering::SeqCst);
                wake.try_send(()).unwrap_or(());
            });
            let mut chunks = 0;
            let mut emit = |ev| {
                chunks += usize::from(matches!(ev, SourceEvent::Lines(_)));
                true
            };
            Box::new(follower).run(&mut emit).unwrap();
            passes.load(Ordering::SeqCst) - chunks
        })
    }

    #[test]
    fn followers_at_rest_stay_asleep() {
        let dir = tempfile::tempdir().unwrap();
        let dated = format!("{}/ssl_www_log-%Y-%m-%d", dir.path().display());
        let (y, m, d) = Zone::Utc.date_of(jiff::Timestamp::now().as_second());
        let today = dir.path().join(format!("ssl_www_log-{y:04}-{m:02}-{d:02}"));
        std::fs::write(today, "a line\n").unwrap();
        // Listing the directory (each pass) opened it, an event that woke
        // the follower again: about 100 passes a second.
        let passes = passes_at_rest(&dated);
        assert!(passes < 30, "{passes} passes over a dated series at rest");
        let dir = tempfile::tempdir().unwrap();
        for i in 0..500 {
            std::fs::write(dir.path().join(format!("v{i}.log")), format!("line {i}\n")).unwrap();
        }
        // And opening 500 files raised 500 events, each slept a gap.
        let passes = passes_at_rest(&format!("{}/*.log", dir.path().display()));
        assert!(passes < 30, "{passes} passes over 500 files at rest");
    }
}
