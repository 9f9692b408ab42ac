//! The web farm: `check` against a single Redis, a Redis Cluster and no
//! answer; the farm's windows in Redis against one node's; four
//! `logwarden run` nodes counting together, across `kill -9`, outages and
//! `loadgen farm`'s model. The tests that start `redis-server` are
//! `#[ignore]`d in a plain `cargo test` (it may be missing); `scripts/test`
//! installs it and runs them.

use crate::util::daemon::Daemon;
use crate::util::redis::{Cluster, Redis};
use crate::util::{free_port, http_get, run, wait_until, write};
use std::time::{Duration, Instant};

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

/// A user whose ACL forbids the farm's script (SCRIPT or EVALSHA) would
/// leave `run` deciding alone: `check` fails and says what to allow (it
/// said the farm answered).
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn check_says_a_user_may_not_run_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    redis.command(&["ACL", "SETUSER", "noload", "on", ">pw", "~*", "+@all", "-script"]);
    redis.command(&["ACL", "SETUSER", "noeval", "on", ">pw", "~*", "+@all", "-evalsha"]);
    redis.command(&["ACL", "SETUSER", "may", "on", ">pw", "~*", "+@all"]);
    for (user, command) in [("noload", "'script|load'"), ("noeval", "'evalsha'")] {
        let url = format!("\"redis://{user}:pw@127.0.0.1:{}\"", redis.port);
        let (code, _, stderr) = check(dir.path(), &url);
        assert_eq!(code, Some(1), "{stderr}");
        let told = format!(
            "cluster: this user may not run the farm's script (NoPerm: this user has no \
             permissions to run the {command} command): run would decide alone; give the user \
             +script|load and +evalsha in the server's ACL"
        );
        assert!(stderr.contains(&told), "{stderr}");
    }
    let (code, _, stderr) =
        check(dir.path(), &format!("\"redis://may:pw@127.0.0.1:{}\"", redis.port));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("script"), "{stderr}");
}

/// A three-master Redis Cluster, given by its seed nodes — the first of
/// which is down: `check` reaches the next and counts the masters.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn check_says_a_cluster_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());
    let closed = free_port();
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
    let closed = free_port();
    let (code, _, stderr) = check(dir.path(), &format!("\"redis://127.0.0.1:{closed}\""));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("no Redis answered: redis://127.0.0.1:{closed}: ")),
        "{stderr}"
    );
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
/// random stream (times jumping back and forth, four rules: two count
/// events of 8 clients, two distinct values among 5 of 3 clients, one of each kind
/// without cooldown); every alert (which event, what count) and every late
/// event agree with `Windows`. A chunk sent again (a node re-reading lines
/// after a crash) is applied once.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn farm_windows_decide_as_one_nodes_windows() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    decide_as_one_node(vec![redis.url()]);
    // Memory in Redis is bounded: every window expires once its window and
    // cooldown have passed (2 × window + cooldown after its last change);
    // the rules the node registered, 7 days after.
    let mut con = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg("t:rules").query(&mut con).unwrap();
    assert!(ttl > 0 && ttl <= 7 * 24 * 3_600_000, "t:rules: {ttl} ms");
    let keys: Vec<String> = redis::cmd("KEYS").arg("t:{*").query(&mut con).unwrap();
    assert_eq!(keys.len(), 23, "{keys:?}");
    for k in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut con).unwrap();
        let most = match k.rsplit(':').next() {
            Some("r0") => 55_000,
            Some("r2") => 70_000,
            Some("r3") => 40_000,
            _ => 20_000,
        };
        assert!(ttl > 0 && ttl <= most, "{k}: {ttl} ms");
    }
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
    use logwarden::farm::link::{FarmAlert, Hit, Link};
    use logwarden::parse::client::Key;
    use logwarden::rules::WindowSpec;
    use logwarden::window::{Outcome, Windows};
    let specs = [
        WindowSpec { threshold: 5, window: 20, cooldown: 15, distinct: false },
        WindowSpec { threshold: 3, window: 10, cooldown: 0, distinct: false },
        WindowSpec { threshold: 4, window: 30, cooldown: 10, distinct: true },
        WindowSpec { threshold: 3, window: 20, cooldown: 0, distinct: true },
    ];
    let mut links: Vec<Link> =
        (0..4).map(|n| test_link(redis.clone(), &format!("web{n}"), &specs)).collect();
    let mut model: Vec<Windows> = specs.iter().map(|s| Windows::new(*s)).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut offsets = [0u64; 4];
    let mut now = 1_000_000u32;
    let (mut alerts, mut late, mut distinct_alerts) = (0, 0, 0);
    // First the edge of a distinct count's window: a value last seen just
    // `window` before T still counts (rule r3: 3 values in 20 s).
    let edge: Vec<Hit> = [(0, 1), (10, 2), (20, 3)]
        .iter()
        .map(|&(dt, v)| Hit {
            rule: 3,
            key: Key(0xffff_0a00_00ff),
            time: now + dt,
            offset: 10 + dt as u64,
            value: v << 100,
        })
        .collect();
    let got = links[0].decide("edge", &edge).expect("redis answers");
    let want: Vec<Outcome> =
        edge.iter().map(|h| model[3].record_value(h.key, h.time, h.value)).collect();
    assert_eq!(want[2], Outcome::Alert(3));
    assert_eq!(got.alerts, [FarmAlert { hit: 2, count: 3 }]);
    for _ in 0..1000 {
        let node = rng.below(4) as usize;
        let hits: Vec<Hit> = (0..1 + rng.below(12))
            .map(|_| {
                now = now + rng.below(4) as u32 - 1;
                offsets[node] += 1 + rng.below(200);
                let back = if rng.below(10) == 0 { rng.below(30) as u32 } else { 0 };
                let rule = rng.below(4) as u16;
                // Distinct counts get fewer clients, so their windows fill.
                let (value, clients) = match specs[usize::from(rule)].distinct {
                    true => ((u128::from(rng.below(5)) + 1) << 100 | 0xabc, 3),
                    false => (0, 8),
                };
                Hit {
                    rule,
                    key: Key(0xffff_0a00_0000 + u128::from(rng.below(clients) as u8)),
                    time: now - back,
                    offset: offsets[node],
                    value,
                }
            })
            .collect();
        // Now and then the node crashed after shipping only a prefix (it
        // may end inside a group of one second): the whole is shipped again.
        let shipped = if rng.below(6) == 0 { rng.below(hits.len() as u64) as usize } else { 0 };
        let before = links[node].decide(&format!("f{node}"), &hits[..shipped]).unwrap();
        let mut got = links[node].decide(&format!("f{node}"), &hits).expect("redis answers");
        let (got_late, before_late) = (got.late() + before.late(), before.late());
        got.alerts.extend(before.alerts);
        let mut want = Vec::new();
        let mut want_late = 0;
        for (i, h) in hits.iter().enumerate() {
            match model[usize::from(h.rule)].record_value(h.key, h.time, h.value) {
                Outcome::Alert(count) => {
                    want.push(FarmAlert { hit: i, count });
                    distinct_alerts += usize::from(specs[usize::from(h.rule)].distinct);
                }
                Outcome::Late => want_late += 1,
                Outcome::Counted(_) => {}
            }
        }
        let mut got_alerts = got.alerts.clone();
        got_alerts.sort_by_key(|a| (a.hit, a.count));
        assert_eq!(got_alerts, want, "alerts of {hits:?}");
        // A window none of whose events was applied is left as it was, so
        // its late events, sent again, are late again rather than repeated.
        let late_again = got_late.checked_sub(want_late).expect("no event missed as late");
        assert!(late_again <= before_late, "{late_again} of the prefix late again");
        assert_eq!(got.repeated + late_again, shipped as u64);
        alerts += want.len();
        late += want_late;
        if rng.below(8) == 0 {
            let again = links[node].decide(&format!("f{node}"), &hits).expect("redis answers");
            assert_eq!(again.alerts.len(), 0);
            assert_eq!(again.repeated + again.late(), hits.len() as u64);
            assert!(again.late() <= want_late + late_again);
        }
    }
    assert!(
        alerts > 20 && distinct_alerts > 10 && late > 5,
        "the stream exercises alerts ({alerts}, {distinct_alerts} of distinct counts) and late events ({late})"
    );
}

