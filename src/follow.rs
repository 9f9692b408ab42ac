//! Follow: live log files as they grow — a dated series, a plain path or a
//! glob — across date switches and every logrotate style, as a
//! [`ChunkSource`] for the pipeline.
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
//!    plain path names now, or every glob match;
//! 2. opens files it does not know, from their beginning (or, on a first
//!    start without state and `start_at = "end"`, from their end); a file no
//!    longer current is drained: read while it grows, and closed once quiet
//!    for `rotate_wait` (Apache writes late lines to yesterday's file);
//! 3. reads each file from its offset to its size: a shrink or a changed
//!    checksum means it was truncated or replaced, and reading restarts at 0.
//!
//! Only whole lines are handed on; a last line without newline waits until
//! its file is finished (drained and quiet).

use crate::config::StartAt;
use crate::parse::time::Zone;
use crate::source::{CHUNK_BYTES, Chunk, ChunkSource, Data, FileTag, SourceError};
use crate::state::Position;
use notify::Watcher as _;
use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Bytes checksummed to recognise a file.
const FINGERPRINT_BYTES: usize = 64;
/// State is saved at most this often while lines flow.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// With file events, files are still re-checked this often.
const SAFETY_POLL: Duration = Duration::from_secs(60);

/// How the configured `source.path` names files.
#[derive(Debug, Clone)]
pub enum PathSpec {
    /// strftime fields (`%Y %m %d %H`) in the file name: a dated series.
    Dated {
        /// Directory of the series.
        dir: PathBuf,
        /// The file name pattern turned into a regex with one group per field.
        regex: regex::Regex,
        /// Field letters in group order (`Y`, `m`, …).
        fields: Vec<char>,
    },
    /// `*`, `?` or `[` in the file name: every match.
    Glob {
        /// Directory.
        dir: PathBuf,
        /// Name pattern as a regex.
        regex: regex::Regex,
    },
    /// One path (possibly a symlink).
    Plain(PathBuf),
}

impl PathSpec {
    /// Interprets `source.path`. Only the file name may hold fields or wildcards.
    pub fn parse(path: &str) -> Result<PathSpec, String> {
        let p = Path::new(path);
        let name = p.file_name().and_then(|n| n.to_str()).ok_or("has no file name")?;
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let dir_text = dir.to_string_lossy();
        if dir_text.contains(['%', '*', '?', '[']) {
            return Err("may hold date fields or wildcards only in the file name".into());
        }
        if name.contains('%') {
            let mut re = String::from("^");
            let mut fields = Vec::new();
            let mut chars = name.chars();
            while let Some(c) = chars.next() {
                if c != '%' {
                    re.push_str(&regex::escape(&c.to_string()));
                    continue;
                }
                let f = chars.next().ok_or("ends with a lone %")?;
                let width = match f {
                    'Y' => 4,
                    'm' | 'd' | 'H' | 'M' => 2,
                    '%' => {
                        re.push('%');
                        continue;
                    }
                    o => return Err(format!("uses %{o}; dated names may use %Y %m %d %H %M")),
                };
                re.push_str(&format!("([0-9]{{{width}}})"));
                fields.push(f);
            }
            re.push('$');
            let regex = regex::Regex::new(&re).map_err(|e| e.to_string())?;
            return Ok(PathSpec::Dated { dir, regex, fields });
        }
        if name.contains(['*', '?', '[']) {
            let mut re = String::from("^");
            for c in name.chars() {
                match c {
                    '*' => re.push_str("[^/]*"),
                    '?' => re.push_str("[^/]"),
                    '[' | ']' => re.push(c),
                    c => re.push_str(&regex::escape(&c.to_string())),
                }
            }
            re.push('$');
            let regex = regex::Regex::new(&re).map_err(|e| format!("is not a valid glob: {e}"))?;
            return Ok(PathSpec::Glob { dir, regex });
        }
        Ok(PathSpec::Plain(p.to_path_buf()))
    }

