//! Source: reads files and cuts them into line-aligned chunks, and the
//! events every source hands the pipeline ([`SourceEvent`]).
//!
//! Plain files are memory-mapped in bounded segments (16 MiB), so a month of
//! logs never holds more than a few segments' pages in memory; compressed
//! files (gzip, zstd, xz, bzip2, known by their first bytes) and standard
//! input are read through a buffer. A chunk always ends at a
//! newline, except the last chunk of a file. A line longer than a whole chunk
//! (1 MiB) is dropped here and counted in the next chunk's `skipped_long`;
//! shorter over-long lines are left to the worker's `max_line_bytes` check.

use crate::parse::Parser;
use buffer::{READ_BYTES, Spares, StreamBuf};
use flate2::read::MultiGzDecoder;
use memmap2::{Advice, Mmap, MmapOptions};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) mod buffer;
pub mod merge;
pub mod order;

/// Target size of a chunk.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Upper bound for `max_line_bytes`: a line must fit well inside a chunk.
pub const MAX_LINE_LIMIT: usize = CHUNK_BYTES / 2;
/// Size of one mapping.
const SEGMENT_BYTES: usize = 16 << 20;
/// Mapping offsets are aligned to this (a multiple of every page size in use).
const ALIGN: u64 = 64 << 10;

/// Bytes of one chunk.
pub enum Data {
    /// A range of a shared mapping.
    Mapped(Arc<Mmap>, std::ops::Range<usize>),
    /// An owned buffer.
    Owned(Vec<u8>),
    /// A stream's buffer, reused once the chunk is dropped.
    Pooled(buffer::Pooled),
}

/// What a followed file is known by: device and inode, and a checksum of
/// its first bytes once it has them (so a reused inode is not mistaken for
/// the old file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// CRC-32 of its first bytes, once it had them.
    pub fingerprint: Option<u32>,
}

impl FileId {
    /// Whether a file with `(dev, ino)` and first-bytes checksum
    /// `fingerprint` may be this one: the same inode, and the same first
    /// bytes when this one's were known.
    pub fn matches(&self, dev: u64, ino: u64, fingerprint: Option<u32>) -> bool {
        (self.dev, self.ino) == (dev, ino)
            && (self.fingerprint.is_none() || fingerprint == self.fingerprint)
    }

    /// This identity with the checksum `fingerprint` when it had none yet:
    /// the same file, grown past its first bytes.
    pub fn recognised(self, fingerprint: Option<u32>) -> FileId {
        FileId { fingerprint: self.fingerprint.or(fingerprint), ..self }
    }
}

/// Where reading of one followed file stands (saved with the state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The source it belongs to (empty in states written before sources
    /// had names: the first source's).
    #[serde(default)]
    pub source: String,
    /// The name it was followed under.
    pub path: String,
    /// The file.
    #[serde(flatten)]
    pub id: FileId,
    /// Offset after the last line whose effects are saved.
    pub offset: u64,
    /// Lines before `offset` (for line numbers).
    pub lines: u64,
}

/// The file a chunk comes from.
#[derive(Debug)]
pub struct FileTag {
    /// Name for alerts and messages.
    pub name: String,
    /// Unique within a run (line numbers are counted per id).
    pub id: u64,
    /// Lines in the file before the first chunk read from it.
    pub start_line: u64,
    /// The identity of a followed file, whose position is saved; `None` for
    /// replayed inputs.
    pub identity: Option<FileId>,
    /// The index of the configured source it is read as.
    pub source: usize,
}

/// A run of whole lines from one file.
pub struct Chunk {
    /// The file it came from.
    pub file: Arc<FileTag>,
    /// Byte offset of the data in the file (0 for streams: bytes read so far).
    pub offset: u64,
    /// The bytes.
    pub data: Data,
    /// Lines longer than a chunk, dropped just before these bytes.
    pub skipped_long: u32,
    /// When it was read (Unix seconds): what dates syslog stamps, which
    /// carry no year.
    pub read_at: i64,
    /// For a merge of several files: where each line came from (else the
    /// lines are `file`'s, in order).
    pub origins: Option<Arc<merge::Origins>>,
    /// Bytes of the input on disk read once this chunk was cut: past its
    /// end for a plain file, the compressed bytes for a compressed one,
    /// every file's for a merge (what a progress bar counts).
    pub read: u64,
}

impl Chunk {
    /// A chunk of bytes, read now.
    pub fn new(file: Arc<FileTag>, offset: u64, data: Data, skipped_long: u32) -> Chunk {
        let read_at = jiff::Timestamp::now().as_second();
        let mut chunk = Chunk { file, offset, data, skipped_long, read_at, origins: None, read: 0 };
        chunk.read = offset + chunk.bytes().len() as u64;
        chunk
    }

