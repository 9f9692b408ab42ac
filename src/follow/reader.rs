//! Reading one followed file: positioned reads into owned buffers (never a
//! mapping: a page past the end of a file truncated under it raises
//! SIGBUS), whole lines only, truncation and rewriting detected by size and
//! first-bytes checksum.

use crate::parse::Parser;
use crate::source::buffer::Spares;
use crate::source::{CHUNK_BYTES, Chunk, Data, FileId, FileTag, SourceEvent};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Bytes checksummed to recognise a file.
const FINGERPRINT_BYTES: usize = 64;
/// Bytes read ahead of a file's offset for the time of its next line.
const PEEK_BYTES: usize = 16 << 10;
/// The least a file cut last time reads (about a page cache page).
const CUT_BYTES: usize = 4 << 10;

/// A file being followed.
pub(super) struct Tracked {
    /// What its chunks carry (its identity may be another file's: a copy
    /// made by copytruncate goes on as the file it was copied from).
    pub tag: Arc<FileTag>,
    pub path: PathBuf,
    pub file: File,
    /// The file's own identity.
    pub id: FileId,
    /// Start of the first byte not yet handed on (always a line start).
    pub offset: u64,
    /// Whether it is still a current file; else when it stopped being one.
    pub retired_at: Option<Instant>,
    pub last_growth: Instant,
    /// The follower's buffers for chunks, given back when they are dropped.
    pub spares: Spares,
    /// The file as it was when last read to the end: nothing changed since
    /// while it is the same, and it is not read again.
    pub seen: Option<Stamp>,
    /// Where it stands in time (Unix seconds): its last line handed on, or
    /// its next line where that was looked at; `None` until one is known.
    pub reached: Option<i64>,
    /// Bytes read at a time: [`CHUNK_BYTES`], or after a cut twice what it
    /// handed on (at least [`CUT_BYTES`]): a file cut every few lines read
    /// a whole chunk for each cut (README, "Performance").
    pub want: usize,
    /// When it was opened empty, or emptied by a truncation (less the
    /// follower's lag), and its stamp then, until the stamp changes: written
    /// to and copytruncated before its next read, it shows no truncation
    /// (its offset is 0), so at that change the copy is looked for as a
    /// generation.
    pub empty_since: Option<(SystemTime, Stamp)>,
}

/// What one [`Tracked::read`] did.
pub(super) struct Progress {
    /// Lines were handed on (or skipped).
    pub grew: bool,
    /// It stopped before its end: its next line is after the bound.
    pub cut: bool,
}

/// Lines are handed on only up to a time: `bound` (Unix seconds), as
/// `parser` reads them.
#[derive(Clone, Copy)]
pub(super) struct Until<'a> {
    pub parser: &'a Parser,
    pub bound: i64,
}

/// A file's size and modification time (seconds, nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    /// Its size.
    pub len: u64,
    mtime: (i64, i64),
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(md: &std::fs::Metadata) -> Stamp {
        Stamp { len: md.len(), mtime: (md.mtime(), md.mtime_nsec()) }
    }
}

impl Tracked {
    /// The file's stamp now, or `None` when it is as it was last read to:
    /// one `fstat`, where a pass over thousands of files (a glob of virtual
    /// hosts' logs) also checksummed each one's first bytes and sized it
    /// twice. Writing, truncating or rewriting a file changes its
    /// modification time; one rewritten to the same size within the clock's
    /// tick is seen at the follower's next look for names (at least once a
    /// second while passes come), which forgets every stamp.
    pub fn look(&self) -> io::Result<Option<Stamp>> {
        let now = Stamp::of(&self.file.metadata()?);
        Ok((self.seen != Some(now)).then_some(now))
    }