    /// The directory to watch.
    fn dir(&self) -> PathBuf {
        match self {
            PathSpec::Dated { dir, .. } | PathSpec::Glob { dir, .. } => dir.clone(),
            PathSpec::Plain(p) => p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        }
    }

    /// The paths to follow now (heads). For a dated series: the newest file.
    fn current(&self) -> Vec<PathBuf> {
        match self {
            PathSpec::Plain(p) => vec![p.clone()],
            PathSpec::Glob { dir, regex } => {
                let mut v: Vec<PathBuf> = list(dir)
                    .into_iter()
                    .filter(|n| regex.is_match(n))
                    .map(|n| dir.join(n))
                    .collect();
                v.sort();
                v
            }
            PathSpec::Dated { .. } => self.series().pop().map(|(_, p)| p).into_iter().collect(),
        }
    }

    /// Every file of a dated series with its date (`[Y, m, d, H, M]`), oldest
    /// first; empty for other specs.
    fn series(&self) -> Vec<(DateKey, PathBuf)> {
        let PathSpec::Dated { dir, regex, fields } = self else { return Vec::new() };
        let mut v: Vec<(DateKey, PathBuf)> = list(dir)
            .into_iter()
            .filter_map(|n| {
                let caps = regex.captures(&n)?;
                let mut key = [0u32; 5];
                for (i, f) in fields.iter().enumerate() {
                    let v: u32 = caps.get(i + 1)?.as_str().parse().ok()?;
                    key["YmdHM".find(*f)?] = v;
                }
                Some((key, dir.join(n)))
            })
            .collect();
        v.sort();
        v
    }

    /// The name today's file would have (for "waiting for" messages).
    fn expected(&self, zone: &Zone, now: i64) -> String {
        match self {
            PathSpec::Dated { dir, regex, .. } => {
                let (y, m, d) = zone.date_of(now);
                let name = regex.as_str().trim_start_matches('^').trim_end_matches('$').to_string();
                let mut out = name.replace("([0-9]{4})", &format!("{y:04}"));
                for v in [m, d] {
                    out = out.replacen("([0-9]{2})", &format!("{v:02}"), 1);
                }
                dir.join(out.replace('\\', "")).display().to_string()
            }
            PathSpec::Glob { dir, regex } => format!("{}/{}", dir.display(), regex.as_str()),
            PathSpec::Plain(p) => p.display().to_string(),
        }
    }
}

/// The date fields of a dated file name, in `Y m d H M` order.
type DateKey = [u32; 5];

/// File names in `dir` (empty when it cannot be read).
fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

/// Device, inode and first-bytes checksum: what a file is known by.
type Identity = (u64, u64, Option<u32>);

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

/// A file being followed.
struct Tracked {
    tag: Arc<FileTag>,
    path: PathBuf,
    file: File,
    dev: u64,
    ino: u64,
    fingerprint: Option<u32>,
    /// Start of the first byte not yet handed on (always a line start).
    offset: u64,
    /// Whether it is still a current file; else when it stopped being one.
    retired_at: Option<Instant>,
    last_growth: Instant,
}

