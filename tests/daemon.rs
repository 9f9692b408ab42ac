//! `logwarden run` against real files: every rotation style, with the daemon
//! running throughout. Every written line must be counted exactly once: the
//! rule uses `cooldown = 0` and a threshold of 3, so every event from a
//! client's third on raises an alert carrying the exact count, and a lost or
//! repeated line changes the counts. The alerts must equal those of `replay`
//! over the same lines (compared as multisets, since lines written late to a
//! rotated file may be read after newer ones).
//!
//! Every wait has a deadline; a phase ends with a marker client whose alert
//! shows that the daemon has read everything before it.

use crate::util::daemon::{Daemon, Writer, marker_ip, request_at};
use crate::util::{DEADLINE, json_lines, json_lines_so_far, ok, wait_until, webhook_server, write};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A daemon following `dir/access.log` (a new directory), which holds `n`
/// lines from a few clients and marker 1's hits, all read.
fn following(n: usize) -> (tempfile::TempDir, PathBuf, Daemon, Writer) {
    following_as(n, "access.log")
}

/// The same, the daemon following `access.log` as `name` (a symlink to it
/// unless `name` is `access.log`).
fn following_as(n: usize, name: &str) -> (tempfile::TempDir, PathBuf, Daemon, Writer) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let followed = dir.path().join(name);
    if followed != p {
        std::fs::write(&p, b"").unwrap();
        std::os::unix::fs::symlink(&p, &followed).unwrap();
    }
    let d = Daemon::start(dir.path(), followed.to_str().unwrap());
    let mut w = Writer::new();
    w.phase(&p, A, n, 1);
    d.wait_for_marker(1);
    (dir, p, d, w)
}

/// A test directory with a `logs` directory in it, for a glob's files.
fn with_logs_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    (dir, logs)
}

/// What logrotate's copytruncate does: copy the file, then truncate it in place.
fn copytruncate(path: &Path, copy: &Path) {
    std::fs::copy(path, copy).unwrap();
    OpenOptions::new().write(true).open(path).unwrap().set_len(0).unwrap();
}

/// Waits for the last marker, compares with replay, stops the daemon.
fn finish(d: Daemon, w: &Writer, last_marker: u32) {
    d.wait_for_marker(last_marker);
    assert_like_replay(&d, w);
    d.stop();
}

/// Sorted `rule key count` of alerts.
fn multiset(alerts: &[serde_json::Value]) -> Vec<String> {
    let mut v: Vec<String> =
        alerts.iter().map(|a| format!("{} {} {}", a["rule"], a["key"], a["count"])).collect();
    v.sort();
    v
}

/// Replay's alerts over everything written, as a multiset.
fn replayed(d: &Daemon, w: &Writer) -> Vec<String> {
    let all = write(&d.dir, "all-written.log", &w.written);
    let cfg = d.dir.join("logwarden.toml");
    multiset(&json_lines(&ok(&["-c", cfg.to_str().unwrap(), "replay", "--json", &all])))
}

/// The daemon's alerts equal replay's over everything written.
fn assert_like_replay(d: &Daemon, w: &Writer) {
    let want = replayed(d, w);
    assert!(!want.is_empty());
    assert_eq!(multiset(&d.alerts()), want);
}

const A: &[&str] = &["10.0.0.1", "10.0.0.2", "2001:db8::7"];
const B: &[&str] = &["10.0.0.2", "10.0.0.3"];

#[test]
fn dated_switch_with_late_writes_to_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &format!("{}/access-%Y-%m-%d", dir.path().display()));
    let (old, new) = (dir.path().join("access-2025-07-09"), dir.path().join("access-2025-07-10"));
    let mut w = Writer::new();
    w.phase(&old, A, 20, 1);
    d.wait_for_marker(1);
    w.phase(&new, B, 20, 2);
    d.wait_for_marker(2);
    // Apache still finishing requests in yesterday's file.
    w.phase(&old, &["10.0.0.9"], 5, 3);
    d.wait_for_marker(3);
    assert_like_replay(&d, &w);
    let log = d.stop();
    assert!(log.contains("Finished rotated log file") || log.contains("draining"), "{log}");
}

#[test]
fn rename_and_create() {
    let (dir, p, d, mut w) = following(20);
    std::fs::rename(&p, dir.path().join("access.log.1")).unwrap();
    w.phase(&dir.path().join("access.log.1"), &["10.0.0.8"], 4, 2);
    w.phase(&p, B, 20, 3);
    d.wait_for_marker(2);
    finish(d, &w, 3);
}

#[test]
fn copytruncate_and_truncate_rewrite() {
    let (dir, p, d, mut w) = following(30);
    copytruncate(&p, &dir.path().join("access.log.1"));
    // Smaller than before: the shrink shows.
    w.phase(&p, B, 3, 2);
    d.wait_for_marker(2);
    // Truncate and rewrite more than there was: the changed first bytes show.
    std::fs::write(&p, b"").unwrap();
    w.phase(&p, A, 60, 3);
    finish(d, &w, 3);
}

/// copytruncate while lines keep coming: when the daemon next looks, the
/// copy holds lines it has not read and the file already holds newer ones,
/// here the same client's, more than a window newer. The copy's end is read
/// first, as it was written first; before, the file's new lines were, and
/// the copy's then came late (its three hits raised no alert, where
/// replay's did).
#[test]
fn copytruncate_with_new_lines_reads_the_copys_end_first() {
    while_not_looking(2, |dir, p, w| {
        let tail = w.hits("10.0.0.5", 3);
        w.append_raw(p, &tail);
        copytruncate(p, &dir.join("access.log.1"));
        w.clock += 20 * 60;
        w.phase(p, &["10.0.0.5"], 3, 2);
    });
}

/// A file of another name that begins with the log's lines (here a mirror
/// of everything written, as a soak keeps) is not taken for the copy
/// copytruncate made: before, it was, and its lines after the truncation
/// were read again, counted twice. The copy goes to another directory
/// (logrotate's `olddir`), every line in it already read.
#[test]
fn copytruncate_takes_no_file_of_another_name_for_its_copy() {
    while_not_looking(2, |dir, p, w| {
        let mirror = dir.join("mirror.txt");
        std::fs::write(&mirror, &w.written).unwrap();
        std::fs::create_dir(dir.join("old")).unwrap();
        copytruncate(p, &dir.join("old/access.log.1"));
        let before = w.written.len();
        w.phase(p, &["10.0.0.5"], 3, 2);
        let mut m = OpenOptions::new().append(true).open(&mirror).unwrap();
        std::io::Write::write_all(&mut m, &w.written[before..]).unwrap();
    });
}

/// A log followed through a symlink (`current.log` → `access.log`) and
/// copytruncated under the target's name while the daemon is stopped: the
/// copy (`access.log.1`), named as the target's rotations are, is found and
/// its end read.
#[test]
fn copytruncate_through_a_symlink_reads_the_copys_end() {
    while_not_looking_as("current.log", 2, |dir, p, w| {
        let tail = w.hits("10.0.0.5", 3);
        w.append_raw(p, &tail);
        copytruncate(p, &dir.join("access.log.1"));
        w.phase(p, &["10.0.0.6"], 3, 2);
    });
}

/// The daemon follows `access.log` to marker 1, then is stopped (SIGSTOP)
/// while `change(dir, path, writer)` writes and rotates, so that it sees all
/// of it at once when it goes on; its alerts must then equal replay's, up
/// to marker `last`.
fn while_not_looking(last: u32, change: impl FnOnce(&Path, &Path, &mut Writer)) {
    while_not_looking_as("access.log", last, change);
}

/// The same, the daemon following `access.log` as `name` ([`following_as`]).
fn while_not_looking_as(name: &str, last: u32, change: impl FnOnce(&Path, &Path, &mut Writer)) {
    let (dir, p, d, mut w) = following_as(5, name);
    d.signal("-STOP");
    change(dir.path(), &p, &mut w);
    d.signal("-CONT");
    finish(d, &w, last);
}

#[test]
fn delete_and_recreate_and_symlink_swap() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("current.log");
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    std::fs::write(&a, b"").unwrap();
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let d = Daemon::start(dir.path(), link.to_str().unwrap());
    let mut w = Writer::new();
    w.phase(&a, A, 10, 1);
    d.wait_for_marker(1);
    w.phase(&b, B, 10, 2);
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&b, &link).unwrap();
    d.wait_for_marker(2);
    std::fs::remove_file(&b).unwrap();
    w.phase(&b, A, 10, 3);
    finish(d, &w, 3);
}

#[test]
fn missing_file_at_start_and_partial_line_completed_later() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("later.log");
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    wait_until("the waiting message", || d.log_text().contains("Waiting for log file"));
    let mut w = Writer::new();
    w.phase(&p, A, 10, 1);
    d.wait_for_marker(1);
    let line = w.line("10.0.0.1");
    let (head, tail) = line.split_at(30);
    w.append_raw(&p, head);
    std::thread::sleep(Duration::from_millis(300));
    w.append_raw(&p, tail);
    w.phase(&p, A, 2, 2);
    d.wait_for_marker(2);
    assert_like_replay(&d, &w);
    let log = d.stop();
    assert_eq!(log.matches("Waiting for log file").count(), 1, "{log}");
}

/// The daemon killed and restarted around a rotation: lines are counted
/// exactly once and alerts are delivered exactly once. With `settle`, the
/// kill waits until the state saved covers every line read: rotations that
/// destroy lines (truncate without copy, delete) leave nothing to re-read.
fn restart_case(
    path_of: impl Fn(&Path) -> PathBuf,
    spec: &str,
    settle: bool,
    rotate: impl Fn(&Path, &mut Writer),
) {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec.replace("DIR", &dir.path().display().to_string());
    let p = path_of(dir.path());
    let mut w = Writer::new();
    let d = Daemon::start(dir.path(), &spec);
    w.phase(&p, A, 30, 1);
    d.wait_for_marker(1);
    // Some lines after the last checkpoint, then the crash.
    w.phase(&p, A, 5, 2);
    d.wait_for_marker(2);
    if settle {
        let len = std::fs::metadata(&p).unwrap().len();
        wait_until("the checkpoint", || saved_offsets(dir.path()).contains(&len));
    }
    d.kill9();
    rotate(dir.path(), &mut w);
    let d = Daemon::start(dir.path(), &spec);
    d.wait_for_marker(4);
    assert_like_replay(&d, &w);
    assert_delivered_once(&d);
    d.stop();
}

