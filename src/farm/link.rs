//! The link to the farm's Redis: the events of consecutive chunks of one
//! file (those that waited together for the farm) go out grouped by (rule,
//! client) — consecutive events of a client at one second as one group —
//! in one pipelined round trip (one script call per 256 windows on a
//! single server, one per (rule, client) in a cluster), and the farm's
//! decisions come back. When Redis does not answer, the caller decides
//! alone; the link says so once, and tries again after a backoff (1 s,
//! doubling to 30 s).

use super::{FarmRule, FarmSettings, Topology, agree};
use crate::parse::client::Key;
use redis::{Cmd, RedisResult, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The script that applies a client's events to its farm-wide window.
const WINDOW_LUA: &str = include_str!("window.lua");
/// Windows per script call on a single server: Redis runs one call at a
/// time, so a node catching up must not hold it (and every other node's
/// alerts) for long, nor wait longer than `timeout` for one reply. About
/// 4.5 µs of Redis time each (README, "Web farm"): about 1 ms a call.
const WINDOWS_PER_CALL: usize = 256;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One event of this node: a line that a rule counts for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Index of the rule.
    pub rule: u16,
    /// The client (or block) counted.
    pub key: Key,
    /// The line's time, in Unix seconds.
    pub time: u32,
    /// The line's offset in its file (increasing within a file).
    pub offset: u64,
    /// For a rule counting distinct values, the line's value (else 0).
    pub value: u128,
}

/// A farm-wide alert raised by one of this node's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FarmAlert {
    /// Index of the event in the slice given to [`Link::decide`].
    pub hit: usize,
    /// The farm-wide count in the window at that event.
    pub count: u32,
}

/// What the farm decided for a chunk's events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FarmDecisions {
    /// Alerts, in no particular order.
    pub alerts: Vec<FarmAlert>,
    /// Events older than their farm window's `T − window`, by rule index.
    pub late_by_rule: Vec<u64>,
    /// Events the farm had applied before (lines read again after a crash).
    pub repeated: u64,
}

impl FarmDecisions {
    /// Late events of every rule.
    pub fn late(&self) -> u64 {
        self.late_by_rule.iter().sum()
    }
}

/// A link's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    /// Pipelines sent to Redis and answered.
    pub round_trips: u64,
    /// The time they took, in µs.
    pub round_trip_micros: u64,
    /// Outages begun.
    pub outages: u64,
    /// This node's clock minus the Redis server's, in ms, at the last
    /// registration.
    pub clock_offset_ms: Option<i64>,
    /// Since when (Unix seconds) this node decides alone, while Redis does
    /// not answer.
    pub alone_since: Option<u64>,
}

/// Redis did not answer in time, or is waited for after an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    /// Sends `cmds` in one pipeline; each command's own result.
    fn run(&mut self, cmds: &[Cmd]) -> RedisResult<Vec<RedisResult<Value>>> {
        match self {
            Conn::Single(c) => {
                let mut p = redis::pipe();
                for cmd in cmds {
                    p.add_command(cmd.clone());
                }
                p.ignore_errors().query(c)
            }
            // A cluster pipeline fails whole at one error reply (a master
            // without the script, say): the caller connects again, which
            // loads it, and sends every call again.
            Conn::Cluster(c) => {
                let mut p = redis::cluster::cluster_pipe();
                for cmd in cmds {
                    p.add_command(cmd.clone());
                }
                let values: Vec<Value> = p.query(c.as_mut())?;
                Ok(values.into_iter().map(Ok).collect())
            }
        }
    }

    /// The server's clock (TIME: seconds, µs); of any master in a cluster
    /// (a cluster pipeline takes no command without a key).
    fn time(&mut self) -> RedisResult<(i64, i64)> {
        let time = redis::cmd("TIME");
        match self {
            Conn::Single(c) => time.query(c),
            Conn::Cluster(c) => time.query(c.as_mut()),
        }
    }

    /// Whether this user may load the script and run it (an ACL can forbid
    /// either): loads it, and calls it without keys, which touches nothing.
    fn may_run(&mut self) -> RedisResult<()> {
        self.load()?;
        let mut call = redis::cmd("EVALSHA");
        call.arg(redis::Script::new(WINDOW_LUA).get_hash()).arg(0);
        match self {
            Conn::Single(c) => call.exec(c),
            Conn::Cluster(c) => call.exec(c.as_mut()),
        }
    }

    /// Loads the script (on every node of a cluster, replicas too).
    fn load(&mut self) -> RedisResult<()> {
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg(WINDOW_LUA);
        match self {
            Conn::Single(c) => load.exec(c),
            Conn::Cluster(c) => load.exec(c),
        }
    }
}