/// Follows live files; see the module documentation.
pub struct Follower {
    cfg: FollowConfig,
    tracked: Vec<Tracked>,
    next_id: u64,
    first_scan: bool,
    stop: Arc<AtomicBool>,
    wake: crossbeam_channel::Receiver<()>,
    wake_tx: crossbeam_channel::Sender<()>,
    watcher: Option<notify::RecommendedWatcher>,
    /// Directories watched besides the configured one (symlink targets').
    watched: HashSet<PathBuf>,
    /// Problems already reported, so each is logged once per occurrence.
    reported: HashSet<String>,
    /// Positions from the saved state, used at the first scan.
    saved: Option<Vec<Position>>,
    /// The newest date of a dated series at the first scan: files dated
    /// later appeared while we ran and are all read, even one that was
    /// already superseded when we first saw it.
    /// `None` until the first scan; `Some(None)` when the series was empty.
    series_baseline: Option<Option<DateKey>>,
    /// Files finished (drained and closed), never opened again.
    finished: HashSet<(u64, u64)>,
    /// Lines were handed on since the last checkpoint.
    dirty: bool,
    /// A file was opened or finished: save at once, so that a file rotated
    /// away during a crash is found again from its saved position.
    urgent: bool,
    last_checkpoint: Instant,
    /// Tag of the empty chunks that ask for a checkpoint.
    checkpoint_tag: Arc<FileTag>,
    /// Called on every wake-up: the service manager's watchdog ping.
    heartbeat: Option<Box<dyn FnMut() + Send>>,
    /// The longest sleep the heartbeat allows.
    heartbeat_every: Option<Duration>,
    /// When lines last arrived, or the last idle tick.
    last_activity: Instant,
}

impl Follower {
    /// A follower that ends when `stop` becomes true, resuming from `saved`
    /// positions when there is saved state.
    pub fn new(cfg: FollowConfig, stop: Arc<AtomicBool>, saved: Option<Vec<Position>>) -> Follower {
        let (wake_tx, wake) = crossbeam_channel::bounded(1);
        Follower {
            cfg,
            tracked: Vec::new(),
            next_id: 0,
            first_scan: true,
            stop,
            wake,
            wake_tx,
            watcher: None,
            watched: HashSet::new(),
            reported: HashSet::new(),
            saved,
            series_baseline: None,
            finished: HashSet::new(),
            dirty: false,
            urgent: false,
            last_checkpoint: Instant::now(),
            heartbeat: None,
            heartbeat_every: None,
            last_activity: Instant::now(),
            checkpoint_tag: Arc::new(FileTag {
                name: String::new(),
                id: 0,
                start_line: 0,
                identity: None,
            }),
        }
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
        if self.dirty {
            until(self.last_checkpoint.elapsed(), CHECKPOINT_EVERY);
        }
        until(self.last_activity.elapsed(), self.cfg.cleanup_interval);
        if let Some(every) = self.heartbeat_every {
            wait = wait.min(every);
        }
        wait
    }

    /// An empty chunk that makes the pipeline save state once it is done.
    fn checkpoint_chunk(&mut self) -> Chunk {
        self.dirty = false;
        self.urgent = false;
        self.last_checkpoint = Instant::now();
        let mut c = Chunk::new(Arc::clone(&self.checkpoint_tag), 0, Data::Owned(Vec::new()), 0);
        c.checkpoint = true;
        c
    }

    /// Files of the saved state that are not current any more (rotated while
    /// the daemon was down) are found again — by device and inode when
    /// renamed, by the checksum of their first bytes when copied away by
    /// copytruncate — and drained from their saved position.
    fn adopt_rotated(&mut self) {
        let Some(saved) = self.saved.take() else { return };
        for pos in saved {
            let compatible = |fp: Option<u32>| pos.fingerprint.is_none() || fp == pos.fingerprint;
            if self
                .tracked
                .iter()
                .any(|t| (t.dev, t.ino) == (pos.dev, pos.ino) && compatible(t.fingerprint))
            {
                continue;
            }
            let found = self
                .find_untracked(|m, fp| (m.dev(), m.ino()) == (pos.dev, pos.ino) && compatible(fp))
                .or_else(|| self.find_copy(pos.fingerprint, pos.offset));
            if let Some(path) = found {
                tracing::info!(path = %path.display(), was = %pos.path, "Draining a file rotated while stopped.");
                self.adopt(&path, pos.offset, pos.lines, (pos.dev, pos.ino, pos.fingerprint));
            }
        }
    }

