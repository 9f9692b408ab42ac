//! The link to the farm's Redis: a chunk's events go out as one script call
//! per (rule, client) — consecutive events of a client at one second as one
//! group — all in one pipelined round trip, and the farm's decisions come
//! back. When Redis does not answer, the caller decides alone; the link
//! says so once, and tries again after a backoff (1 s, doubling to 30 s).

use super::{FarmSettings, Probe, Topology};
use crate::parse::client::Key;
use crate::rules::WindowSpec;
use redis::{Cmd, RedisResult, Value};
use std::time::{Duration, Instant};

/// The script that applies a client's events to its farm-wide window.
const WINDOW_LUA: &str = include_str!("window.lua");
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
    /// Events older than their farm window's `T − window`.
    pub late: u64,
    /// Events the farm had applied before (lines read again after a crash).
    pub repeated: u64,
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
            // A cluster pipeline fails whole at one error reply, so its
            // calls carry the script itself (EVAL): no NOSCRIPT to recover.
            Conn::Cluster(c) => {
                let mut p = redis::cluster::cluster_pipe();
                for cmd in cmds {
                    p.add_command(cmd.clone());
                }
                let values: Vec<Value> = p.query(c)?;
                Ok(values.into_iter().map(Ok).collect())
            }
        }
    }

    /// Loads the script (on every master of a cluster).
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
    rules: Vec<(String, WindowSpec)>,
    ipv6_prefix: u8,
    script: redis::Script,
    conn: Option<Conn>,
    /// Since when Redis has not answered, and when to try again.
    outage: Option<(Instant, Instant, Duration)>,
}

impl Link {
    /// A link for rules `(name, spec)` (in the engine's order); connects at
    /// the first events.
    pub fn new(settings: FarmSettings, rules: Vec<(String, WindowSpec)>, ipv6_prefix: u8) -> Link {
        let script = redis::Script::new(WINDOW_LUA);
        Link { settings, rules, ipv6_prefix, script, conn: None, outage: None }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.settings.node
    }

    /// Whether the last call reached Redis.
    pub fn is_up(&self) -> bool {
        self.outage.is_none()
    }

    /// Applies this node's `hits` from the file `file` (in line order) to
    /// the farm's windows; returns the farm's decisions, or
    /// [`Unavailable`] at once while Redis is down.
    pub fn decide(&mut self, file: &str, hits: &[Hit]) -> Result<FarmDecisions, Unavailable> {
        if hits.is_empty() {
            return Ok(FarmDecisions::default());
        }
        if self.outage.is_some_and(|(_, retry_at, _)| Instant::now() < retry_at) {
            return Err(Unavailable);
        }
        let origin = format!("{} {file}", self.settings.node);
        // A connection kept from before may have died with a restarted
        // Redis: then one new connection is tried before giving up (a call
        // applied twice is harmless, the farm skips what it has applied).
        let mut fresh = false;
        loop {
            if self.conn.is_none() {
                match connect(&self.settings) {
                    Ok(c) => (self.conn, fresh) = (Some(c), true),
                    Err(e) => return Err(self.failed(&e)),
                }
            }
            let by_sha = matches!(self.conn, Some(Conn::Single(_)));
            let calls = self.calls(&origin, hits, by_sha);
            match self.round_trip(&calls) {
                Ok(replies) => {
                    self.recovered();
                    return Ok(decisions(&calls, &replies));
                }
                Err(_) if !fresh => self.conn = None,
                Err(e) => return Err(self.failed(&e)),
            }
        }
    }

    /// One script call per (rule, client), with its groups.
    fn calls(&self, origin: &str, hits: &[Hit], by_sha: bool) -> Vec<Call> {
        let mut order: Vec<usize> = (0..hits.len()).collect();
        order.sort_by_key(|&i| (hits[i].rule, hits[i].key.0));
        let mut calls: Vec<Call> = Vec::new();
        for i in order {
            let h = hits[i];
            let same = calls.last().is_some_and(|c| c.rule == h.rule && c.key == h.key);
            if !same {
                calls.push(Call { rule: h.rule, key: h.key, groups: Vec::new(), cmd: Cmd::new() });
            }
            let call = calls.last_mut().expect("pushed above");
            match call.groups.last_mut() {
                Some(g) if hits[g[0]].time == h.time => g.push(i),
                _ => call.groups.push(vec![i]),
            }
        }
        for c in &mut calls {
            c.cmd_for(self, origin, hits, by_sha);
        }
        calls
    }