#[test]
fn kill9_then_rename_and_create() {
    restart_case(
        |d| d.join("access.log"),
        "DIR/access.log",
        false,
        |dir, w| {
            let old = dir.join("access.log.1");
            std::fs::rename(dir.join("access.log"), &old).unwrap();
            w.phase(&old, &["10.0.0.8"], 4, 3);
            w.phase(&dir.join("access.log"), B, 20, 4);
        },
    );
}

#[test]
fn kill9_then_copytruncate() {
    restart_case(
        |d| d.join("access.log"),
        "DIR/access.log",
        false,
        |dir, w| {
            let p = dir.join("access.log");
            w.phase(&p, &["10.0.0.8"], 4, 3);
            copytruncate(&p, &dir.join("access.log.1"));
            w.phase(&p, B, 20, 4);
        },
    );
}

/// Two rotations while stopped (a weekend down, rotated daily): the
/// generation between the one followed and the current one — never seen by
/// the daemon — is read whole. Before, its lines (marker 3's) were lost.
#[test]
fn kill9_then_two_renames() {
    restart_case(
        |d| d.join("access.log"),
        "DIR/access.log",
        false,
        |dir, w| rotated_twice(dir, w, 3, |p, one| std::fs::rename(p, one).unwrap()),
    );
}

/// `dir/access.log` rotated to `access.log.1` by `rotate` (the older one
/// moved to `.2`) twice, with lines between up to marker `m` and after up
/// to marker `m + 1`.
fn rotated_twice(dir: &Path, w: &mut Writer, m: u32, rotate: fn(&Path, &Path)) {
    let (p, one, two) =
        (dir.join("access.log"), dir.join("access.log.1"), dir.join("access.log.2"));
    rotate(&p, &one);
    w.phase(&p, &["10.0.0.8"], 4, m);
    std::fs::rename(&one, &two).unwrap();
    rotate(&p, &one);
    w.phase(&p, B, 20, m + 1);
}

/// The same with copytruncate: the older copy's end, then the newer copy
/// whole, then the file.
#[test]
fn kill9_then_two_copytruncates() {
    restart_case(
        |d| d.join("access.log"),
        "DIR/access.log",
        false,
        |dir, w| rotated_twice(dir, w, 3, copytruncate),
    );
}

/// Two rotations while the daemon does not look (stopped with SIGSTOP: a
/// stalled machine): the generation between is read whole, in its place.
/// Before, it was never read.
#[test]
fn two_renames_between_two_looks() {
    while_not_looking(3, |dir, _, w| {
        rotated_twice(dir, w, 2, |p, one| std::fs::rename(p, one).unwrap());
    });
}

/// The same, the new current file quiet and the generation between written
/// to late, after it appeared (a server's last requests before its
/// reload): that generation is read whole, its late lines too. Before, a
/// generation last written after the current file was not read at all.
#[test]
fn two_renames_between_two_looks_the_one_between_written_late() {
    while_not_looking(3, |dir, p, w| {
        let (one, two) = (dir.join("access.log.1"), dir.join("access.log.2"));
        std::fs::rename(p, &one).unwrap();
        w.phase(p, &["10.0.0.8"], 4, 2);
        std::fs::rename(&one, &two).unwrap();
        std::fs::rename(p, &one).unwrap();
        std::fs::write(p, "").unwrap();
        // Past a tick of the clock files are stamped by.
        std::thread::sleep(Duration::from_millis(50));
        w.phase(&one, B, 5, 3);
    });
}

/// Killed while it still drains a copytruncate copy (within `rotate_wait`):
/// the file's new lines keep their saved position. Before, the copy's
/// position (saved as the file it was copied from, so by the same inode)
/// replaced the file's, and the restart read the file's new lines again
/// (counted twice).
#[test]
fn kill9_while_draining_a_copytruncate_copy() {
    let (dir, p, d, mut w) = following(5);
    copytruncate(&p, &dir.path().join("access.log.1"));
    w.phase(&p, A, 5, 2);
    d.wait_for_marker(2);
    // The opened copy asks for a checkpoint at once; it is drained for a
    // second (rotate_wait) after its last growth.
    std::thread::sleep(Duration::from_millis(300));
    d.kill9();
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    w.phase(&p, B, 5, 3);
    finish(d, &w, 3);
}

/// A saved file the restart's first look does not find (moved out of the
/// directory while stopped) is looked for again at the next look; until
/// then the state saved before stands. Killed between the two looks, then
/// the file back as a rotated generation, the next start reads its rest
/// from its saved position (a client of its own, so its counts do not
/// depend on the order the files are read in). Before, the first look's
/// state was saved without it, and its rest was never read.
#[test]
fn kill9_between_the_two_looks_for_a_saved_file_keeps_its_position() {
    let (dir, p, d, mut w) = following(5);
    let len = std::fs::metadata(&p).unwrap().len();
    wait_until("the checkpoint", || saved_offsets(dir.path()).contains(&len));
    d.kill9();
    // Its rest, written while stopped; then it is out of sight, and a new
    // log has lines.
    w.phase(&p, &["10.0.0.9"], 5, 2);
    let away = dir.path().join("away");
    std::fs::create_dir(&away).unwrap();
    std::fs::rename(&p, away.join("access.log")).unwrap();
    w.phase(&p, A, 5, 3);
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    // The new log read and, before the change, saved; the next look comes
    // a second after the first.
    d.wait_for_marker(3);
    std::thread::sleep(Duration::from_millis(100));
    d.kill9();
    std::fs::rename(away.join("access.log"), dir.path().join("access.log.1")).unwrap();
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    w.phase(&p, A, 5, 4);
    d.wait_for_marker(4);
    assert_like_replay(&d, &w);
    assert_delivered_once(&d);
    d.stop();
}

#[test]
fn kill9_then_dated_switch() {
    restart_case(
        |d| d.join("access-2025-07-09"),
        "DIR/access-%Y-%m-%d",
        false,
        |dir, w| {
            w.phase(&dir.join("access-2025-07-10"), B, 20, 3);
            w.phase(&dir.join("access-2025-07-09"), &["10.0.0.9"], 4, 4);
        },
    );
}

#[test]
fn kill9_then_symlink_swap() {
    restart_case(
        |d| {
            let target = d.join("a.log");
            std::fs::write(&target, b"").unwrap();
            std::os::unix::fs::symlink(&target, d.join("current.log")).unwrap();
            target
        },
        "DIR/current.log",
        false,
        |dir, w| {
            w.phase(&dir.join("a.log"), &["10.0.0.8"], 4, 3);
            w.phase(&dir.join("b.log"), B, 20, 4);
            std::fs::remove_file(dir.join("current.log")).unwrap();
            std::os::unix::fs::symlink(dir.join("b.log"), dir.join("current.log")).unwrap();
        },
    );
}

#[test]
fn kill9_then_truncate_and_rewrite() {
    restart_case(
        |d| d.join("access.log"),
        "DIR/access.log",
        true,
        |dir, w| {
            let p = dir.join("access.log");
            std::fs::write(&p, b"").unwrap();
            w.phase(&p, &["10.0.0.8"], 4, 3);
            w.phase(&p, B, 60, 4);
        },
    );
}

#[test]
fn kill9_then_delete_and_recreate() {
    restart_case(
        |d| d.join("access.log"),
        "DIR/access.log",
        true,
        |dir, w| {
            let p = dir.join("access.log");
            std::fs::remove_file(&p).unwrap();
            w.phase(&p, &["10.0.0.8"], 4, 3);
            w.phase(&p, B, 20, 4);
        },
    );
}

#[test]
fn kill9_while_lines_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let spec = p.display().to_string();
    let mut w = Writer::new();
    let mut d = Daemon::start(dir.path(), &spec);
    for round in 0..4u32 {
        // A burst big enough to be in flight when the kill comes.
        w.phase(&p, A, 3000, 10 + round);
        std::thread::sleep(Duration::from_millis(5 + 30 * u64::from(round)));
        d.kill9();
        d = Daemon::start(dir.path(), &spec);
    }
    w.phase(&p, B, 5, 20);
    d.wait_for_marker(20);
    assert_like_replay(&d, &w);
    assert_delivered_once(&d);
    d.stop();
}

#[test]
fn counts_survive_a_restart_and_corrupt_state_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let spec = p.display().to_string();
    let mut w = Writer::new();
    let d = Daemon::start(dir.path(), &spec);
    let two = w.hits("10.9.9.9", 2);
    w.append_raw(&p, &two);
    w.phase(&p, &["10.0.0.1"], 1, 1);
    d.wait_for_marker(1);
    d.stop();
    // The third hit after the restart makes the count reach the threshold.
    let d = Daemon::start(dir.path(), &spec);
    let third = w.line("10.9.9.9");
    w.append_raw(&p, &third);
    wait_until("the alert on the third hit", || {
        d.alerts().iter().any(|a| a["key"] == "10.9.9.9" && a["count"] == 3)
    });
    d.stop();
    std::fs::write(dir.path().join("state/state.bin"), b"not a state file").unwrap();
    let d = Daemon::start(dir.path(), &spec);
    wait_until("the warning", || d.log_text().contains("moved to"));
    assert!(dir.path().join("state/state.bin.corrupt").exists());
    d.stop();
}

fn assert_delivered_once(d: &Daemon) {
    let ids: Vec<String> =
        d.alerts().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an alert was delivered twice");
}

/// copytruncate over and over while the daemon reads at full speed: it never
/// crashes (growing files are never memory-mapped, so a truncation cannot
/// raise SIGBUS) and every line is counted once, also those that only the
/// copy holds.
#[test]
fn repeated_copytruncate_under_full_speed_reading() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    let mut w = Writer::new();
    for round in 1..=12u32 {
        // The daemon has seen this content, then a burst it is reading when
        // the copy and the truncation come.
        w.phase(&p, B, 20, 100 + round);
        d.wait_for_marker(100 + round);
        w.phase(&p, A, 4000, round);
        copytruncate(&p, &dir.path().join(format!("access.log.{round}")));
        d.wait_for_marker(round);
    }
    assert_like_replay(&d, &w);
    assert_delivered_once(&d);
    d.stop();
}