    /// Files of a dated series that appeared while we ran but were already
    /// superseded when first seen (two dates within one wake-up) are read
    /// from their beginning and drained like any retired file.
    fn adopt_superseded(&mut self) {
        let series = self.cfg.spec.series();
        let baseline = *self.series_baseline.get_or_insert(series.last().map(|(k, _)| *k));
        let Some((newest, _)) = series.last() else { return };
        for (key, path) in series.iter().filter(|(k, _)| baseline.is_none_or(|b| *k > b)) {
            let Ok(md) = std::fs::metadata(path) else { continue };
            let id = (md.dev(), md.ino());
            let known =
                self.tracked.iter().any(|t| (t.dev, t.ino) == id) || self.finished.contains(&id);
            if !known && key < newest {
                let before = self.tracked.len();
                self.open_at(path, Some((0, 0)), None);
                if self.tracked.len() > before
                    && let Some(t) = self.tracked.last_mut()
                {
                    t.retired_at = Some(Instant::now());
                }
            }
        }
    }

    /// Follows `path` as a retired file from a known offset, as `identity`.
    fn adopt(&mut self, path: &Path, offset: u64, lines: u64, identity: Identity) {
        let before = self.tracked.len();
        self.open_at(path, Some((offset, lines)), Some(identity));
        if self.tracked.len() > before
            && let Some(t) = self.tracked.last_mut()
        {
            t.retired_at = Some(Instant::now());
        }
    }

    /// A regular file in the watched directory, not followed yet, for which
    /// `pred(metadata, fingerprint)` holds.
    fn find_untracked(
        &self,
        pred: impl Fn(&std::fs::Metadata, Option<u32>) -> bool,
    ) -> Option<PathBuf> {
        let dir = self.cfg.spec.dir();
        list(&dir).into_iter().map(|n| dir.join(n)).find(|p| {
            let Ok(m) = std::fs::metadata(p) else { return false };
            let tracked = self.tracked.iter().any(|t| (t.dev, t.ino) == (m.dev(), m.ino()));
            m.is_file()
                && !tracked
                && File::open(p).is_ok_and(|f| pred(&m, fingerprint(&f, m.len())))
        })
    }

    /// The copy copytruncate made of a file we had read up to `offset`: same
    /// first bytes, at least as long. Its lines after `offset` were written
    /// just before the truncation and exist nowhere else.
    fn find_copy(&self, fp: Option<u32>, offset: u64) -> Option<PathBuf> {
        let fp = fp?;
        self.find_untracked(|m, f| f == Some(fp) && m.len() >= offset)
    }

