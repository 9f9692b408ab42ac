//! Path patterns: how `source.path` names the files to follow — a dated
//! series (strftime fields), a glob (`globset`: `*`, `?`, `[…]`, `[!…]`,
//! `{a,b}`, `\` escapes) or one plain path. Only the file name may hold
//! fields or wildcards; the directory is fixed and watched.

use crate::parse::time::Zone;
use std::io;
use std::path::{Path, PathBuf};

/// How the configured `source.path` names files.
#[derive(Debug, Clone)]
pub enum PathSpec {
    /// strftime fields (`%Y %m %d %H %M`) in the file name: a dated series.
    Dated {
        /// Directory of the series.
        dir: PathBuf,
        /// The file name pattern turned into a regex with one group per field.
        regex: regex::Regex,
        /// Field letters in group order (`Y`, `m`, …).
        fields: Vec<char>,
    },
    /// `*`, `?`, `[` or `{` in the file name: every match.
    Glob {
        /// Directory.
        dir: PathBuf,
        /// The file name pattern as written.
        pattern: String,
        /// The compiled pattern.
        matcher: globset::GlobMatcher,
    },
    /// One path (possibly a symlink).
    Plain(PathBuf),
}

/// The date fields of a dated file name, in `Y m d H M` order.
pub type DateKey = [u32; 5];

/// Whether `key` is dated on a later day than `limit` (hours and minutes
/// aside).
pub fn later_day(key: &DateKey, limit: &DateKey) -> bool {
    key[..3] > limit[..3]
}

/// The directory part of `p`; `.` when it has none.
pub fn parent_dir(p: &Path) -> PathBuf {
    p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

impl PathSpec {
    /// Interprets `source.path`. Only the file name may hold fields or wildcards.
    pub fn parse(path: &str) -> Result<PathSpec, String> {
        let p = Path::new(path);
        let name = p.file_name().and_then(|n| n.to_str()).ok_or("has no file name")?;
        let dir = parent_dir(p);
        if dir.to_string_lossy().contains(['%', '*', '?', '[', '{']) {
            return Err("may hold date fields or wildcards only in the file name".into());
        }
        if name.contains('%') {
            let (regex, fields) = dated_regex(name)?;
            return Ok(PathSpec::Dated { dir, regex, fields });
        }
        if name.contains(['*', '?', '[', '{']) {
            let matcher = globset::GlobBuilder::new(name)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("is not a valid glob: {}", e.kind()))?
                .compile_matcher();
            return Ok(PathSpec::Glob { dir, pattern: name.to_string(), matcher });
        }
        Ok(PathSpec::Plain(p.to_path_buf()))
    }

    /// The directory to watch.
    pub fn dir(&self) -> PathBuf {
        match self {
            PathSpec::Dated { dir, .. } | PathSpec::Glob { dir, .. } => dir.clone(),
            PathSpec::Plain(p) => parent_dir(p),
        }
    }

    /// Whether `path` is named as logrotate names a file this spec covers
    /// once rotated (`access.log.1`); never for a dated series, whose files
    /// keep their names.
    pub fn covers_rotated(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).and_then(rotated_from);
        match (self, name) {
            (PathSpec::Dated { .. }, _) | (_, None) => false,
            (_, Some(head)) => path.parent().is_some_and(|d| self.covers(&d.join(head))),
        }
    }

    /// The paths to follow now (heads). For a dated series: the newest file
    /// not dated after `not_after`.
    pub fn current(&self, not_after: DateKey) -> io::Result<Vec<PathBuf>> {
        Ok(match self {
            PathSpec::Plain(p) => vec![p.clone()],
            PathSpec::Glob { dir, matcher, .. } => {
                let mut names = list(dir)?;
                names.retain(|n| matcher.is_match(n));
                // Names, not paths, are sorted: the same order (one
                // directory), without comparing paths component by component.
                names.sort_unstable();
                names.into_iter().map(|n| dir.join(n)).collect()
            }
            PathSpec::Dated { .. } => {
                let mut plausible = self.series()?;
                plausible.retain(|(k, _)| !later_day(k, &not_after));
                plausible.pop().map(|(_, p)| p).into_iter().collect()
            }
        })
    }

    /// Every file of a dated series with its date (`[Y, m, d, H, M]`), oldest
    /// first; empty for other specs.
    pub fn series(&self) -> io::Result<Vec<(DateKey, PathBuf)>> {
        let PathSpec::Dated { dir, .. } = self else { return Ok(Vec::new()) };
        let mut v: Vec<(DateKey, PathBuf)> = list(dir)?
            .into_iter()
            .filter_map(|n| Some((self.date_of_name(&n)?, dir.join(n))))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Whether it is a glob.
    pub fn is_glob(&self) -> bool {
        matches!(self, PathSpec::Glob { .. })
    }

    /// Whether `path` is (or was) one of the files this spec names.
    pub fn covers(&self, path: &Path) -> bool {
        match self {
            PathSpec::Plain(p) => p == path,
            PathSpec::Glob { dir, matcher, .. } => {
                parent_dir(path) == *dir
                    && path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| matcher.is_match(n))
            }
            PathSpec::Dated { .. } => self.date_of(path).is_some(),
        }
    }

    /// The date of `path` if it is a file of this dated series.
    pub fn date_of(&self, path: &Path) -> Option<DateKey> {
        let PathSpec::Dated { dir, .. } = self else { return None };
        (parent_dir(path) == *dir).then_some(())?;
        self.date_of_name(path.file_name()?.to_str()?)
    }

    fn date_of_name(&self, name: &str) -> Option<DateKey> {
        let PathSpec::Dated { regex, fields, .. } = self else { return None };
        let caps = regex.captures(name)?;
        let mut key = [0u32; 5];
        for (i, f) in fields.iter().enumerate() {
            key["YmdHM".find(*f)?] = caps.get(i + 1)?.as_str().parse().ok()?;
        }
        Some(key)
    }

    /// The name today's file would have (for "waiting for" messages).
    pub fn expected(&self, zone: &Zone, now: i64) -> String {
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
            PathSpec::Glob { dir, pattern, .. } => dir.join(pattern).display().to_string(),
            PathSpec::Plain(p) => p.display().to_string(),
        }
    }
}

