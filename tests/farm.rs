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

/// A small deterministic random source (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The farm's windows in Redis decide exactly as one node's windows would
/// over the same events in the same order: four nodes send chunks of a
/// random stream (8 clients, times jumping back and forth, two rules, one
/// without cooldown); every alert (which event, what count) and every late
/// event agree with `Windows`. A chunk sent again (a node re-reading lines
/// after a crash) is applied once.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn farm_windows_decide_as_one_nodes_windows() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    decide_as_one_node(vec![redis.url()]);
}

/// The same through a three-master Redis Cluster (the clients' windows
/// spread over the masters' hash slots).
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn farm_windows_in_a_cluster_decide_as_one_nodes_windows() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());
    decide_as_one_node(cluster.seeds());
}

fn decide_as_one_node(redis: Vec<String>) {
    use logwarden::farm::FarmSettings;
    use logwarden::farm::link::{FarmAlert, Hit, Link};
    use logwarden::parse::client::Key;
    use logwarden::rules::WindowSpec;
    use logwarden::window::{Outcome, Windows};
    let specs = [
        WindowSpec { threshold: 5, window: 20, cooldown: 15 },
        WindowSpec { threshold: 3, window: 10, cooldown: 0 },
    ];
    let settings = |node: &str| FarmSettings {
        redis: redis.clone(),
        node: node.into(),
        prefix: "t".into(),
        timeout: std::time::Duration::from_secs(2),
    };
    let rules: Vec<(String, WindowSpec)> =
        specs.iter().enumerate().map(|(i, s)| (format!("r{i}"), *s)).collect();
    let mut links: Vec<Link> =
        (0..4).map(|n| Link::new(settings(&format!("web{n}")), rules.clone(), 64)).collect();
    let mut model: Vec<Windows> = specs.iter().map(|s| Windows::new(*s)).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut offsets = [0u64; 4];
    let mut now = 1_000_000u32;
    let (mut alerts, mut late) = (0, 0);
    for _ in 0..300 {
        let node = rng.below(4) as usize;
        let hits: Vec<Hit> = (0..1 + rng.below(12))
            .map(|_| {
                now = now + rng.below(4) as u32 - 1;
                offsets[node] += 1 + rng.below(200);
                let back = if rng.below(10) == 0 { rng.below(30) as u32 } else { 0 };
                Hit {
                    rule: rng.below(2) as u16,
                    key: Key(0xffff_0a00_0000 + u128::from(rng.below(8) as u8)),
                    time: now - back,
                    offset: offsets[node],
                }
            })
            .collect();
        let got = links[node].decide(&format!("f{node}"), &hits).expect("redis answers");
        let mut want = Vec::new();
        let mut want_late = 0;
        for (i, h) in hits.iter().enumerate() {
            match model[usize::from(h.rule)].record(h.key, h.time) {
                Outcome::Alert(count) => want.push(FarmAlert { hit: i, count }),
                Outcome::Late => want_late += 1,
                Outcome::Counted(_) => {}
            }
        }
        let mut got_alerts = got.alerts.clone();
        got_alerts.sort_by_key(|a| (a.hit, a.count));
        assert_eq!(got_alerts, want, "alerts of {hits:?}");
        assert_eq!(got.late, want_late);
        assert_eq!(got.repeated, 0);
        alerts += want.len();
        late += want_late;
        if rng.below(8) == 0 {
            let again = links[node].decide(&format!("f{node}"), &hits).expect("redis answers");
            assert_eq!((again.alerts.len(), again.repeated), (0, hits.len() as u64));
        }
    }
    assert!(
        alerts > 20 && late > 5,
        "the stream exercises alerts ({alerts}) and late events ({late})"
    );
}
