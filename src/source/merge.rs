//! Several servers' logs of the same period as one stream, merged by the
//! lines' own times (`replay --merge`): what the farm's load balancer
//! received, so the alerts are the farm-wide ones.
//!
//! Each server is a series of files read in order; the merge takes, line by
//! line, the server whose next line is the oldest (a k-way merge on a heap).
//! A server's own lines are never reordered: Apache writes a line when the
//! request ends but stamps it with its start, so a log is a little out of
//! order, which the windows tolerate within a window. A line whose time
//! cannot be read goes with its server's previous line (and is counted as
//! skipped downstream).

use super::{
    CHUNK_BYTES, Chunk, Consumed, Damage, Data, FileTag, Input, Source, SourceError, SourceEvent,
};
use crate::parse::Parser;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufRead, BufReader};
use std::sync::Arc;

/// Where each line of a merged chunk came from: for the line starting at
/// byte `pos` of the chunk, the index of its file in `names` and its
/// 1-based line number there.
#[derive(Debug, Default)]
pub struct Origins {
    /// The files, by index (shared by every chunk of the merge).
    pub names: Arc<[String]>,
    /// `(pos, file, line)`, by increasing `pos`.
    pub lines: Vec<(u32, u32, u64)>,
}

impl Origins {
    /// The file and line number of the line starting at `pos`.
    pub fn at(&self, pos: u32) -> Option<(&str, u64)> {
        let i = self.lines.partition_point(|l| l.0 <= pos).checked_sub(1)?;
        let (_, file, line) = self.lines[i];
        Some((self.names.get(file as usize)?.as_str(), line))
    }
}

/// Servers' series of files, merged by time.
pub struct Merge {
    /// Per server, its files in time order.
    pub servers: Vec<Vec<Input>>,
    /// Reads the lines' times (the source's parser).
    pub parser: Parser,
    /// The index of the source the lines are read as.
    pub source: usize,
    /// Where a file that cannot be read to its end is told.
    pub damage: Damage,
}

/// One server's series, read a line at a time.
struct Server {
    files: std::vec::IntoIter<(u32, Input)>,
    /// The file being read: its index, name and reader.
    reader: Option<(u32, String, Box<dyn BufRead + Send>)>,
    line: Vec<u8>,
    /// The current line's file and 1-based number.
    at: (u32, u64),
    /// The time the current line is merged at.
    time: i64,
    /// Bytes on disk read of the files finished, and of the current one.
    done: u64,
    consumed: Consumed,
}

impl Server {
    /// Reads the next line into `line`; false at the end of the series. A
    /// file that cannot be read (further) goes to `damage`, and the series
    /// goes on with its next file.
    fn advance(&mut self, parser: &Parser, damage: &Damage) -> bool {
        loop {
            if self.reader.is_none() {
                let Some((file, input)) = self.files.next() else { return false };
                let opened = match input.open() {
                    Ok(opened) => opened,
                    Err(error) => {
                        damage.record(&input.name(), error);
                        continue;
                    }
                };
                let (read, consumed) = opened.into_reader();
                self.done += std::mem::replace(&mut self.consumed, consumed).get();
                let reader = Box::new(BufReader::with_capacity(1 << 16, read));
                self.reader = Some((file, input.name(), reader));
                self.at = (file, 0);
            }
            let (_, name, reader) = self.reader.as_mut().expect("opened above");
            self.line.clear();
            let n = match reader.read_until(b'\n', &mut self.line) {
                Ok(n) => n,
                // A line the damage cut is not one.
                Err(error) => {
                    damage.record(name, error);
                    0
                }
            };
            if n == 0 {
                self.reader = None;
                continue;
            }
            if self.line.last() != Some(&b'\n') {
                self.line.push(b'\n');
            }
            self.at.1 += 1;
            let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if let Ok(rec) = parser.parse(text) {
                self.time = rec.time.epoch;
            }
            return true;
        }
    }
}