    /// The chunk's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Mapped(m, r) => &m[r.clone()],
            Data::Owned(v) => v,
            Data::Pooled(p) => p.bytes(),
        }
    }

    /// Whether a line dated `time` (Unix seconds) is dated more than
    /// [`FUTURE_SLACK`] after this machine's clock when the chunk was read:
    /// such a line is skipped (`future`), and tells no source's time — one
    /// misdated line would move the stream's newest time ahead, and the
    /// cleanup would forget every client's window.
    pub fn in_future(&self, time: i64) -> bool {
        time > self.read_at.saturating_add(FUTURE_SLACK)
    }

    /// The time (Unix seconds) of its first line that `parser` reads, or of
    /// its last with `from_end`, among the first [`TIME_LINES`] from that
    /// end: how far its source has read, also when no line is an event.
    pub fn line_time(&self, parser: &Parser, from_end: bool) -> Option<i64> {
        // Lines without a year (syslog's) take it from when they were read.
        parser.set_now(self.read_at);
        let first = |lines: &mut dyn Iterator<Item = &[u8]>| {
            let fits = |l: &&[u8]| !l.is_empty() && l.len() <= parser.max_line();
            let sane = |l: &[u8]| line_time(parser, l).filter(|t| !self.in_future(*t));
            lines.filter(fits).take(TIME_LINES).find_map(sane)
        };
        let bytes = self.bytes();
        match from_end {
            false => first(&mut bytes.split(|&b| b == b'\n')),
            true => first(&mut bytes.rsplit(|&b| b == b'\n')),
        }
    }

    /// Where the first line whose time is after `bound` (Unix seconds)
    /// starts; `None` when no line is, or the chunk is a merge's (its lines'
    /// origins go by position). Found by bisection, a few lines parsed: a
    /// log is in the order of its times but for requests that ran long (a
    /// line is stamped when its request began), so a line a little after
    /// `bound` may come before the cut and one a little before it after.
    /// Lines without a time, or dated in the future, go with the line after
    /// them.
    pub fn first_after(&self, parser: &Parser, bound: i64) -> Option<usize> {
        if self.origins.is_some() {
            return None;
        }
        parser.set_now(self.read_at);
        let bytes = self.bytes();
        // Lines before `lo` are taken as not after, the line at `hi` as
        // after; lines without a time go with the line after them.
        let (mut lo, mut hi) = (0, bytes.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let start = memchr::memrchr(b'\n', &bytes[lo..mid]).map_or(lo, |i| lo + i + 1);
            match self.next_timed(parser, start, hi) {
                Some((t, end)) if t <= bound => lo = end + 1,
                _ => hi = start,
            }
        }
        (hi < bytes.len()).then_some(hi)
    }

    /// The time of the first line from `from` (a line start) on, before
    /// `to`, that has one (not in the future), and where that line ends.
    fn next_timed(&self, parser: &Parser, mut from: usize, to: usize) -> Option<(i64, usize)> {
        let bytes = self.bytes();
        while from < to {
            let end = memchr::memchr(b'\n', &bytes[from..]).map_or(bytes.len(), |i| from + i);
            match line_time(parser, &bytes[from..end]).filter(|t| !self.in_future(*t)) {
                Some(t) => return Some((t, end)),
                None => from = end + 1,
            }
        }
        None
    }

    /// Splits off the lines from the first one whose time is after `bound`
    /// on ([`Chunk::first_after`]), and returns them; `None` when that is
    /// the first line or no line is.
    pub fn split_after(&mut self, parser: &Parser, bound: i64) -> Option<Chunk> {
        let at = self.first_after(parser, bound).filter(|&at| at > 0)?;
        Some(self.split_off(at))
    }

    /// Keeps only the bytes before `at` (a line start): the rest is read
    /// again later.
    pub fn truncate(&mut self, at: usize) {
        self.cut_data(at);
        self.read = self.offset + at as u64;
    }

    /// Drops the data from `at` on.
    fn cut_data(&mut self, at: usize) {
        match &mut self.data {
            Data::Mapped(_, r) => r.end = r.start + at,
            Data::Owned(v) => v.truncate(at),
            Data::Pooled(p) => p.truncate(at),
        }
    }

    /// Splits the chunk at `at` (a line start): the bytes from there on are
    /// returned as a chunk of their own (a copy of them for a reused buffer).
    fn split_off(&mut self, at: usize) -> Chunk {
        let rest = match &self.data {
            Data::Mapped(m, r) => Data::Mapped(Arc::clone(m), r.start + at..r.end),
            Data::Owned(v) => Data::Owned(v[at..].to_vec()),
            Data::Pooled(p) => Data::Owned(p.bytes()[at..].to_vec()),
        };
        self.cut_data(at);
        Chunk {
            file: Arc::clone(&self.file),
            offset: self.offset + at as u64,
            data: rest,
            skipped_long: 0,
            read_at: self.read_at,
            origins: None,
            read: self.read,
        }
    }
}