/// The farm's Redis, as one node sees it.
pub struct Link {
    settings: FarmSettings,
    rules: Vec<FarmRule>,
    /// How each rule's windows end their names ([`window_name`]).
    names: Vec<String>,
    /// The rules as the script's arguments.
    specs: (Vec<u8>, String),
    ipv6_prefix: u8,
    script: redis::Script,
    conn: Option<Conn>,
    /// While Redis does not answer: when to try again, the backoff, and
    /// Redis's last error in words (since when is in `counts`).
    outage: Option<(Instant, Duration, String)>,
    /// When this connection last registered the rules (none yet: at the
    /// next answered round trip).
    agreed_at: Option<Instant>,
    /// What the last registration found: each finding is logged once
    /// while it lasts.
    findings: Vec<agree::Finding>,
    /// Whether the server's eviction policy was told (once a run).
    eviction_told: bool,
    /// Round trips, their time, outages, clock, since when alone.
    counts: LinkCounts,
}

impl Link {
    /// A link for `rules` (in the engine's order); connects at the first
    /// events.
    pub fn new(settings: FarmSettings, rules: Vec<FarmRule>, ipv6_prefix: u8) -> Link {
        let script = redis::Script::new(WINDOW_LUA);
        let specs = specs_args(&rules);
        let names = rules.iter().map(window_name).collect();
        Link {
            settings,
            rules,
            names,
            specs,
            ipv6_prefix,
            script,
            conn: None,
            outage: None,
            agreed_at: None,
            findings: Vec::new(),
            eviction_told: false,
            counts: LinkCounts::default(),
        }
    }

    /// Why this node decides alone (Redis's last error, in words), while it
    /// does.
    pub fn why_alone(&self) -> Option<&str> {
        self.outage.as_ref().map(|(_, _, why)| why.as_str())
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.settings.node
    }

    /// The link's counters so far.
    pub fn counts(&self) -> LinkCounts {
        self.counts
    }

    /// How this node differs from the others, as its last registration
    /// found.
    pub fn findings(&self) -> &[agree::Finding] {
        &self.findings
    }

    /// Applies this node's `hits` from the file `file` (in line order) to
    /// the farm's windows; returns the farm's decisions, or
    /// [`Unavailable`] at once while Redis is down.
    pub fn decide(&mut self, file: &str, hits: &[Hit]) -> Result<FarmDecisions, Unavailable> {
        if hits.is_empty() {
            return Ok(FarmDecisions::default());
        }
        if self.outage.as_ref().is_some_and(|(retry_at, _, _)| Instant::now() < *retry_at) {
            return Err(Unavailable);
        }
        let origin = origin_id(&self.settings.node, file);
        // A connection kept from before may have died with a restarted
        // Redis, or met a server that lost the script: then one new
        // connection (which loads it) is tried before giving up (a call
        // applied twice is harmless, the farm skips what it has applied).
        let mut fresh = false;
        let windows = Link::windows(hits);
        loop {
            if self.conn.is_none() {
                match connect(&self.settings)
                    .and_then(|(mut c, probe)| c.load().map(|_| (c, probe)))
                {
                    Ok((c, probe)) => {
                        self.tell_eviction(&probe);
                        (self.conn, fresh, self.agreed_at) = (Some(c), true, None);
                    }
                    Err(e) => return Err(self.failed(&e)),
                }
            }
            let commands = self.commands(&origin, &windows, hits);
            match self.round_trip(&commands) {
                Ok(replies) => {
                    self.recovered();
                    let every = Duration::from_secs(agree::EVERY_SECS);
                    if self.agreed_at.is_none_or(|t| t.elapsed() >= every) {
                        self.agree();
                    }
                    return Ok(decisions(&windows, self.per_call(), &replies));
                }
                Err(_) if !fresh => self.conn = None,
                Err(e) => return Err(self.failed(&e)),
            }
        }
    }

