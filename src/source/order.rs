//! Which log files to read, and in what order: directories and globs
//! expanded, and files put in time order as logrotate names them — a dated
//! series by its dates (`ssl_www_log-2025-11-01`, `access.log-20251101.gz`),
//! numbered rotations oldest first (`access.log.10.gz` … `access.log.1`,
//! then `access.log`), several series each in its own order; and a file's
//! first and last lines, which say whether it is in a time range.

use super::{Input, Opened};
use std::cmp::Reverse;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

/// A file's first and last lines, without their newlines (`None` where
/// they cannot be read; the last for a compressed file, which would have
/// to be read whole). A pipe (`<(zcat …)`) is not looked into: what is read
/// from it is gone for the scan.
pub fn end_lines(path: &Path) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let len = match std::fs::metadata(path) {
        Ok(md) if md.is_file() => md.len(),
        _ => return (None, None),
    };
    let f = match Input::Path(path.into()).open() {
        Ok(Opened::File(f) | Opened::Live(f, _)) => f,
        Ok(stream) => return (first_line(stream), None),
        Err(_) => return (None, None),
    };
    let head = read_at(&f, 0, HEAD.min(len));
    let tail = read_at(&f, len.saturating_sub(HEAD), HEAD.min(len));
    let first = head.as_deref().and_then(|h| h.split(|&b| b == b'\n').next());
    let last = tail.as_deref().and_then(|t| {
        let t = t.strip_suffix(b"\n").unwrap_or(t);
        t.rsplit(|&b| b == b'\n').next()
    });
    (first.map(<[u8]>::to_vec), last.map(<[u8]>::to_vec))
}

/// How far into a file its first (or back from its end its last) line is looked for.
const HEAD: u64 = 64 << 10;

fn read_at(f: &std::fs::File, at: u64, len: u64) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; usize::try_from(len).ok()?];
    f.read_exact_at(&mut buf, at).ok()?;
    Some(buf)
}

/// The first line of a stream (at most [`HEAD`] bytes of it).
fn first_line(opened: Opened) -> Option<Vec<u8>> {
    let Opened::Stream(r, _) = opened else { return None };
    let mut line = Vec::new();
    std::io::BufReader::new(r.take(HEAD)).read_until(b'\n', &mut line).ok()?;
    Some(line.strip_suffix(b"\n").unwrap_or(&line).to_vec())
}

/// Compression suffixes taken off a name before it is ordered.
const COMPRESSED: [&str; 4] = [".gz", ".zst", ".xz", ".bz2"];

/// The files named by command-line arguments: a directory stands for the
/// regular files in it, a glob in the file name (`access.log*`) for the
/// files it matches; `-` and other paths are kept. The error names an
/// argument that names nothing.
pub fn expand(args: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        if arg != "-" && path.is_dir() {
            let files = files_in(path, |_| true).map_err(|e| format!("cannot list {arg}: {e}"))?;
            if files.is_empty() {
                return Err(format!(
                    "{arg} is a directory without files (subdirectories are not read)"
                ));
            }
            out.extend(files);
        } else if !path.exists() && arg.contains(['*', '?', '[', '{']) {
            out.extend(glob(arg)?);
        } else {
            out.push(arg.clone());
        }
    }
    Ok(out)
}

/// The files a glob in the file name matches (the directory is literal).
fn glob(arg: &str) -> Result<Vec<String>, String> {
    let path = Path::new(arg);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let matcher = globset::Glob::new(&name)
        .map_err(|e| format!("{arg:?} is not a valid glob: {e}"))?
        .compile_matcher();
    let found = files_in(dir, |n| matcher.is_match(n))
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    if found.is_empty() {
        return Err(format!("{arg:?} matches no file"));
    }
    Ok(found)
}

/// The regular files in `dir` whose names pass `keep`, by name.
fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && keep(&name) {
            files.push(dir.join(&name).display().to_string());
        }
    }
    files.sort();
    Ok(files)
}

/// `files` in time order (see the module's comment); stable for names that
/// tell nothing.
pub fn time_order(mut files: Vec<String>) -> Vec<String> {
    files.sort_by_cached_key(|f| place(Path::new(f)));
    files
}

/// Where a file stands: its series (directory, and name without date,
/// rotation number and compression suffix), its date (a file without one
/// is the newest of its series, as the file being written is), then its
/// rotation number (higher is older).
fn place(path: &Path) -> (PathBuf, String, u32, Reverse<u32>) {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut rest = name.as_str();
    if let Some(s) = COMPRESSED.iter().find_map(|c| rest.strip_suffix(c)) {
        rest = s;
    }
    let mut rotation = 0;
    if let Some((head, n)) = rest.rsplit_once('.')
        && (1..=6).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        rotation = n.parse().unwrap_or(0);
        rest = head;
    }
    let (series, date) = match find_date(rest) {
        Some((at, len, date)) => {
            let before = rest.get(..at).unwrap_or_default().trim_end_matches(['-', '_', '.']);
            let after = rest.get(at + len..).unwrap_or_default();
            // The series is the name without its date, so the file being
            // written (`access.log`, no date) is the newest of the dated ones.
            (format!("{before}{after}"), date)
        }
        None => (rest.to_string(), u32::MAX),
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    (dir, series, date, Reverse(rotation))
}