/// A dated file name pattern as a regex with one group per field.
fn dated_regex(name: &str) -> Result<(regex::Regex, Vec<char>), String> {
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
    Ok((regex::Regex::new(&re).map_err(|e| e.to_string())?, fields))
}

/// File names in `dir` (none when it does not exist). An error when it
/// cannot be listed (out of file descriptors, a network file system's
/// hiccup): then nothing is known of what it holds, and no file may be
/// taken as gone from it.
pub fn list(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// The name a file named as logrotate names a rotated one had before:
/// `access.log` for `access.log.1` (`.N`) or `access.log-20261201`
/// (`dateext`). A compressed one (`access.log.2.gz`) has none: it cannot be
/// followed.
pub fn rotated_from(name: &str) -> Option<&str> {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let head = stem.strip_suffix(['.', '-'])?;
    (stem.len() < name.len() && !head.is_empty()).then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_are_known() {
        for name in ["access.log.1", "access.log.12", "access.log-20261201"] {
            assert_eq!(rotated_from(name), Some("access.log"), "{name}");
        }
        for name in
            ["access.log", "access.log.1.gz", "access.log.bak", "access.log.", "xaccess.log.1"]
        {
            assert_ne!(rotated_from(name), Some("access.log"), "{name}");
        }
        let plain = PathSpec::parse("/var/log/access.log").unwrap();
        assert!(plain.covers_rotated(Path::new("/var/log/access.log.1")));
        assert!(!plain.covers_rotated(Path::new("/var/log/other.log.1")));
        assert!(!plain.covers_rotated(Path::new("/tmp/access.log.1")));
        let glob = PathSpec::parse("/var/log/*.log").unwrap();
        assert!(glob.covers_rotated(Path::new("/var/log/www.log-20261201")));
        assert!(!glob.covers_rotated(Path::new("/var/log/www.txt.1")));
    }

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
    fn globs_take_negated_classes_alternatives_and_escapes() {
        let names = ["a.log", "b.log", "c.log", "a.log.1", "x*.log", "sub.txt"];
        let matches = |pattern: &str| {
            let PathSpec::Glob { matcher, .. } = PathSpec::parse(pattern).unwrap() else {
                panic!("{pattern} is a glob")
            };
            names.iter().copied().filter(|n| matcher.is_match(n)).collect::<Vec<_>>()
        };
        assert_eq!(matches("/l/*.log"), ["a.log", "b.log", "c.log", "x*.log"]);
        assert_eq!(matches("/l/[!a].log"), ["b.log", "c.log"]);
        assert_eq!(matches("/l/{a,c}.log"), ["a.log", "c.log"]);
        assert_eq!(matches(r"/l/x\*.log"), ["x*.log"]);
        assert!(PathSpec::parse("/l/[.log").unwrap_err().contains("not a valid glob"));
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
        let far = [2100, 1, 1, 0, 0];
        assert_eq!(spec.current(far).unwrap(), vec![dir.path().join("log-2025-07-10")]);
        // A file dated after the limit is not current.
        let current = spec.current([2025, 7, 9, 0, 0]).unwrap();
        assert_eq!(current, vec![dir.path().join("log-2025-07-09")]);
        let expected = spec.expected(&Zone::Utc, 1_752_105_600);
        assert!(expected.ends_with("log-2025-07-10"), "{expected}");
    }
}