    /// Watches the directory for changes; without it the follower polls.
    fn ensure_watch(&mut self) {
        if self.watcher.is_some() || !self.cfg.file_events {
            return;
        }
        let tx = self.wake_tx.clone();
        let handler = move |_: notify::Result<notify::Event>| {
            // A full channel already holds a wake-up; dropping this one is fine.
            tx.try_send(()).unwrap_or(());
        };
        let dir = self.cfg.spec.dir();
        let watched = notify::recommended_watcher(handler)
            .and_then(|mut w| w.watch(&dir, notify::RecursiveMode::NonRecursive).map(|()| w));
        match watched {
            Ok(w) => {
                self.watcher = Some(w);
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
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        let Some(w) = self.watcher.as_mut().filter(|_| is_link) else { return };
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

    /// Finds current files, opens new ones and retires replaced ones.
    fn discover(&mut self) {
        let heads = self.cfg.spec.current();
        if heads.is_empty() {
            let now = jiff::Timestamp::now().as_second();
            let expected = self.cfg.spec.expected(&self.cfg.zone, now);
            self.report_once(format!("wait:{expected}"), || {
                tracing::warn!(path = %expected, "Waiting for log file.");
            });
        }
        let mut current: Vec<(u64, u64)> = Vec::new();
        for path in heads {
            self.watch_link_target(&path);
            match std::fs::metadata(&path) {
                Ok(md) => {
                    self.reported.remove(&format!("wait:{}", path.display()));
                    current.push((md.dev(), md.ino()));
                    if !self
                        .tracked
                        .iter()
                        .any(|t| t.dev == md.dev() && t.ino == md.ino() && t.retired_at.is_none())
                    {
                        self.open(&path);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.report_once(format!("wait:{}", path.display()), || {
                        tracing::warn!(path = %path.display(), "Waiting for log file.");
                    });
                }
                Err(e) => self.report_open_error(&path, &e),
            }
        }
        if self.first_scan {
            self.adopt_rotated();
        }
        self.adopt_superseded();
        let now = Instant::now();
        for t in &mut self.tracked {
            if t.retired_at.is_none() && !current.contains(&(t.dev, t.ino)) {
                tracing::info!(path = %t.path.display(), "Log file rotated away; draining it.");
                t.retired_at = Some(now);
            }
        }
        self.first_scan = false;
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

    fn open(&mut self, path: &Path) {
        self.open_at(path, None, None);
    }

    /// Opens a file at `start` (offset, lines before it), or where
    /// [`Follower::start_of`] says. `identity` overrides the identity its
    /// alerts and saved position carry: a copy made by copytruncate goes on
    /// as the file it was copied from, so alert ids stay the same.
    fn open_at(&mut self, path: &Path, start: Option<(u64, u64)>, identity: Option<Identity>) {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return self.report_open_error(path, &e),
        };
        self.reported.remove(&format!("err:{}", path.display()));
        let Ok(md) = file.metadata() else { return };
        let fingerprint = fingerprint(&file, md.len());
        let (offset, start_line) = start.unwrap_or_else(|| self.start_of(&file, &md, fingerprint));
        let name = path.display().to_string();
        tracing::info!(path = %name, offset, "Following log file.");
        self.next_id += 1;
        let identity = identity.or(Some((md.dev(), md.ino(), fingerprint)));
        self.urgent = true;
        self.tracked.push(Tracked {
            tag: Arc::new(FileTag { name, id: self.next_id, start_line, identity }),
            path: path.to_path_buf(),
            file,
            dev: md.dev(),
            ino: md.ino(),
            fingerprint,
            offset,
            retired_at: None,
            last_growth: Instant::now(),
        });
    }

    /// Where to start reading a newly opened file, and the lines before it:
    /// its saved position if the state knows it, else its beginning — or its
    /// end on a first start without state and `start_at = "end"`.
    fn start_of(&self, file: &File, md: &std::fs::Metadata, fp: Option<u32>) -> (u64, u64) {
        let known = self.saved.as_ref().and_then(|s| {
            s.iter().find(|p| {
                (p.dev, p.ino) == (md.dev(), md.ino())
                    && (p.fingerprint.is_none() || p.fingerprint == fp)
            })
        });
        match known {
            Some(p) if p.offset <= md.len() => (p.offset, p.lines),
            Some(_) => (0, 0),
            None if self.first_scan
                && self.saved.is_none()
                && self.cfg.start_at == StartAt::End =>
            {
                let offset = last_line_start(file, md.len());
                (offset, if offset > 0 { count_lines(file, offset) } else { 0 })
            }
            None => (0, 0),
        }
    }

    /// Reads what every file has gained; returns whether anything was read,
    /// or `None` when `emit` asked to stop.
    fn read_all(
        &mut self,
        emit: &mut dyn FnMut(Chunk) -> bool,
    ) -> Result<Option<bool>, SourceError> {
        let mut progressed = false;
        // Retired files first: their lines are older.
        self.tracked.sort_by_key(|t| t.retired_at.is_none());
        for i in 0..self.tracked.len() {
            let was = self.tracked[i].tag.identity;
            match check_rewritten(&mut self.tracked[i], &mut self.next_id) {
                Ok(Some((fp, offset))) => {
                    if let (Some(copy), Some(was)) = (self.find_copy(fp, offset), was) {
                        tracing::info!(path = %copy.display(), "Reading the end of the copy made before the truncation.");
                        let lines = File::open(&copy).map_or(0, |f| count_lines(&f, offset));
                        self.adopt(&copy, offset, lines, was);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.report_read_error(i, &e);
                    continue;
                }
            }
            match read_file(&mut self.tracked[i], emit) {
                Ok(Some(grew)) => {
                    progressed |= grew;
                    self.dirty |= grew;
                }
                Ok(None) => return Ok(None),
                Err(e) => self.report_read_error(i, &e),
            }
        }
        let wait = self.cfg.rotate_wait;
        let mut keep = Vec::with_capacity(self.tracked.len());
        for mut t in std::mem::take(&mut self.tracked) {
            let quiet = t.last_growth.elapsed() >= wait
                && t.retired_at.is_some_and(|r| r.elapsed() >= wait);
            if quiet {
                // Dropping its position is a change to save.
                self.dirty = true;
                self.urgent = true;
                if !finish_file(&mut t, emit) {
                    return Ok(None);
                }
                tracing::info!(path = %t.path.display(), "Finished rotated log file.");
                self.finished.insert((t.dev, t.ino));
            } else {
                keep.push(t);
            }
        }
        self.tracked = keep;
        Ok(Some(progressed))
    }
}

impl ChunkSource for Follower {
    fn run(mut self: Box<Self>, emit: &mut dyn FnMut(Chunk) -> bool) -> Result<(), SourceError> {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                // Saves the final state once everything read so far is done.
                let last = self.checkpoint_chunk();
                emit(last);
                return Ok(());
            }
            if let Some(beat) = &mut self.heartbeat {
                beat();
            }
            self.ensure_watch();
            self.discover();
            let read = self.read_all(emit)?;
            if self.dirty && (self.urgent || self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY) {
                let cp = self.checkpoint_chunk();
                if !emit(cp) {
                    return Ok(());
                }
            }
            if read == Some(true) {
                self.last_activity = Instant::now();
            } else if self.last_activity.elapsed() >= self.cfg.cleanup_interval {
                // No lines for a while: let the cleanup evict by the wall clock.
                self.last_activity = Instant::now();
                let mut tick =
                    Chunk::new(Arc::clone(&self.checkpoint_tag), 0, Data::Owned(Vec::new()), 0);
                tick.clock = u32::try_from(jiff::Timestamp::now().as_second()).ok();
                tick.checkpoint = true;
                if !emit(tick) {
                    return Ok(());
                }
            }
            match read {
                None => return Ok(()),
                Some(true) => continue,
                Some(false) => match self.wake.recv_timeout(self.idle_wait()) {
                    Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
                },
            }
        }
    }
}

/// Checksum of the first bytes, once the file has that many.
fn fingerprint(file: &File, len: u64) -> Option<u32> {
    if len < FINGERPRINT_BYTES as u64 {
        return None;
    }
    let mut buf = [0u8; FINGERPRINT_BYTES];
    file.read_exact_at(&mut buf, 0).ok()?;
    Some(crc32fast::hash(&buf))
}

/// Where the last line of the first `len` bytes starts (a start at the end
/// still reads a line that is being written).
fn last_line_start(file: &File, len: u64) -> u64 {
    let from = len.saturating_sub(CHUNK_BYTES as u64);
    let mut buf = vec![0u8; (len - from) as usize];
    if file.read_exact_at(&mut buf, from).is_err() {
        return len;
    }
    match memchr::memrchr(b'\n', &buf) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => len,
    }
}

/// Newlines in the first `len` bytes (for line numbers when starting at the end).
fn count_lines(file: &File, len: u64) -> u64 {
    let mut buf = vec![0u8; CHUNK_BYTES];
    let (mut pos, mut n) = (0u64, 0u64);
    while pos < len {
        let want = ((len - pos) as usize).min(CHUNK_BYTES);
        match file.read_at(&mut buf[..want], pos) {
            Ok(0) | Err(_) => break,
            Ok(got) => {
                n += bytecount::count(&buf[..got], b'\n') as u64;
                pos += got as u64;
            }
        }
    }
    n
}

/// Detects a truncated or rewritten file (it shrank, or its first bytes
/// changed) and restarts it at 0; returns the old checksum and offset then.
fn check_rewritten(t: &mut Tracked, next_id: &mut u64) -> io::Result<Option<(Option<u32>, u64)>> {
    let len = t.file.metadata()?.len();
    let fp = fingerprint(&t.file, len);
    let replaced = t.fingerprint.is_some() && fp.is_some() && fp != t.fingerprint;
    if len < t.offset || replaced {
        tracing::info!(path = %t.path.display(), "Log file was truncated or rewritten; reading it from the start.");
        let old = (t.fingerprint, t.offset);
        t.offset = 0;
        // New content: line numbers start again.
        *next_id += 1;
        t.fingerprint = fp;
        t.tag = Arc::new(FileTag {
            name: t.tag.name.clone(),
            id: *next_id,
            start_line: 0,
            identity: Some((t.dev, t.ino, fp)),
        });
        return Ok(Some(old));
    } else if t.fingerprint.is_none() && fp.is_some() {
        // The file just grew past the checksummed bytes: same file, now recognisable.
        t.fingerprint = fp;
        t.tag = Arc::new(FileTag {
            identity: Some((t.dev, t.ino, fp)),
            name: t.tag.name.clone(),
            ..*t.tag
        });
    }
    Ok(None)
}

/// Reads a file from its offset to its current size, handing on whole
/// lines. Returns whether it grew, or `None` when `emit` asked to stop.
fn read_file(t: &mut Tracked, emit: &mut dyn FnMut(Chunk) -> bool) -> io::Result<Option<bool>> {
    let len = t.file.metadata()?.len();
    let mut grew = false;
    let mut skipped_long = 0u32;
    while t.offset < len {
        let want = ((len - t.offset) as usize).min(CHUNK_BYTES);
        let mut buf = vec![0u8; want];
        let got = t.file.read_at(&mut buf, t.offset)?;
        buf.truncate(got);
        if got == 0 {
            break;
        }
        match memchr::memrchr(b'\n', &buf) {
            Some(i) => {
                buf.truncate(i + 1);
                let chunk_offset = t.offset;
                t.offset += buf.len() as u64;
                grew = true;
                t.last_growth = Instant::now();
                let skipped = std::mem::take(&mut skipped_long);
                let chunk = Chunk::new(Arc::clone(&t.tag), chunk_offset, Data::Owned(buf), skipped);
                if !emit(chunk) {
                    return Ok(None);
                }
            }
            // A single line longer than a chunk: skip it once its end is there.
            None if got == CHUNK_BYTES => {
                match find_newline(&t.file, t.offset + got as u64, len)? {
                    Some(end) => {
                        t.offset = end + 1;
                        skipped_long += 1;
                        grew = true;
                    }
                    None => break,
                }
            }
            None => break,
        }
    }
    if skipped_long > 0 {
        let chunk = Chunk::new(Arc::clone(&t.tag), t.offset, Data::Owned(Vec::new()), skipped_long);
        if !emit(chunk) {
            return Ok(None);
        }
    }
    Ok(Some(grew))
}

/// Offset of the first newline at or after `from`, before `len`.
fn find_newline(file: &File, mut from: u64, len: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; CHUNK_BYTES];
    while from < len {
        let want = ((len - from) as usize).min(CHUNK_BYTES);
        let got = file.read_at(&mut buf[..want], from)?;
        if got == 0 {
            break;
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..got]) {
            return Ok(Some(from + i as u64));
        }
        from += got as u64;
    }
    Ok(None)
}