/// Reloads one on the heels of another, lines coming meanwhile: every line
/// counts once. Before, a reload asked before the restarted engine had
/// looked at its files saved a state without their positions, and the
/// next start read them again (counted twice).
#[test]
fn reloads_in_quick_succession_count_every_line_once() {
    let (_dir, p, d, mut w) = following(20);
    for _ in 0..30 {
        d.signal("-HUP");
        let hits = w.hits(A[0], 1);
        w.append_raw(&p, &hits);
    }
    w.phase(&p, B, 5, 2);
    finish(d, &w, 2);
}

#[test]
fn sighup_reloads_a_good_configuration_and_keeps_the_old_one_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    let mut w = Writer::new();
    let two = w.hits("10.7.7.7", 2);
    w.append_raw(&p, &two);
    w.phase(&p, &["10.0.0.1"], 1, 1);
    d.wait_for_marker(1);
    // A second rule; the first is unchanged and keeps its windows.
    let cfg = d.dir.join("logwarden.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("[[rule]]\nname = \"env\"\ncontains = \"/.env\"\nthreshold = 1\n");
    std::fs::write(&cfg, &text).unwrap();
    d.signal("-HUP");
    wait_until("the reload", || d.log_text().contains("Configuration reloaded"));
    let third = w.line("10.7.7.7");
    w.append_raw(&p, &third);
    wait_until("the third hit's alert", || {
        d.alerts().iter().any(|a| a["key"] == "10.7.7.7" && a["count"] == 3)
    });
    let env = w.line("10.8.8.8").into_iter().collect::<Vec<u8>>();
    let env = String::from_utf8(env).unwrap().replace("/today_download", "/.env");
    w.append_raw(&p, env.as_bytes());
    wait_until("the new rule's alert", || d.alerts().iter().any(|a| a["rule"] == "env"));
    // A bad configuration: reported, the running one stays.
    std::fs::write(&cfg, "[[rule]]\nthreshold = 0\n").unwrap();
    d.signal("-HUP");
    wait_until("the refusal", || d.log_text().contains("Configuration not reloaded"));
    assert!(d.log_text().contains("threshold: must be from 1 to 4294967295"), "{}", d.log_text());
    let fourth = w.line("10.7.7.7");
    w.append_raw(&p, &fourth);
    wait_until("the fourth hit's alert", || {
        d.alerts().iter().any(|a| a["key"] == "10.7.7.7" && a["count"] == 4)
    });
    d.stop();
}

/// `systemctl reload` then `systemctl stop` (logrotate's postrotate, then
/// a shutdown): a stop signal that comes while the reload is under way ends
/// the daemon; it was lost with the reload's restart, and systemd waited
/// out its stop timeout and killed the daemon unsaved.
#[test]
fn a_stop_during_a_reload_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let mut w = Writer::new();
    for round in 1..=3 {
        let d = Daemon::start(dir.path(), p.to_str().unwrap());
        w.phase(&p, &["10.0.0.1"], 1, round);
        d.wait_for_marker(round);
        d.signal("-HUP");
        d.signal("-TERM");
        let log = d.stop_after_signal();
        assert!(log.trim_end().lines().last().unwrap().contains("Stopped;"), "{log}");
    }
}

/// A state that cannot be saved at stop (here its file's temporary name
/// taken by a directory) is told as such: the log said it would be retried
/// at the next checkpoint, which never comes.
#[test]
fn a_failed_save_at_stop_says_what_the_next_start_finds() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    std::fs::create_dir_all(dir.path().join("state/state.bin.tmp")).unwrap();
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    Writer::new().phase(&p, &["10.0.0.1"], 3, 1);
    d.wait_for_marker(1);
    let log = d.stop();
    let told = "Cannot save state at stop; the next start resumes from the state saved last";
    assert!(log.contains(told), "{log}");
}

/// A glob over another source's file makes both sources follow it, and a
/// rule reading both counts its lines twice: `check` fails on it, and
/// `run` warns at its start, both naming the file, the sources and the rule.
#[test]
fn a_file_two_sources_follow_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(dir.path().join("access.log"), b"").unwrap();
    let config = format!(
        "[[source]]\nname = \"www\"\npath = \"{d}/access.log\"\n\
         [[source]]\nname = \"all\"\npath = \"{d}/*.log\"\n\
         [[rule]]\ncontains = \"today_download\"\nthreshold = 3\n\
         [[output]]\ntype = \"jsonl\"\npath = \"{d}/alerts.jsonl\"\n[state]\ndir = \"{d}/state\"\n"
    );
    let told = format!(
        "{d}/access.log is followed by both source www and source all, and rule(s) \
         today_download read both: they count its lines twice"
    );
    let cfg = write(dir.path(), "check.toml", config.as_bytes());
    let out = Command::new(crate::util::bin()).args(["-c", &cfg, "check"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&told), "{text}");
    let daemon = Daemon::start_config(dir.path(), &config, &[]);
    wait_until("the warning", || daemon.log_text().contains(&told));
    daemon.stop();
}

/// A webhook output to a loopback port, timing out after a second.
fn webhook_output(port: u16) -> String {
    format!(
        "[[output]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\ntimeout = \"1s\"\n"
    )
}

/// Alerts held for a failing webhook, then an output added before it in
/// the configuration: after the restart they go to that webhook, not to the
/// output now in its place (they did: saved alerts named their outputs by
/// place).
#[test]
fn held_alerts_follow_their_output_when_outputs_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let p = dir.path().join("access.log");
    let dead = crate::util::free_port();
    let first = Daemon::config(dir.path(), p.to_str().unwrap(), &webhook_output(dead));
    let daemon = Daemon::start_config(dir.path(), &first, &[]);
    let mut w = Writer::new();
    let hits = w.hits("10.9.9.9", 3);
    w.append_raw(&p, &hits);
    wait_until("the jsonl alert", || daemon.counts_of("10.9.9.9") == [3]);
    wait_until("the webhook failing", || daemon.log_text().contains("Cannot deliver alerts"));
    let log = daemon.stop();
    assert!(log.contains("saved for the next start"), "{log}");
    let (port, accepted) = webhook_server(0);
    let action = format!(
        "[[output]]\ntype = \"exec\"\ncommand = [\"sh\", \"-c\", \"echo $LOGWARDEN_CLIENT >> {d}/runs\"]\n"
    );
    let second = Daemon::config(dir.path(), p.to_str().unwrap(), &(action + &webhook_output(port)));
    let daemon = Daemon::start_config(dir.path(), &second, &[]);
    wait_until("the held alert at the webhook", || !accepted.lock().unwrap().is_empty());
    assert!(accepted.lock().unwrap()[0].contains("10.9.9.9"));
    w.phase(&p, &["10.0.0.1"], 1, 1);
    daemon.wait_for_marker(1);
    let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap_or_default();
    assert!(!runs.contains("10.9.9.9"), "the action got the webhook's alert: {runs}");
    assert_eq!(daemon.counts_of("10.9.9.9"), [3], "the jsonl file got it again");
    daemon.stop();
    // The first webhook's journal, unowned and (made) a week old, is
    // removed at the next start; the second's, as old, is kept.
    let state = dir.path().join("state");
    let hooks = crate::util::journals(&state, "webhook");
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    let week_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(8 * 86_400);
    for j in &hooks {
        std::fs::File::options().append(true).open(j).unwrap().set_modified(week_ago).unwrap();
    }
    let daemon = Daemon::start_config(dir.path(), &second, &[]);
    wait_until("the removal", || daemon.log_text().contains("Removed the journal"));
    daemon.stop();
    let left = crate::util::journals(&state, "webhook");
    assert_eq!(left.len(), 1, "{left:?}");
    // The webhook that took the held alert journaled it; the other took none.
    assert!(!std::fs::read_to_string(&left[0]).unwrap().is_empty(), "{left:?}");
}

/// Two webhooks, the first down while an alert comes, then their order
/// swapped in the configuration and the first back: its held alert goes to
/// it, and not again to the other (it did: outputs were named by kind and
/// place, so each took the other's held alerts).
#[test]
fn held_alerts_follow_their_output_when_outputs_are_reordered() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let dead = crate::util::free_port();
    let (live, took) = webhook_server(0);
    let first = Daemon::config(
        dir.path(),
        p.to_str().unwrap(),
        &(webhook_output(dead) + &webhook_output(live)),
    );
    let daemon = Daemon::start_config(dir.path(), &first, &[]);
    let mut w = Writer::new();
    let hits = w.hits("10.9.9.9", 3);
    w.append_raw(&p, &hits);
    wait_until("the live webhook's alert", || took.lock().unwrap().len() == 1);
    wait_until("the webhook failing", || daemon.log_text().contains("Cannot deliver alerts"));
    let log = daemon.stop();
    assert!(log.contains("saved for the next start"), "{log}");
    let (_, back) = crate::util::webhook_server_on(dead, 0);
    let second = Daemon::config(
        dir.path(),
        p.to_str().unwrap(),
        &(webhook_output(live) + &webhook_output(dead)),
    );
    let daemon = Daemon::start_config(dir.path(), &second, &[]);
    wait_until("the held alert at the webhook back", || !back.lock().unwrap().is_empty());
    assert!(back.lock().unwrap()[0].contains("10.9.9.9"));
    w.phase(&p, &["10.0.0.1"], 1, 1);
    daemon.wait_for_marker(1);
    let took = took.lock().unwrap().clone();
    let again = took.iter().filter(|a| a.contains("10.9.9.9")).count();
    assert_eq!(again, 1, "the other webhook got it again: {took:?}");
    daemon.stop();
}