/// A link of node `node` through `redis` (key prefix `t`), for rules r0, r1,
/// … with these windows (a round trip may take 5 s).
fn test_link(
    redis: Vec<String>,
    node: &str,
    specs: &[logwarden::rules::WindowSpec],
) -> logwarden::farm::link::Link {
    use logwarden::farm::{FarmRule, FarmSettings};
    let settings = FarmSettings {
        redis,
        node: node.into(),
        prefix: "t".into(),
        timeout: std::time::Duration::from_secs(5),
        host: "test".into(),
    };
    let rules = specs.iter().enumerate().map(|(i, s)| FarmRule {
        name: format!("r{i}"),
        spec: *s,
        matches: String::new(),
        counting: String::new(),
        clients: String::new(),
        by_client: true,
    });
    logwarden::farm::link::Link::new(settings, rules.collect(), 64)
}

/// A Redis of its own and a link of node web0 to it (see [`test_link`]);
/// the directory goes last.
fn link_to_a_redis(
    specs: &[logwarden::rules::WindowSpec],
) -> (Redis, logwarden::farm::link::Link, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let link = test_link(vec![redis.url()], "web0", specs);
    (redis, link, dir)
}

/// One event of rule `rule` for client 10.0.0.1 at `time`, line `offset`.
fn test_hit(rule: u16, time: u32, offset: u64) -> logwarden::farm::link::Hit {
    use logwarden::parse::client::Key;
    logwarden::farm::link::Hit { rule, key: Key(0xffff_0a00_0001), time, offset, value: 0 }
}

/// The edges the random stream seldom meets: an event exactly one window
/// before T still counts, and of a group (one client's events at one
/// second) applied in part before a crash, only the rest is applied again.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_windows_edges_count_as_one_nodes() {
    use logwarden::farm::link::FarmAlert;
    use logwarden::rules::WindowSpec;
    let spec = WindowSpec { threshold: 2, window: 10, cooldown: 0, distinct: false };
    let (_redis, mut link, _dir) = link_to_a_redis(&[spec]);
    let d = link.decide("f", &[test_hit(0, 1_000, 1), test_hit(0, 1_010, 2)]).unwrap();
    assert_eq!(d.alerts, [FarmAlert { hit: 1, count: 2 }], "the event at T - window counts");
    let d = link.decide("f", &[test_hit(0, 1_011, 3)]).unwrap();
    assert_eq!(d.alerts, [FarmAlert { hit: 0, count: 2 }], "the event at 1000 left the window");
    let group: Vec<_> = (10..15).map(|offset| test_hit(0, 1_012, offset)).collect();
    let d = link.decide("f", &group[..3]).unwrap();
    assert_eq!((d.repeated, d.alerts.last().map(|a| a.count)), (0, Some(5)));
    let d = link.decide("f", &group).unwrap();
    assert_eq!(d.repeated, 3);
    let counts: Vec<u32> = d.alerts.iter().map(|a| a.count).collect();
    assert_eq!(counts, [6, 7], "the group's last two events, once");
}

/// Eight nodes writing one client's window at once, as under an attack
/// spread over a farm: each call applies its events atomically, so none is
/// lost or counted twice — of 2,400 events, the 2,400th alone reaches the
/// threshold of 2,400, once — and no node is refused or held back.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn eight_nodes_writing_one_window_at_once_lose_and_double_nothing() {
    use logwarden::rules::WindowSpec;
    let spec = WindowSpec { threshold: 2_400, window: 600, cooldown: 0, distinct: false };
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let counts: Vec<u32> = std::thread::scope(|s| {
        let nodes: Vec<_> = (0..8)
            .map(|i| {
                let mut link = test_link(vec![redis.url()], &format!("web{i}"), &[spec]);
                s.spawn(move || {
                    let mut counts = Vec::new();
                    for offset in 1..=300 {
                        let d = link.decide("f", &[test_hit(0, 1_000_000, offset)]);
                        counts.extend(d.expect("redis answers").alerts.iter().map(|a| a.count));
                    }
                    counts
                })
            })
            .collect();
        nodes.into_iter().flat_map(|n| n.join().unwrap()).collect()
    });
    assert_eq!(counts, [2_400], "one alert, at the 2,400th event");
}

/// A window of a day given 12,000 seconds of one client in one call (a node
/// catching up on a busy client) keeps them all: the next hit is counted
/// 12,001st. The script packs a window's new seconds a few hundred at a
/// time: Lua's stack holds some 8,000 values, and 12,000 seconds are 24,000.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_window_takes_many_new_seconds_in_one_call() {
    use logwarden::farm::link::FarmAlert;
    use logwarden::rules::WindowSpec;
    let spec = WindowSpec { threshold: 12_001, window: 86_400, cooldown: 0, distinct: false };
    let (_redis, mut link, _dir) = link_to_a_redis(&[spec]);
    let hits: Vec<_> = (0..12_000).map(|i| test_hit(0, 1_000_000 + i, u64::from(i) + 1)).collect();
    let d = link.decide("f", &hits).expect("redis answers");
    assert_eq!(d.alerts, []);
    let d = link.decide("f", &[test_hit(0, 1_012_000, 20_000)]).expect("redis answers");
    assert_eq!(d.alerts, [FarmAlert { hit: 0, count: 12_001 }]);
}

/// A window keeps what each of the 64 origins (node and file) that wrote
/// to it last applied, no more: a line of one of them read again is not
/// applied again; one of an origin that wrote longer ago is.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_window_remembers_the_64_origins_that_wrote_last() {
    use logwarden::rules::WindowSpec;
    let spec = WindowSpec { threshold: 1000, window: 600, cooldown: 0, distinct: false };
    let (redis, mut link, _dir) = link_to_a_redis(&[spec]);
    let hit = |i: u32| [test_hit(0, 1_000_000 + i, 100)];
    for i in 0..70 {
        let d = link.decide(&format!("file{i}"), &hit(i)).expect("redis answers");
        assert_eq!(d.repeated, 0);
    }
    let mut con = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let state: Vec<u8> = redis::cmd("GET").arg("t:{10.0.0.1}:r0").query(&mut con).unwrap();
    assert_eq!(u16::from_le_bytes([state[17], state[18]]), 64, "origins kept");
    for (i, repeated) in [(69, 1), (6, 1), (5, 0), (0, 0)] {
        let d = link.decide(&format!("file{i}"), &hit(i)).expect("redis answers");
        assert_eq!(d.repeated, repeated, "file{i}");
    }
}

/// A window's expiry is set again only when half its window has passed
/// since it last was (by Redis's clock), so it expires between 1.5 and 2
/// windows, plus the cooldown, after its last change.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_windows_expiry_is_set_again_after_half_a_window() {
    use logwarden::rules::WindowSpec;
    let long = WindowSpec { threshold: 100, window: 20, cooldown: 0, distinct: false };
    let short = WindowSpec { window: 2, ..long };
    let (redis, mut link, _dir) = link_to_a_redis(&[long, short]);
    let mut con = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let mut pttl = |rule: &str| -> i64 {
        redis::cmd("PTTL").arg(format!("t:{{10.0.0.1}}:{rule}")).query(&mut con).unwrap()
    };
    link.decide("f", &[test_hit(0, 1_000_000, 1), test_hit(1, 1_000_000, 2)]).unwrap();
    assert!((39_000..=40_000).contains(&pttl("r0")), "{}", pttl("r0"));
    assert!((3_000..=4_000).contains(&pttl("r1")), "{}", pttl("r1"));
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    link.decide("f", &[test_hit(0, 1_000_001, 3), test_hit(1, 1_000_001, 4)]).unwrap();
    let (r0, r1) = (pttl("r0"), pttl("r1"));
    assert!(r0 > 0 && r0 <= 38_000, "r0 kept its expiry: {r0} ms");
    assert!(r1 >= 3_000, "r1's expiry was set again: {r1} ms");
}

