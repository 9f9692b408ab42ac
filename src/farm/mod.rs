//! The farm: the servers of a web farm counting one client's hits together
//! through Redis (`[cluster]`): the settings, what answers at the address
//! (a single server or a Redis Cluster, for `check`), the [`link`] that
//! applies a node's events to the farm-wide windows, and whether the nodes
//! [`agree`] on their rules.

pub mod agree;
pub mod link;

use crate::rules::WindowSpec;
use std::time::Duration;

/// A rule as the farm sees it: its name (which keys its windows), its
/// window, and digests of what it counts (`Rule::matching`) and of how its
/// sources find the client, which the nodes compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FarmRule {
    /// The rule's name.
    pub name: String,
    /// Threshold, window, cooldown, distinct or not.
    pub spec: WindowSpec,
    /// What it counts, digested (empty: not compared).
    pub matches: String,
    /// What it counts without its allow-list, digested
    /// ([`crate::rules::Rule::counting`]): its first 8 digits end the names
    /// of its windows in Redis, so a rule that counts something else under
    /// the same name starts new windows, as on one node (empty: none).
    pub counting: String,
    /// How the sources it reads find a line's client, digested (empty: not
    /// compared).
    pub clients: String,
    /// Whether its key is the client; else a hash of the key's text parts,
    /// named in Redis as `#` and its 32 hex digits rather than as an
    /// address it is not.
    pub by_client: bool,
}

/// `[cluster]`: where the farm's Redis is and who this node is.
#[derive(Debug, Clone, PartialEq)]
pub struct FarmSettings {
    /// One Redis URL, or the seed nodes of a Redis Cluster.
    pub redis: Vec<String>,
    /// This server's name, unique in the farm.
    pub node: String,
    /// Prefix of every key, so several farms can share one Redis.
    pub prefix: String,
    /// A round trip slower than this counts as an outage.
    pub timeout: Duration,
    /// This machine's host name, registered with the rules (so two machines
    /// under one node name are told apart).
    pub host: String,
}

/// What answered at the configured address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One Redis server (cluster mode off).
    Single,
    /// A Redis Cluster with this many masters that serve slots.
    Cluster {
        /// Masters that serve hash slots and are not marked failed.
        masters: usize,
        /// Whether the cluster says all slots are served (`cluster_state:ok`).
        ok: bool,
    },
}

/// The answer of a Redis that was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The URL that answered, password hidden.
    pub url: String,
    /// A single server or a cluster.
    pub topology: Topology,
    /// The server's `redis_version`.
    pub version: String,
    /// How it evicts keys when full, if it may evict the farm's windows: its
    /// `maxmemory` (as `INFO` writes it for people, `100.00M`) and
    /// `maxmemory-policy` (none when it has no limit or the policy is
    /// `noeviction`).
    pub eviction: Option<(String, String)>,
}

/// Why the farm's Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FarmError {
    /// No URL answered; each one's error, password hidden.
    #[error("no Redis answered: {}", .0.join("; "))]
    Unreachable(Vec<String>),
    /// Several URLs name servers that are not one cluster.
    #[error(
        "{0} is a single Redis server, not a Redis Cluster node: give one URL for a single server, several only for a cluster's seed nodes"
    )]
    NotACluster(String),
}

/// Connects to the first URL that answers within the timeout and asks what
/// it is: its version and whether it is part of a Redis Cluster (then how
/// many masters serve slots, and whether all slots are served).
pub fn probe(s: &FarmSettings) -> Result<Probe, FarmError> {
    reach(s).map(|(p, _)| p)
}

/// Like [`probe`], keeping the connection to the URL that answered.
fn reach(s: &FarmSettings) -> Result<(Probe, redis::Connection), FarmError> {
    let mut errors = Vec::new();
    for url in &s.redis {
        match probe_one(url, s.timeout) {
            Ok((p, _)) if s.redis.len() > 1 && p.topology == Topology::Single => {
                return Err(FarmError::NotACluster(p.url));
            }
            Ok(answer) => return Ok(answer),
            Err(e) if e.is_timeout() => {
                errors.push(format!(
                    "{}: no answer within {:?} (cluster.timeout)",
                    redacted(url),
                    s.timeout
                ));
            }
            Err(e) => errors.push(format!("{}: {e}", redacted(url))),
        }
    }
    Err(FarmError::Unreachable(errors))
}

fn probe_one(url: &str, timeout: Duration) -> redis::RedisResult<(Probe, redis::Connection)> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    let info: String = redis::cmd("INFO").query(&mut con)?;
    let version = info_field(&info, "redis_version").unwrap_or("unknown").to_string();
    let topology = if info_field(&info, "cluster_enabled") == Some("1") {
        let state: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con)?;
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut con)?;
        let ok = info_field(&state, "cluster_state") == Some("ok");
        Topology::Cluster { masters: serving_masters(&nodes), ok }
    } else {
        Topology::Single
    };
    let eviction = eviction(&info);
    Ok((Probe { url: redacted(url), topology, version, eviction }, con))
}