/// An output's `rules` (names or globs) choose the rules whose alerts it
/// gets: a ban for the login rules only, the old SMS for downloads only.
/// Before, every output got every rule's alerts.
#[test]
fn an_output_gets_only_the_rules_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let p = dir.path().join("access.log");
    let config = format!(
        "[source]\npath = \"{}\"\nstart_at = \"beginning\"\npoll_interval = \"100ms\"\n\
         [[rule]]\nname = \"downloads\"\ncontains = \"today_download\"\nthreshold = 3\ncooldown = 0\n\
         [[rule]]\nname = \"login-wp\"\ncontains = \"wp-login\"\nthreshold = 3\ncooldown = 0\n\
         [[output]]\ntype = \"jsonl\"\npath = \"{d}/alerts.jsonl\"\nrules = [\"downloads\"]\n\
         [[output]]\ntype = \"jsonl\"\npath = \"{d}/logins.jsonl\"\nrules = [\"login-*\"]\n\
         [[output]]\ntype = \"jsonl\"\npath = \"{d}/all.jsonl\"\n[state]\ndir = \"{d}/state\"\n",
        p.display()
    );
    let daemon = Daemon::start_config(dir.path(), &config, &[]);
    let mut w = Writer::new();
    let logins: String = (0..3)
        .map(|_| {
            w.clock += 1;
            request_at(
                "10.8.8.8",
                "/wp-login.php",
                jiff::Timestamp::from_second(w.clock as i64).unwrap(),
            )
        })
        .collect();
    w.append_raw(&p, logins.as_bytes());
    let downloads = w.hits("10.7.7.7", 3);
    w.append_raw(&p, &downloads);
    w.phase(&p, &["10.0.0.1"], 1, 1);
    daemon.wait_for_marker(1);
    let keys = |name: &str| -> Vec<String> {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
        json_lines_so_far(&text).iter().map(|a| a["key"].as_str().unwrap().to_string()).collect()
    };
    wait_until("the login alert", || keys("logins.jsonl").len() == 1);
    assert_eq!(keys("alerts.jsonl"), ["10.7.7.7", &marker_ip(1)]);
    assert_eq!(keys("logins.jsonl"), ["10.8.8.8"]);
    wait_until("every alert in the output for all", || keys("all.jsonl").len() == 3);
    daemon.stop();
    // A rule no output gets is told, by check and at the start.
    let alone =
        config.replace(&format!("[[output]]\ntype = \"jsonl\"\npath = \"{d}/all.jsonl\"\n"), "");
    let alone = alone.replace("rules = [\"login-*\"]", "rules = [\"downloads\"]");
    let cfg = write(dir.path(), "alone.toml", alone.as_bytes());
    let checked = crate::util::run(&["-c", &cfg, "check"], b"");
    let told = "rule \"login-wp\": no output gets its alerts";
    assert!(String::from_utf8_lossy(&checked.stderr).contains(told), "{checked:?}");
    let daemon = Daemon::start_config(dir.path(), &alone, &[]);
    wait_until("the warning", || daemon.log_text().contains("No output gets this rule's alerts"));
    daemon.stop();
}

/// One line dated years ahead (a web server's clock gone wrong) moved the
/// stream's newest time there, and the next cleanup forgot every client's
/// window: 50 clients at 2 of 3 hits then alerted on none of their third.
/// Lines dated more than a day after this machine's clock are now skipped
/// and counted (`future`), an event or not.
#[test]
fn a_line_dated_years_ahead_does_not_wipe_the_windows() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    let mut w = Writer::new();
    let clients: Vec<String> = (1..=50).map(|i| format!("10.5.0.{i}")).collect();
    let two: Vec<u8> = clients.iter().flat_map(|c| w.hits(c, 2)).collect();
    w.append_raw(&p, &two);
    w.phase(&p, &[], 0, 1);
    d.wait_for_marker(1);
    let ahead =
        jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(5 * 8766)).unwrap();
    for (request, marker) in [("/index.html", 2), ("/today_download", 3)] {
        w.append_raw(&p, request_at("10.99.0.1", request, ahead).as_bytes());
        w.phase(&p, &[], 0, marker);
        d.wait_for_marker(marker);
    }
    let third: Vec<u8> = clients.iter().flat_map(|c| w.hits(c, 1)).collect();
    w.append_raw(&p, &third);
    w.phase(&p, &[], 0, 4);
    d.wait_for_marker(4);
    for c in &clients {
        assert_eq!(d.counts_of(c), [3], "{c}");
    }
    assert!(d.counts_of("10.99.0.1").is_empty());
    let log = d.stop();
    assert!(log.contains("skipped 1 (future 1)"), "{log}");
}