/// Lines [`Chunk::line_time`] tries.
const TIME_LINES: usize = 16;

/// How far after this machine's clock a line may be dated (a day, as for a
/// dated file's name): see [`Chunk::in_future`].
pub const FUTURE_SLACK: i64 = 86_400;

/// The time (Unix seconds) of a line without its `\n`, if `parser` reads
/// it (the parser's clock set for lines without a year).
fn line_time(parser: &Parser, line: &[u8]) -> Option<i64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > parser.max_line() {
        return None;
    }
    parser.parse(line).ok().map(|r| r.time.epoch)
}

/// What a source hands the pipeline, in order.
pub enum SourceEvent {
    /// A followed file is read from `offset` on (its saved position from now,
    /// also before any line arrives).
    Opened {
        /// The file.
        file: Arc<FileTag>,
        /// Where reading starts.
        offset: u64,
    },
    /// Whole lines of one file (the last chunk of a finished file may end
    /// without a newline).
    Lines(Chunk),
    /// A followed file is finished (drained and closed): its position is
    /// dropped from the saved state.
    FileDone(Arc<FileTag>),
    /// Save state once everything before this event is applied: every key
    /// (`full`, for a new base) or the keys changed since the last save.
    Checkpoint {
        /// Save every key.
        full: bool,
        /// The follower's source and when its last look for files began:
        /// a file never followed and written since then may be one it never
        /// saw, read whole after a restart (saved with the positions).
        looked: Option<(usize, std::time::SystemTime)>,
    },
    /// No lines from a source for `idle` seconds: evict clients as if its
    /// time had gone on that long from its newest line (from `clock`, the
    /// wall clock in Unix seconds, while it has none), then save state
    /// whole. The source's own clock, not this machine's: a log whose
    /// clock lags this one's by more than two windows lost every client's
    /// window at each pause.
    Tick {
        /// Unix seconds.
        clock: u32,
        /// Seconds without a line (since the source's last line or tick).
        idle: u32,
        /// The index of the configured source that is idle.
        source: usize,
    },
    /// Someone asks how things stand (a status page): each shard reports
    /// its clients nearest the threshold, as of every event before this one.
    Probe,
}

impl SourceEvent {
    /// The bytes of lines it carries (0 for events without lines).
    pub fn line_bytes(&self) -> usize {
        match self {
            SourceEvent::Lines(c) => c.bytes().len(),
            _ => 0,
        }
    }
}

/// Produces events for the pipeline's reader thread.
pub trait Source: Send {
    /// Calls `emit` with each event in order until the source ends or `emit`
    /// returns false.
    fn run(self: Box<Self>, emit: &mut dyn FnMut(SourceEvent) -> bool) -> Result<(), SourceError>;
}

/// A read failure, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("reading {name}: {error}")]
pub struct SourceError {
    /// The file's name.
    pub name: String,
    /// What went wrong.
    pub error: io::Error,
}

/// Files whose reading failed part way (a damaged compressed file, an I/O
/// error): their lines before the failure were handed on, the rest of each
/// was not read, and reading went on with the next file — one damaged file
/// among months of archives would otherwise end the whole scan. Shared with
/// whoever runs the source, to tell them at the end.
#[derive(Debug, Clone, Default)]
pub struct Damage(Arc<std::sync::Mutex<Vec<SourceError>>>);

impl Damage {
    /// Logs file `name`'s failure and keeps it.
    pub(crate) fn record(&self, name: &str, error: io::Error) {
        tracing::error!(file = %name, %error, "Cannot read the file to its end; its lines before this were counted, the rest is skipped. Going on with the next file.");
        let e = SourceError { name: name.to_string(), error };
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(e);
    }