    /// Sends the calls; loads the script where a server did not know it,
    /// and sends those calls again (they were not applied).
    fn round_trip(&mut self, calls: &[Call]) -> RedisResult<Vec<Value>> {
        let Some(conn) = self.conn.as_mut() else { return Err(not_connected()) };
        let cmds: Vec<Cmd> = calls.iter().map(|c| c.cmd.clone()).collect();
        let mut replies = conn.run(&cmds)?;
        let missing: Vec<usize> = (0..replies.len())
            .filter(|&i| replies[i].as_ref().is_err_and(|e| e.code() == Some("NOSCRIPT")))
            .collect();
        if !missing.is_empty() {
            conn.load()?;
            let again: Vec<Cmd> = missing.iter().map(|&i| cmds[i].clone()).collect();
            for (i, r) in missing.into_iter().zip(conn.run(&again)?) {
                replies[i] = r;
            }
        }
        replies.into_iter().collect()
    }

    fn failed(&mut self, e: &redis::RedisError) -> Unavailable {
        self.conn = None;
        let now = Instant::now();
        let url = super::redacted(&self.settings.redis[0]);
        self.outage = Some(match self.outage {
            None => {
                tracing::warn!(redis = %url, error = %e, "Redis does not answer: this node decides alone (alerts marked \"scope\": \"local\") and tries again.");
                (now, now + FIRST_BACKOFF, FIRST_BACKOFF)
            }
            Some((since, _, backoff)) => {
                let next = (backoff * 2).min(MAX_BACKOFF);
                (since, now + next, next)
            }
        });
        Unavailable
    }

    fn recovered(&mut self) {
        if let Some((since, _, _)) = self.outage.take() {
            let secs = since.elapsed().as_secs();
            tracing::warn!(after_secs = secs, "Redis answers again: farm decisions resume.");
        }
    }
}

/// One script call: a rule's events of one client, grouped.
struct Call {
    rule: u16,
    key: Key,
    /// Indices of the hits, one group per run of one second.
    groups: Vec<Vec<usize>>,
    cmd: Cmd,
}

impl Call {
    /// The call as EVALSHA (`by_sha`) or EVAL with the script's text.
    fn cmd_for(&mut self, link: &Link, origin: &str, hits: &[Hit], by_sha: bool) {
        let (name, spec) = &link.rules[usize::from(self.rule)];
        let client = self.key.render(link.ipv6_prefix);
        let key = format!("{}:{{{client}}}:{name}", link.settings.prefix);
        let ttl_ms = (2 * u64::from(spec.window) + u64::from(spec.cooldown)).max(1) * 1000;
        let mut cmd = if by_sha { redis::cmd("EVALSHA") } else { redis::cmd("EVAL") };
        match by_sha {
            true => cmd.arg(link.script.get_hash()),
            false => cmd.arg(WINDOW_LUA),
        };
        cmd.arg(1).arg(key);
        cmd.arg(spec.window).arg(spec.threshold).arg(spec.cooldown).arg(ttl_ms).arg(origin);
        for g in &self.groups {
            cmd.arg(hits[g[0]].time).arg(g.len());
            for &i in g {
                cmd.arg(hits[i].offset);
            }
        }
        self.cmd = cmd;
    }
}

/// The decisions in the scripts' replies.
fn decisions(calls: &[Call], replies: &[Value]) -> FarmDecisions {
    let mut d = FarmDecisions::default();
    for (call, reply) in calls.iter().zip(replies) {
        let Value::Array(v) = reply else { continue };
        let n: Vec<i64> = v.iter().map(|x| if let Value::Int(i) = x { *i } else { -1 }).collect();
        d.late += n.first().copied().unwrap_or(0).max(0) as u64;
        d.repeated += n.get(1).copied().unwrap_or(0).max(0) as u64;
        for a in n.get(2..).unwrap_or_default().chunks_exact(3) {
            let group = call.groups.get((a[0] - 1) as usize);
            if let Some(&hit) = group.and_then(|g| g.get((a[1] - 1) as usize)) {
                d.alerts.push(FarmAlert { hit, count: a[2] as u32 });
            }
        }
    }
    d
}

fn not_connected() -> redis::RedisError {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "not connected").into()
}

/// A connection of the kind that answers: a single server, or a cluster
/// client over the seed nodes (one round of retries, so an outage costs at
/// most about two timeouts).
fn connect(s: &FarmSettings) -> RedisResult<Conn> {
    let probe: Probe = super::probe(s).map_err(|e| {
        redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            e.to_string(),
        ))
    })?;
    match probe.topology {
        Topology::Single => {
            let client = redis::Client::open(s.redis[0].as_str())?;
            let c = client.get_connection_with_timeout(s.timeout)?;
            c.set_read_timeout(Some(s.timeout))?;
            c.set_write_timeout(Some(s.timeout))?;
            Ok(Conn::Single(c))
        }
        Topology::Cluster { .. } => {
            let client = redis::cluster::ClusterClient::builder(s.redis.clone())
                .connection_timeout(s.timeout)
                .response_timeout(s.timeout)
                .retries(1)
                .build()?;
            Ok(Conn::Cluster(Box::new(client.get_connection()?)))
        }
    }
}