/// `state.dir` deleted while the daemon ran (`rm -rf` to "reset" it): what
/// it saved after went into a change log already removed, and the directory
/// made again at the stop had no lock. Now the next checkpoint notices,
/// saves everything anew and holds the directory again: a second daemon is
/// refused, and a restart after `kill -9` resumes the windows.
#[test]
fn a_state_dir_deleted_while_running_is_saved_and_held_again() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    let state = dir.path().join("state");
    let mut w = Writer::new();
    let hits = w.hits("10.6.6.6", 3);
    w.append_raw(&p, &hits);
    w.phase(&p, &["10.0.0.1"], 1, 1);
    d.wait_for_marker(1);
    wait_until("a first save", || state.join("state.wal").exists());
    std::fs::remove_dir_all(&state).unwrap();
    let two = w.hits("10.7.7.7", 2);
    w.append_raw(&p, &two);
    w.phase(&p, &["10.0.0.1"], 1, 2);
    d.wait_for_marker(2);
    let end = Instant::now() + DEADLINE;
    while !state.join("state.bin").exists() {
        assert!(Instant::now() < end, "the state was not saved anew: {}", d.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(d.log_text().contains("lock file had been removed"), "{}", d.log_text());
    let cfg = d.dir.join("logwarden.toml");
    let mut second = Command::new(crate::util::bin())
        .args(["-c", cfg.to_str().unwrap(), "run"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(!crate::util::exit_status(&mut second).success(), "a second daemon started");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("is in use by another logwarden run"), "{stderr}");
    d.kill9();
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    let third = w.hits("10.7.7.7", 1);
    w.append_raw(&p, &third);
    w.phase(&p, &["10.0.0.1"], 1, 3);
    d.wait_for_marker(3);
    assert_eq!(d.counts_of("10.7.7.7"), [3], "the windows saved anew resumed");
    assert_eq!(d.counts_of("10.6.6.6"), [3], "no line read twice");
    d.stop();
}

/// The same, and a second daemon started on the directory made again before
/// the first noticed: the first stops at its next checkpoint (exit 2,
/// saying why), and the second goes on alone.
#[test]
fn a_state_dir_taken_by_another_daemon_stops_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let mut d = Daemon::start(dir.path(), p.to_str().unwrap());
    let state = dir.path().join("state");
    let mut w = Writer::new();
    w.phase(&p, &["10.0.0.1"], 1, 1);
    d.wait_for_marker(1);
    wait_until("a first save", || state.join("state.wal").exists());
    std::fs::remove_dir_all(&state).unwrap();
    let other = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(d.dir.join("logwarden.toml")).unwrap();
    let config = config.replace(
        &format!("{}/alerts.jsonl", dir.path().display()),
        &format!("{}/alerts.jsonl", other.path().display()),
    );
    let second = Daemon::start_config(other.path(), &config, &[]);
    wait_until("the second daemon's lock", || state.join("lock").exists());
    w.phase(&p, &["10.0.0.1"], 1, 2);
    let status = crate::util::exit_status(&mut d.child);
    assert_eq!(status.code(), Some(2), "{}", d.log_text());
    let told = format!(
        "state.dir {} is in use by another logwarden run (pid {})",
        state.display(),
        second.child.id()
    );
    assert!(d.log_text().contains(&told), "{}", d.log_text());
    second.wait_for_marker(2);
    second.stop();
}

/// Two daemons on one state directory would alert twice and overwrite each
/// other's saved positions: the second refuses to start, naming the first;
/// a reload keeps its own directory's lock and refuses a directory another
/// daemon holds; `kill -9` leaves nothing that blocks the next start.
#[test]
fn a_second_daemon_on_one_state_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    let state = dir.path().join("state");
    wait_until("the first daemon's lock", || state.join("lock").exists());
    let cfg = d.dir.join("logwarden.toml");
    let mut second = Command::new(crate::util::bin())
        .args(["-c", cfg.to_str().unwrap(), "run"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(!crate::util::exit_status(&mut second).success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    let held = format!(
        "state.dir {} is in use by another logwarden run (pid {})",
        state.display(),
        d.child.id()
    );
    assert!(stderr.contains(&held), "{stderr}");
    let check = crate::util::run(&["-c", cfg.to_str().unwrap(), "check"], b"");
    let told = format!(
        "state.dir {}: in use by a running logwarden (pid {})",
        state.display(),
        d.child.id()
    );
    assert!(String::from_utf8_lossy(&check.stderr).contains(&told), "{check:?}");
    // The first one counts alone: one alert at the third hit.
    let mut w = Writer::new();
    let hits = w.hits("10.6.6.6", 3);
    w.append_raw(&p, &hits);
    w.phase(&p, &["10.0.0.1"], 1, 1);
    d.wait_for_marker(1);
    assert_eq!(d.alerts().iter().filter(|a| a["key"] == "10.6.6.6").count(), 1);
    // Reloaded on its own directory: its lock is its own.
    d.signal("-HUP");
    wait_until("the reload", || d.log_text().contains("Configuration reloaded"));
    // Reloaded onto a directory another daemon holds: refused.
    let other = tempfile::tempdir().unwrap();
    let o = Daemon::start(other.path(), other.path().join("access.log").to_str().unwrap());
    wait_until("the other daemon's lock", || other.path().join("state/lock").exists());
    let text = std::fs::read_to_string(&cfg).unwrap();
    let moved = text
        .replace(&state.display().to_string(), &other.path().join("state").display().to_string());
    std::fs::write(&cfg, moved).unwrap();
    d.signal("-HUP");
    wait_until("the refusal", || d.log_text().contains("Configuration not reloaded"));
    assert!(d.log_text().contains("is in use by another logwarden run"), "{}", d.log_text());
    o.stop();
    std::fs::write(&cfg, text).unwrap();
    d.kill9();
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    wait_until("the restart", || d.log_text().contains("Resuming from saved state"));
    d.stop();
}

/// A jsonl file rotated away is followed by a new one under its path at the
/// next alert: renamed (logrotate's `create`), then deleted (what its
/// `compress` does to the renamed file; alerts written to it would be lost);
/// copied and truncated in place.
#[test]
fn a_jsonl_file_rotated_away_is_followed_by_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let d = Daemon::start(dir.path(), p.to_str().unwrap());
    let (out, old) = (dir.path().join("alerts.jsonl"), dir.path().join("alerts.jsonl.1"));
    let mut w = Writer::new();
    w.phase(&p, &[], 0, 1);
    d.wait_for_marker(1);
    std::fs::rename(&out, &old).unwrap();
    w.phase(&p, &[], 0, 2);
    d.wait_for_marker(2);
    let rotated = std::fs::read_to_string(&old).unwrap();
    assert!(rotated.contains(&marker_ip(1)) && !rotated.contains(&marker_ip(2)), "{rotated}");
    std::fs::remove_file(&out).unwrap();
    w.phase(&p, &[], 0, 3);
    d.wait_for_marker(3);
    let keys: Vec<String> = d.alerts().iter().map(|a| a["key"].as_str().unwrap().into()).collect();
    assert_eq!(keys, [marker_ip(3)]);
    assert!(d.log_text().contains("rotated away"), "{}", d.log_text());
    // copytruncate: the file is appended to, so the next alert starts it
    // again (no hole where the old content was).
    copytruncate(&out, &dir.path().join("alerts.jsonl.2"));
    w.phase(&p, &[], 0, 4);
    d.wait_for_marker(4);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with('{') && text.lines().count() == 1, "{text:?}");
    d.stop();
}

/// A write of an alert that fails half done — against a file-size limit
/// here, as against a full disk — leaves no broken line: the alerts are held,
/// and once writing works again each arrives once, every line whole JSON.
#[test]
fn an_alert_write_that_fails_half_done_leaves_no_broken_line() {
    use rustix::process::{Resource, Rlimit};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let config = Daemon::config(dir.path(), p.to_str().unwrap(), "");
    // 4 KiB a file: some ten alerts, then one cut short (the daemon's own
    // files stay smaller; warnings only in its log).
    let limit = ["prlimit", "--fsize=4096:unlimited", "--"];
    let d = Daemon::start_wrapped(dir.path(), &config, &[("LOGWARDEN_LOG", "warn")], &limit);
    let clients: Vec<String> = (1..=20).map(|i| format!("10.20.0.{i}")).collect();
    let mut w = Writer::new();
    let hits: Vec<u8> = clients.iter().flat_map(|c| w.hits(c, 3)).collect();
    w.append_raw(&p, &hits);
    wait_until("the failed write", || d.log_text().contains("Cannot deliver alerts"));
    let unlimited = Rlimit { current: None, maximum: None };
    let pid = rustix::process::Pid::from_raw(d.child.id() as i32);
    rustix::process::prlimit(pid, Resource::Fsize, unlimited).unwrap();
    // A glued line would fail to parse here.
    wait_until("every alert", || d.alerts().len() == clients.len());
    let mut keys: Vec<String> =
        d.alerts().iter().map(|a| a["key"].as_str().unwrap().into()).collect();
    keys.sort();
    let mut expect = clients.clone();
    expect.sort();
    assert_eq!(keys, expect);
    d.stop();
}

/// The journal of delivered alerts, written half when its write fails (a
/// file-size limit here, as a full disk), garbles no other id: once writing
/// works again, every line is a whole id of an alert delivered.
#[test]
fn a_journal_write_that_fails_half_done_garbles_no_other_id() {
    use rustix::process::{Resource, Rlimit};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    std::fs::write(&p, "").unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    // Each action leaves an empty file named after its alert's id.
    let action = format!("mktemp {}/$LOGWARDEN_ID.XXXXXX", runs.display());
    let config = Daemon::config(dir.path(), p.to_str().unwrap(), "")
        .replace("threshold = 3", "threshold = 1")
        .replace(
            "type = \"jsonl\"",
            &format!("type = \"exec\"\ncommand = [\"sh\", \"-c\", \"{action}\"]"),
        )
        .replace(&format!("path = \"{}/alerts.jsonl\"\n", dir.path().display()), "");
    let limit = ["prlimit", "--fsize=2048:unlimited", "--"];
    let d = Daemon::start_wrapped(dir.path(), &config, &[("LOGWARDEN_LOG", "warn")], &limit);
    let ids = || -> Vec<String> {
        let names = std::fs::read_dir(&runs).unwrap().map(|e| e.unwrap().file_name());
        names.map(|n| n.to_string_lossy().rsplit_once('.').unwrap().0.to_string()).collect()
    };
    let mut w = Writer::new();
    // Alert n, one at a time: its action's id.
    let mut alert = |n: usize| {
        let before = ids();
        let l = w.line(&format!("10.30.{}.{}", n / 250, n % 250));
        w.append_raw(&p, &l);
        wait_until("the action", || ids().len() == n);
        ids().into_iter().find(|id| !before.contains(id)).unwrap()
    };
    // Until a write of the journal fails.
    let mut n = 0;
    while !d.log_text().contains("Cannot write the journal") {
        n += 1;
        assert!(n < 200, "the journal never met the limit: {}", d.log_text());
        alert(n);
    }
    let unlimited = Rlimit { current: None, maximum: None };
    let pid = rustix::process::Pid::from_raw(d.child.id() as i32);
    rustix::process::prlimit(pid, Resource::Fsize, unlimited).unwrap();
    let after: Vec<String> = (n + 1..=n + 5).map(&mut alert).collect();
    let [journal] = &crate::util::journals(&dir.path().join("state"), "exec")[..] else {
        panic!("not one exec journal")
    };
    let lines = || -> Vec<String> {
        std::fs::read_to_string(journal).unwrap().lines().map(String::from).collect()
    };
    wait_until("the last id journaled", || lines().contains(&after[4]));
    let known = ids();
    for line in lines() {
        assert!(known.contains(&line), "not an id delivered: {line:?}");
    }
    assert!(after.iter().all(|id| lines().contains(id)), "{after:?} in {:?}", lines());
    d.stop();
}

/// Out of file descriptors — a glob matching more logs than the limit lets
/// open — the follower cannot list the directory: it takes no file as
/// rotated away (which read each again from its beginning once listed
/// again: its lines counted twice). With a soft limit below the hard one,
/// the daemon raises it and follows every file.
#[test]
fn out_of_file_descriptors_no_file_is_read_twice() {
    let (dir, logs) = with_logs_dir();
    let filler =
        "10.40.0.1 - - [27/Jun/2025:04:53:20 +0000] \"GET /x HTTP/1.1\" 200 5 \"-\" \"t\"\n";
    for i in 1..=150 {
        std::fs::write(logs.join(format!("v{i:03}.log")), filler).unwrap();
    }
    let mut w = Writer::new();
    let hits = w.hits("10.40.0.2", 3);
    w.append_raw(&logs.join("v001.log"), &hits);
    let glob = format!("{}/*.log", logs.display());
    let config = Daemon::config(dir.path(), &glob, "");
    let stuck = ["prlimit", "--nofile=64:64", "--"];
    let d = Daemon::start_wrapped(dir.path(), &config, &[], &stuck);
    wait_until("the three hits' alert", || !d.alerts().is_empty());
    // Past rotate_wait (1 s), a file taken as rotated away is finished;
    // a change in the directory then wakes the follower to list it again.
    for n in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::write(logs.join(format!("wake-{n}")), "").unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let counts = d.counts_of("10.40.0.2");
    let log = d.stop();
    assert_eq!(counts, [3], "10.40.0.2's three hits, each counted once");
    assert!(!log.contains("rotated away; draining"), "{log}");
    assert!(log.contains("Cannot list the log directory"), "{log}");
    // Raised from 64 to 4096: every file followed, the last one too.
    let raised = ["prlimit", "--nofile=64:4096", "--"];
    let d = Daemon::start_wrapped(dir.path(), &config, &[], &raised);
    w.phase(&logs.join("v150.log"), &[], 0, 1);
    d.wait_for_marker(1);
    assert!(!d.log_text().contains("Cannot open log file"), "{}", d.log_text());
    d.stop();
}

/// A followed path that cannot be looked at for a while — here a symlink
/// made a loop; for the service's user, a directory whose permissions are
/// being changed — is not taken as rotated away: once it names its file
/// again, reading goes on where it was, nothing read twice.
#[test]
fn a_path_that_cannot_be_looked_at_for_a_while_is_not_read_twice() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let (real, link) = (dir.path().join("real.log"), dir.path().join("access.log"));
    std::fs::write(&real, "").unwrap();
    symlink(&real, &link).unwrap();
    let d = Daemon::start(dir.path(), link.to_str().unwrap());
    let mut w = Writer::new();
    let hits = w.hits("10.50.0.1", 3);
    w.append_raw(&real, &hits);
    wait_until("the three hits' alert", || !d.alerts().is_empty());
    // Swapped at once (a missing path is another case: a rotation).
    let turn = |to: &Path| {
        let tmp = dir.path().join("link.tmp");
        symlink(to, &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
    };
    turn(Path::new("access.log"));
    wait_until("the path reported", || d.log_text().contains("Cannot open log file"));
    // Past rotate_wait (1 s): a file taken as rotated away is finished.
    std::thread::sleep(Duration::from_millis(1500));
    turn(&real);
    w.phase(&real, &[], 0, 1);
    d.wait_for_marker(1);
    assert_eq!(d.counts_of("10.50.0.1"), [3], "{}", d.log_text());
    // Not even drained meanwhile: an error says nothing of a rotation.
    assert!(!d.log_text().contains("rotated away; draining"), "{}", d.log_text());
    d.stop();
}

/// A symlink turned to another file and back: the first file, still
/// draining or finished in between, is read on from where it was, not again
/// from its beginning.
#[test]
fn a_file_followed_again_goes_on_where_it_was() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let (a, b, link) =
        (dir.path().join("a.log"), dir.path().join("b.log"), dir.path().join("access.log"));
    std::fs::write(&b, "").unwrap();
    symlink(&a, &link).unwrap();
    let mut w = Writer::new();
    let hits = w.hits("10.60.0.1", 3);
    w.append_raw(&a, &hits);
    let d = Daemon::start(dir.path(), link.to_str().unwrap());
    wait_until("the three hits' alert", || !d.alerts().is_empty());
    let turn = |to: &Path| {
        let tmp = dir.path().join("link.tmp");
        symlink(to, &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
    };
    // Turned back while a drains (rotate_wait is 1 s), then once it is done.
    turn(&b);
    wait_until("a draining", || d.log_text().contains("rotated away; draining"));
    turn(&a);
    let fourth = w.line("10.60.0.1");
    w.append_raw(&a, &fourth);
    w.phase(&a, &[], 0, 1);
    d.wait_for_marker(1);
    turn(&b);
    wait_until("a finished", || d.log_text().contains("Finished rotated log file"));
    turn(&a);
    let fifth = w.line("10.60.0.1");
    w.append_raw(&a, &fifth);
    w.phase(&a, &[], 0, 2);
    d.wait_for_marker(2);
    assert_eq!(d.counts_of("10.60.0.1"), [3, 4, 5], "{}", d.log_text());
    assert!(d.log_text().contains("current again; following it on"), "{}", d.log_text());
    d.stop();
}

/// READY, watchdog pings (also while idle) and STOPPING reach the service
/// manager, with one source and with two (whose followers must both be
/// reading for a ping).
#[test]
fn tells_systemd_ready_watchdog_and_stopping() {
    for sources in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("notify.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let p = dir.path().join("access.log");
        let env = [("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")];
        let mut config = Daemon::config(dir.path(), p.to_str().unwrap(), "");
        if sources == 2 {
            let other = dir.path().join("other.log");
            let second = format!("[[source]]\nname = \"b\"\npath = \"{}\"\n", other.display());
            config = config.replacen("[source]\n", "[[source]]\nname = \"a\"\n", 1);
            config = config.replacen("[[rule]]", &(second + "[[rule]]"), 1);
        }
        let d = Daemon::start_config(dir.path(), &config, &env);
        let mut seen = String::new();
        let mut buf = [0u8; 512];
        let mut recv_until = |want: &str, seen: &mut String| {
            let end = Instant::now() + DEADLINE;
            while !seen.contains(want) {
                assert!(Instant::now() < end, "{sources}: no {want} from the daemon; got {seen:?}");
                if let Ok(n) = sock.recv(&mut buf) {
                    seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        };
        recv_until("READY=1", &mut seen);
        seen.clear();
        recv_until("WATCHDOG=1", &mut seen);
        seen.clear();
        // Pings go on while idle.
        recv_until("WATCHDOG=1", &mut seen);
        let pid = d.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        recv_until("STOPPING=1", &mut seen);
        d.stop_after_signal();
    }
}

/// A backlog read in one long pass, as after an outage of a busy log (here
/// a million lines of a thousand clients): watchdog pings go on while it is
/// read, and state is saved meanwhile. Before, the follower pinged once a
/// pass and saved between passes: a pass longer than `WatchdogSec` would
/// have the service manager kill the daemon, and start it again from the
/// same state.
#[test]
fn a_long_backlog_is_read_with_watchdog_pings_and_saves_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let p = dir.path().join("access.log");
    let mut w = Writer::new();
    let lines: Vec<u8> =
        (0..1_000_000).flat_map(|i| w.line(&format!("10.1.{}.{}", i / 250 % 4, i % 250))).collect();
    w.append_raw(&p, &lines);
    let len = std::fs::metadata(&p).unwrap().len();
    // Every line an event, none an alert: the windows are what takes time.
    let config = Daemon::config(dir.path(), p.to_str().unwrap(), "")
        .replace("threshold = 3", "threshold = 4000000");
    let env = [("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")];
    let started = Instant::now();
    let d = Daemon::start_config(dir.path(), &config, &env);
    let (mut last_ping, mut longest, mut saved_between, mut looked) =
        (None::<Instant>, Duration::ZERO, false, Instant::now());
    let mut buf = [0u8; 512];
    loop {
        assert!(started.elapsed() < DEADLINE, "the backlog was not read: {}", d.log_text());
        if sock.recv(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"WATCHDOG=1")) {
            longest = longest.max(last_ping.map_or(Duration::ZERO, |l| l.elapsed()));
            last_ping = Some(Instant::now());
        }
        if looked.elapsed() > Duration::from_millis(100) {
            let saved = saved_offsets(dir.path());
            if saved == [len] {
                break;
            }
            saved_between |= saved.iter().any(|&o| o > 0 && o < len);
            looked = Instant::now();
        }
    }
    let took = started.elapsed();
    assert!(took > Duration::from_secs(2), "read too fast to tell: {took:?}");
    // Pings are due every 200 ms (seen: at most 0.38 s apart with two busy
    // processes on both cores; 4.1 s while the backlog was read before).
    assert!(longest < Duration::from_secs(1), "no watchdog ping for {longest:?} in {took:?}");
    assert!(saved_between, "no position saved before the end of the backlog");
    d.stop();
}

/// File offsets in the saved state.
fn saved_offsets(dir: &Path) -> Vec<u64> {
    logwarden::state::load(&dir.join("state"))
        .0
        .map(|s| s.positions.iter().map(|p| p.offset).collect())
        .unwrap_or_default()
}

/// Keys in the saved state, by rule.
fn saved_keys(dir: &Path) -> Option<usize> {
    let state = logwarden::state::load(&dir.join("state")).0?;
    Some(state.rules.iter().map(|r| r.windows.len()).sum())
}

/// An idle source's time goes on from its newest line as the seconds pass:
/// once two windows (3 s each here) have passed idle, its clients go.
#[test]
fn cleanup_evicts_idle_clients_when_no_lines_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let config = Daemon::config(dir.path(), p.to_str().unwrap(), "")
        .replace("window = \"10m\"", "window = \"3s\"")
        .replace("[state]\n", "[state]\ncleanup_interval = \"1s\"\n");
    let d = Daemon::start_config(dir.path(), &config, &[]);
    let mut w = Writer::new();
    w.phase(&p, A, 10, 1);
    d.wait_for_marker(1);
    wait_until("the clients in the saved state", || saved_keys(dir.path()).is_some_and(|n| n > 0));
    wait_until("the idle cleanup", || saved_keys(dir.path()) == Some(0));
    d.stop();
}