    /// The failures so far, in order.
    pub fn take(&self) -> Vec<SourceError> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// Files read once, in order, as one source (what `replay` reads).
pub struct Files {
    /// The files.
    pub inputs: Vec<(Input, Opened)>,
    /// Where a file that cannot be read to its end is told.
    pub damage: Damage,
    /// The index of the source they are read as.
    pub source: usize,
    /// Decompressed bytes that may be held ahead (0: none; see `run`).
    pub ahead: usize,
    /// Files decompressed at once, at most.
    pub decoders: usize,
}

impl Files {
    /// The files, read as the first source, with the default read-ahead.
    pub fn new(inputs: Vec<(Input, Opened)>) -> Files {
        let decoders = std::thread::available_parallelism().map_or(1, |n| n.get());
        Files { inputs, damage: Damage::default(), source: 0, ahead: AHEAD_BYTES, decoders }
    }
}

/// Decompressed bytes held ahead by default, in all, while earlier files are
/// handed on. Less gains little: decoding ahead pays only when most of the
/// next file fits (`benches/batch.sh`, four 170 MB `.gz`, means of 7 runs
/// before the buffers were reused: none 0.87 s, 32 MiB 0.85 s, 64 MiB
/// 0.82 s, 256 MiB 0.76 s).
pub const AHEAD_BYTES: usize = 256 << 20;
/// Spare buffers kept for the chunks in the pipeline (it holds at most 4
/// per worker and 4 more, a farm too, which keeps waiting chunks' event
/// lines apart: 64 covers 15 workers; with more, the buffers past it are
/// freed and allocated again, as before reuse). Replay's streams and
/// `run`'s follower keep as many.
pub(crate) const IN_PIPELINE: usize = 64;

impl Source for Files {
    /// With several compressed files (or pipes) and several cores, each is
    /// decompressed and cut into chunks on a decoder thread — as many at
    /// once as there are cores, in file order — while the files before it
    /// are handed on; the chunks wait in a queue per file, all the queues
    /// together holding at most `ahead` bytes. Files are handed on strictly
    /// in order, so the windows see what one thread would show them.
    fn run(self: Box<Self>, emit: &mut dyn FnMut(SourceEvent) -> bool) -> Result<(), SourceError> {
        let tagged: Vec<(Arc<FileTag>, Opened)> = self
            .inputs
            .into_iter()
            .enumerate()
            .map(|(i, (input, opened))| {
                let (id, source) = (i as u64, self.source);
                let tag = FileTag { name: input.name(), id, start_line: 0, identity: None, source };
                (Arc::new(tag), opened)
            })
            .collect();
        let streams = tagged.iter().filter(|(_, o)| matches!(o, Opened::Stream(..))).count();
        let decoders = self.decoders.min(streams);
        let per_file = self.ahead / CHUNK_BYTES / decoders.max(1);
        // Enough spare buffers for the chunks decoded ahead and those in
        // the pipeline's queues.
        let spares = Spares::new(self.ahead / CHUNK_BYTES + IN_PIPELINE);
        if decoders < 2 || per_file < 2 {
            for (tag, opened) in tagged {
                if !hand_on(&tag, opened, &spares, &self.damage, emit) {
                    break;
                }
            }
            return Ok(());
        }
        read_ahead(tagged, (decoders, per_file), &spares, &self.damage, emit);
        Ok(())
    }
}

/// Hands on an opened file's chunks, a failure part way to `damage`;
/// returns false when `emit` asked to stop (so no later file is opened).
fn hand_on(
    tag: &Arc<FileTag>,
    opened: Opened,
    spares: &Spares,
    damage: &Damage,
    emit: &mut dyn FnMut(SourceEvent) -> bool,
) -> bool {
    let mut go_on = true;
    let read = chunks(tag, opened, spares, &mut |c| {
        go_on = emit(SourceEvent::Lines(c));
        go_on
    });
    if let Err(error) = read {
        damage.record(&tag.name, error);
    }
    go_on
}

/// A file to hand on: read here (a mapped file), or decoded ahead.
enum Slot {
    Here(Opened),
    Ahead(crossbeam_channel::Receiver<io::Result<Chunk>>),
}

/// [`Files`] with `decoders` decoder threads, each file's queue holding
/// `per_file` chunks.
fn read_ahead(
    tagged: Vec<(Arc<FileTag>, Opened)>,
    (decoders, per_file): (usize, usize),
    spares: &Spares,
    damage: &Damage,
    emit: &mut dyn FnMut(SourceEvent) -> bool,
) {
    let (jobs_tx, jobs) = crossbeam_channel::unbounded();
    let mut slots = Vec::new();
    for (tag, opened) in tagged {
        let slot = match opened {
            Opened::Stream(..) => {
                let (tx, rx) = crossbeam_channel::bounded(per_file);
                jobs_tx.send((Arc::clone(&tag), opened, tx)).unwrap_or(());
                Slot::Ahead(rx)
            }
            here => Slot::Here(here),
        };
        slots.push((tag, slot));
    }
    drop(jobs_tx);
    std::thread::scope(|s| {
        for i in 0..decoders {
            let jobs = jobs.clone();
            // Jobs are taken in file order, so the file being handed on is
            // always being decoded (or done): no queue waits on a later one.
            crate::threads::spawn(s, &format!("decode-{i}"), move || {
                for (tag, opened, tx) in jobs {
                    let tx: crossbeam_channel::Sender<io::Result<Chunk>> = tx;
                    let sent = &mut |c| tx.send(Ok(c)).is_ok();
                    if let Err(e) = chunks(&tag, opened, spares, sent) {
                        tx.send(Err(e)).unwrap_or(());
                    }
                }
            });
        }
        // Returning drops the queues left, which ends their decoders.
        for (tag, slot) in slots {
            match slot {
                Slot::Here(opened) => {
                    if !hand_on(&tag, opened, spares, damage, emit) {
                        return;
                    }
                }
                Slot::Ahead(rx) => {
                    for c in rx {
                        match c {
                            Ok(c) => {
                                if !emit(SourceEvent::Lines(c)) {
                                    return;
                                }
                            }
                            Err(error) => damage.record(&tag.name, error),
                        }
                    }
                }
            }
        }
    })
}

/// One thing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file (decompressed if its first bytes say so).
    Path(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl Input {
    /// From a command-line argument.
    pub fn from_arg(s: &str) -> Input {
        if s == "-" { Input::Stdin } else { Input::Path(PathBuf::from(s)) }
    }

    /// A name for messages and alerts.
    pub fn name(&self) -> String {
        match self {
            Input::Path(p) => p.display().to_string(),
            Input::Stdin => "-".to_string(),
        }
    }

    /// Opens the input, so that a missing file is reported before any work.
    /// A regular file or a pipe (`<(zcat …)`) is read; a directory or
    /// another kind of file is an error.
    pub fn open(&self) -> io::Result<Opened> {
        match self {
            Input::Stdin => peeked(io::stdin()),
            Input::Path(p) => {
                let f = File::open(p)?;
                let md = f.metadata()?;
                if let Some(what) = not_a_log(md.file_type()) {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, what));
                }
                if !md.is_file() {
                    return peeked(f);
                }
                let mut head = [0u8; 6];
                let n = read_head(&f, &mut head)?;
                if let Some(c) = Compression::of(&head[..n]) {
                    let (f, consumed) = Counted::new(f);
                    Ok(Opened::Stream(
                        c.decoder(io::BufReader::with_capacity(1 << 16, f))?,
                        consumed,
                    ))
                } else if is_live(&md) {
                    Ok(Opened::Live(f, md.len()))
                } else {
                    Ok(Opened::File(f))
                }
            }
        }
    }
}