impl Source for Merge {
    fn run(self: Box<Self>, emit: &mut dyn FnMut(SourceEvent) -> bool) -> Result<(), SourceError> {
        let mut names = Vec::new();
        let mut servers = Vec::new();
        for series in self.servers {
            let mut files = Vec::new();
            for input in series {
                names.push(input.name());
                files.push((names.len() as u32 - 1, input));
            }
            let files = files.into_iter();
            servers.push(Server {
                files,
                reader: None,
                line: Vec::new(),
                at: (0, 0),
                time: 0,
                done: 0,
                consumed: Consumed::default(),
            });
        }
        let names: Arc<[String]> = names.into();
        let tag = Arc::new(FileTag {
            name: "merge".into(),
            id: 0,
            start_line: 0,
            identity: None,
            source: self.source,
        });
        let mut heap = BinaryHeap::new();
        for (i, s) in servers.iter_mut().enumerate() {
            if s.advance(&self.parser, &self.damage) {
                heap.push(Reverse((s.time, i)));
            }
        }
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + (1 << 16));
        let mut origins = Origins { names: Arc::clone(&names), lines: Vec::new() };
        let mut offset = 0u64;
        while let Some(Reverse((_, i))) = heap.pop() {
            let s = &mut servers[i];
            origins.lines.push((chunk.len() as u32, s.at.0, s.at.1));
            chunk.extend_from_slice(&s.line);
            if s.advance(&self.parser, &self.damage) {
                heap.push(Reverse((s.time, i)));
            }
            if chunk.len() >= CHUNK_BYTES || heap.is_empty() {
                let data =
                    std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_BYTES + (1 << 16)));
                let len = data.len() as u64;
                let mut c = Chunk::new(Arc::clone(&tag), offset, Data::Owned(data), 0);
                c.read = servers.iter().map(|s| s.done + s.consumed.get()).sum();
                let lines = std::mem::take(&mut origins.lines);
                c.origins = Some(Arc::new(Origins { names: Arc::clone(&names), lines }));
                offset += len;
                if !emit(SourceEvent::Lines(c)) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_several_servers_come_by_time_with_their_origins() {
        let dir = tempfile::tempdir().unwrap();
        let line = |s: u32, who: &str| {
            format!("10.0.0.1 - - [10/Oct/2000:13:55:{s:02} +0000] \"GET /{who} HTTP/1.1\" 200 1\n")
        };
        let write = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            Input::Path(p)
        };
        let a1 = write("a1", line(1, "a") + &line(4, "a"));
        let a2 = write("a2", line(5, "a") + "garbage\n" + &line(9, "a"));
        let b = write("b", line(2, "b") + &line(3, "b") + &line(7, "b"));
        let parser = crate::parse::testing::common();
        let merge = Box::new(Merge {
            servers: vec![vec![a1, a2], vec![b]],
            parser,
            source: 0,
            damage: Damage::default(),
        });
        let mut got = Vec::new();
        merge
            .run(&mut |ev| {
                if let SourceEvent::Lines(c) = ev {
                    let o = c.origins.clone().unwrap();
                    let bytes = c.bytes();
                    for &(pos, _, _) in &o.lines {
                        let rest = &bytes[pos as usize..];
                        let end = rest.iter().position(|&b| b == b'\n').unwrap();
                        let (file, n) = o.at(pos).unwrap();
                        let name = std::path::Path::new(file)
                            .file_name()
                            .unwrap()
                            .to_string_lossy()
                            .into_owned();
                        got.push(format!(
                            "{name}:{n} {}",
                            String::from_utf8_lossy(&rest[..end]).split('"').nth(1).unwrap_or("?")
                        ));
                    }
                }
                true
            })
            .unwrap();
        assert_eq!(
            got,
            [
                "a1:1 GET /a HTTP/1.1",
                "b:1 GET /b HTTP/1.1",
                "b:2 GET /b HTTP/1.1",
                "a1:2 GET /a HTTP/1.1",
                "a2:1 GET /a HTTP/1.1",
                "a2:2 ?",
                "b:3 GET /b HTTP/1.1",
                "a2:3 GET /a HTTP/1.1",
            ]
        );
    }
}