/// A farm on this machine: `n` nodes, each a `logwarden run` with its own
/// log, state and jsonl output, all deciding through `redis`.
struct Farm {
    dir: tempfile::TempDir,
    nodes: Vec<Option<Daemon>>,
    /// `cluster.redis`, as a TOML value.
    redis: String,
    /// The time of the next line (Unix seconds).
    clock: i64,
    /// `cluster.timeout`.
    timeout: &'static str,
    /// Extra environment of every node.
    env: Vec<(&'static str, String)>,
    /// Each node's rule, if not [`RULE`].
    rules: Vec<&'static str>,
    /// Where node 0 serves its status (0: it does not).
    port: u16,
}

/// Every node's rule, unless a test gives another.
const RULE: &str = "[[rule]]\ncontains = \"today_download\"\nthreshold = 10\nwindow = \"10m\"\n";

/// [`RULE`] and a rule counting distinct missing paths.
const WITH_SCAN: &str = "[[rule]]\ncontains = \"today_download\"\nthreshold = 10\nwindow = \"10m\"\n\
                         [[rule]]\nname = \"scan\"\nstatus = [404]\ndistinct = \"path\"\nthreshold = 10\nwindow = \"10m\"\n";

impl Farm {
    fn start(redis: &str, n: usize) -> Farm {
        Farm::start_timed(redis, n, "250ms")
    }

    /// A farm whose nodes count a round trip slower than `timeout` as an
    /// outage.
    fn start_timed(redis: &str, n: usize, timeout: &'static str) -> Farm {
        Farm::start_full(redis, n, timeout, Vec::new())
    }

    /// A farm whose nodes have `env` added to their environment.
    fn start_full(
        redis: &str,
        n: usize,
        timeout: &'static str,
        env: Vec<(&'static str, String)>,
    ) -> Farm {
        Farm::launch(redis, vec![RULE; n], timeout, env)
    }

    /// A farm whose node 0 serves its status over HTTP on `farm.port`.
    fn start_served(redis: &str, n: usize) -> Farm {
        let port = free_port();
        let served = format!("{RULE}[http]\nlisten = \"127.0.0.1:{port}\"\n");
        let mut rules = vec![RULE; n];
        rules[0] = served.leak();
        let mut farm = Farm::launch(redis, rules, "250ms", Vec::new());
        farm.port = port;
        farm
    }

    /// Whether node 0 decides alone, and why (words of Redis's error), as
    /// its status says it: the JSON, the text of `logwarden status` and the
    /// metrics; healthy either way.
    fn status_says(&self, alone_because: Option<&str>) {
        let alone = alone_because.is_some();
        let (_, json) = http_get(self.port, "/api/status", None).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["farm"]["alone_seconds"].is_u64(), alone, "{json}");
        let why = doc["farm"]["alone_because"].as_str();
        assert_eq!(why.is_some(), alone, "{json}");
        assert!(why.unwrap_or("").contains(alone_because.unwrap_or("")), "{json}");
        assert!(doc["farm"]["round_trips"].as_u64() > Some(0), "{json}");
        let cfg = self.node_dir(0).join("logwarden.toml");
        let text = String::from_utf8(run(&["-c", cfg.to_str().unwrap(), "status"], b"").stdout);
        let text = text.unwrap();
        let how = if alone { "farm: DECIDING ALONE for " } else { "farm: deciding with Redis; " };
        assert!(text.contains(how), "{text}");
        assert!(text.contains(alone_because.unwrap_or("")), "{text}");
        assert!(text.contains(" clients (this node's events)\n"), "{text}");
        let (_, metrics) = http_get(self.port, "/metrics", None).unwrap();
        let gauge = format!("logwarden_farm_deciding_alone {}\n", u8::from(alone));
        assert!(metrics.contains(&gauge), "{metrics}");
        // Deciding alone, a node still detects: healthy for a load balancer.
        assert_eq!(http_get(self.port, "/healthz", None).map(|(code, _)| code), Some(200));
    }

    /// A farm whose node `i` has the rule `rules[i]`.
    fn start_rules(redis: &str, rules: &[&'static str]) -> Farm {
        Farm::launch(redis, rules.to_vec(), "250ms", Vec::new())
    }

    /// One node per rule, each started with an empty log.
    fn launch(
        redis: &str,
        rules: Vec<&'static str>,
        timeout: &'static str,
        env: Vec<(&'static str, String)>,
    ) -> Farm {
        let dir = tempfile::tempdir().unwrap();
        let clock = jiff::Timestamp::now().as_second() - 3600;
        // One URL, or a TOML list of a cluster's seed nodes.
        let redis = match redis.starts_with('[') {
            true => redis.to_string(),
            false => format!("{redis:?}"),
        };
        let mut farm = Farm { dir, nodes: Vec::new(), redis, clock, timeout, env, rules, port: 0 };
        for i in 0..farm.rules.len() {
            std::fs::create_dir_all(farm.node_dir(i)).unwrap();
            std::fs::write(farm.node_dir(i).join("access.log"), b"").unwrap();
            let d = farm.spawn(i);
            farm.nodes.push(Some(d));
        }
        farm
    }

    /// Node `i`'s directory, `web1` for node 0 (as `loadgen farm` names them).
    fn node_dir(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("web{}", i + 1))
    }

    /// Starts node `i` (again), from its saved state.
    fn spawn(&self, i: usize) -> Daemon {
        self.spawn_with(i, &[])
    }

    /// Kills node `i` with `kill -9` and starts it again with `env` added.
    fn kill9_and_restart(&mut self, i: usize, env: &[(&str, &str)]) {
        self.nodes[i].take().unwrap().kill9();
        self.nodes[i] = Some(self.spawn_with(i, env));
    }

    /// The same with extra environment variables.
    fn spawn_with(&self, i: usize, env: &[(&str, &str)]) -> Daemon {
        let d = self.node_dir(i);
        let config = format!(
            "[source]\npath = \"{p}/access.log\"\nstart_at = \"beginning\"\npoll_interval = \"100ms\"\nipv6_prefix = 128\n\
             {rule}[[output]]\ntype = \"jsonl\"\npath = \"{p}/alerts.jsonl\"\n[state]\ndir = \"{p}/state\"\n\
             [cluster]\nredis = {r}\nnode = \"web{n}\"\nprefix = \"{prefix}\"\ntimeout = \"{t}\"\n",
            p = d.display(),
            rule = self.rules[i],
            t = self.timeout,
            r = self.redis,
            n = i + 1,
            prefix = self.dir.path().file_name().unwrap().to_string_lossy(),
        );
        let mut all: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(env);
        Daemon::start_config(&d, &config, &all)
    }

    /// Appends `count` hits of `client` to node `i`'s log, a second apart.
    fn hits(&mut self, i: usize, client: &str, count: usize) {
        let requests = vec![("/today_download", 200); count];
        self.requests(i, client, &requests);
    }

    /// Appends requests of `client` (path, status) to node `i`'s log, a
    /// second apart.
    fn requests(&mut self, i: usize, client: &str, requests: &[(&str, u16)]) {
        let text: String = requests.iter().map(|(p, s)| self.line(client, "-", p, *s)).collect();
        self.append(i, &text);
    }

    /// Appends a failed login of `user` from `client` to node `i`'s log.
    fn login(&mut self, i: usize, client: &str, user: &str) {
        let line = self.line(client, user, "/login", 401);
        self.append(i, &line);
    }

    /// A log line of `client` (authenticated as `user`, `-` for none), a
    /// second after the last one.
    fn line(&mut self, client: &str, user: &str, path: &str, status: u16) -> String {
        self.clock += 1;
        let t = jiff::Timestamp::from_second(self.clock).unwrap();
        let stamp = t.strftime("%d/%b/%Y:%H:%M:%S +0000");
        format!("{client} - {user} [{stamp}] \"GET {path} HTTP/1.1\" {status} 5 \"-\" \"t\"\n")
    }

    /// Appends `text` to node `i`'s log.
    fn append(&self, i: usize, text: &str) {
        let path = self.node_dir(i).join("access.log");
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    }

    /// Spreads `count` hits of `client` over the nodes, round robin.
    fn spread(&mut self, client: &str, count: usize) {
        for k in 0..count {
            self.hits(k % self.nodes.len(), client, 1);
        }
    }

    /// Every alert of every node so far.
    fn alerts(&self) -> Vec<serde_json::Value> {
        (0..self.nodes.len()).flat_map(|i| self.alerts_of(i)).collect()
    }

    /// Node `i`'s alerts so far (a line still being appended is left out).
    fn alerts_of(&self, i: usize) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.node_dir(i).join("alerts.jsonl"));
        crate::util::json_lines_so_far(&text.unwrap_or_default())
    }