/// The `maxmemory` and `maxmemory_policy` of an `INFO` reply, if the server
/// may evict keys with an expiry (every window has one) when full.
fn eviction(info: &str) -> Option<(String, String)> {
    let limit = info_field(info, "maxmemory").filter(|m| *m != "0")?;
    let human = info_field(info, "maxmemory_human").unwrap_or(limit);
    let policy = info_field(info, "maxmemory_policy").filter(|p| *p != "noeviction")?;
    Some((human.to_string(), policy.to_string()))
}

impl Probe {
    /// What to say of a server that may evict keys when full (see
    /// [`Probe::eviction`]).
    pub fn eviction_warning(&self) -> Option<String> {
        let (limit, policy) = self.eviction.as_ref()?;
        Some(format!(
            "{} may evict keys when full (maxmemory {limit}, maxmemory-policy {policy}): a farm window evicted loses its count, and with it what each node applied, so a node restarted after a crash could count its lines again; set maxmemory-policy noeviction (a full Redis is then an outage: the nodes decide alone)",
            self.url
        ))
    }
}

/// A `field:value` line of an `INFO` reply.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).map(str::trim)
}

/// Masters in a `CLUSTER NODES` reply that serve slots and are not failed:
/// a line is `id addr flags master ping pong epoch state slot…`.
fn serving_masters(nodes: &str) -> usize {
    nodes
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f.len() > 8)
        .filter(|f| f[2].split(',').any(|x| x == "master") && !f[2].contains("fail"))
        .count()
}

/// `url` with its password, if any, replaced by `***` (for messages).
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_string() };
    let Some((user, _)) = userinfo.split_once(':') else { return url.to_string() };
    let path = path.map_or(String::new(), |p| format!("/{p}"));
    format!("{scheme}://{user}:***@{host}{path}")
}

/// The farm's Redis as a log names it: its URL, or a cluster's seed nodes
/// comma-separated, passwords hidden ([`redacted`]).
pub fn redacted_all(urls: &[String]) -> String {
    urls.iter().map(|u| redacted(u)).collect::<Vec<_>>().join(", ")
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.topology {
            Topology::Single => {
                write!(f, "{}: answers, a single server (Redis {})", self.url, self.version)
            }
            Topology::Cluster { masters, ok } => write!(
                f,
                "{}: answers, a Redis Cluster of {masters} master(s){} (Redis {})",
                self.url,
                if ok {
                    ""
                } else {
                    ", but not every hash slot is served (cluster_state is not ok)"
                },
                self.version
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redacted("redis://:secret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(redacted("rediss://me:pw@h/1"), "rediss://me:***@h/1");
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redacted("redis+unix:///run/redis.sock"), "redis+unix:///run/redis.sock");
        assert_eq!(redacted("redis://me@h:1"), "redis://me@h:1");
        assert_eq!(redacted("redis://:p@ss@h"), "redis://:***@h");
        let seeds = ["redis://:a@h1:7000".to_string(), "redis://h2:7000".to_string()];
        assert_eq!(redacted_all(&seeds), "redis://:***@h1:7000, redis://h2:7000");
    }

    #[test]
    fn masters_that_serve_slots_are_counted() {
        let nodes = "a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                     b 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922\n\
                     c 127.0.0.1:7002@17002 master,fail - 0 0 3 disconnected 10923-16383\n\
                     d 127.0.0.1:7003@17003 slave a 0 0 1 connected\n\
                     e 127.0.0.1:7004@17004 master - 0 0 0 connected\n";
        assert_eq!(serving_masters(nodes), 2);
        let info = "# Server\r\nredis_version:7.0.15\r\ncluster_enabled:0\r\n";
        assert_eq!(info_field(info, "redis_version"), Some("7.0.15"));
        assert_eq!(info_field(info, "cluster_enabled"), Some("0"));
        assert_eq!(info_field(info, "redis"), None);
    }

    /// A server evicts keys only with a memory limit and a policy other
    /// than noeviction.
    #[test]
    fn a_server_that_may_evict_is_known() {
        let info = |max: &str, policy: &str| {
            format!("maxmemory:{max}\r\nmaxmemory_human:100.00M\r\nmaxmemory_policy:{policy}\r\n")
        };
        let some = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(eviction(&info("104857600", "allkeys-lru")), some("100.00M", "allkeys-lru"));
        assert_eq!(eviction(&info("104857600", "volatile-ttl")), some("100.00M", "volatile-ttl"));
        assert_eq!(eviction(&info("104857600", "noeviction")), None);
        assert_eq!(eviction(&info("0", "allkeys-lru")), None, "no limit");
    }
}