/// The first date in a name, `YYYY-MM-DD` or `YYYYMMDD` (years 1970–2099),
/// as (byte offset, length, YYYYMMDD).
fn find_date(name: &str) -> Option<(usize, usize, u32)> {
    let b = name.as_bytes();
    let num = |s: &[u8]| {
        s.iter().try_fold(0u32, |n, c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let valid = |y: u32, m: u32, d: u32| {
        (1970..2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
    };
    for at in 0..b.len() {
        if at > 0 && b[at - 1].is_ascii_digit() {
            continue;
        }
        if let Some(s) = b.get(at..at + 10)
            && s[4] == b'-'
            && s[7] == b'-'
            && let (Some(y), Some(m), Some(d)) = (num(&s[..4]), num(&s[5..7]), num(&s[8..]))
            && valid(y, m, d)
        {
            return Some((at, 10, y * 10_000 + m * 100 + d));
        }
        if let Some(s) = b.get(at..at + 8)
            && !b.get(at + 8).is_some_and(u8::is_ascii_digit)
            && let (Some(y), Some(m), Some(d)) = (num(&s[..4]), num(&s[4..6]), num(&s[6..]))
            && valid(y, m, d)
        {
            return Some((at, 8, y * 10_000 + m * 100 + d));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_lines_of_plain_and_compressed_files() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let text = b"first\nmiddle\nlast\n";
        let plain = dir.path().join("a.log");
        std::fs::write(&plain, text).unwrap();
        let (first, last) = end_lines(&plain);
        assert_eq!((first.as_deref(), last.as_deref()), (Some(&b"first"[..]), Some(&b"last"[..])));
        let gz = dir.path().join("a.log.1");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        assert_eq!(end_lines(&gz), (Some(b"first".to_vec()), None));
        assert_eq!(end_lines(&dir.path().join("missing")), (None, None));
    }

    fn ordered(names: &[&str]) -> Vec<String> {
        time_order(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn numbered_rotations_come_oldest_first_and_the_current_file_last() {
        let got = ordered(&[
            "/l/access.log",
            "/l/access.log.1",
            "/l/access.log.10.gz",
            "/l/access.log.2.gz",
        ]);
        assert_eq!(
            got,
            ["/l/access.log.10.gz", "/l/access.log.2.gz", "/l/access.log.1", "/l/access.log"]
        );
    }

    #[test]
    fn dated_names_come_by_their_date() {
        let got = ordered(&[
            "ssl_www_log-2025-11-10",
            "ssl_www_log-2025-11-02.gz",
            "ssl_www_log-2025-11-09.zst",
        ]);
        assert_eq!(
            got,
            ["ssl_www_log-2025-11-02.gz", "ssl_www_log-2025-11-09.zst", "ssl_www_log-2025-11-10"]
        );
        let dateext = ordered(&["access.log", "access.log-20251102.gz", "access.log-20251101.gz"]);
        assert_eq!(dateext, ["access.log-20251101.gz", "access.log-20251102.gz", "access.log"]);
    }

    #[test]
    fn several_series_are_each_in_order() {
        let got = ordered(&["error.log.1", "access.log", "error.log", "access.log.1"]);
        assert_eq!(got, ["access.log.1", "access.log", "error.log.1", "error.log"]);
    }

    #[test]
    fn dates_are_only_plausible_ones() {
        assert_eq!(find_date("x-20251301"), None, "month 13");
        assert_eq!(find_date("x-120251101"), None, "nine digits");
        assert_eq!(find_date("web01-2025-11-01.log"), Some((6, 10, 20251101)));
    }

    #[test]
    fn directories_and_globs_are_expanded_and_a_glob_matching_nothing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["a.log", "a.log.1", "b.txt"] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let d = dir.path().display().to_string();
        let names = |v: Vec<String>| {
            v.iter()
                .map(|p| Path::new(p).file_name().unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(expand(std::slice::from_ref(&d)).unwrap()), ["a.log", "a.log.1", "b.txt"]);
        assert_eq!(names(expand(&[format!("{d}/a.log*")]).unwrap()), ["a.log", "a.log.1"]);
        assert!(expand(&[format!("{d}/c*")]).unwrap_err().contains("matches no file"));
        assert_eq!(expand(&["-".to_string()]).unwrap(), ["-"]);
    }
}