    /// Waits for `client`'s first alert and asserts it is the farm's, with
    /// count 10; returns the client's alerts.
    fn farm_alert_of_ten(&self, client: &str) -> Vec<serde_json::Value> {
        self.wait_until("the farm alert", || !self.alerts_for(client).is_empty());
        let a = self.alerts_for(client);
        assert_eq!(
            (a[0]["count"].as_u64(), a[0]["scope"].as_str()),
            (Some(10), Some("farm")),
            "{a:?}"
        );
        a
    }

    fn alerts_for(&self, client: &str) -> Vec<serde_json::Value> {
        self.alerts().into_iter().filter(|a| a["key"] == client).collect()
    }

    /// Ten hits of a marker client on each node: once every marker has
    /// alerted, every node has decided every line written before it.
    fn settle(&mut self, round: u32) {
        let markers: Vec<String> =
            (0..self.nodes.len()).map(|i| format!("198.51.{round}.{}", i + 1)).collect();
        for (i, m) in markers.iter().enumerate() {
            self.hits(i, m, 10);
        }
        self.wait_until("every node's marker", || {
            markers.iter().all(|m| !self.alerts_for(m).is_empty())
        });
    }

    /// `logwarden check` on node `i`'s configuration: its exit code and
    /// what it said on stderr.
    fn check(&self, i: usize) -> (Option<i32>, String) {
        let cfg = self.node_dir(i).join("logwarden.toml");
        let out = run(&["-c", cfg.to_str().unwrap(), "check"], b"");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.node_dir(i).join("daemon.log")).unwrap_or_default()
    }

    /// [`wait_until`], and a failure shows every node's log and alerts.
    fn wait_until(&self, what: &str, cond: impl FnMut() -> bool) {
        crate::util::wait_until_or(what, cond, || self.said());
    }

    /// Every node's log and alerts, for a failure's message.
    fn said(&self) -> String {
        let node = |i: usize| {
            format!("--- web{}: log\n{}--- alerts\n{:?}\n", i + 1, self.log(i), self.alerts_of(i))
        };
        (0..self.nodes.len()).map(node).collect()
    }
}

/// [`RULE`] and a rule on one page, which a test edits.
const WITH_PAGE: &str = "[[rule]]\ncontains = \"today_download\"\nthreshold = 10\nwindow = \"10m\"\n\
                         [[rule]]\nname = \"page\"\ncontains = \"/a-page\"\nthreshold = 5\nwindow = \"10m\"\n";

/// A rule that keeps its name but counts something else, reloaded on every
/// node, starts new windows in Redis too: four hits of the old page and one
/// of the new raise no alert (they did: the farm's window, named by the
/// rule, still held the old hits); five of the new do.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_rule_that_counts_something_else_starts_new_farm_windows() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let mut farm = Farm::start_rules(&redis.url(), &[WITH_PAGE; 2]);
    for k in 0..4 {
        farm.requests(k % 2, "10.7.7.7", &[("/a-page", 200)]);
    }
    farm.settle(1);
    for i in 0..2 {
        let cfg = farm.node_dir(i).join("logwarden.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, text.replace("\"/a-page\"", "\"-page\"")).unwrap();
        farm.nodes[i].as_ref().unwrap().signal("-HUP");
        farm.wait_until("the reload", || farm.log(i).contains("Configuration reloaded"));
    }
    farm.requests(0, "10.7.7.7", &[("/b-page", 200)]);
    farm.settle(2);
    assert_eq!(farm.alerts_for("10.7.7.7"), Vec::<serde_json::Value>::new());
    for k in 0..4 {
        farm.requests(k % 2, "10.7.7.7", &[("/b-page", 200)]);
    }
    farm.wait_until("the alert on the fifth", || !farm.alerts_for("10.7.7.7").is_empty());
    let a = farm.alerts_for("10.7.7.7");
    assert_eq!((a[0]["count"].as_u64(), a[0]["scope"].as_str()), (Some(5), Some("farm")), "{a:?}");
}

/// Four nodes: a client with 12 hits spread over them within a minute
/// raises exactly one alert in the whole farm, with the farm-wide count 10;
/// a client with 9 hits spread raises none (each node saw at most 3).
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn one_client_spread_over_four_nodes_alerts_once() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    farm_alerts_once(&redis.url());
}

/// The same through a three-master Redis Cluster.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn one_client_spread_over_four_nodes_alerts_once_through_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());
    farm_alerts_once(&cluster.seeds()[0]);
}

/// [`RULE`] and a rule counting one account's failed logins, whichever
/// addresses they come from.
const WITH_ACCOUNTS: &str = "[[rule]]\ncontains = \"today_download\"\nthreshold = 10\nwindow = \"10m\"\n\
                             [[rule]]\nname = \"accounts\"\ncontains = \"/login\"\nkey = \"user\"\nthreshold = 10\nwindow = \"10m\"\n";

/// A rule keyed by the authenticated user counts one account farm-wide:
/// 12 failed logins from 12 addresses spread over two nodes alert once,
/// count 10, under the user's name; 9, never. Its windows are named in
/// Redis by the key's hash (`#` and 32 hex digits), not as an address.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn one_account_spread_over_nodes_alerts_once() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let mut farm = Farm::start_rules(&redis.url(), &[WITH_ACCOUNTS; 2]);
    for k in 0..12 {
        farm.login(k % 2, &format!("192.0.2.{k}"), "alice");
    }
    for k in 0..9 {
        farm.login(k % 2, &format!("192.0.2.{}", 100 + k), "bob");
    }
    farm.settle(1);
    let a = farm.alerts_for("alice");
    assert_eq!(a.len(), 1, "{a:?}");
    let got = (a[0]["rule"].as_str(), a[0]["count"].as_u64(), a[0]["scope"].as_str());
    assert_eq!(got, (Some("accounts"), Some(10), Some("farm")), "{a:?}");
    assert_eq!(farm.alerts_for("bob"), Vec::<serde_json::Value>::new());
    let mut con = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*:accounts:*").query(&mut con).unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for k in &keys {
        let hash = k.split_once(":{#").and_then(|(_, h)| h.split_once("}:accounts:")).map(|h| h.0);
        assert!(
            hash.is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit())),
            "{k}"
        );
    }
}

fn farm_alerts_once(redis: &str) {
    let mut farm = Farm::start_rules(redis, &[WITH_SCAN; 4]);
    farm.spread("203.0.113.12", 12);
    farm.spread("203.0.113.9", 9);
    // A distinct count, farm-wide: 12 missing paths spread over the nodes
    // alert once (count 10); 3 paths asked for 12 times, never.
    let paths: Vec<String> = (0..12).map(|k| format!("/missing/{k}")).collect();
    for (k, p) in paths.iter().enumerate() {
        farm.requests(k % 4, "203.0.113.40", &[(p, 404)]);
        farm.requests(k % 4, "203.0.113.41", &[(&paths[k % 3], 404)]);
    }
    farm.settle(1);
    let scans = farm.alerts_for("203.0.113.40");
    assert_eq!(scans.len(), 1, "{scans:?}");
    assert_eq!((scans[0]["rule"].as_str(), scans[0]["count"].as_u64()), (Some("scan"), Some(10)));
    assert_eq!(scans[0]["scope"].as_str(), Some("farm"), "{scans:?}");
    assert_eq!(farm.alerts_for("203.0.113.41"), Vec::<serde_json::Value>::new());
    let a = farm.alerts_for("203.0.113.12");
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!((a[0]["count"].as_u64(), a[0]["scope"].as_str()), (Some(10), Some("farm")), "{a:?}");
    let node = a[0]["node"].as_str().unwrap();
    assert!(a[0]["file"].as_str().unwrap().contains(&format!("/{node}/")), "{a:?}");
    assert_eq!(farm.alerts_for("203.0.113.9"), Vec::<serde_json::Value>::new());
    for i in 0..4 {
        assert!(farm.log(i).contains("Deciding with the farm."), "{}", farm.log(i));
    }
    // Every node registered its rules, the same everywhere.
    let (code, stderr) = farm.check(0);
    assert!(
        stderr.contains("cluster: the rules are those of node(s) web2, web3, web4"),
        "{stderr}"
    );
    assert_eq!(code, Some(0), "{stderr}");
}