/// Hands on a finished file's last line if it has no newline, in a chunk
/// marked last (so its saved position is dropped).
fn finish_file(t: &mut Tracked, emit: &mut dyn FnMut(Chunk) -> bool) -> bool {
    let len = t.file.metadata().map_or(t.offset, |m| m.len());
    let mut buf = Vec::new();
    if len > t.offset && len - t.offset <= CHUNK_BYTES as u64 {
        buf = vec![0u8; (len - t.offset) as usize];
        if t.file.read_exact_at(&mut buf, t.offset).is_err() {
            buf.clear();
        }
    }
    let mut chunk = Chunk::new(Arc::clone(&t.tag), t.offset, Data::Owned(buf), 0);
    chunk.last = true;
    t.offset = len;
    emit(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_specs() {
        let PathSpec::Dated { regex, fields, .. } =
            PathSpec::parse("/logs/apache/ssl_www_log-%Y-%m-%d").unwrap()
        else {
            panic!("dated")
        };
        assert!(regex.is_match("ssl_www_log-2025-07-09"));
        assert!(!regex.is_match("ssl_www_log-2025-07-09.gz"));
        assert_eq!(fields, vec!['Y', 'm', 'd']);
        assert!(matches!(
            PathSpec::parse("/var/log/apache2/*access.log").unwrap(),
            PathSpec::Glob { .. }
        ));
        assert!(matches!(
            PathSpec::parse("/var/log/apache2/access.log").unwrap(),
            PathSpec::Plain(_)
        ));
        assert!(PathSpec::parse("/logs/%Y/access").is_err());
        assert!(PathSpec::parse("/logs/access-%q").is_err());
    }

    #[test]
    fn dated_series_picks_the_newest_file() {
        let dir = tempfile::tempdir().unwrap();
        for n in
            ["log-2025-07-09", "log-2025-07-10", "log-2025-06-30", "log-2025-07-11.gz", "other"]
        {
            std::fs::write(dir.path().join(n), b"x\n").unwrap();
        }
        let spec = PathSpec::parse(&format!("{}/log-%Y-%m-%d", dir.path().display())).unwrap();
        assert_eq!(spec.current(), vec![dir.path().join("log-2025-07-10")]);
        let expected = spec.expected(&Zone::Utc, 1_752_105_600);
        assert!(expected.ends_with("log-2025-07-10"), "{expected}");
    }

    #[test]
    fn every_file_found_at_a_first_start_begins_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["a_access.log", "b_access.log"] {
            std::fs::write(dir.path().join(n), b"old line\n").unwrap();
        }
        let cfg = FollowConfig {
            spec: PathSpec::parse(&format!("{}/*access.log", dir.path().display())).unwrap(),
            zone: Zone::Utc,
            start_at: StartAt::End,
            poll_interval: Duration::from_secs(1),
            rotate_wait: Duration::from_secs(1),
            cleanup_interval: Duration::from_secs(60),
            file_events: false,
        };
        let mut f = Follower::new(cfg, Arc::new(AtomicBool::new(false)), None);
        f.discover();
        let offsets: Vec<u64> = f.tracked.iter().map(|t| t.offset).collect();
        assert_eq!(offsets, vec![9, 9]);
        // A file that appears later is read from its beginning.
        std::fs::write(dir.path().join("c_access.log"), b"new line\n").unwrap();
        f.discover();
        assert_eq!(f.tracked.last().map(|t| t.offset), Some(0));
    }

    #[test]
    fn start_at_end_begins_at_the_last_line_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"a\nb\npartial").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(last_line_start(&f, 11), 4);
        assert_eq!(count_lines(&f, 4), 2);
        std::fs::write(&p, b"a\nb\n").unwrap();
        assert_eq!(last_line_start(&File::open(&p).unwrap(), 4), 4);
    }
}
