//! A directory's files looked at while a rotation may rename them. Names
//! are listed at once but looked at one by one, so a rotation renaming
//! files meanwhile can move one from a name not looked at yet to a name
//! already passed: a soak lost a generation's 529 hits so (README, "Following
//! live logs"). Here a directory is listed again until two listings in a row
//! agree, and a file opened by a name listed is checked to be the one
//! listed.

use super::pattern::list;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A directory is listed again for at most this long: a rotation takes
/// milliseconds, but a directory of 850 files, each listing 4 ms, met a
/// soak's rotations (a Python loop renaming hundreds of generations) in
/// each of 8 listings, the bound before. After it the last listing is used as it is.
const SETTLE_WITHIN: Duration = Duration::from_millis(500);

/// At most this many searches of a directory for a file moved since the
/// listing ([`Moved`]), each on a new listing.
pub const SEARCHES: usize = 8;

/// What `search` finds, searched again while it meets a file moved since
/// its listing ([`Moved`]; `search` lists again), at most [`SEARCHES`]
/// times; after that `None`, and a warning naming `dir`.
pub fn searched<T>(dir: &Path, mut search: impl FnMut() -> Result<T, Moved>) -> Option<T> {
    for _ in 0..SEARCHES {
        if let Ok(found) = search() {
            return Some(found);
        }
    }
    tracing::warn!(dir = %dir.display(), searches = SEARCHES, "Files were renamed during every search of the directory; this search is given up: a file it looked for (a saved log, a truncated log's copy, a generation never followed) may not be read now.");
    None
}

/// A directory's regular files under the names wanted, each with its
/// metadata (its name's `stat`).
pub type Files = Vec<(PathBuf, Metadata)>;

/// A file opened by a name listed was not the one listed: the name was
/// given to another file since, and the listed one may be under a name
/// passed. The search is to be done again on a new listing.
#[derive(Debug)]
pub struct Moved;

/// The regular files `dir` holds under names `wanted` takes, each with its
/// metadata (`look`: `std::fs::metadata`, a test's to rename between
/// looks), from a listing that agreed with the one before it on which file
/// (device and inode) each name holds: a rename during the later one
/// changes what the name it moved to holds between the two (logrotate
/// never gives a name back the file that left it), listing for at most
/// [`SETTLE_WITHIN`]. An error when `dir` cannot be listed.
pub fn settled(
    dir: &Path,
    wanted: impl Fn(&str) -> bool,
    mut look: impl FnMut(&Path) -> io::Result<Metadata>,
) -> io::Result<Files> {
    let until = Instant::now() + SETTLE_WITHIN;
    let mut last = look_at(dir, &wanted, &mut look)?;
    let mut listings = 1;
    loop {
        let next = look_at(dir, &wanted, &mut look)?;
        listings += 1;
        if same_files(&last, &next) {
            return Ok(next);
        }
        last = next;
        if Instant::now() >= until {
            break;
        }
    }
    tracing::warn!(dir = %dir.display(), listings, "The directory changed between every two listings for half a second; a file renamed during the last listing may be missed.");
    Ok(last)
}

/// One listing: the names `wanted` takes, each looked at.
fn look_at(
    dir: &Path,
    wanted: &impl Fn(&str) -> bool,
    look: &mut impl FnMut(&Path) -> io::Result<Metadata>,
) -> io::Result<Files> {
    let names = list(dir)?.into_iter().filter(|n| wanted(n));
    let files = names.filter_map(|n| {
        let path = dir.join(n);
        let md = look(&path).ok().filter(Metadata::is_file)?;
        Some((path, md))
    });
    Ok(files.collect())
}

/// Whether two listings hold the same names on the same files.
fn same_files(a: &Files, b: &Files) -> bool {
    ids(a) == ids(b)
}

/// A listing's names with their files' device and inode, in name order.
fn ids(files: &Files) -> Vec<(&Path, u64, u64)> {
    let mut ids: Vec<_> = files.iter().map(|(p, m)| (p.as_path(), m.dev(), m.ino())).collect();
    ids.sort_unstable();
    ids
}

/// Whether `opened` (an open file's own metadata) is the file `listed`.
pub fn same_file(listed: &Metadata, opened: &Metadata) -> bool {
    (listed.dev(), listed.ino()) == (opened.dev(), opened.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rotated logs; the first name looked at is given the other's
    /// file right after (`rename(other, first)`, as logrotate's shift
    /// gives `.2` the file of `.1`), once, during the listing `during`
    /// (0-based). The moved file is found.
    fn renamed_during(during: usize) -> (Files, u64) {
        let dir = tempfile::tempdir().unwrap();
        let names = ["access.log.1", "access.log.2"];
        for n in names {
            std::fs::write(dir.path().join(n), n).unwrap();
        }
        let (mut looks, mut moved) = (0, None);
        let files = settled(
            dir.path(),
            |_| true,
            |p| {
                let md = std::fs::metadata(p);
                looks += 1;
                if looks == 2 * during + 1 {
                    let name = p.file_name().unwrap().to_str().unwrap();
                    let other = dir.path().join(names.iter().find(|n| **n != name).unwrap());
                    moved = Some(std::fs::metadata(&other).unwrap().ino());
                    std::fs::rename(&other, p).unwrap();
                }
                md
            },
        );
        (files.unwrap(), moved.unwrap())
    }

    #[test]
    fn a_file_renamed_onto_a_name_passed_is_listed() {
        for during in [0, 1] {
            let (files, moved) = renamed_during(during);
            assert_eq!(files.len(), 1, "during listing {during}: {files:?}");
            assert_eq!(files[0].1.ino(), moved, "during listing {during}");
        }
    }

    /// A search that meets a moved file is done again, up to SEARCHES
    /// times; then given up, and said so.
    #[test]
    fn searches_are_bounded_and_a_search_given_up_is_logged() {
        let dir = Path::new("/var/log/apache2");
        let mut tries = 0;
        let text = crate::testing::logged(|| {
            let found = searched(dir, || {
                tries += 1;
                if tries < 3 { Err(Moved) } else { Ok(tries) }
            });
            assert_eq!(found, Some(3));
        });
        assert_eq!(text, "", "a search that ends is not logged");
        tries = 0;
        let text = crate::testing::logged(|| {
            let found: Option<()> = searched(dir, || {
                tries += 1;
                Err(Moved)
            });
            assert_eq!(found, None);
        });
        assert_eq!(tries, SEARCHES);
        assert_eq!(text.matches("this search is given up").count(), 1, "{text}");
        assert!(text.contains("/var/log/apache2"), "{text}");
    }

    #[test]
    fn a_directory_without_change_is_listed_twice() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), b"x\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let mut looks = 0;
        let files = settled(
            dir.path(),
            |n| n != "b.log",
            |p| {
                looks += 1;
                std::fs::metadata(p)
            },
        );
        assert_eq!(files.unwrap().len(), 1, "a directory is no file");
        assert_eq!(looks, 4);
        let gone = settled(&dir.path().join("gone"), |_| true, |p| std::fs::metadata(p));
        assert!(gone.unwrap().is_empty());
    }
}