/// A cluster whose nodes lost the script (`SCRIPT FLUSH`, as a restart
/// without it does): a farm node gives it to them again and sends its round
/// trip again, with no outage; a client's 5 hits before and 5 after alert
/// once, count 10. The nodes' logs name every seed node.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_cluster_that_lost_the_script_is_given_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());
    let mut farm = Farm::start(&format!("{:?}", cluster.seeds()), 2);
    let client = "203.0.113.60";
    farm.hits(0, client, 5);
    farm.settle(1);
    cluster.nodes.iter().for_each(|n| n.command(&["SCRIPT", "FLUSH"]));
    farm.hits(1, client, 5);
    farm.farm_alert_of_ten(client);
    for i in 0..2 {
        assert!(!farm.log(i).contains("does not answer"), "{}", farm.log(i));
        // The start names every seed node, as an outage would.
        let seeds = cluster.seeds().join(", ");
        assert!(farm.log(i).contains(&format!("redis={seeds}")), "{}", farm.log(i));
    }
}

/// Redis stopped: a client with 10 hits on one node still alerts, decided
/// by that node alone (`"scope": "local"`), and the outage is logged once;
/// the node's status (JSON, `logwarden status`, metrics, and the page in
/// headless Chromium) says it decides alone. Redis started again: the node
/// says so, farm decisions resume, and its status says so.
#[test]
#[ignore = "needs redis-server and chromium; run by scripts/test"]
fn without_redis_a_node_decides_alone_until_it_answers_again() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let port = redis.port;
    let mut farm = Farm::start_served(&redis.url(), 2);
    farm.settle(1);
    drop(redis);
    let restart = || Redis::start_on(port, dir.path(), &[]);
    let _redis = alone_until_it_answers(&mut farm, true, "no Redis answered", restart);
}

/// The same with a three-master Redis Cluster, all of whose nodes stop and
/// start again.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn without_the_cluster_a_node_decides_alone_until_it_answers_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path());
    let mut farm = Farm::start_served(&cluster.seeds()[0], 2);
    farm.settle(1);
    let ports = cluster.stop();
    let _cluster = alone_until_it_answers(&mut farm, false, "no Redis answered", || {
        Cluster::restart(dir.path(), &ports)
    });
}

/// With Redis stopped: local alerts, one log line, and node 0's status
/// (its page too, with `page`) saying it decides alone; then `restart` it
/// and see farm decisions resume. Returns what `restart` started.
fn alone_until_it_answers<T>(
    farm: &mut Farm,
    page: bool,
    why: &str,
    restart: impl FnOnce() -> T,
) -> T {
    farm.hits(0, "203.0.113.10", 10);
    farm.wait_until("the local alert", || !farm.alerts_for("203.0.113.10").is_empty());
    let a = farm.alerts_for("203.0.113.10");
    assert_eq!(
        (a[0]["count"].as_u64(), a[0]["scope"].as_str()),
        (Some(10), Some("local")),
        "{a:?}"
    );
    assert_eq!(a[0]["node"], "web1");
    farm.hits(0, "203.0.113.11", 10);
    farm.wait_until("the second local alert", || !farm.alerts_for("203.0.113.11").is_empty());
    assert_eq!(farm.log(0).matches("Redis does not answer").count(), 1, "{}", farm.log(0));
    farm.status_says(Some(why));
    if page {
        let url = format!("http://127.0.0.1:{}/", farm.port);
        let dom = crate::observe::browse(&url, "farm-alone");
        assert!(dom.contains("farm: deciding alone for "), "{dom}");
        assert!(dom.contains(why), "{dom}");
        assert!(dom.contains("counting this node's events only"), "{dom}");
    }
    let started = restart();
    // The node tries again when it has events and its backoff has passed.
    wait_until("farm decisions again", || {
        farm.hits(0, "192.0.2.1", 1);
        std::thread::sleep(std::time::Duration::from_millis(300));
        farm.log(0).contains("Redis answers again")
    });
    farm.spread("203.0.113.12", 10);
    farm.farm_alert_of_ten("203.0.113.12");
    farm.status_says(None);
    started
}

/// A client with 5 hits on one node, that node killed with `kill -9` and
/// started again (it reads again the lines it had not saved, and the farm
/// had applied them), then 4 hits on the other nodes: no alert, 9 in all.
/// The node is killed 2.5 s after deciding (after a save), 0.3 s after
/// (around one), and in a run that never saves (before any: a debug-build
/// hook), after which it reads again all it had read in that run.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_node_killed_and_started_again_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    killed_node_counts_nothing_twice(&redis.url());
}

/// The same through a three-master Redis Cluster.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_node_killed_and_started_again_counts_nothing_twice_in_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());
    killed_node_counts_nothing_twice(&cluster.seeds()[1]);
}

fn killed_node_counts_nothing_twice(redis: &str) {
    let mut farm = Farm::start(redis, 4);
    let rounds: [(u32, Option<u64>); 3] = [(1, Some(2500)), (2, Some(300)), (3, None)];
    for (round, delay) in rounds {
        if delay.is_none() {
            farm.kill9_and_restart(0, &[("LOGWARDEN_TEST_NO_SAVE", "1")]);
        }
        let client = format!("203.0.113.{round}");
        farm.hits(0, &client, 5);
        let marker = format!("198.18.{round}.1");
        farm.hits(0, &marker, 10);
        farm.wait_until("node 0's marker", || !farm.alerts_for(&marker).is_empty());
        std::thread::sleep(std::time::Duration::from_millis(delay.unwrap_or(0)));
        farm.kill9_and_restart(0, &[]);
        for k in 0..4 {
            farm.hits(1 + k % 3, &client, 1);
        }
        farm.settle(10 + round);
        assert_eq!(farm.alerts_for(&client), Vec::<serde_json::Value>::new(), "round {round}");
        assert_eq!(farm.alerts_for(&marker).len(), 1, "round {round}");
    }
    // The last start read again all that the run that never saved had read
    // (round 3's 5 + 10 events): the farm had applied every one of them.
    let log = farm.nodes[0].take().unwrap().stop();
    let repeated: u64 = log
        .rsplit("farm: repeated ")
        .next()
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(repeated >= 15, "{log}");
}