/// A log whose clock lags this machine's by more than two windows (an
/// hour here): a pause of `cleanup_interval` forgot every client's window,
/// as the idle cleanup took this machine's clock for the log's time; 2
/// hits, a pause, a third hit in the same second alerted never.
#[test]
fn an_idle_pause_forgets_no_window_of_a_log_whose_clock_lags() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let d = Daemon::start_with(dir.path(), p.to_str().unwrap(), &[], "cleanup_interval = \"1s\"\n");
    let hour_ago = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(1)).unwrap();
    let hit = request_at("10.8.0.1", "/today_download", hour_ago);
    let mut w = Writer::new();
    w.append_raw(&p, hit.repeat(2).as_bytes());
    wait_until("the hits in the saved state", || saved_keys(dir.path()).is_some_and(|n| n > 0));
    std::thread::sleep(Duration::from_millis(2500)); // idle ticks come each second
    w.append_raw(&p, hit.as_bytes());
    wait_until("the third hit's alert", || d.counts_of("10.8.0.1") == [3]);
    d.stop();
}

#[test]
fn glob_follows_every_match_including_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("{}/*access.log", dir.path().display());
    let (a, b, c) = (
        dir.path().join("a_access.log"),
        dir.path().join("b_access.log"),
        dir.path().join("c_access.log"),
    );
    std::fs::write(&a, b"").unwrap();
    std::fs::write(&b, b"").unwrap();
    let d = Daemon::start(dir.path(), &spec);
    let mut w = Writer::new();
    w.phase(&a, A, 6, 1);
    w.phase(&b, B, 6, 2);
    d.wait_for_marker(1);
    d.wait_for_marker(2);
    w.phase(&c, A, 6, 3);
    // Enough hits to alert, in a file the glob does not match.
    let other = w.hits("10.0.0.99", 3);
    std::fs::write(dir.path().join("other.log"), other).unwrap();
    d.wait_for_marker(3);
    assert_like_replay(&d, &w);
    assert!(!d.alerts().iter().any(|a| a["key"] == "10.0.0.99"));
    d.stop();
}

/// An exec output appended to the test configuration.
fn exec_output(command: &str, timeout: &str) -> String {
    format!("[[output]]\ntype = \"exec\"\ncommand = {command}\ntimeout = \"{timeout}\"\n")
}

#[test]
fn exec_runs_with_the_alert_in_environment_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let out = dir.path().join("action.out");
    let script = format!(
        r#"["sh", "-c", "printf '%s %s %s %s\\n' \"$LOGWARDEN_RULE\" \"$LOGWARDEN_CLIENT\" \"$LOGWARDEN_COUNT\" \"$LOGWARDEN_WINDOW\" >> {o}; cat >> {o}"]"#,
        o = out.display()
    );
    let d = Daemon::start_with(dir.path(), p.to_str().unwrap(), &[], &exec_output(&script, "5s"));
    let mut w = Writer::new();
    w.phase(&p, &["10.0.0.1"], 0, 1);
    d.wait_for_marker(1);
    wait_until("the action's output", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 2)
    });
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("today_download 198.51.100.1 3 600"));
    let json: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!((json["key"].as_str(), json["count"].as_u64()), (Some("198.51.100.1"), Some(3)));
    d.stop();
}

#[test]
fn exec_hanging_action_is_killed_and_failing_one_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let outputs = exec_output(r#"["sleep", "60"]"#, "300ms")
        + &exec_output(r#"["sh", "-c", "echo oops-from-action >&2; exit 3"]"#, "5s");
    let d = Daemon::start_with(dir.path(), p.to_str().unwrap(), &[], &outputs);
    let mut w = Writer::new();
    w.phase(&p, &["10.0.0.1"], 0, 1);
    d.wait_for_marker(1);
    wait_until("the timeout", || d.log_text().contains("Action killed at its timeout"));
    wait_until("the failure", || d.log_text().contains("Action failed"));
    let log = d.log_text();
    let failed = log.lines().find(|l| l.contains("Action failed")).unwrap();
    assert!(failed.contains("exit status: 3") && failed.contains("oops-from-action"), "{failed}");
    d.stop();
}

/// A reload does not end a running action (a ban half done, an SMS not
/// sent): it runs to its end, watched (its failure logged); a stop does
/// end one.
#[test]
fn a_reload_lets_a_running_action_finish() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let d_ = dir.path().display();
    let action = format!(
        r#"["sh", "-c", "touch {d_}/started-$LOGWARDEN_CLIENT; sleep 1; echo $LOGWARDEN_CLIENT >> {d_}/done; exit 3"]"#
    );
    let d = Daemon::start_with(dir.path(), p.to_str().unwrap(), &[], &exec_output(&action, "10s"));
    let mut w = Writer::new();
    w.phase(&p, &[], 0, 1);
    let started = dir.path().join(format!("started-{}", marker_ip(1)));
    wait_until("the action started", || started.exists());
    d.signal("-HUP");
    wait_until("the reload", || d.log_text().contains("Configuration reloaded"));
    let done = dir.path().join("done");
    wait_until("the action's end", || {
        std::fs::read_to_string(&done).is_ok_and(|t| t.contains(&marker_ip(1)))
    });
    wait_until("its failure logged", || d.log_text().contains("Action failed"));
    // A stop ends a running action.
    w.phase(&p, &[], 0, 2);
    let started = dir.path().join(format!("started-{}", marker_ip(2)));
    wait_until("the second action started", || started.exists());
    let log = d.stop();
    assert!(log.contains("Ending a running action as logwarden stops"), "{log}");
    std::thread::sleep(Duration::from_millis(1500));
    let text = std::fs::read_to_string(&done).unwrap();
    assert!(!text.contains(&marker_ip(2)), "{text}");
}