    /// Logs, once, that the server may evict the farm's windows.
    fn tell_eviction(&mut self, probe: &super::Probe) {
        if let (false, Some(warning)) = (self.eviction_told, probe.eviction_warning()) {
            self.eviction_told = true;
            tracing::warn!("{warning}.");
        }
    }

    /// The chunk's events per (rule, client), each with its groups.
    fn windows(hits: &[Hit]) -> Vec<Window> {
        let mut order: Vec<usize> = (0..hits.len()).collect();
        order.sort_by_key(|&i| (hits[i].rule, hits[i].key.0));
        let mut windows: Vec<Window> = Vec::new();
        for i in order {
            let h = hits[i];
            if windows.last().is_none_or(|w| (w.rule, w.key) != (h.rule, h.key)) {
                windows.push(Window { rule: h.rule, key: h.key, groups: Vec::new() });
            }
            let w = windows.last_mut().expect("pushed above");
            match w.groups.last_mut() {
                Some(g) if hits[g[0]].time == h.time => g.push(i),
                _ => w.groups.push(vec![i]),
            }
        }
        windows
    }

    /// The script calls (by EVALSHA): on a single server one per
    /// [`WINDOWS_PER_CALL`] windows, in a cluster one per window (a
    /// script's keys must share a hash slot).
    fn commands(&self, origin: &[u8; 8], windows: &[Window], hits: &[Hit]) -> Vec<Cmd> {
        windows
            .chunks(self.per_call())
            .map(|part| {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(self.script.get_hash()).arg(part.len());
                for w in part {
                    let rule = &self.rules[usize::from(w.rule)];
                    let key = match rule.by_client {
                        true => w.key.render(self.ipv6_prefix),
                        false => w.key.render_hash(),
                    };
                    cmd.arg(format!(
                        "{}:{{{key}}}:{}",
                        self.settings.prefix,
                        self.names[usize::from(w.rule)]
                    ));
                }
                cmd.arg(&origin[..]).arg(&self.specs.0).arg(&self.specs.1);
                for w in part {
                    cmd.arg(w.events(hits, self.rules[usize::from(w.rule)].spec.distinct));
                }
                cmd
            })
            .collect()
    }

    /// Windows per script call (see [`Link::commands`]).
    fn per_call(&self) -> usize {
        match self.conn {
            Some(Conn::Single(_)) => WINDOWS_PER_CALL,
            _ => 1,
        }
    }

    /// Sends the calls; loads the script where a server did not know it,
    /// and sends those calls again (they were not applied).
    fn round_trip(&mut self, cmds: &[Cmd]) -> RedisResult<Vec<Value>> {
        let Some(conn) = self.conn.as_mut() else { return Err(not_connected()) };
        let started = Instant::now();
        let mut replies = conn.run(cmds)?;
        self.counts.round_trips += 1;
        self.counts.round_trip_micros += started.elapsed().as_micros() as u64;
        let missing: Vec<usize> = (0..replies.len())
            .filter(|&i| replies[i].as_ref().is_err_and(|e| e.code() == Some("NOSCRIPT")))
            .collect();
        if !missing.is_empty() {
            conn.load()?;
            let again: Vec<Cmd> = missing.iter().map(|&i| cmds[i].clone()).collect();
            let replies_again = conn.run(&again)?;
            self.counts.round_trips += 1;
            for (i, r) in missing.into_iter().zip(replies_again) {
                replies[i] = r;
            }
        }
        replies.into_iter().collect()
    }

