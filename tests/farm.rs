//! The farm's Redis, as `check` sees it: a single server, a Redis Cluster,
//! and no answer. The tests that start `redis-server` are `#[ignore]`d in a
//! plain `cargo test` (it may be missing); `scripts/test` installs it and
//! runs them.

use crate::util::daemon::Daemon;
use crate::util::redis::{Cluster, Redis};
use crate::util::{run, wait_until, write};

/// `check` with a `[cluster]` of `redis` (a TOML value): exit code, stdout,
/// stderr.
fn check(dir: &std::path::Path, redis: &str) -> (Option<i32>, String, String) {
    let d = dir.display();
    let toml = format!(
        "[source]\npath = \"{d}/access.log\"\n[state]\ndir = \"{d}/state\"\n[cluster]\nredis = {redis}\nnode = \"web01\"\n"
    );
    let cfg = write(dir, "logwarden.toml", toml.as_bytes());
    let out = run(&["-c", &cfg, "check"], b"");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// A single server with a password: `check` says so, and prints the
/// effective configuration with the password hidden.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn check_says_a_single_redis_answers() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}/0", redis.port);
    let (code, stdout, stderr) = check(dir.path(), &format!("{url:?}"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("cluster: node \"web01\", key prefix \"logwarden\""), "{stderr}");
    let answer =
        format!("redis://:***@127.0.0.1:{}/0: answers, a single server (Redis ", redis.port);
    assert!(stderr.contains(&answer), "{stderr}");
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"), "{stdout}{stderr}");
    let wrong = format!("redis://:wrong@127.0.0.1:{}/0", redis.port);
    let (code, _, stderr) = check(dir.path(), &format!("{wrong:?}"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no Redis answered: redis://:***@"), "{stderr}");
}

/// A three-master Redis Cluster, given by its seed nodes — the first of
/// which is down: `check` reaches the next and counts the masters.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn check_says_a_cluster_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut seeds = vec![format!("redis://127.0.0.1:{closed}")];
    seeds.extend(cluster.seeds());
    let (code, _, stderr) = check(dir.path(), &format!("{seeds:?}"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("answers, a Redis Cluster of 3 master(s) (Redis "), "{stderr}");
    // Several single servers are not a cluster.
    let a = Redis::start(dir.path(), &[]);
    let (code, _, stderr) = check(dir.path(), &format!("{:?}", [a.url(), a.url()]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is a single Redis server, not a Redis Cluster node"), "{stderr}");
}

/// Nothing listening: `check` fails and says what it tried.
#[test]
fn check_fails_when_redis_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, _, stderr) = check(dir.path(), &format!("\"redis://127.0.0.1:{closed}\""));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("no Redis answered: redis://127.0.0.1:{closed}: ")),
        "{stderr}"
    );
}

/// `run` with `[cluster]` says at the default level that it decides alone
/// (windows are not shared yet), and runs.
#[test]
fn run_with_a_cluster_says_it_decides_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let config = Daemon::config(dir.path(), path.to_str().unwrap(), "")
        + "[cluster]\nredis = \"redis://127.0.0.1:9\"\n";
    let d = Daemon::start_config(dir.path(), &config, &[("LOGWARDEN_LOG", "")]);
    wait_until("the warning", || d.log_text().contains("this node decides alone"));
    d.stop();
}