/// A pipe or standard input, decompressed if its first bytes say so
/// (peeked, not read away).
fn peeked<R: Read + Send + 'static>(r: R) -> io::Result<Opened> {
    let (r, consumed) = Counted::new(r);
    let mut r = io::BufReader::with_capacity(1 << 16, r);
    match Compression::of(r.fill_buf()?) {
        Some(c) => Ok(Opened::Stream(c.decoder(r)?, consumed)),
        None => Ok(Opened::Stream(Box::new(r), consumed)),
    }
}

/// Why a file of this type cannot be a log to read: `None` for a regular
/// file or a pipe.
pub fn not_a_log(kind: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    match kind {
        k if k.is_file() || k.is_fifo() => None,
        k if k.is_dir() => Some("is a directory, not a log file"),
        _ => Some("is not a regular file (a device or a socket), not a log file"),
    }
}

/// A file written to within this long may be truncated under us (a live
/// log, copytruncated by logrotate): it is read, not mapped, since touching
/// a mapped page past the end of a truncated file raises SIGBUS.
const LIVE_AGE: std::time::Duration = std::time::Duration::from_secs(600);

fn is_live(md: &std::fs::Metadata) -> bool {
    // A time in the future counts as recent.
    md.modified().is_ok_and(|t| t.elapsed().map_or(true, |age| age < LIVE_AGE))
}

/// The first bytes of a file, without moving its position.
fn read_head(f: &File, head: &mut [u8]) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < head.len() {
        match f.read_at(&mut head[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A compression format, known by a file's first bytes (whatever the file
/// is called).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip, also several members one after another (as logrotate writes).
    Gzip,
    /// Zstandard, also several frames.
    Zstd,
    /// xz, also several streams.
    Xz,
    /// bzip2, also several streams.
    Bzip2,
}

impl Compression {
    /// The format `head` (a file's first bytes) announces, if any.
    pub fn of(head: &[u8]) -> Option<Compression> {
        match head {
            [0x1f, 0x8b, ..] => Some(Compression::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Some(Compression::Xz),
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some(Compression::Bzip2),
            _ => None,
        }
    }

    /// A reader of the decompressed bytes of `r`.
    fn decoder<R: BufRead + Send + 'static>(self, r: R) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Compression::Gzip => Box::new(MultiGzDecoder::new(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(r)),
            Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
        })
    }
}

/// An opened input.
pub enum Opened {
    /// A regular file not written to lately, to be mapped.
    File(File),
    /// A regular file written to lately, read (it may shrink under us),
    /// with its size when opened.
    Live(File, u64),
    /// Anything read sequentially, and the bytes read from beneath it
    /// (before decompression).
    Stream(Box<dyn Read + Send>, Consumed),
}

/// Bytes read from a file so far, counted by the [`Counted`] reader that
/// reads them and looked at from elsewhere (a decompressor owns the reader).
#[derive(Debug, Clone, Default)]
pub struct Consumed(Arc<AtomicU64>);