#[test]
fn a_stuck_output_blocks_neither_the_others_nor_reading() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let stuck = "[[output]]\ntype = \"exec\"\ncommand = [\"sleep\", \"60\"]\ntimeout = \"50s\"\nmax_concurrent = 1\n";
    let d = Daemon::start_with(dir.path(), p.to_str().unwrap(), &[], stuck);
    let mut w = Writer::new();
    for m in 1..=5 {
        w.phase(&p, &["10.0.0.1"], 0, m);
    }
    for m in 1..=5 {
        d.wait_for_marker(m);
    }
    assert_like_replay(&d, &w);
    let log = d.stop();
    assert!(!log.contains("Action killed"), "{log}");
}

#[test]
fn webhook_posts_templated_json_and_survives_server_failures() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let (port, accepted) = webhook_server(2);
    let hook = format!(
        "[[output]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hooks/x\"\ntimeout = \"2s\"\nbody = '{{\"text\": \"{{message}}\", \"n\": {{count}}}}'\n"
    );
    let d = Daemon::start_with(dir.path(), p.to_str().unwrap(), &[], &hook);
    let mut w = Writer::new();
    for m in 1..=3 {
        w.phase(&p, &["10.0.0.1"], 0, m);
    }
    d.wait_for_marker(3);
    wait_until("three accepted posts", || accepted.lock().unwrap().len() >= 3);
    let bodies = accepted.lock().unwrap().clone();
    for m in 1..=3 {
        let key = marker_ip(m);
        let hits = bodies
            .iter()
            .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
            .filter(|j| j["text"].as_str().is_some_and(|t| t.contains(&key)) && j["n"] == 3)
            .count();
        assert_eq!(hits, 1, "marker {key} in {bodies:?}");
    }
    assert!(d.log_text().contains("Cannot deliver alerts"), "{}", d.log_text());
    d.stop();
}

#[test]
fn a_last_line_without_newline_counts_once_its_file_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &format!("{}/access-%Y-%m-%d", dir.path().display()));
    let (old, new) = (dir.path().join("access-2025-07-09"), dir.path().join("access-2025-07-10"));
    // Both files appear while the daemon runs (not at its first look).
    wait_until("the waiting message", || d.log_text().contains("Waiting for log file"));
    let mut w = Writer::new();
    let hits = w.hits("10.5.5.5", 3);
    // The third hit has no newline yet: it must wait.
    w.append_raw(&old, &hits[..hits.len() - 1]);
    w.phase(&new, B, 3, 1);
    d.wait_for_marker(1);
    let third = |d: &Daemon| d.alerts().iter().any(|a| a["key"] == "10.5.5.5" && a["count"] == 3);
    assert!(!third(&d), "counted before its file was finished");
    // A second after the switch the old file is quiet, finished, and its last line counts.
    wait_until("the finished file's last line", || third(&d));
    assert!(d.log_text().contains("Finished rotated log file"));
    d.stop();
}

/// logrotate's names: `path.1` becomes `path.2` and so on, making room.
fn shift_rotated(path: &Path) {
    let name = |k: usize| PathBuf::from(format!("{}.{k}", path.display()));
    let top = (1..).find(|&k| !name(k).exists()).unwrap_or(1);
    for k in (1..top).rev() {
        std::fs::rename(name(k), name(k + 1)).unwrap();
    }
}

/// Eight seconds of lines to `logs` (each batch to one of them) while, at
/// moments a fixed seed picks, one of them is rotated (rename or
/// copytruncate, with logrotate's names), the daemon killed with `kill -9`
/// and started again (by `start`), or reloaded. Each line is a second after
/// the one before, or with `batch_seconds` each batch's lines share one
/// second. Returns the daemon running.
fn soak(
    logs: &[PathBuf],
    start: impl Fn() -> Daemon,
    w: &mut Writer,
    batch_seconds: bool,
) -> Daemon {
    let mut d = start();
    // xorshift64: the order of the operations need only be repeatable.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let pick = |next: &mut dyn FnMut(u64) -> u64| match logs {
        [one] => one,
        _ => &logs[next(logs.len() as u64) as usize],
    };
    let clients: Vec<String> = (0..8).map(|i| format!("10.0.1.{i}")).collect();
    let end = Instant::now() + Duration::from_secs(8);
    let mut done = [0; 4];
    while Instant::now() < end {
        let (mut lines, second) = (Vec::new(), w.clock);
        for _ in 0..=next(100) {
            if batch_seconds {
                w.clock = second;
            }
            lines.extend(w.line(&clients[next(8) as usize]));
        }
        w.append_raw(pick(&mut next), &lines);
        std::thread::sleep(Duration::from_millis(next(30)));
        let op = match next(100) {
            0..=2 => 0,
            3..=4 => 1,
            5..=7 => 2,
            8..=9 => 3,
            _ => continue,
        };
        // A log renamed away has no file until its next lines.
        let p = if op < 2 { pick(&mut next) } else { &logs[0] };
        if !p.exists() {
            continue;
        }
        done[op] += 1;
        match op {
            0 | 1 => {
                let one = PathBuf::from(format!("{}.1", p.display()));
                shift_rotated(p);
                if op == 0 {
                    std::fs::rename(p, one).unwrap();
                } else {
                    copytruncate(p, &one);
                }
            }
            2 => {
                d.kill9();
                d = start();
            }
            _ => d.signal("-HUP"),
        }
    }
    assert!(done.iter().all(|&n| n > 0), "renames, copytruncates, kills, reloads: {done:?}");
    d
}

/// A soak ([`soak`]) of one log. Every line counts once and every alert is
/// delivered once: the alerts equal replay's. A longer run of this kind (by
/// hand) found the bugs the tests `kill9_while_draining_a_copytruncate_copy`,
/// `two_renames_between_two_looks` and
/// `reloads_in_quick_succession_count_every_line_once` pin down.
#[test]
fn a_soak_of_rotations_kills_and_reloads_counts_like_replay() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("access.log");
    let mut w = Writer::new();
    let d = soak(
        std::slice::from_ref(&p),
        || Daemon::start(dir.path(), p.to_str().unwrap()),
        &mut w,
        false,
    );
    w.phase(&p, B, 3, 1);
    d.wait_for_marker(1);
    assert_like_replay(&d, &w);
    assert_delivered_once(&d);
    d.stop();
}

/// The tests' configuration with two sources, `www` and `api`, following
/// `logs`, and every hit an alert.
fn www_and_api(dir: &Path, logs: &[PathBuf; 2]) -> String {
    let sources: String = logs
        .iter()
        .zip(["www", "api"])
        .map(|(p, name)| {
            format!(
                "[[source]]\nname = \"{name}\"\npath = \"{}\"\nstart_at = \"beginning\"\npoll_interval = \"100ms\"\nrotate_wait = \"1s\"\n",
                p.display()
            )
        })
        .collect();
    Daemon::config(dir, "unused", "")
        .split_once("[[rule]]")
        .map(|(_, rest)| format!("{sources}[[rule]]{rest}"))
        .unwrap()
        .replace("threshold = 3", "threshold = 1")
}

/// The same over two sources, a rule reading both, every hit an alert (so
/// the alerts do not depend on the order the sources' lines meet in): each
/// hit alerts once, at its time, as replay of everything written says. The
/// log's clock runs at about 30 seconds a second (a second a batch): at a
/// second a line (3,000 a second) a source read a fifth of a second after
/// the other was ten minutes behind it, and its hits came late. A
/// longer run of this kind (by hand, 2026-12-01) found two bugs, pinned down
/// by the unit tests `a_file_found_is_followed_though_its_name_is_given_to_another_before`
/// and `a_file_that_becomes_recognisable_is_saved_at_once`, which this
/// eight-second run did not meet in four runs of the build before them; it
/// met the gap the alert ids then left (a copy read as a file of its own
/// alerted again) in 2 of 30 runs.
#[test]
fn a_soak_of_two_sources_counts_every_hit_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = [dir.path().join("www.log"), dir.path().join("api.log")];
    let config = www_and_api(dir.path(), &logs);
    let mut w = Writer::new();
    let d = soak(&logs, || Daemon::start_config(dir.path(), &config, &[]), &mut w, true);
    w.phase(&logs[0], B, 3, 1);
    w.phase(&logs[1], B, 3, 2);
    let hits = |alerts: &[serde_json::Value]| {
        let mut v: Vec<String> =
            alerts.iter().map(|a| format!("{} {} {}", a["rule"], a["key"], a["time"])).collect();
        v.sort();
        v
    };
    let all = write(dir.path(), "all-written.log", &w.written);
    let cfg = dir.path().join("logwarden.toml");
    let want = hits(&json_lines(&ok(&["-c", cfg.to_str().unwrap(), "replay", "--json", &all])));
    let last = |alerts: &[serde_json::Value]| alerts.iter().any(|a| a["key"] == marker_ip(2));
    wait_until("the last marker", || last(&d.alerts()));
    let enough = Instant::now() + Duration::from_secs(10);
    while hits(&d.alerts()) != want && Instant::now() < enough {
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = hits(&d.alerts());
    let (extra, missing) = (less(&got, &want), less(&want, &got));
    assert!(
        extra.is_empty() && missing.is_empty(),
        "alerted but not in replay: {extra:?}; not alerted: {missing:?}"
    );
    assert_delivered_once(&d);
    d.stop();
}

