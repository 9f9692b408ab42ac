//! `replay`'s progress bar over all its files: bytes on disk read (the
//! compressed bytes of a compressed file), files done, the file being read
//! and an ETA.

use crate::source::Chunk;
use indicatif::{ProgressBar, ProgressStyle};

/// Where a replay stands: each file's size on disk, and how far each
/// server's series (just one, without `--merge`) has got.
pub(super) struct Progress {
    bar: ProgressBar,
    /// Per file, in reading order: its name, the bytes on disk of the
    /// files before it, and its series.
    names: Vec<String>,
    before: Vec<u64>,
    series_of: Vec<usize>,
    /// Per series: its first file, and the file it has reached.
    first: Vec<usize>,
    reached: Vec<usize>,
}

impl Progress {
    /// For `groups` of files (each server's series with `--merge`, else one
    /// group), drawn on standard error if `show`.
    pub(super) fn new(groups: &[Vec<String>], show: bool) -> Progress {
        let sizes: Vec<Option<u64>> = groups
            .iter()
            .flatten()
            .map(|f| (f != "-").then(|| std::fs::metadata(f).map_or(0, |m| m.len())))
            .collect();
        let before =
            sizes.iter().scan(0, |sum, s| Some(std::mem::replace(sum, *sum + s.unwrap_or(0))));
        let before: Vec<u64> = before.collect();
        let total = sizes.iter().try_fold(0, |sum, s| s.map(|s| sum + s));
        let (mut first, mut series_of) = (Vec::new(), Vec::new());
        for (g, files) in groups.iter().enumerate() {
            first.push(series_of.len());
            series_of.extend(std::iter::repeat_n(g, files.len()));
        }
        let names = groups.iter().flatten().cloned().collect();
        let bar = if show { bar(total) } else { ProgressBar::hidden() };
        let reached = first.clone();
        let progress = Progress { bar, names, before, series_of, first, reached };
        progress.bar.set_prefix(progress.files_text(0));
        progress
    }

    /// A chunk is done.
    pub(super) fn chunk(&mut self, chunk: &Chunk) {
        if self.bar.is_hidden() {
            return;
        }
        let (done, current) = self.advance(chunk);
        self.bar.set_position(done);
        self.bar.set_prefix(self.files_text(self.files_done()));
        if let Some(name) = self.names.get(current) {
            self.bar.set_message(tail(name, NAME_CHARS));
        }
    }

    /// Runs `f` with the bar cleared from the terminal, then draws it again.
    pub(super) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Records what `chunk` reached; returns the bytes on disk read in all
    /// and the index of the file the chunk's last line came from.
    fn advance(&mut self, chunk: &Chunk) -> (u64, usize) {
        let Some(origins) = chunk.origins.as_deref() else {
            // One series, the chunk's file its `id`-th.
            let i = usize::try_from(chunk.file.id).unwrap_or(usize::MAX);
            self.reached[0] = i;
            return (self.before.get(i).copied().unwrap_or(0) + chunk.read, i);
        };
        // A merge: its `read` covers every file.
        for &(_, file, _) in &origins.lines {
            let file = file as usize;
            if let Some(&g) = self.series_of.get(file) {
                self.reached[g] = self.reached[g].max(file);
            }
        }
        let last = origins.lines.last().map_or(usize::MAX, |l| l.1 as usize);
        (chunk.read, last)
    }

    /// Files finished: those before the one each series has reached.
    fn files_done(&self) -> usize {
        self.reached.iter().zip(&self.first).map(|(r, f)| r - f).sum()
    }

    fn files_text(&self, done: usize) -> String {
        format!("{done}/{} files", self.names.len())
    }

    /// Every file is read: the bar stays, with the bytes it counted.
    pub(super) fn finish(&self) {
        self.bar.set_prefix(self.files_text(self.names.len()));
        // `finish` would show the whole length whatever was counted.
        self.bar.abandon_with_message("done");
        if !self.bar.is_hidden() {
            // The finished bar leaves the cursor on its line.
            tell!();
        }
    }
}

/// Characters of the current file's name shown.
const NAME_CHARS: usize = 60;

/// The last `n` characters of `name` (its end names the file), marked "…"
/// where cut.
fn tail(name: &str, n: usize) -> String {
    let count = name.chars().count();
    if count <= n {
        return name.to_string();
    }
    let rest: String = name.chars().skip(count - n + 1).collect();
    format!("…{rest}")
}

/// A bar of `total` bytes, or a counter when the total is not known
/// (standard input is among the files).
fn bar(total: Option<u64>) -> ProgressBar {
    let template = match total {
        Some(_) => "{bar:40} {bytes}/{total_bytes} eta {eta}\n{prefix}: {wide_msg}",
        None => "{spinner} {bytes}\n{prefix}: {wide_msg}",
    };
    let bar = total.map_or_else(ProgressBar::no_length, ProgressBar::new);
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::merge::Origins;
    use crate::source::{Data, FileTag};
    use std::sync::Arc;

    fn chunk(id: u64, read: u64, origins: Option<Vec<(u32, u32, u64)>>) -> Chunk {
        let tag = FileTag { name: "f".into(), id, start_line: 0, identity: None, source: 0 };
        let mut c = Chunk::new(Arc::new(tag), 0, Data::Owned(Vec::new()), 0);
        c.read = read;
        c.origins = origins.map(|lines| Arc::new(Origins { names: Arc::from([]), lines }));
        c
    }

    fn files(dir: &std::path::Path, sizes: &[usize]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let p = dir.join(format!("f{i}"));
            std::fs::write(&p, vec![b'x'; *n]).unwrap();
            out.push(p.display().to_string());
        }
        out
    }

    #[test]
    fn files_read_one_after_another_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Progress::new(&[files(dir.path(), &[100, 50, 70])], false);
        assert_eq!(p.advance(&chunk(0, 40, None)), (40, 0));
        assert_eq!(p.files_done(), 0);
        // Compressed bytes read of the second file, after all of the first.
        assert_eq!(p.advance(&chunk(1, 10, None)), (110, 1));
        assert_eq!(p.advance(&chunk(2, 70, None)), (220, 2));
        assert_eq!(p.files_done(), 2);
        assert_eq!(p.files_text(p.files_done()), "2/3 files");
    }

    #[test]
    fn a_merge_counts_each_series_files_reached() {
        let dir = tempfile::tempdir().unwrap();
        let all = files(dir.path(), &[10, 10, 10, 10, 10]);
        let groups = [all[..3].to_vec(), all[3..].to_vec()];
        let mut p = Progress::new(&groups, false);
        // Lines of series 0's second file and series 1's first.
        assert_eq!(p.advance(&chunk(0, 25, Some(vec![(0, 1, 1), (9, 3, 1)]))), (25, 3));
        assert_eq!(p.files_done(), 1);
        assert_eq!(p.advance(&chunk(0, 45, Some(vec![(0, 2, 1), (9, 4, 1)]))), (45, 4));
        assert_eq!(p.files_done(), 3);
    }

    #[test]
    fn long_names_keep_their_end() {
        assert_eq!(tail("/a/web1/access.log", 18), "/a/web1/access.log");
        assert_eq!(tail("/a/web1/access.log", 12), "…/access.log");
        assert_eq!(tail("/å/wëb1", 4), "…ëb1");
    }
}