/// The farm's alerts equal the model's of `loadgen farm`: 100k lines with
/// 100 attackers, spread at random over four nodes, all within one window
/// of log time (so the order in which nodes' events reach Redis cannot
/// matter): every client with 10 hits alerts once, with the farm-wide count
/// 10, and no other.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn farm_alerts_equal_loadgen_farms_model() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let mut farm = Farm::start(&redis.url(), 4);
    let pattern = format!("{}/web{{n}}/access.log", farm.dir.path().display());
    let expect = dir.path().join("expect.jsonl");
    let out = std::process::Command::new(crate::util::loadgen())
        .args(["farm", "--nodes", "4", "--spread", "random", "--path", &pattern])
        .args(["--lines", "100000", "--attackers", "100", "--log-rate", "100000"])
        .args(["--expect", expect.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_alerts_are_the_models(&mut farm, &expect, 100);
}

/// Once every node has decided every line (markers of round 1), the farm's
/// alerts other than the markers' are, as (client, count), the `expect`ed
/// ones of `loadgen`'s model, at least `least` of them.
fn assert_alerts_are_the_models(farm: &mut Farm, expect: &std::path::Path, least: usize) {
    farm.settle(1);
    let expected = crate::util::json_lines(&std::fs::read_to_string(expect).unwrap());
    assert!(expected.len() >= least, "{} expected alerts", expected.len());
    let key_count = |a: &serde_json::Value| {
        (a["key"].as_str().unwrap().to_string(), a["count"].as_u64().unwrap())
    };
    let mut want: Vec<(String, u64)> = expected.iter().map(key_count).collect();
    let mut got: Vec<(String, u64)> = farm
        .alerts()
        .iter()
        .filter(|a| !a["key"].as_str().unwrap().starts_with("198.51.1."))
        .map(key_count)
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

/// `loadgen farm` live: 3000 lines at 3000 lines/s stamped with the wall
/// clock, spread round robin over the nodes while they follow; every line
/// falls in one window, so the farm's alerts (client and count) equal the
/// model's whatever order the nodes' events reach Redis in.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_live_farm_alerts_as_loadgen_farms_model() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let mut farm = Farm::start(&redis.url(), 3);
    let pattern = format!("{}/web{{n}}/access.log", farm.dir.path().display());
    let expect = dir.path().join("expect.jsonl");
    let out = std::process::Command::new(crate::util::loadgen())
        .args(["farm", "--nodes", "3", "--path", &pattern, "--now", "--rate", "3000"])
        .args(["--lines", "3000", "--attackers", "10", "--target-share", "0.05"])
        .args(["--expect", expect.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_alerts_are_the_models(&mut farm, &expect, 10);
}

/// A Redis that takes connections but never answers (a listener that never
/// accepts): `check` says it gave no answer within the timeout, and a node
/// keeps reading and alerts alone.
#[test]
fn a_redis_that_never_answers_stalls_nothing() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = check(dir.path(), &format!("{url:?}"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(": no answer within 250ms (cluster.timeout)"), "{stderr}");
    let mut farm = Farm::start(&url, 1);
    farm.hits(0, "203.0.113.10", 10);
    farm.wait_until("the local alert", || !farm.alerts_for("203.0.113.10").is_empty());
    let a = farm.alerts_for("203.0.113.10");
    assert_eq!(
        (a[0]["count"].as_u64(), a[0]["scope"].as_str()),
        (Some(10), Some("local")),
        "{a:?}"
    );
    assert!(farm.log(0).contains("Redis does not answer"), "{}", farm.log(0));
}

/// A node catching up on 40,000 new clients at once, with a 60 ms
/// `cluster.timeout`: its calls stay short (a few hundred windows each,
/// a few ms of Redis time), so it never takes its own backlog for an outage
/// and decides nothing alone. (One call for a whole batch of chunks took
/// over 250 ms in benches/farm.sh, and the node then decided alone.)
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_node_catching_up_keeps_each_call_short() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let mut farm = Farm::start_timed(&redis.url(), 1, "60ms");
    let stamp =
        jiff::Timestamp::from_second(farm.clock).unwrap().strftime("%d/%b/%Y:%H:%M:%S +0000");
    let mut text = String::new();
    for i in 0..40_000u32 {
        let (a, b) = (i / 200, i % 200);
        text += &format!(
            "10.9.{a}.{b} - - [{stamp}] \"GET /today_download HTTP/1.1\" 200 5 \"-\" \"t\"\n"
        );
    }
    let path = farm.node_dir(0).join("access.log");
    std::fs::write(&path, text).unwrap();
    farm.settle(1);
    let mut con = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*{*").query(&mut con).unwrap();
    assert_eq!(keys.len(), 40_001, "every client's window is in Redis (and the marker's)");
    let log = farm.nodes[0].take().unwrap().stop();
    assert!(!log.contains("Redis does not answer"), "{log}");
    assert!(log.contains("decided alone 0,"), "{log}");
}

/// A round trip that is out does not stall reading: while Redis is paused
/// (`CLIENT PAUSE`) with a node's first events out, the node still takes in
/// all of 100 more chunks of 256 KiB — far more than it holds whole (its
/// tokens cover 4 × threads + 4 chunks of 1 MiB) — keeping their events'
/// lines; once Redis answers, the farm decides them, and their alerts name
/// the right lines.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_round_trip_out_does_not_stall_reading() {
    // Per chunk, two lines that are no event, the client's, then 256 KiB
    // of lines that are no event either.
    let padding: &str = format!("/{}", "p".repeat(1000)).leak();
    let lines = |k: i64| {
        let mut lines = [("10.1.0.1", "/"), ("10.1.0.2", "/"), ("192.0.2.7", "/today_download")]
            .map(|(client, path)| (k, client.to_string(), path))
            .to_vec();
        lines.extend((0..256).map(|_| (k, "10.1.0.3".to_string(), padding)));
        lines
    };
    let paused = while_redis_is_paused(1500, (0..101).map(lines).collect());
    assert!(
        paused.read_all < Duration::from_millis(1200),
        "every chunk was taken while Redis was paused: {:?} after the pause began",
        paused.read_all
    );
    let a = &paused.alerts[0];
    assert_eq!(
        (a.key.as_str(), a.count, a.line, a.scope),
        ("192.0.2.7", 10, 9 * 259 + 3, Some(logwarden::alert::Scope::Farm)),
        "the 10th hit, on line 3 of the 10th chunk: {a:?}"
    );
    assert_eq!(paused.summary.lines, 101 * 259);
}

/// What a node keeps while it waits for the farm is bounded: with Redis
/// paused, chunks of 6000 events each (480,000 in all: lines and events
/// over 32 MiB, besides what the node holds whole) are not all taken in
/// before Redis answers (unbounded, they were within 1.1 s here).
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn what_waits_for_the_farm_is_bounded() {
    let lines = |k: i64| {
        (0..6000).map(move |i| (k, format!("10.{k}.{}.{}", i / 250, i % 250), "/today_download"))
    };
    let paused = while_redis_is_paused(3000, (0..80).map(|k| lines(k).collect()).collect());
    assert!(
        paused.read_all >= Duration::from_millis(2900),
        "the reader waited for Redis: it took the last chunk {:?} after the pause began",
        paused.read_all
    );
    assert_eq!(paused.summary.lines, 480_000);
}

/// A run of [`while_redis_is_paused`].
struct Paused {
    /// When the source's last chunk was taken, after the pause began.
    read_all: Duration,
    summary: logwarden::pipeline::Summary,
    alerts: Vec<logwarden::alert::Alert>,
}

/// Runs one node's engine, in a farm of one Redis paused for `ms`, on
/// chunks of `(second, client, path)` lines (rule: 10 `today_download`
/// in 10 minutes); checks that the farm decided everything, after the pause.
fn while_redis_is_paused(ms: u64, chunks: Vec<Vec<(i64, String, &str)>>) -> Paused {
    use logwarden::config::{Config, Overrides};
    use logwarden::source::{Chunk, Data, FileId, FileTag, SourceEvent};
    use std::sync::Arc;
    let rule = "[[rule]]\nname = \"dl\"\ncontains = \"today_download\"\nthreshold = 10\nwindow = \"10m\"\n";
    let cfg = Config::parse(rule, None, &Overrides::default()).unwrap();
    let (redis, mut link, _dir) = link_to_a_redis(&[cfg.rules[0].spec]);
    let identity = Some(FileId { dev: 1, ino: 2, fingerprint: Some(3) });
    let file =
        Arc::new(FileTag { name: "access.log".into(), id: 1, start_line: 0, identity, source: 0 });
    let mut offset = 0;
    let mut chunk = |lines: Vec<(i64, String, &str)>| {
        let mut text = String::new();
        for (second, client, path) in lines {
            let stamp = jiff::Timestamp::from_second(1_751_986_800 + second)
                .unwrap()
                .strftime("%d/%b/%Y:%H:%M:%S +0000");
            text += &format!("{client} - - [{stamp}] \"GET {path} HTTP/1.1\" 200 5 \"-\" \"t\"\n");
        }
        let at = offset;
        offset += text.len() as u64;
        SourceEvent::Lines(Chunk::new(Arc::clone(&file), at, Data::Owned(text.into_bytes()), 0))
    };
    let source = crate::util::Scripted::new(chunks.into_iter().map(&mut chunk).collect());
    let read_all = source.ended();
    let mut con = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    redis::cmd("CLIENT").arg("PAUSE").arg(ms).arg("ALL").query::<()>(&mut con).unwrap();
    let paused = Instant::now();
    let mut alerts = crate::util::Kept::default();
    let summary =
        cfg.engine().run_in_farm(Box::new(source), None, &mut alerts, Some(&mut link)).unwrap();
    assert!(paused.elapsed() >= Duration::from_millis(ms - 100), "the answers waited for Redis");
    let farm = summary.farm.as_ref().unwrap();
    assert_eq!((farm.alone, farm.link.outages), (0, 0), "{summary:?}");
    let read_all = read_all.lock().unwrap().expect("the source ended") - paused;
    Paused { read_all, summary, alerts: alerts.0 }
}

/// Redis over TLS (`rediss://`): the server's certificate must be signed by
/// a CA the node trusts (here through `SSL_CERT_FILE`); `check` says so
/// when it is not, and two nodes count one client together when it is.
#[test]
#[ignore = "needs redis-server and openssl; run by scripts/test"]
fn a_farm_through_redis_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, ca) = Redis::start_tls(dir.path());
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let (code, _, stderr) = check(dir.path(), &format!("{url:?}"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    let trust = vec![("SSL_CERT_FILE", ca.display().to_string())];
    let mut farm = Farm::start_full(&url, 2, "250ms", trust);
    farm.spread("203.0.113.7", 10);
    farm.farm_alert_of_ten("203.0.113.7");
}

/// A node whose rule differs from the others' (same name, another
/// threshold) is named: `check` on it lists the difference and fails; the
/// daemons log it once they have registered after a node that differs, and
/// count it in their metrics; nodes with the same rules say nothing of each
/// other; the status of one that differs (JSON, `logwarden status`, the
/// page in headless Chromium) says how. A rule with the same window that
/// counts other lines (a status filter added) is told too, and one whose
/// source finds the client in a header.
#[test]
#[ignore = "needs redis-server and chromium; run by scripts/test"]
fn nodes_whose_rules_differ_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let port = free_port();
    let other = format!(
        "[[rule]]\ncontains = \"today_download\"\nthreshold = 20\nwindow = \"10m\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n"
    );
    let narrower = "[[rule]]\ncontains = \"today_download\"\nstatus = [200]\nthreshold = 10\nwindow = \"10m\"\n";
    // A node's rule text follows its [source] keys: this one adds a client header.
    let forwarded = "client = \"%{X-Forwarded-For}i\"\n[[rule]]\ncontains = \"today_download\"\nthreshold = 10\nwindow = \"10m\"\n";
    let mut farm =
        Farm::start_rules(&redis.url(), &[RULE, other.leak(), RULE, narrower, forwarded]);
    farm.hits(0, "203.0.113.1", 1);
    farm.wait_until("web1's rules registered", || farm.check(1).1.contains("node web1"));
    let (code, stderr) = farm.check(1);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cluster: rule \"today_download\" differs on node web1 (threshold 10 events, window 600 s, cooldown 600 s) from this node's (threshold 20 events"),
        "{stderr}"
    );
    farm.hits(1, "203.0.113.2", 1);
    farm.wait_until("web2 tells", || farm.log(1).contains("differs on node web1"));
    let (_, metrics) = http_get(port, "/metrics", None).unwrap();
    assert!(metrics.contains("logwarden_farm_rule_differences 1\n"), "{metrics}");
    // Its status says what differs, in words.
    let (_, json) = http_get(port, "/api/status", None).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let differs = doc["farm"]["differences"].as_array().cloned().unwrap_or_default();
    assert_eq!(differs.len(), 1, "{json}");
    assert!(differs[0].as_str().unwrap().contains("differs on node web1"), "{json}");
    let cfg = farm.node_dir(1).join("logwarden.toml");
    let text = run(&["-c", cfg.to_str().unwrap(), "status"], b"").stdout;
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("1 differences with other nodes"), "{text}");
    assert!(text.contains("\n  rule \"today_download\" differs on node web1"), "{text}");
    let dom = crate::observe::browse(&format!("http://127.0.0.1:{port}/"), "farm-differs");
    assert!(dom.contains("farm: rule \"today_download\" differs on node web1"), "{dom}");
    farm.hits(2, "203.0.113.3", 1);
    farm.wait_until("web3 tells", || farm.log(2).contains("differs on node web2"));
    assert!(!farm.log(2).contains("node web1"), "{}", farm.log(2));
    assert!(!farm.log(0).contains("differs"), "web1 registered first: {}", farm.log(0));
    let (code, stderr) = farm.check(3);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cluster: rule \"today_download\" counts other lines or per another key on node web1 than on this node"),
        "{stderr}"
    );
    assert!(stderr.contains("per another key on node web3 than"), "{stderr}");
    let (code, stderr) = farm.check(4);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cluster: rule \"today_download\" finds a line's client otherwise on node web1 than on this node"),
        "{stderr}"
    );
    assert!(!stderr.contains("counts other lines"), "only how it finds the client: {stderr}");
}

