//! Whether the farm's nodes count with the same rules. The farm's windows
//! are keyed by rule name, and each node applies its events with its own
//! threshold, window and cooldown: a rule that differs between nodes would
//! decide by whichever node's event came; one that counts other lines, or
//! per another key, on one node would mix its events into the others'
//! windows. So each node registers its rules
//! in one Redis hash (`prefix:rules`, a field per node) when it connects and
//! every hour after, reads the others' back, and says what differs, once
//! while it lasts.
//! The entry also names the machine, so two machines that took the same
//! node name are told: the farm records what each node applied under its
//! name and file, so theirs could be taken for each other's. And it carries
//! the node's clock against the Redis server's: the farm's windows go by the
//! logs' times, which each server writes by its own clock, so nodes whose
//! clocks differ are told too.

use super::FarmRule;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// How often a connected node registers its rules again (which also keeps
/// its entry from counting as gone).
pub const EVERY_SECS: u64 = 3600;
/// An entry older than this is a node gone: not compared.
const GONE_SECS: u64 = 2 * EVERY_SECS;
/// An entry older than this is removed, and the hash expires after it.
pub const FORGET_SECS: u64 = 7 * 24 * 3600;
/// Two nodes' clocks further apart than this are told: a second moves an
/// event to the next second of the window, more starts to move the window.
pub const CLOCK_TOLERANCE_MS: i64 = 1000;

/// What a node registered: when (Unix seconds), from which machine, its
/// clock, and its rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    /// When it registered.
    pub at: u64,
    /// The machine's host name.
    pub host: String,
    /// Its clock minus the Redis server's, in ms, when it registered
    /// (absent from an older node's entry: then not compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_ms: Option<i64>,
    /// Its rules' windows, by name.
    pub rules: BTreeMap<String, Spec>,
}

/// A rule's window as the farm applies it, and what it counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    window: u32,
    threshold: u32,
    cooldown: u32,
    distinct: bool,
    /// The digest of what it counts (absent from an older node's entry:
    /// then not compared).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    matches: String,
    /// The digest of how its sources find the client (absent from an older
    /// node's entry: then not compared).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    clients: String,
}

impl From<&FarmRule> for Spec {
    fn from(r: &FarmRule) -> Spec {
        let w = r.spec;
        Spec {
            window: w.window,
            threshold: w.threshold,
            cooldown: w.cooldown,
            distinct: w.distinct,
            matches: r.matches.clone(),
            clients: r.clients.clone(),
        }
    }
}

impl Spec {
    /// Whether the window is the same (threshold, window, cooldown, kind).
    fn same_window(&self, o: &Spec) -> bool {
        (self.window, self.threshold, self.cooldown, self.distinct)
            == (o.window, o.threshold, o.cooldown, o.distinct)
    }

    /// Whether both say what they count, and it differs.
    fn counts_otherwise(&self, o: &Spec) -> bool {
        differ(&self.matches, &o.matches)
    }

    /// Whether both say how they find the client, and it differs.
    fn finds_clients_otherwise(&self, o: &Spec) -> bool {
        differ(&self.clients, &o.clients)
    }
}

/// Whether two digests are both known and differ.
fn differ(a: &str, b: &str) -> bool {
    !a.is_empty() && !b.is_empty() && a != b
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.distinct { "distinct values" } else { "events" };
        write!(
            f,
            "threshold {} {what}, window {} s, cooldown {} s",
            self.threshold, self.window, self.cooldown
        )
    }
}

/// The hash every node registers in.
pub fn key(prefix: &str) -> String {
    format!("{prefix}:rules")
}

/// This node's entry at `now`, from machine `host`, its clock `clock_ms`
/// off the Redis server's.
pub fn entry(rules: &[FarmRule], now: u64, host: &str, clock_ms: Option<i64>) -> String {
    let rules = rules.iter().map(|r| (r.name.clone(), Spec::from(r))).collect();
    let host = host.to_string();
    serde_json::to_string(&Registered { at: now, host, clock_ms, rules }).unwrap_or_default()
}

/// The rules' hash as read by node `me` on machine `host`.
#[derive(Debug, Default)]
pub struct Read {
    /// The other nodes' current entries, by name.
    pub others: BTreeMap<String, Registered>,
    /// Nodes whose entries are old enough to remove.
    pub old: Vec<String>,
    /// Another machine that registered as `me` lately.
    pub twin: Option<String>,
}

/// Sorts the hash's entries (node name → entry) at `now`.
pub fn read(all: HashMap<String, String>, me: &str, host: &str, now: u64) -> Read {
    let mut read = Read::default();
    for (node, text) in all {
        // An entry that does not parse came from another version: skipped.
        let Ok(r) = serde_json::from_str::<Registered>(&text) else { continue };
        let age = now.saturating_sub(r.at);
        if age > FORGET_SECS {
            read.old.push(node);
            continue;
        }
        if age > GONE_SECS {
            continue;
        }
        if node != me {
            read.others.insert(node, r);
        } else if r.host != host {
            read.twin = Some(r.host);
        }
    }
    read
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    jiff::Timestamp::now().as_second().max(0) as u64
}