/// What of sorted `a` is not in sorted `b` (as multisets).
fn less(a: &[String], b: &[String]) -> Vec<String> {
    let mut b = b.iter().peekable();
    let mut left = Vec::new();
    for x in a {
        while b.next_if(|y| *y < x).is_some() {}
        if b.next_if(|y| *y == x).is_none() {
            left.push(x.clone());
        }
    }
    left
}

/// Two hours of two virtual hosts' logs written while the daemon was
/// stopped, a client's hits in both: its first four hits (two in each, a
/// second apart) count together, as replay of the lines in time order
/// counts them. Before the glob's files were read in about their times'
/// order, one file was read whole first: the other's hits came two hours
/// behind the client's newest and were late (no alert).
#[test]
fn a_globs_backlogs_after_a_long_stop_count_in_time_order() {
    let (dir, logs) = with_logs_dir();
    let glob = format!("{}/*.log", logs.display());
    let (a, b) = (logs.join("a.log"), logs.join("b.log"));
    let mut w = Writer::new();
    let d = Daemon::start(dir.path(), &glob);
    w.phase(&a, &[], 0, 1);
    w.phase(&b, &[], 0, 2);
    d.wait_for_marker(2);
    d.stop();
    // (second, client, path, file) of each line written while stopped: the
    // client's hits, others' traffic a line a minute for two hours in each
    // file, then the client again.
    let x = "203.0.113.7";
    let mut lines = vec![(10, x, "/today_download", &a), (12, x, "/today_download", &a)];
    lines.extend([(11, x, "/today_download", &b), (13, x, "/today_download", &b)]);
    for m in 1..=120 {
        lines.extend([(10 + 60 * m, "10.0.0.1", "/", &a), (40 + 60 * m, "10.0.0.2", "/", &b)]);
    }
    lines.extend([(7300, x, "/today_download", &a), (7301, x, "/today_download", &b)]);
    lines.sort_by_key(|l| l.0);
    let at = |s: u64| jiff::Timestamp::from_second((w.clock + s) as i64).unwrap();
    let text: Vec<(String, &PathBuf)> = lines
        .iter()
        .map(|&(s, client, path, file)| (request_at(client, path, at(s)), file))
        .collect();
    for file in [&a, &b] {
        let of_file: String = text.iter().filter(|l| l.1 == file).map(|l| l.0.as_str()).collect();
        w.append_raw(file, of_file.as_bytes());
    }
    let in_order: String = text.iter().map(|l| l.0.as_str()).collect();
    let ordered = write(dir.path(), "in-time-order.log", in_order.as_bytes());
    w.clock += 7301;
    w.phase(&b, &[], 0, 3);
    let d = Daemon::start(dir.path(), &glob);
    d.wait_for_marker(3);
    let cfg = dir.path().join("logwarden.toml");
    let replayed = json_lines(&ok(&["-c", cfg.to_str().unwrap(), "replay", "--json", &ordered]));
    let want: Vec<u64> =
        replayed.iter().filter(|a| a["key"] == x).map(|a| a["count"].as_u64().unwrap()).collect();
    assert_eq!(want, [3, 4]);
    assert_eq!(d.counts_of(x), want, "{}", d.log_text());
    d.stop();
}

/// Many files under a glob (a log per virtual host), all rotated at once
/// (renamed to `.1`, created again) as soon as the first is read, a few
/// written to late under their rotated names: every line counted once, as
/// replay counts them. The files appear while the daemon runs, so on a
/// loaded machine some are created and rotated away before it looks (before
/// such files were looked for, 3 of 20 runs under two or four busy
/// processes lost lines).
#[test]
fn many_files_under_a_glob_rotated_at_once_count_like_replay() {
    const FILES: usize = 200;
    let (dir, logs) = with_logs_dir();
    let d = Daemon::start(dir.path(), &format!("{}/*.log", logs.display()));
    let mut w = Writer::new();
    let log = |i: usize| logs.join(format!("v{i}.log"));
    let client = |i: usize| format!("10.1.{}.1", i % 20);
    for i in 0..FILES {
        let hit = w.line(&client(i));
        w.append_raw(&log(i), &hit);
    }
    w.phase(&log(0), &[], 0, 1);
    d.wait_for_marker(1);
    for i in 0..FILES {
        std::fs::rename(log(i), logs.join(format!("v{i}.log.1"))).unwrap();
        let hit = w.line(&client(i));
        w.append_raw(&log(i), &hit);
    }
    // The files renamed last: well within rotate_wait (1 s) of their
    // rotation, also on a loaded machine (lines later than that are lost,
    // by design, and replay would count them).
    for i in FILES - 10..FILES {
        let late = w.line(&client(i));
        w.append_raw(&logs.join(format!("v{i}.log.1")), &late);
    }
    // Other files' lines may come after the marker's (read in the same
    // pass, or found at a later look): waited for, then checked again past
    // a full look (a second) for any counted twice.
    w.phase(&log(0), &[], 0, 2);
    let want = replayed(&d, &w);
    let end = Instant::now() + Duration::from_secs(15);
    while multiset(&d.alerts()) != want && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let got = multiset(&d.alerts());
    let missing: Vec<_> = want.iter().filter(|a| !got.contains(a)).collect();
    let extra: Vec<_> = got.iter().filter(|a| !want.contains(a)).collect();
    assert_eq!(got, want, "missing {missing:?} extra {extra:?} {}", d.log_text());
    d.stop();
}

/// A daemon on `logs/*.log` run until `a.log`'s first lines are counted,
/// then stopped: the glob, and the writer.
fn ran_on_a_glob(dir: &Path, logs: &Path) -> (String, Writer) {
    let glob = format!("{}/*.log", logs.display());
    let d = Daemon::start(dir, &glob);
    let mut w = Writer::new();
    w.phase(&logs.join("a.log"), A, 3, 1);
    d.wait_for_marker(1);
    d.stop();
    (glob, w)
}

/// Two sources' files that begin with the same line, on which a rule
/// alerts: each alerts, also when the second is read after a restart. (The
/// alert ids named the content by its first bytes, not its source: the
/// second alert was taken for the first, sent already, and dropped.)
#[test]
fn files_of_two_sources_that_begin_alike_alert_each() {
    let dir = tempfile::tempdir().unwrap();
    let (www, api) = (dir.path().join("www.log"), dir.path().join("api.log"));
    let config = www_and_api(dir.path(), &[www.clone(), api.clone()]);
    let mut w = Writer::new();
    let first = w.line("10.9.9.9");
    let marker = |w: &mut Writer, ip: &str| w.line(ip);
    std::fs::write(&www, [first.clone(), marker(&mut w, "10.8.8.1")].concat()).unwrap();
    let d = Daemon::start_config(dir.path(), &config, &[]);
    wait_until("the first marker", || d.counts_of("10.8.8.1").len() == 1);
    d.stop();
    std::fs::write(&api, [first, marker(&mut w, "10.8.8.2")].concat()).unwrap();
    let d = Daemon::start_config(dir.path(), &config, &[]);
    wait_until("the second marker", || d.counts_of("10.8.8.2").len() == 1);
    assert_eq!(d.counts_of("10.9.9.9"), [1, 2], "{}", d.log_text());
    d.stop();
}

/// A new file under a glob written and rotated away after the follower's
/// last look, before the state was saved (its name's new file made), then
/// a stop: its lines are read at the restart. The times are set on the
/// files — the save 500 ms after that look (saved with the state), the
/// file 200 ms after it: by the save's time alone it was not read (files
/// written 100 ms before it are, for the clock's tick).
#[test]
fn a_file_rotated_away_between_the_last_look_and_the_save_is_read_at_the_restart() {
    let (dir, logs) = with_logs_dir();
    let log = |n: &str| logs.join(n);
    let (glob, mut w) = ran_on_a_glob(dir.path(), &logs);
    let state = dir.path().join("state");
    let saved = logwarden::state::load(&state).0.unwrap();
    let [(source, looked)] = saved.looked.as_slice() else { panic!("{:?}", saved.looked) };
    assert_eq!(source, "default");
    w.phase(&log("b.log"), B, 4, 2);
    std::fs::rename(log("b.log"), log("b.log.1")).unwrap();
    std::fs::write(log("b.log"), "").unwrap();
    let set = |p: &Path, t| OpenOptions::new().write(true).open(p).unwrap().set_modified(t);
    set(&log("b.log.1"), *looked + Duration::from_millis(200)).unwrap();
    for name in ["state.bin", "state.wal"] {
        set(&state.join(name), *looked + Duration::from_millis(500)).unwrap();
    }
    while std::time::SystemTime::now() < *looked + Duration::from_millis(600) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = Daemon::start(dir.path(), &glob);
    w.phase(&log("a.log"), &[], 0, 3);
    finish(d, &w, 3);
}

/// Stopped while a new file under a glob was created, written and rotated
/// away, its name's new file created: with `start_at = "beginning"`, its
/// lines are read at the restart. A generation of another new name, last
/// written before the state was saved, is not read.
#[test]
fn a_file_created_and_rotated_while_stopped_is_read_at_the_restart() {
    let (dir, logs) = with_logs_dir();
    let log = |n: &str| logs.join(n);
    let before = Writer::new().hits("10.77.0.1", 3);
    std::fs::write(log("c.log.1"), before).unwrap();
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let old = std::fs::File::options().write(true).open(log("c.log.1")).unwrap();
    old.set_modified(long_ago).unwrap();
    let (glob, mut w) = ran_on_a_glob(dir.path(), &logs);
    // Past a tick of the clock files are stamped by.
    std::thread::sleep(Duration::from_millis(50));
    w.phase(&log("b.log"), B, 4, 2);
    std::fs::rename(log("b.log"), log("b.log.1")).unwrap();
    std::fs::write(log("b.log"), "").unwrap();
    std::fs::write(log("c.log"), "").unwrap();
    let d = Daemon::start(dir.path(), &glob);
    w.phase(&log("a.log"), &[], 0, 3);
    finish(d, &w, 3);
}