    /// Detects a truncated or rewritten file (it shrank to below `len`, or
    /// its first bytes changed) and restarts it at 0 under a new tag id
    /// (`next_id` is advanced); returns the old checksum and offset then.
    pub fn check_rewritten(
        &mut self,
        len: u64,
        next_id: &mut u64,
    ) -> io::Result<Option<(Option<u32>, u64)>> {
        let fp = fingerprint(&self.file, len);
        let was = self.id.fingerprint;
        let replaced = was.is_some() && fp.is_some() && fp != was;
        // Now shorter than the bytes checksummed: truncated, though at an
        // offset of 0 (opened, not read yet) no shrink shows — its copy,
        // with the first bytes it had, is found as a truncation's.
        let shrunk = was.is_some() && len < FINGERPRINT_BYTES as u64;
        if len < self.offset || replaced || shrunk {
            tracing::info!(path = %self.path.display(), "Log file was truncated or rewritten; reading it from the start.");
            let old = (was, self.offset);
            self.offset = 0;
            self.id.fingerprint = fp;
            // New content: line numbers start again.
            *next_id += 1;
            self.reached = None;
            self.tag = Arc::new(FileTag {
                name: self.tag.name.clone(),
                id: *next_id,
                start_line: 0,
                identity: Some(self.id),
                source: self.tag.source,
            });
            return Ok(Some(old));
        } else if was.is_none() && fp.is_some() {
            // The file just grew past the checksummed bytes: same file, now recognisable.
            self.id.fingerprint = fp;
            self.tag = Arc::new(FileTag {
                identity: self.tag.identity.map(|i| i.recognised(fp)),
                name: self.tag.name.clone(),
                ..*self.tag
            });
        }
        Ok(None)
    }