impl Consumed {
    /// Bytes read so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A reader that counts the bytes read through it.
pub struct Counted<R> {
    inner: R,
    consumed: Consumed,
}

impl<R> Counted<R> {
    /// `inner`, counted from zero; the count is read through the [`Consumed`].
    pub fn new(inner: R) -> (Counted<R>, Consumed) {
        let consumed = Consumed::default();
        (Counted { inner, consumed: consumed.clone() }, consumed)
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Opened {
    /// A stream read as it is, its bytes counted.
    pub fn stream<R: Read + Send + 'static>(r: R) -> Opened {
        let (r, consumed) = Counted::new(r);
        Opened::Stream(Box::new(r), consumed)
    }

    /// A sequential reader of the input, and what counts its bytes on disk.
    pub fn into_reader(self) -> (Box<dyn Read + Send>, Consumed) {
        match self {
            Opened::File(f) | Opened::Live(f, _) => {
                let (r, consumed) = Counted::new(f);
                (Box::new(r), consumed)
            }
            Opened::Stream(r, consumed) => (r, consumed),
        }
    }
}

/// Cuts an opened input into chunks, calling `emit` for each in order.
/// `emit` returns false to stop early.
pub fn chunks(
    tag: &Arc<FileTag>,
    opened: Opened,
    spares: &Spares,
    emit: &mut dyn FnMut(Chunk) -> bool,
) -> io::Result<()> {
    let buf = || StreamBuf::new(CHUNK_BYTES + READ_BYTES, spares.clone());
    match opened {
        Opened::File(f) => mapped_chunks(tag, &f, emit),
        Opened::Live(f, len) => {
            let read = stream_chunks(tag, Box::new(f), None, buf(), emit)?;
            if read < len {
                report_shrink(tag, len, read);
            }
            Ok(())
        }
        Opened::Stream(r, consumed) => {
            stream_chunks(tag, r, Some(consumed), buf(), emit).map(|_| ())
        }
    }
}

/// A file that got shorter while it was read: truncated or rewritten under
/// us. What was read counts; the rest is gone.
fn report_shrink(tag: &FileTag, len: u64, now: u64) {
    tracing::warn!(
        file = %tag.name,
        "The file shrank while it was read (from {len} to {now} bytes: truncated under us, e.g. by logrotate's copytruncate); the lines after byte {now} were not read."
    );
}

/// Where to cut `b` (which starts at a line start): after its last newline
/// within `CHUNK_BYTES`, `None` when a partial line needs more bytes, or
/// `Some(Cut::Long)` when a single line fills a whole chunk.
enum Cut {
    At(usize),
    Long,
}

fn cut(b: &[u8], eof: bool) -> Option<Cut> {
    let window = &b[..b.len().min(CHUNK_BYTES)];
    if eof && b.len() <= CHUNK_BYTES {
        return (!b.is_empty()).then_some(Cut::At(b.len()));
    }
    match memchr::memrchr(b'\n', window) {
        Some(i) => Some(Cut::At(i + 1)),
        None if window.len() == CHUNK_BYTES => Some(Cut::Long),
        None => None,
    }
}

fn mapped_chunks(
    tag: &Arc<FileTag>,
    f: &File,
    emit: &mut dyn FnMut(Chunk) -> bool,
) -> io::Result<()> {
    let len = f.metadata()?.len();
    let mut pos = 0u64;
    let mut skipping = false;
    let mut skipped_long = 0u32;
    while pos < len {
        let seg_start = pos - pos % ALIGN;
        let seg_len = (len - seg_start).min(SEGMENT_BYTES as u64) as usize;
        let eof = seg_start + seg_len as u64 == len;
        let now = f.metadata()?.len();
        if now < seg_start + seg_len as u64 {
            report_shrink(tag, len, now);
            return Ok(());
        }
        // SAFETY: the file is opened read-only and was not written to for
        // LIVE_AGE (see `is_live`), so it is taken as finished: a file
        // truncated while mapped would fault (SIGBUS), which is why recently
        // written files, and every file the live follower reads, are read
        // with `read` instead. The size is checked again before each
        // segment is mapped.
        #[allow(unsafe_code)]
        let map = unsafe { MmapOptions::new().offset(seg_start).len(seg_len).map(f)? };
        // Only a hint for read-ahead; reading works without it.
        map.advise(Advice::Sequential).unwrap_or(());
        let map = Arc::new(map);
        let mut local = (pos - seg_start) as usize;
        if skipping {
            match memchr::memchr(b'\n', &map[local..]) {
                Some(i) => {
                    local += i + 1;
                    skipping = false;
                    skipped_long += 1;
                }
                None => local = map.len(),
            }
        }
        while local < map.len() && !skipping {
            match cut(&map[local..], eof) {
                Some(Cut::At(n)) => {
                    let data = Data::Mapped(Arc::clone(&map), local..local + n);
                    let skipped = std::mem::take(&mut skipped_long);
                    let chunk =
                        Chunk::new(Arc::clone(tag), seg_start + local as u64, data, skipped);
                    if !emit(chunk) {
                        return Ok(());
                    }
                    local += n;
                }
                Some(Cut::Long) => match memchr::memchr(b'\n', &map[local..]) {
                    Some(i) => {
                        local += i + 1;
                        skipped_long += 1;
                    }
                    None => {
                        skipping = true;
                        local = map.len();
                    }
                },
                None => break,
            }
        }
        pos = seg_start + local as u64;
    }
    flush_skipped(tag, len, skipping, skipped_long, emit);
    Ok(())
}

/// Emits an empty chunk carrying long lines dropped at the end of an input.
fn flush_skipped(
    tag: &Arc<FileTag>,
    offset: u64,
    skipping: bool,
    skipped: u32,
    emit: &mut dyn FnMut(Chunk) -> bool,
) {
    let n = skipped + u32::from(skipping);
    if n > 0 {
        emit(Chunk::new(Arc::clone(tag), offset, Data::Owned(Vec::new()), n));
    }
}

/// Cuts a stream into chunks; returns the bytes read. Each chunk's `read`
/// is what `consumed` counted by then, if given (the compressed bytes).
fn stream_chunks(
    tag: &Arc<FileTag>,
    mut r: Box<dyn Read + Send>,
    consumed: Option<Consumed>,
    mut buf: StreamBuf,
    emit: &mut dyn FnMut(Chunk) -> bool,
) -> io::Result<u64> {
    let mut eof = false;
    let mut skipping = false;
    let mut skipped_long = 0u32;
    let mut offset = 0u64;
    let mut damaged = None;
    loop {
        while !eof && buf.data().len() < CHUNK_BYTES {
            match buf.fill(&mut r) {
                Ok(end) => eof = end,
                // The whole lines before the damage go on; then it is told.
                Err(e) => {
                    buf.cut_partial_line();
                    (eof, damaged) = (true, Some(e));
                }
            }
        }
        if skipping {
            match memchr::memchr(b'\n', buf.data()) {
                Some(i) => {
                    buf.consume(i + 1);
                    offset += i as u64 + 1;
                    skipping = false;
                    skipped_long += 1;
                }
                None if eof => break,
                None => {
                    offset += buf.data().len() as u64;
                    buf.consume(buf.data().len());
                    continue;
                }
            }
        }
        match cut(buf.data(), eof) {
            Some(Cut::At(n)) => {
                let data = Data::Pooled(buf.split_off(n));
                let skipped_long = std::mem::take(&mut skipped_long);
                let mut chunk = Chunk::new(Arc::clone(tag), offset, data, skipped_long);
                if let Some(c) = &consumed {
                    chunk.read = c.get();
                }
                offset += n as u64;
                if !emit(chunk) {
                    return Ok(offset);
                }
            }
            Some(Cut::Long) => skipping = true,
            None if eof => break,
            None => {}
        }
    }
    flush_skipped(tag, offset, skipping, skipped_long, emit);
    match damaged {
        Some(e) => Err(e),
        None => Ok(offset + buf.data().len() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::testing;
    use std::io::Write;

    /// A chunk is split before its first line after a time, whatever holds
    /// its bytes; not before its first line, nor where no line is after.
    #[test]
    fn a_chunk_splits_before_its_first_line_after_a_time() {
        let parser = testing::common();
        let line = |s: i64| testing::common_line("192.0.2.1", "/", s);
        let text: String = [0, 10, 5, 30, 40].iter().map(|&s| line(s)).collect();
        let t0 = testing::T0;
        let tag =
            Arc::new(FileTag { name: "t".into(), id: 0, start_line: 0, identity: None, source: 0 });
        let spares = Spares::new(1);
        let pooled = || {
            let mut buf = spares.empty(text.len());
            buf.extend_from_slice(text.as_bytes());
            Data::Pooled(spares.chunk(buf, text.len()))
        };
        for data in [Data::Owned(text.clone().into_bytes()), pooled()] {
            let mut chunk = Chunk::new(Arc::clone(&tag), 1000, data, 2);
            let rest = chunk.split_after(&parser, t0 + 20).unwrap();
            let cut = 3 * line(0).len();
            assert_eq!(chunk.bytes(), &text.as_bytes()[..cut]);
            assert_eq!(rest.bytes(), &text.as_bytes()[cut..]);
            assert_eq!(
                (rest.offset, rest.skipped_long, chunk.skipped_long),
                (1000 + cut as u64, 0, 2)
            );
        }
        let mut chunk = Chunk::new(Arc::clone(&tag), 0, Data::Owned(text.clone().into_bytes()), 0);
        assert!(chunk.split_after(&parser, t0 - 1).is_none(), "the first line is after");
        assert!(chunk.split_after(&parser, t0 + 40).is_none(), "no line is after");
        assert_eq!(chunk.bytes(), text.as_bytes());
    }

    /// In lines in time order, among lines without a time and lines dated
    /// years ahead (which go with the line after them), the bisection finds
    /// the first line after each bound.
    #[test]
    fn the_first_line_after_a_time_is_found_by_bisection() {
        let parser = testing::common();
        let line = |t: i64| testing::common_line("192.0.2.1", "/", t);
        // Each line with its time, and where the lines without one before
        // it begin.
        let mut text = String::new();
        let mut starts = Vec::new();
        for t in 0..100 {
            let at = text.len();
            if t % 7 == 3 {
                text.push_str("no time here\n");
            }
            if t % 50 == 0 {
                text.push_str(&line(400_000_000));
            }
            starts.push((t, at));
            text.push_str(&line(t));
        }
        let tag =
            Arc::new(FileTag { name: "t".into(), id: 0, start_line: 0, identity: None, source: 0 });
        let chunk = Chunk::new(tag, 0, Data::Owned(text.into_bytes()), 0);
        for bound in -1..=100 {
            let want = starts.iter().find(|(t, _)| *t > bound).map(|(_, at)| *at);
            assert_eq!(chunk.first_after(&parser, testing::T0 + bound), want, "after {bound}");
        }
    }

    /// Reassembles lines from chunks; long lines show as "<long>".
    fn lines_of(opened: Opened) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let tag =
            Arc::new(FileTag { name: "t".into(), id: 0, start_line: 0, identity: None, source: 0 });
        chunks(&tag, opened, &Spares::new(1), &mut |c| {
            for _ in 0..c.skipped_long {
                out.push(b"<long>".to_vec());
            }
            let b = c.bytes();
            if b.is_empty() {
                return true;
            }
            out.extend(b.split(|&x| x == b'\n').map(<[u8]>::to_vec));
            if b.ends_with(b"\n") {
                out.pop();
            }
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn files_stop_at_the_first_refused_chunk() {
        for ahead in [0, AHEAD_BYTES] {
            let inputs = (0..3)
                .map(|_| (Input::Stdin, Opened::stream(io::Cursor::new(b"a\n".to_vec()))))
                .collect();
            let files = Box::new(Files {
                inputs,
                damage: Damage::default(),
                source: 0,
                ahead,
                decoders: 2,
            });
            let mut seen = 0;
            files
                .run(&mut |_| {
                    seen += 1;
                    false
                })
                .unwrap();
            assert_eq!(seen, 1, "read-ahead {ahead}: no file after the refusal");
        }
    }

    fn expected(text: &[u8]) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = text
            .split(|&x| x == b'\n')
            .map(|l| if l.len() >= CHUNK_BYTES { b"<long>".to_vec() } else { l.to_vec() })
            .collect();
        if text.ends_with(b"\n") || text.is_empty() {
            v.pop();
        }
        v
    }

    fn sample(seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut out = Vec::new();
        for i in 0..400 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = match i % 97 {
                5 => CHUNK_BYTES + 10,
                6 => CHUNK_BYTES - 1,
                _ => (x >> 40) as usize % 30_000,
            };
            out.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len));
            out.push(b'\n');
        }
        out.extend_from_slice(b"tail without newline");
        out
    }

    #[test]
    fn mapped_and_streamed_agree_with_split() {
        for seed in [1, 2] {
            let text = sample(seed);
            let mut f = tempfile::NamedTempFile::new().unwrap();
            f.write_all(&text).unwrap();
            let want = expected(&text);
            assert_eq!(lines_of(Opened::File(File::open(f.path()).unwrap())), want);
            let live = Opened::Live(File::open(f.path()).unwrap(), text.len() as u64);
            assert_eq!(lines_of(live), want);
            assert_eq!(lines_of(Opened::stream(io::Cursor::new(text.clone()))), want);
        }
    }

    #[test]
    fn compression_is_known_by_its_first_bytes() {
        assert_eq!(Compression::of(&[0x1f, 0x8b, 8, 0]), Some(Compression::Gzip));
        assert_eq!(Compression::of(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Compression::Zstd));
        assert_eq!(Compression::of(b"\xfd7zXZ\x00"), Some(Compression::Xz));
        assert_eq!(Compression::of(b"BZh9"), Some(Compression::Bzip2));
        assert_eq!(Compression::of(b"BZh0"), None);
        assert_eq!(Compression::of(b"1.2.3.4 - - [10/Oct/2000"), None);
        assert_eq!(Compression::of(&[0x1f]), None, "too short to tell");
    }

    #[test]
    fn long_line_at_end_and_empty_input() {
        let mut text = b"a\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', CHUNK_BYTES * 2));
        assert_eq!(lines_of(Opened::stream(io::Cursor::new(text.clone()))), expected(&text));
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&text).unwrap();
        assert_eq!(lines_of(Opened::File(File::open(f.path()).unwrap())), expected(&text));
        assert!(lines_of(Opened::stream(io::Cursor::new(Vec::new()))).is_empty());
    }
}