    /// Registers this node's rules with the farm and logs, once each, how
    /// they differ from the other nodes' (see [`agree`]). A failure here
    /// changes no decision: it is tried again with the next connection, or
    /// in an hour.
    fn agree(&mut self) {
        self.agreed_at = Some(Instant::now());
        // A clock Redis will not tell (TIME denied by an ACL) is not compared.
        let clock = match self.clock() {
            Err(e) if !(e.is_io_error() || e.is_timeout()) => {
                tracing::debug!(error = %e, "Redis does not tell its clock.");
                Ok(None)
            }
            clock => clock.map(Some),
        };
        let registered = clock.and_then(|c| Ok((c, self.register(agree::now(), c)?)));
        let (clock, all) = match registered {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "Could not register the rules with the farm.");
                // Where the replies stand is unknown: the next round trip
                // connects again (and registers again).
                if e.is_io_error() || e.is_timeout() {
                    self.conn = None;
                }
                return;
            }
        };
        let read = agree::read(all, &self.settings.node, &self.settings.host, agree::now());
        if let (false, Some(conn)) = (read.old.is_empty(), self.conn.as_mut()) {
            let mut del = redis::cmd("HDEL");
            del.arg(agree::key(&self.settings.prefix)).arg(&read.old);
            conn.run(&[del]).ok();
        }
        self.counts.clock_offset_ms = clock;
        let findings = agree::findings(&read, &self.settings.node, &self.rules, clock);
        let told: HashSet<String> = self.findings.drain(..).map(|f| f.about).collect();
        for f in &findings {
            if !told.contains(&f.about) {
                tracing::warn!(finding = %f, "The farm's nodes disagree: every node needs the same rules (name, what they count, threshold, window, cooldown), a node name of its own and a clock that agrees with the others', or the farm decides by whichever node's event comes.");
            }
        }
        self.findings = findings;
    }

    /// This node's clock minus the Redis server's, in ms (Redis's TIME).
    fn clock(&mut self) -> RedisResult<i64> {
        let Some(conn) = self.conn.as_mut() else { return Err(not_connected()) };
        clock_offset(conn)
    }

    /// Reads every node's entry in the rules' hash, then writes this
    /// node's (the last writer would otherwise never see its twin).
    fn register(&mut self, now: u64, clock: Option<i64>) -> RedisResult<HashMap<String, String>> {
        let Some(conn) = self.conn.as_mut() else { return Err(not_connected()) };
        let key = agree::key(&self.settings.prefix);
        let mut set = redis::cmd("HSET");
        set.arg(&key).arg(&self.settings.node).arg(agree::entry(
            &self.rules,
            now,
            &self.settings.host,
            clock,
        ));
        let mut expire = redis::cmd("PEXPIRE");
        expire.arg(&key).arg(agree::FORGET_SECS * 1000);
        first_as_map(conn, &[hgetall(&key), set, expire])
    }

    fn failed(&mut self, e: &redis::RedisError) -> Unavailable {
        self.conn = None;
        let now = Instant::now();
        let url = super::redacted_all(&self.settings.redis);
        self.outage = Some(match self.outage {
            None => {
                self.counts.outages += 1;
                self.counts.alone_since = Some(agree::now());
                tracing::warn!(redis = %url, error = %e, "Redis does not answer (or answers with an error): this node decides alone (alerts marked \"scope\": \"local\") and tries again.");
                (now + FIRST_BACKOFF, FIRST_BACKOFF, e.to_string())
            }
            Some((_, backoff, _)) => {
                let next = (backoff * 2).min(MAX_BACKOFF);
                (now + next, next, e.to_string())
            }
        });
        Unavailable
    }

    fn recovered(&mut self) {
        let since = self.counts.alone_since.take();
        if self.outage.take().is_some() {
            let secs = since.map_or(0, |t| agree::now().saturating_sub(t));
            tracing::warn!(after_secs = secs, "Redis answers again: farm decisions resume.");
        }
    }
}

/// A rule's events of one client in a chunk, grouped.
struct Window {
    rule: u16,
    key: Key,
    /// Indices of the hits, one group per run of one second.
    groups: Vec<Vec<usize>>,
}