    /// Reads from the offset to `len`, handing on whole lines; with
    /// `until`, only those up to the first line after its bound (and
    /// `reached` is kept). Returns what it did, or `None` when `emit` asked
    /// to stop.
    pub fn read(
        &mut self,
        len: u64,
        until: Option<Until>,
        emit: &mut dyn FnMut(SourceEvent) -> bool,
    ) -> io::Result<Option<Progress>> {
        let mut done = Progress { grew: false, cut: false };
        let mut skipped_long = 0u32;
        while self.offset < len && !done.cut {
            let want = ((len - self.offset) as usize).min(self.want);
            let mut buf = self.read_at(self.offset, want)?;
            let got = buf.len();
            if got == 0 || self.rewritten_since_look() {
                break;
            }
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => {
                    buf.truncate(i + 1);
                    let mut chunk = self.lines(self.offset, buf, 0);
                    if let Some(until) = until {
                        done.cut = self.cut(&mut chunk, until);
                        let handed = chunk.bytes().len();
                        self.want = match done.cut {
                            true => handed.saturating_mul(2).clamp(CUT_BYTES, CHUNK_BYTES),
                            false => CHUNK_BYTES,
                        };
                    }
                    if chunk.bytes().is_empty() {
                        break;
                    }
                    self.offset += chunk.bytes().len() as u64;
                    done.grew = true;
                    self.last_growth = Instant::now();
                    chunk.skipped_long = std::mem::take(&mut skipped_long);
                    if !emit(SourceEvent::Lines(chunk)) {
                        return Ok(None);
                    }
                }
                // Read less than a chunk after a cut: read a chunk.
                None if self.want < CHUNK_BYTES && got == self.want => self.want = CHUNK_BYTES,
                // A single line longer than a chunk: skip it once its end is there.
                None if got == CHUNK_BYTES => {
                    match find_newline(&self.file, self.offset + got as u64, len)? {
                        Some(end) => {
                            self.offset = end + 1;
                            skipped_long += 1;
                            done.grew = true;
                        }
                        None => break,
                    }
                }
                None => break,
            }
        }
        if skipped_long > 0
            && !emit(SourceEvent::Lines(self.lines(self.offset, Vec::new(), skipped_long)))
        {
            return Ok(None);
        }
        Ok(Some(done))
    }

    /// Whether its first bytes are no longer those checksummed at its last
    /// look (or it is now shorter than them): copytruncated since, and
    /// written again past the offset, the bytes just read there are the new
    /// content's, not the lines the copy holds. Left unread, the next look
    /// finds the truncation with the offset as it was, and the copy is read
    /// from there (a soak lost the old lines between, and read the new ones
    /// twice). A file too short to checksum is not checked.
    fn rewritten_since_look(&self) -> bool {
        let Some(was) = self.id.fingerprint else { return false };
        // Asked for its first bytes whatever its size: shorter now, or not
        // readable, it has none (None), which differs too.
        fingerprint(&self.file, FINGERPRINT_BYTES as u64) != Some(was)
    }

    /// Cuts `chunk` before its first line after `until`'s bound, if any
    /// (whole if its last line is not: one line parsed for most chunks),
    /// and keeps `reached`; returns whether it was cut.
    fn cut(&mut self, chunk: &mut Chunk, until: Until) -> bool {
        let Until { parser, bound } = until;
        let last = chunk.line_time(parser, true);
        let at = match last {
            Some(t) if t > bound => chunk.first_after(parser, bound),
            _ => None,
        };
        let Some(at) = at else {
            self.reached = last.or(self.reached);
            return false;
        };
        // Cut before its first line, nothing is handed on: where the file
        // stands is its first line's time, after the bound (also when that
        // line is too far in to be read here: else the same cut again).
        let next =
            (at == 0).then(|| chunk.line_time(parser, false).unwrap_or(bound.saturating_add(1)));
        chunk.truncate(at);
        self.reached = next.or_else(|| chunk.line_time(parser, true)).or(self.reached);
        true
    }

    /// The time of the line at the offset (looked for among those that
    /// begin in the next [`PEEK_BYTES`], up to `len`).
    pub fn next_time(&self, parser: &Parser, len: u64) -> Option<i64> {
        let want = usize::try_from(len.saturating_sub(self.offset)).ok()?.min(PEEK_BYTES);
        let mut buf = vec![0; want];
        self.file.read_exact_at(&mut buf, self.offset).ok()?;
        buf.truncate(memchr::memrchr(b'\n', &buf)? + 1);
        let chunk = Chunk::new(Arc::clone(&self.tag), self.offset, Data::Owned(buf), 0);
        chunk.line_time(parser, false)
    }

    /// Up to `want` bytes from `offset` (fewer at the end of the file),
    /// into a buffer that is not zeroed first (`read_to_end` fills spare
    /// capacity as it reads), a dropped chunk's if there is one.
    fn read_at(&mut self, offset: u64, want: usize) -> io::Result<Vec<u8>> {
        self.file.seek(SeekFrom::Start(offset))?;
        let mut buf = self.spares.empty(want);
        (&self.file).take(want as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn lines(&self, offset: u64, bytes: Vec<u8>, skipped_long: u32) -> Chunk {
        let len = bytes.len();
        let data = Data::Pooled(self.spares.chunk(bytes, len));
        Chunk::new(Arc::clone(&self.tag), offset, data, skipped_long)
    }

    /// Hands on a finished file's last line if it has no newline, then
    /// says the file is done (so its saved position is dropped). Returns
    /// false when `emit` asked to stop.
    pub fn finish(&mut self, emit: &mut dyn FnMut(SourceEvent) -> bool) -> bool {
        let len = self.file.metadata().map_or(self.offset, |m| m.len());
        if len > self.offset && len - self.offset <= CHUNK_BYTES as u64 {
            let mut buf = vec![0u8; (len - self.offset) as usize];
            if self.file.read_exact_at(&mut buf, self.offset).is_ok()
                && !emit(SourceEvent::Lines(self.lines(self.offset, buf, 0)))
            {
                return false;
            }
        }
        self.offset = len;
        emit(SourceEvent::FileDone(Arc::clone(&self.tag)))
    }
}

/// Checksum of the first bytes, once the file has that many.
pub(super) fn fingerprint(file: &File, len: u64) -> Option<u32> {
    if len < FINGERPRINT_BYTES as u64 {
        return None;
    }
    let mut buf = [0u8; FINGERPRINT_BYTES];
    file.read_exact_at(&mut buf, 0).ok()?;
    Some(crc32fast::hash(&buf))
}

/// Where the last line of the first `len` bytes starts (a start at the end
/// still reads a line that is being written).
pub(super) fn last_line_start(file: &File, len: u64) -> u64 {
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
pub(super) fn count_lines(file: &File, len: u64) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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

    /// Reads `t`'s new lines, which must come as one chunk: their bytes,
    /// and where they were in memory (the chunk is dropped).
    fn read_chunk(t: &mut Tracked) -> (Vec<u8>, *const u8) {
        let mut events = Vec::new();
        let mut keep = |e| {
            events.push(e);
            true
        };
        let len = t.file.metadata().unwrap().len();
        assert!(t.read(len, None, &mut keep).unwrap().unwrap().grew);
        match events.as_slice() {
            [SourceEvent::Lines(c)] => (c.bytes().to_vec(), c.bytes().as_ptr()),
            _ => panic!("not one chunk"),
        }
    }

    /// `p` followed from its start, not read yet.
    fn tracked(p: &std::path::Path) -> Tracked {
        let id = FileId { dev: 1, ino: 2, fingerprint: None };
        let tag = FileTag { name: "f".into(), id: 1, start_line: 0, identity: Some(id), source: 0 };
        Tracked {
            tag: Arc::new(tag),
            path: p.to_path_buf(),
            file: File::open(p).unwrap(),
            id,
            offset: 0,
            retired_at: None,
            last_growth: Instant::now(),
            spares: Spares::new(1),
            seen: None,
            reached: None,
            want: CHUNK_BYTES,
            empty_since: None,
        }
    }

    #[test]
    fn a_dropped_chunks_buffer_is_read_into_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"a\nb\npart").unwrap();
        let mut t = tracked(&p);
        let stamp = t.look().unwrap().expect("never read: to be read");
        t.seen = Some(stamp);
        assert_eq!(t.look().unwrap(), None, "as it was when read: not read again");
        let (bytes, first) = read_chunk(&mut t);
        assert_eq!(bytes, b"a\nb\n");
        // Takes the freed block, were the buffer freed, so that a new
        // buffer could not be at the same address.
        let hold: Vec<u8> = std::iter::repeat_n(1, 10).collect();
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"\nc\n").unwrap();
        assert!(t.look().unwrap().is_some_and(|now| now.len > stamp.len), "grown: to be read");
        let (bytes, again) = read_chunk(&mut t);
        assert_eq!(bytes, b"part\nc\n", "a reused buffer holds only the new read");
        assert_eq!(again, first, "the dropped chunk's buffer was read into");
        assert_eq!(hold[0], 1);
    }

    /// Copytruncated between its look and its read, and written again past
    /// where it was read to: the bytes at the old offset are the new
    /// content's. Handed on as the old file's, they were counted, and the
    /// copy was then read only from beyond them: a soak lost the old
    /// lines between (and read the new ones twice).
    #[test]
    fn a_file_rewritten_between_its_look_and_its_read_hands_on_none_of_the_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let old: String =
            (1..=3).map(|i| format!("old line {i} of the log before rotation\n")).collect();
        std::fs::write(&p, &old).unwrap();
        let mut t = tracked(&p);
        let mut next_id = 1;
        let len = t.look().unwrap().unwrap().len;
        assert_eq!(t.check_rewritten(len, &mut next_id).unwrap(), None);
        assert!(t.id.fingerprint.is_some());
        read_chunk(&mut t);
        let read_to = t.offset;
        let more: String =
            (4..=6).map(|i| format!("old line {i}, written just before\n")).collect();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(more.as_bytes())
            .unwrap();
        let stamp = t.look().unwrap().unwrap();
        assert_eq!(t.check_rewritten(stamp.len, &mut next_id).unwrap(), None, "not rewritten yet");
        std::fs::copy(&p, dir.path().join("f.1")).unwrap();
        let new: String = (1..=9).map(|i| format!("new line {i} after the truncation\n")).collect();
        std::fs::write(&p, &new).unwrap();
        let mut handed = Vec::new();
        let mut keep = |e| {
            if let SourceEvent::Lines(c) = e {
                handed.extend_from_slice(c.bytes());
            }
            true
        };
        t.read(stamp.len, None, &mut keep).unwrap();
        assert_eq!(String::from_utf8_lossy(&handed), "", "none of the new content");
        let now = t.look().unwrap().unwrap();
        let (_, at) = t.check_rewritten(now.len, &mut next_id).unwrap().expect("rewritten");
        assert_eq!(at, read_to, "the copy is read from where the old content was read to");
    }

    /// A copy goes on under the identity of the file it was copied from:
    /// grown past its first bytes, it takes their checksum and keeps that
    /// file's device and inode (the ids its alerts had before a restart).
    #[test]
    fn a_file_followed_under_anothers_identity_keeps_it_when_it_becomes_recognisable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"short\n").unwrap();
        let mut t = tracked(&p);
        let was = FileId { dev: 7, ino: 9, fingerprint: None };
        let tag =
            FileTag { name: "f".into(), id: 1, start_line: 0, identity: Some(was), source: 0 };
        t.tag = Arc::new(tag);
        let mut next_id = 1;
        let len = t.look().unwrap().unwrap().len;
        assert_eq!(t.check_rewritten(len, &mut next_id).unwrap(), None);
        assert_eq!(t.tag.identity, Some(was), "not recognisable yet");
        std::fs::write(&p, "short\n".repeat(20)).unwrap();
        let len = t.look().unwrap().unwrap().len;
        assert_eq!(t.check_rewritten(len, &mut next_id).unwrap(), None);
        let fp = t.id.fingerprint;
        assert!(fp.is_some());
        assert_eq!(t.tag.identity, Some(FileId { fingerprint: fp, ..was }));
    }
}