/// Another machine registered under this node's name lately: `check` says
/// so and fails, and the daemon logs it when it registers — once while it
/// lasts, and again when it comes back.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn two_machines_under_one_node_name_are_told() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let mut farm = Farm::start(&redis.url(), 1);
    let prefix = farm.dir.path().file_name().unwrap().to_string_lossy().into_owned();
    let now = jiff::Timestamp::now().as_second();
    let entry = serde_json::json!({ "at": now - 60, "host": "elsewhere", "rules": {} });
    redis.command(&["HSET", &format!("{prefix}:rules"), "web1", &entry.to_string()]);
    let (code, stderr) = farm.check(0);
    let told = "machine \"elsewhere\" registered as node \"web1\" too";
    assert!(stderr.contains(told), "{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    farm.hits(0, "203.0.113.1", 1);
    farm.wait_until("web1 tells", || farm.log(0).contains(told));
    // A finding is told once while it lasts, and again when it comes back:
    // each new connection registers again (its own entry replaced the
    // other machine's), so the connection is killed between the rounds.
    let register_again = |farm: &mut Farm, round: u32| {
        redis.command(&["CLIENT", "KILL", "TYPE", "normal"]);
        let marker = format!("198.18.{round}.1");
        farm.hits(0, &marker, 10);
        farm.wait_until("the marker's alert", || !farm.alerts_for(&marker).is_empty());
    };
    register_again(&mut farm, 1);
    assert_eq!(farm.log(0).matches(told).count(), 1, "gone: {}", farm.log(0));
    redis.command(&["HSET", &format!("{prefix}:rules"), "web1", &entry.to_string()]);
    register_again(&mut farm, 2);
    assert_eq!(farm.log(0).matches(told).count(), 2, "back: {}", farm.log(0));
}