impl Window {
    /// The script's argument for this window's events (see `window.lua`),
    /// with each line's value for a rule counting `distinct` values.
    fn events(&self, hits: &[Hit], distinct: bool) -> Vec<u8> {
        let n: usize = self.groups.iter().map(Vec::len).sum();
        let per_hit = if distinct { 24 } else { 8 };
        let mut arg = Vec::with_capacity(10 + 24 * self.groups.len() + per_hit * n);
        arg.extend_from_slice(&self.rule.to_le_bytes());
        arg.extend_from_slice(&len32(self.groups.len()).to_le_bytes());
        arg.extend_from_slice(&len32(n).to_le_bytes());
        // Offsets travel as doubles (Lua's numbers): exact below 2^53 bytes.
        let offset = |i: usize| (hits[i].offset as f64).to_le_bytes();
        for g in &self.groups {
            let (first, last) = (g[0], g[g.len() - 1]);
            arg.extend_from_slice(&hits[first].time.to_le_bytes());
            arg.extend_from_slice(&len32(g.len()).to_le_bytes());
            arg.extend_from_slice(&offset(first));
            arg.extend_from_slice(&offset(last));
            if g.len() > 2 {
                g[1..g.len() - 1].iter().for_each(|&i| arg.extend_from_slice(&offset(i)));
            }
            if distinct {
                g.iter().for_each(|&i| arg.extend_from_slice(&hits[i].value.to_le_bytes()));
            }
        }
        arg
    }
}

/// The script's name for the events of `node` from `file`: the first 8
/// bytes of their SHA-256 (fixed-size, so the script finds its record with
/// one search; two origins alike by chance in one window: about 2^-64).
fn origin_id(node: &str, file: &str) -> [u8; 8] {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    h.update(node.as_bytes());
    h.update(b" ");
    h.update(file.as_bytes());
    let mut id = [0; 8];
    id.copy_from_slice(&h.finish().as_ref()[..8]);
    id
}

/// How a rule's windows end their names in Redis: its name, and the first
/// digits of what it counts.
fn window_name(rule: &FarmRule) -> String {
    match rule.counting.get(..8) {
        Some(digits) => format!("{}:{digits}", rule.name),
        None => rule.name.clone(),
    }
}

/// The script's arguments describing the rules, in the engine's order:
/// window, threshold, cooldown and whether it counts distinct values; and
/// the windows' times to live in ms, as
/// text (Redis reads a number given to SET from text: passed as a Lua
/// number it would be formatted first, for every window).
fn specs_args(rules: &[FarmRule]) -> (Vec<u8>, String) {
    let mut specs = Vec::with_capacity(16 * rules.len());
    let mut ttls = Vec::with_capacity(rules.len());
    for FarmRule { spec, .. } in rules {
        specs.extend_from_slice(&spec.window.to_le_bytes());
        specs.extend_from_slice(&spec.threshold.to_le_bytes());
        specs.extend_from_slice(&spec.cooldown.to_le_bytes());
        specs.extend_from_slice(&u32::from(spec.distinct).to_le_bytes());
        let ttl_ms = (2 * u64::from(spec.window) + u64::from(spec.cooldown)).max(1) * 1000;
        ttls.push(ttl_ms.to_string());
    }
    (specs, ttls.join(" "))
}