/// This machine's clock minus a Redis server's, in ms: `time` is the
/// server's reply to TIME (seconds, µs), read between `sent` and
/// `answered` on this machine's clock (ms); taken at their midpoint, so
/// right within half the round trip.
pub fn clock_offset(sent: i64, answered: i64, (secs, micros): (i64, i64)) -> i64 {
    let server = secs.saturating_mul(1000).saturating_add(micros / 1000);
    sent.midpoint(answered).saturating_sub(server)
}

/// One thing a node has to tell of the farm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is about (the same while it lasts, if the figures change).
    pub about: String,
    /// What to say.
    pub text: String,
}

impl Finding {
    /// A finding about what its text says.
    fn of(text: String) -> Finding {
        Finding { about: text.clone(), text }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What node `me` with `rules`, its clock `clock_ms` off Redis's, has to
/// tell of the hash it read: another machine under its name, each clock
/// too far from its own, then each rule that differs.
pub fn findings(read: &Read, me: &str, rules: &[FarmRule], clock_ms: Option<i64>) -> Vec<Finding> {
    let twin = read.twin.as_deref().map(|twin| Finding::of(twin_message(me, twin)));
    let clocks = clock_ms.map(|mine| clocks(mine, &read.others)).unwrap_or_default();
    let rules = differences(rules, &read.others).into_iter().map(Finding::of);
    twin.into_iter().chain(clocks).chain(rules).collect()
}

/// The other nodes whose clocks are more than [`CLOCK_TOLERANCE_MS`] from
/// this node's (`mine`, each against Redis's).
fn clocks(mine: i64, others: &BTreeMap<String, Registered>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (node, theirs) in others {
        let Some(d) = theirs.clock_ms.map(|c| c.saturating_sub(mine)) else { continue };
        if d.abs() <= CLOCK_TOLERANCE_MS {
            continue;
        }
        let side = if d > 0 { "ahead of" } else { "behind" };
        out.push(Finding {
            about: format!("clock {node}"),
            text: format!(
                "node {node}'s clock is {:.1} s {side} this node's (each measured against the Redis server's): the farm's windows go by the logs' times, which each server writes by its own clock, so one node's events fall in the wrong seconds of the others' windows, or are late; synchronize the clocks (NTP)",
                d.unsigned_abs() as f64 / 1000.0
            ),
        });
    }
    out
}

/// What to say of another machine registered under this node's name.
fn twin_message(me: &str, twin: &str) -> String {
    format!(
        "machine {twin:?} registered as node {me:?} too, less than two hours ago: every server needs its own cluster.node (the farm keeps what each node applied under its name and file, so one's lines could be taken for the other's)"
    )
}

/// What differs between this node's rules and each other node's, one
/// sentence each.
fn differences(mine: &[FarmRule], others: &BTreeMap<String, Registered>) -> Vec<String> {
    let mut out = Vec::new();
    for (node, theirs) in others {
        for rule in mine {
            let (name, here) = (&rule.name, Spec::from(rule));
            match theirs.rules.get(name) {
                None => out.push(format!(
                    "rule {name:?} is not on node {node}: its events there are not counted"
                )),
                Some(s) if !s.same_window(&here) => out.push(format!(
                    "rule {name:?} differs on node {node} ({s}) from this node's ({here})"
                )),
                Some(s) if s.counts_otherwise(&here) => out.push(format!(
                    "rule {name:?} counts other lines or per another key on node {node} than on this node (its field, what it looks for, its filters, key, distinct field or allow-list differ)"
                )),
                Some(s) if s.finds_clients_otherwise(&here) => out.push(format!(
                    "rule {name:?} finds a line's client otherwise on node {node} than on this node (the client field, header, trusted proxies or ipv6_prefix of the sources it reads differ): one client's hits there are counted under another key"
                )),
                Some(_) => {}
            }
        }
        for name in theirs.rules.keys().filter(|n| !mine.iter().any(|m| &m.name == *n)) {
            out.push(format!(
                "node {node} has rule {name:?}, which this node has not: its events here are not counted"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::WindowSpec;

    fn rule(name: &str, threshold: u32) -> FarmRule {
        let spec = WindowSpec { threshold, window: 600, cooldown: 600, distinct: false };
        let (matches, clients) = ("m".to_string(), "c".to_string());
        let counting = String::new();
        FarmRule { name: name.to_string(), spec, matches, counting, clients, by_client: true }
    }

    #[test]
    fn differing_missing_and_extra_rules_are_named() {
        let mine = vec![rule("dl", 10), rule("login", 5), rule("env", 3), rule("only", 2)];
        let mut env = rule("env", 3);
        env.matches = "other".to_string();
        let mut login = rule("login", 5);
        login.clients = "other".to_string();
        let theirs = vec![rule("dl", 20), rule("scan", 3), env, login];
        let same = |host| entry(&mine, 1000, host, None);
        let other = entry(&theirs, 1000, "b", None);
        let all = HashMap::from([
            ("web1".to_string(), same("a")),
            ("web2".to_string(), other),
            ("web3".to_string(), same("c")),
        ]);
        let read = read(all, "web1", "a", 1000);
        assert_eq!(read.others.keys().collect::<Vec<_>>(), ["web2", "web3"]);
        assert!(read.old.is_empty() && read.twin.is_none());
        assert_eq!(
            differences(&mine, &read.others),
            [
                "rule \"dl\" differs on node web2 (threshold 20 events, window 600 s, cooldown 600 s) from this node's (threshold 10 events, window 600 s, cooldown 600 s)",
                "rule \"login\" finds a line's client otherwise on node web2 than on this node (the client field, header, trusted proxies or ipv6_prefix of the sources it reads differ): one client's hits there are counted under another key",
                "rule \"env\" counts other lines or per another key on node web2 than on this node (its field, what it looks for, its filters, key, distinct field or allow-list differ)",
                "rule \"only\" is not on node web2: its events there are not counted",
                "node web2 has rule \"scan\", which this node has not: its events here are not counted",
            ]
        );
    }

    #[test]
    fn old_entries_are_not_compared_and_the_oldest_go() {
        let mine = vec![rule("dl", 10)];
        let other = |at| entry(&[rule("dl", 20)], at, "b", None);
        let now = 10 * FORGET_SECS;
        let all = HashMap::from([
            ("gone".to_string(), other(now - GONE_SECS - 1)),
            ("forgotten".to_string(), other(now - FORGET_SECS - 1)),
            ("garbled".to_string(), "{".to_string()),
            ("here".to_string(), other(now - GONE_SECS)),
        ]);
        let read = read(all, "web1", "a", now);
        assert_eq!(read.others.keys().collect::<Vec<_>>(), ["here"]);
        assert_eq!(read.old, ["forgotten"]);
        assert_eq!(differences(&mine, &read.others).len(), 1);
    }

    /// An entry without a digest of what its rules count (an older node)
    /// is compared by window alone.
    #[test]
    fn an_entry_without_what_its_rules_count_is_compared_by_window() {
        let mine = vec![rule("dl", 10)];
        let older = r#"{"at":1000,"host":"b","rules":{"dl":{"window":600,"threshold":10,"cooldown":600,"distinct":false}}}"#;
        let read =
            read(HashMap::from([("web2".to_string(), older.to_string())]), "web1", "a", 1000);
        assert_eq!(read.others.len(), 1);
        assert!(differences(&mine, &read.others).is_empty());
    }

    #[test]
    fn another_machine_under_this_nodes_name_is_found() {
        let mine = vec![rule("dl", 10)];
        let at = |host, at| HashMap::from([("web1".to_string(), entry(&mine, at, host, None))]);
        assert_eq!(read(at("b", 1000), "web1", "a", 1000).twin.as_deref(), Some("b"));
        assert_eq!(read(at("a", 1000), "web1", "a", 1000).twin, None, "this machine before");
        let later = 1000 + GONE_SECS + 1;
        assert_eq!(read(at("b", 1000), "web1", "a", later).twin, None, "gone since");
    }

    /// Clocks more than a second apart are told, by node, with the
    /// difference; an entry without a clock (an older node) is not compared.
    #[test]
    fn clocks_more_than_a_second_apart_are_told() {
        let mine = vec![rule("dl", 10)];
        let at = |clock| entry(&mine, 1000, "h", clock);
        let all = HashMap::from([
            ("ahead".to_string(), at(Some(2_750))),
            ("behind".to_string(), at(Some(-1_001))),
            ("near".to_string(), at(Some(1_000))),
            ("older".to_string(), at(None)),
        ]);
        let read = read(all, "web1", "a", 1000);
        let told = findings(&read, "web1", &mine, Some(0));
        let abouts: Vec<&str> = told.iter().map(|f| f.about.as_str()).collect();
        assert_eq!(abouts, ["clock ahead", "clock behind"]);
        assert!(told[0].text.starts_with("node ahead's clock is 2.8 s ahead of this node's"));
        assert!(told[1].text.starts_with("node behind's clock is 1.0 s behind this node's"));
        assert!(findings(&read, "web1", &mine, None).is_empty(), "no clock of its own");
        let mine_late = findings(&read, "web1", &mine, Some(2_000));
        let abouts: Vec<&str> = mine_late.iter().map(|f| f.about.as_str()).collect();
        assert_eq!(abouts, ["clock behind"], "the difference is between the nodes");
    }

    #[test]
    fn a_clock_offset_is_taken_at_the_round_trips_midpoint() {
        assert_eq!(clock_offset(10_000, 10_010, (9, 500_000)), 10_005 - 9_500);
        assert_eq!(clock_offset(10_000, 10_000, (12, 999)), -2_000);
    }
}
