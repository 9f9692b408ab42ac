//! The buffer a stream (a compressed file, a pipe) is read into, and the
//! chunk buffers it hands on, which go back to the run's spares when the
//! chunk is dropped.
//!
//! A new buffer per chunk cost the zeroing of each read's space and the
//! kernel's page faults on fresh memory: together about a tenth of the CPU
//! of a replay of four `.gz` files (memset 5 %, page faults about as much).
//! Reused buffers keep their initialized length, so they are neither zeroed
//! nor faulted in again.

use crossbeam_channel::{Receiver, Sender};
use std::io::{self, Read};

/// Bytes asked of a stream per read: about what a decoder or a pipe hands
/// over at once. A read's space is zeroed the first time a buffer grows to
/// it, so asking for a whole chunk at a time zeroed a megabyte per read of
/// a few dozen kilobytes.
pub const READ_BYTES: usize = 128 << 10;

/// A chunk's bytes in a reused buffer: `..len` of it.
pub struct Pooled {
    buf: Vec<u8>,
    len: usize,
    home: Sender<Vec<u8>>,
}

impl Pooled {
    /// The chunk's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Keeps only the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // Full, or the stream is done: the buffer is freed.
        self.home.try_send(std::mem::take(&mut self.buf)).unwrap_or(());
    }
}

/// Chunk buffers given back, shared by the streams of one run (so a file
/// decoded ahead reads into the buffers of the file handed on before it).
#[derive(Clone)]
pub struct Spares {
    home: Sender<Vec<u8>>,
    kept: Receiver<Vec<u8>>,
}

impl Spares {
    /// Keeps up to `n` buffers; more are freed. The buffers in flight are
    /// bounded by the read-ahead and the pipeline's queues, so `n` about
    /// their number keeps all of them in use and no more.
    pub fn new(n: usize) -> Spares {
        let (home, kept) = crossbeam_channel::bounded(n);
        Spares { home, kept }
    }

    /// A buffer given back, if there is one (its memory already faulted in,
    /// its initialized length kept).
    fn take(&self) -> Option<Vec<u8>> {
        self.kept.try_recv().ok()
    }

    /// An empty buffer with room for at least `capacity` bytes: a spare one
    /// if there is one, else a new one.
    pub fn empty(&self, capacity: usize) -> Vec<u8> {
        let mut buf = self.take().unwrap_or_default();
        buf.clear();
        buf.reserve(capacity);
        buf
    }

    /// `buf[..len]` as a chunk's buffer, given back to these spares when
    /// dropped.
    pub fn chunk(&self, buf: Vec<u8>, len: usize) -> Pooled {
        Pooled { buf, len, home: self.home.clone() }
    }
}

/// A stream's read buffer: `buf[..filled]` is read and not yet handed on;
/// all of `buf` is initialized memory.
pub struct StreamBuf {
    buf: Vec<u8>,
    filled: usize,
    spares: Spares,
    capacity: usize,
}

impl StreamBuf {
    /// An empty buffer whose chunks will hold up to `capacity` bytes.
    pub fn new(capacity: usize, spares: Spares) -> StreamBuf {
        StreamBuf { buf: Vec::with_capacity(capacity), filled: 0, spares, capacity }
    }

    /// The bytes read and not yet handed on.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    /// Reads once, up to `READ_BYTES`; returns true at end of input.
    pub fn fill(&mut self, r: &mut dyn Read) -> io::Result<bool> {
        let end = self.filled + READ_BYTES;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        loop {
            match r.read(&mut self.buf[self.filled..end]) {
                Ok(n) => {
                    self.filled += n;
                    return Ok(n == 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the bytes after the last newline: a line the input's damage
    /// cut, which no more bytes will end.
    pub fn cut_partial_line(&mut self) {
        self.filled = memchr::memrchr(b'\n', self.data()).map_or(0, |i| i + 1);
    }

    /// Drops the first `n` bytes read.
    pub fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }

    /// Hands on the first `n` bytes read as a chunk's buffer, keeping the
    /// rest in a spare (or new) buffer.
    pub fn split_off(&mut self, n: usize) -> Pooled {
        let mut next = self.spares.take().unwrap_or_else(|| Vec::with_capacity(self.capacity));
        let rest = self.filled - n;
        if next.len() < rest {
            next.resize(rest, 0);
        }
        next[..rest].copy_from_slice(&self.buf[n..self.filled]);
        self.filled = rest;
        let buf = std::mem::replace(&mut self.buf, next);
        self.spares.chunk(buf, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_chunk_buffer_is_read_into_again() {
        let mut input = io::Cursor::new(b"ab\ncd\nef\n".to_vec());
        let mut s = StreamBuf::new(64, Spares::new(1));
        assert!(!s.fill(&mut input).unwrap());
        let first = s.split_off(3);
        assert_eq!(first.bytes(), b"ab\n");
        assert_eq!(s.data(), b"cd\nef\n");
        let reused = first.buf.as_ptr();
        drop(first);
        let second = s.split_off(3);
        assert_eq!(second.bytes(), b"cd\n");
        assert_eq!(s.data(), b"ef\n");
        assert_eq!(s.buf.as_ptr(), reused, "the rest went into the returned buffer");
        s.consume(1);
        assert_eq!(s.data(), b"f\n");
        assert!(s.fill(&mut input).unwrap());
    }
}