/// A count as the script's 32-bit field (a chunk's lines are far fewer).
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The decisions in the scripts' replies: for each window with something
/// to tell, its index in its call's keys, late, repeated, the number of
/// alerts and each alert's group, hit and count (see `window.lua`).
fn decisions(windows: &[Window], per_call: usize, replies: &[Value]) -> FarmDecisions {
    let mut d = FarmDecisions::default();
    let calls = windows.chunks(per_call);
    for (call, reply) in calls.zip(replies) {
        let Value::Array(numbers) = reply else { continue };
        let mut n = numbers.iter().map(|x| if let Value::Int(i) = x { *i } else { 0 });
        while let Some(k) = n.next() {
            let (late, repeated, alerts) = (n.next(), n.next(), n.next().unwrap_or(0));
            let Some(w) = usize::try_from(k - 1).ok().and_then(|k| call.get(k)) else { break };
            let r = usize::from(w.rule);
            if d.late_by_rule.len() <= r {
                d.late_by_rule.resize(r + 1, 0);
            }
            d.late_by_rule[r] += late.unwrap_or(0).max(0) as u64;
            d.repeated += repeated.unwrap_or(0).max(0) as u64;
            for _ in 0..alerts {
                let (g, h, count) = (n.next(), n.next(), n.next());
                let group = g.and_then(|g| w.groups.get(usize::try_from(g - 1).ok()?));
                let hit = group.and_then(|grp| grp.get(usize::try_from(h? - 1).ok()?));
                if let (Some(&hit), Some(count)) = (hit, count) {
                    d.alerts.push(FarmAlert { hit, count: count as u32 });
                }
            }
        }
    }
    d
}

/// How this node compares with the farm's others (for `check`).
#[derive(Debug)]
pub struct Compared {
    /// The other nodes that registered their rules lately.
    pub nodes: Vec<String>,
    /// What to tell of them ([`agree::findings`]).
    pub findings: Vec<agree::Finding>,
    /// This node's clock minus the Redis server's, in ms; or why Redis
    /// did not tell its clock.
    pub clock_ms: Result<i64, String>,
    /// Why this user may not run the farm's script, if it may not.
    pub no_script: Option<String>,
}

/// Compares this node with the others that registered their rules lately
/// (see [`agree`]); registers nothing (for `check`).
pub fn compare_rules(s: &FarmSettings, rules: &[FarmRule]) -> RedisResult<Compared> {
    let (mut conn, _) = connect(s)?;
    let clock_ms = clock_offset(&mut conn).map_err(|e| e.to_string());
    let no_script = conn.may_run().err().map(|e| e.to_string());
    let all = first_as_map(&mut conn, &[hgetall(&agree::key(&s.prefix))])?;
    let read = agree::read(all, &s.node, &s.host, agree::now());
    let findings = agree::findings(&read, &s.node, rules, clock_ms.as_ref().ok().copied());
    Ok(Compared { nodes: read.others.into_keys().collect(), findings, clock_ms, no_script })
}

/// This machine's clock minus the server's at `conn`, in ms.
fn clock_offset(conn: &mut Conn) -> RedisResult<i64> {
    let now_ms = || jiff::Timestamp::now().as_millisecond();
    let sent = now_ms();
    let time = conn.time()?;
    Ok(agree::clock_offset(sent, now_ms(), time))
}

fn hgetall(key: &str) -> Cmd {
    let mut get = redis::cmd("HGETALL");
    get.arg(key);
    get
}

/// Sends `cmds` in one pipeline; the first one's reply as a map.
fn first_as_map(conn: &mut Conn, cmds: &[Cmd]) -> RedisResult<HashMap<String, String>> {
    let reply = conn.run(cmds)?.into_iter().next().unwrap_or(Ok(Value::Nil))?;
    Ok(redis::from_redis_value(reply)?)
}

fn not_connected() -> redis::RedisError {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "not connected").into()
}

/// A connection of the kind that answers: to the single server that
/// answered the probe (that connection, its timeouts set), or a cluster
/// client over the seed nodes (one retry).
fn connect(s: &FarmSettings) -> RedisResult<(Conn, super::Probe)> {
    let (probe, con) = super::reach(s).map_err(|e| {
        redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            e.to_string(),
        ))
    })?;
    let conn = match probe.topology {
        Topology::Single => Conn::Single(con),
        Topology::Cluster { .. } => {
            let client = redis::cluster::ClusterClient::builder(s.redis.clone())
                .connection_timeout(s.timeout)
                .response_timeout(s.timeout)
                .retries(1)
                .build()?;
            Conn::Cluster(Box::new(client.get_connection()?))
        }
    };
    Ok((conn, probe))
}