/// A node whose clock is 5 s ahead (libfaketime) registers after one on
/// the real clock: it logs the other's clock as 5 s behind, `check` on the
/// other fails naming it, and its metrics show its clock against the Redis
/// server's (the other, registered first, logs nothing of it).
#[test]
#[ignore = "needs redis-server and libfaketime; run by scripts/test"]
fn nodes_whose_clocks_differ_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let port = free_port();
    let served = format!("{RULE}[http]\nlisten = \"127.0.0.1:{port}\"\n");
    let mut farm = Farm::start_rules(&redis.url(), &[RULE, served.leak()]);
    let faked = [("LD_PRELOAD", crate::util::faketime_library()), ("FAKETIME", "+5s")];
    farm.kill9_and_restart(1, &faked);
    farm.hits(0, "203.0.113.1", 1);
    // `check` runs on the real clock: it finds web1's rules, and no clock apart.
    farm.wait_until("web1's rules registered", || farm.check(1).1.contains("node(s) web1"));
    farm.hits(1, "203.0.113.2", 1);
    let told = "node web1's clock is 5.0 s behind this node's";
    farm.wait_until("web2 tells", || farm.log(1).contains(told));
    let (code, stderr) = farm.check(0);
    assert!(
        stderr.contains("cluster: node web2's clock is 5.0 s ahead of this node's"),
        "{stderr}"
    );
    assert_eq!(code, Some(1), "{stderr}");
    let (_, metrics) = http_get(port, "/metrics", None).unwrap();
    let offset = metrics
        .lines()
        .find_map(|l| l.strip_prefix("logwarden_farm_clock_offset_seconds "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(offset.is_some_and(|s| (4.5..5.5).contains(&s)), "{metrics}");
    assert!(metrics.contains("logwarden_farm_rule_differences 1\n"), "{metrics}");
    // web1 registered first, before web2 had a clock to compare.
    assert!(!farm.log(0).contains("clock is"), "{}", farm.log(0));
}

/// A full Redis (its maxmemory reached, `noeviction`) refuses the script:
/// the node decides alone, as in an outage, until Redis has room again. A
/// Redis that may evict keys when full is told, by `check` (which passes)
/// and by a node when it connects.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_full_redis_is_an_outage_and_one_that_evicts_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &["--maxmemory", "1", "--maxmemory-policy", "noeviction"]);
    let mut farm = Farm::start_served(&redis.url(), 1);
    alone_until_it_answers(&mut farm, false, "OOM", || {
        redis.command(&["CONFIG", "SET", "maxmemory", "0"])
    });
    assert!(farm.log(0).contains("OOM"), "{}", farm.log(0));
    assert!(!farm.log(0).contains("may evict"), "{}", farm.log(0));

    redis.command(&["CONFIG", "SET", "maxmemory", "100mb", "maxmemory-policy", "allkeys-lru"]);
    let (code, stderr) = farm.check(0);
    let told = "may evict keys when full (maxmemory 100.00M, maxmemory-policy allkeys-lru)";
    assert!(stderr.contains(&format!("cluster: warning: {} {told}", redis.url())), "{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    farm.kill9_and_restart(0, &[]);
    farm.hits(0, "203.0.113.20", 1);
    farm.wait_until("the node tells", || farm.log(0).contains(told));
}

/// A Redis whose ACL denies TIME: the nodes still register and compare
/// their rules, without their clocks, and `check` says so.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_redis_that_will_not_tell_its_clock_still_compares_rules() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    redis.command(&["ACL", "SETUSER", "default", "-time"]);
    let mut farm = Farm::start(&redis.url(), 2);
    farm.hits(0, "203.0.113.1", 1);
    let registered = "the rules are those of node(s) web1";
    farm.wait_until("web1's rules registered", || farm.check(1).1.contains(registered));
    let (code, stderr) = farm.check(1);
    assert!(stderr.contains("cluster: Redis did not tell its clock (TIME: "), "{stderr}");
    assert!(!stderr.contains("no clock is more than"), "clocks not compared: {stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    // The script, which asks the clock when to set an expiry again, still
    // decides: a client's 10 hits alert farm-wide.
    farm.spread("203.0.113.2", 10);
    farm.farm_alert_of_ten("203.0.113.2");
    assert!(!farm.log(0).contains("does not answer"), "{}", farm.log(0));
}

/// A master of a cluster with replicas killed: its replica takes over (a
/// second of silence, then an election); the nodes go on, deciding with
/// the farm again once it has; and what the replica had received counts: a
/// client's 5 hits before the failover and 5 after alert once farm-wide,
/// with count 10.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_cluster_master_failing_over_keeps_the_farms_windows() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_with_replicas(dir.path());
    let mut farm = Farm::start(&format!("{:?}", cluster.seeds()), 2);
    let client = "203.0.113.50";
    farm.hits(0, client, 5);
    farm.settle(1);
    let master = cluster.master_of(&format!("{{{client}}}"));
    // The replica holds the client's window as the master does, looked at
    // on both. (A `SET` and `WAIT 1` of the test's own once had `WAIT`
    // answer 1, yet the replica, sent its first copy of the master about
    // then, was promoted at that copy's offset (its log), and held neither
    // that `SET` nor node 1's hits; and this wait once timed out in CI. The
    // cluster now starts with every first copy loaded, so the window
    // reaches the replica by the replication stream alone.)
    let replica = cluster.replica_of(master);
    let pattern = format!("*{{{client}}}*");
    let said = || format!("{}{}", farm.said(), cluster.said(dir.path(), &pattern));
    let copied = || {
        let on_master = Cluster::values(master, &pattern);
        !on_master.is_empty() && Cluster::values(replica, &pattern) == on_master
    };
    crate::util::wait_until_or("the replica's copy of the window", copied, said);
    // A client whose window lives on the same master.
    let probe = (1..=250)
        .map(|k| format!("198.18.7.{k}"))
        .find(|p| cluster.master_of(&format!("{{{p}}}")) == master)
        .unwrap();
    cluster.kill(master);
    let key = format!("{{{client}}}");
    farm.wait_until("the replica's election", || cluster.master_of(&key) != master);
    cluster.wait_ok();
    wait_until("node 2 deciding with the farm on the new master", || {
        farm.hits(1, &probe, 1);
        std::thread::sleep(std::time::Duration::from_millis(200));
        farm.alerts_for(&probe).iter().any(|a| a["scope"] == "farm")
    });
    farm.hits(1, client, 5);
    let said = || format!("{}{}", farm.said(), cluster.said(dir.path(), &pattern));
    let alerted = || !farm.alerts_for(client).is_empty();
    crate::util::wait_until_or("the farm alert", alerted, said);
    farm.farm_alert_of_ten(client);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let a = farm.alerts_for(client);
    assert_eq!(a.len(), 1, "{a:?}");
}

/// The Redis user of the README's "least rights" (its commands, keys
/// under the farm's prefix, nothing else) serves the farm: a client spread
/// over two nodes alerts once farm-wide, nothing is decided alone, the
/// nodes register their rules and clocks, and `check` passes.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_redis_user_with_the_least_rights_serves_the_farm() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), &[]);
    let url = format!("redis://farm:pw@127.0.0.1:{}", redis.port);
    least_rights_serve(&url, &[&redis], FARM_USER_COMMANDS);
}

/// The same for a Redis Cluster, with the commands a cluster adds.
#[test]
#[ignore = "needs redis-server; run by scripts/test"]
fn a_cluster_user_with_the_least_rights_serves_the_farm() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());
    let urls: Vec<String> =
        cluster.nodes.iter().map(|n| format!("redis://farm:pw@127.0.0.1:{}", n.port)).collect();
    let servers: Vec<&Redis> = cluster.nodes.iter().collect();
    let commands = format!("{FARM_USER_COMMANDS} {CLUSTER_USER_COMMANDS}");
    least_rights_serve(&format!("{urls:?}"), &servers, &commands);
}

/// A farm of two nodes at `redis` whose user `farm` has `commands` on the
/// `servers` and the keys under the farm's prefix.
fn least_rights_serve(redis: &str, servers: &[&Redis], commands: &str) {
    let mut farm = Farm::start(redis, 2);
    // The nodes connect at their first events: the user is made before.
    let prefix = farm.dir.path().file_name().unwrap().to_string_lossy().into_owned();
    let keys = format!("~{prefix}:*");
    let mut acl = vec!["ACL", "SETUSER", "farm", "reset", "on", ">pw", &keys];
    acl.extend(commands.split(' '));
    servers.iter().for_each(|r| r.command(&acl));
    farm.spread("203.0.113.12", 10);
    farm.farm_alert_of_ten("203.0.113.12");
    let registered = "the rules are those of node(s) web2, and no clock";
    farm.wait_until("web2's rules registered", || farm.check(0).1.contains(registered));
    assert_eq!(farm.check(0).0, Some(0));
    for i in 0..2 {
        assert!(!farm.log(i).contains("does not answer"), "{}", farm.log(i));
    }
}

/// The commands the README gives a farm's Redis user.
const FARM_USER_COMMANDS: &str =
    "+evalsha +eval +script|load +mget +set +hset +hgetall +hdel +pexpire +info +time";
/// The commands a Redis Cluster's user needs besides.
const CLUSTER_USER_COMMANDS: &str = "+cluster|info +cluster|nodes +cluster|slots +ping";
