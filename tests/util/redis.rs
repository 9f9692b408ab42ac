//! Redis servers for the farm tests, on free loopback ports, each killed
//! when dropped: a single server, or a three-master Redis Cluster made with
//! `redis-cli --cluster create` (Debian's `redis-server` package; tests that
//! use them are `#[ignore]`d and run by `scripts/test`, which installs it).

use super::{Reaped, wait_until};
use std::path::Path;
use std::process::{Command, Stdio};

/// One `redis-server` on 127.0.0.1.
pub struct Redis {
    /// Its port.
    pub port: u16,
    _child: Reaped,
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_port() -> u16 {
    loop {
        let port = super::free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl Redis {
    /// Starts a server keeping nothing on disk, with `args` added
    /// (`["--requirepass", "pw"]`), and waits until it answers. A free port
    /// can be taken by another test's server before this one binds it; then
    /// another port is tried.
    pub fn start(dir: &Path, args: &[&str]) -> Redis {
        (0..5)
            .find_map(|_| Redis::try_start_on(free_port(), dir, args))
            .expect("redis-server started on one of five free ports")
    }

    /// The same on a given port (to start a stopped server again).
    pub fn start_on(port: u16, dir: &Path, args: &[&str]) -> Redis {
        Redis::try_start_on(port, dir, args)
            .unwrap_or_else(|| panic!("redis-server did not start on port {port} (see its log)"))
    }

    /// Starts a server on `port`; `None` if it ended before listening.
    fn try_start_on(port: u16, dir: &Path, args: &[&str]) -> Option<Redis> {
        let p = port.to_string();
        let d = dir.display().to_string();
        let log = format!("{d}/redis-{port}.log");
        // A server started again appends to its log: only what follows counts.
        let from = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let child = Command::new("redis-server")
            .args(["--port", &p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &d, "--logfile", &log, "--daemonize", "no"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        let mut child = Reaped(child);
        // Its own log says it listens: another test's server on the port
        // would answer a connection too.
        let ready = || {
            let text = std::fs::read(&log).unwrap_or_default();
            text.get(from..)
                .is_some_and(|t| String::from_utf8_lossy(t).contains("Ready to accept connections"))
        };
        let mut ended = false;
        wait_until(&format!("redis-server on port {port}"), || {
            ready() || {
                ended = child.0.try_wait().ok().flatten().is_some();
                ended
            }
        });
        (!ended).then_some(Redis { port, _child: child })
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command (`["CONFIG", "SET", "maxmemory", "0"]`); panics on
    /// an error reply.
    pub fn command(&self, args: &[&str]) {
        let mut con = redis::Client::open(self.url()).unwrap().get_connection().unwrap();
        let _: redis::Value = redis::cmd(args[0]).arg(&args[1..]).query(&mut con).unwrap();
    }

    /// Starts a server that speaks only TLS, its certificate (for
    /// 127.0.0.1) signed by a new CA; returns it and the CA's file.
    pub fn start_tls(dir: &Path) -> (Redis, std::path::PathBuf) {
        let (ca, cert, key) = tls_files(dir);
        let port = free_port().to_string();
        let (cert, key, ca_arg) =
            (cert.to_str().unwrap(), key.to_str().unwrap(), ca.to_str().unwrap());
        let args = ["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"];
        let files = ["--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca_arg];
        let all: Vec<&str> = args.iter().chain(&files).copied().collect();
        (Redis::start_on(port.parse().unwrap(), dir, &all), ca)
    }
}

/// A CA and a server certificate and key for 127.0.0.1, made by `openssl`
/// in `dir`: (CA, certificate, key).
pub fn tls_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let f = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (ca_key, ca, key, csr, cert, ext) =
        (f("ca.key"), f("ca.pem"), f("srv.key"), f("srv.csr"), f("srv.pem"), f("srv.ext"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    let steps: [&[&str]; 3] = [
        &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &ca_key, "-out", &ca],
        &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr],
        &["x509", "-req", "-in", &csr, "-CA", &ca, "-CAkey", &ca_key, "-CAcreateserial"],
    ];
    for (i, step) in steps.iter().enumerate() {
        let mut cmd = Command::new("openssl");
        cmd.args(*step).args(["-days", "2"]).stdin(Stdio::null());
        match i {
            0 => cmd.args(["-subj", "/CN=logwarden test CA"]),
            1 => cmd.args(["-subj", "/CN=127.0.0.1"]),
            _ => cmd.args(["-out", &cert, "-extfile", &ext]),
        };
        let out = cmd.output().expect("run openssl (apt-get install openssl)");
        assert!(out.status.success(), "openssl {step:?}: {out:?}");
    }
    (ca.into(), cert.into(), key.into())
}

/// A Redis Cluster of three masters, with or without a replica each.
pub struct Cluster {
    /// Its nodes.
    pub nodes: Vec<Redis>,
}

impl Cluster {
    /// Starts three cluster-enabled servers, joins them and waits until
    /// every hash slot is served.
    pub fn start(dir: &Path) -> Cluster {
        Cluster::create(dir, 0)
    }

    /// Three masters with a replica each, which takes over a master that
    /// has not answered for a second; returns when every replica has
    /// loaded its first copy of its master, so that what is written later
    /// reaches it by the replication stream alone.
    pub fn start_with_replicas(dir: &Path) -> Cluster {
        let cluster = Cluster::create(dir, 1);
        wait_until("every replica known to the cluster", || {
            let nodes = redis_cli(cluster.nodes[0].port, &["cluster", "nodes"]);
            nodes.lines().filter(|l| l.contains("slave") && l.contains("connected")).count() == 3
        });
        // "connected" above is the cluster bus; the replication link is up
        // once the first copy (a full sync) is loaded.
        wait_until("every replica's first copy of its master", || {
            let up = |n: &Redis| {
                let info = redis_cli(n.port, &["info", "replication"]);
                info.contains("role:slave") && info.contains("master_link_status:up")
            };
            cluster.nodes.iter().filter(|n| up(n)).count() == 3
        });
        cluster
    }

    /// `3 × (1 + replicas)` servers joined by `redis-cli --cluster create`.
    fn create(dir: &Path, replicas: usize) -> Cluster {
        let nodes: Vec<Redis> = (0..3 * (1 + replicas))
            .map(|i| {
                let args = Cluster::args(dir, i);
                Redis::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli --cluster create: {out:?}");
        let cluster = Cluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// A node's arguments: its own cluster configuration file in `dir`, a
    /// second before a silent node counts as failed, and a replica's first
    /// copy sent at once (Redis 7 waits 5 s for more replicas by default).
    fn args(dir: &Path, i: usize) -> [String; 8] {
        let conf = format!("{}/nodes-{i}.conf", dir.display());
        [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &conf,
            "--cluster-node-timeout",
            "1000",
            "--repl-diskless-sync-delay",
            "0",
        ]
        .map(String::from)
    }

    /// The port of the master that serves `key`'s hash slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot: u32 =
            redis_cli(self.nodes[0].port, &["cluster", "keyslot", key]).trim().parse().unwrap();
        let nodes = redis_cli(self.nodes[0].port, &["cluster", "nodes"]);
        let serves = |range: &str| match range.split_once('-') {
            Some((a, b)) => {
                a.parse::<u32>().is_ok_and(|a| a <= slot)
                    && b.parse::<u32>().is_ok_and(|b| slot <= b)
            }
            None => range.parse::<u32>() == Ok(slot),
        };
        let line = nodes
            .lines()
            .find(|l| l.contains("master") && l.split(' ').skip(8).any(serves))
            .expect("a master serves every slot");
        node_port(line).unwrap()
    }

    /// The port of the replica of the master on `port`.
    pub fn replica_of(&self, master: u16) -> u16 {
        let nodes = redis_cli(self.nodes[0].port, &["cluster", "nodes"]);
        let of_master = nodes.lines().find(|l| node_port(l) == Some(master)).unwrap();
        let id = of_master.split(' ').next().unwrap();
        let replica = nodes.lines().find(|l| l.contains(&format!(" slave {id} "))).unwrap();
        node_port(replica).unwrap()
    }

    /// The keys that hold `pattern` on the node on `port` (a master or a
    /// replica), with their values, in the order of their names.
    pub fn values(port: u16, pattern: &str) -> Vec<(String, Vec<u8>)> {
        let url = format!("redis://127.0.0.1:{port}");
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        // A replica answers reads of its master's keys after READONLY.
        let _: () = redis::cmd("READONLY").query(&mut con).unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut con).unwrap();
        keys.sort();
        keys.into_iter()
            .map(|k| {
                let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut con).unwrap();
                (k, v)
            })
            .collect()
    }

    /// Kills the server on `port` (`kill -9`).
    pub fn kill(&mut self, port: u16) {
        self.nodes.retain(|n| n.port != port);
    }

    /// Stops every node (`kill -9`); [`Cluster::restart`] brings them back.
    pub fn stop(&mut self) -> Vec<u16> {
        self.nodes.drain(..).map(|n| n.port).collect()
    }

    /// Starts the nodes again on their ports, from their cluster
    /// configuration files (the slots as before, no data), and waits until
    /// every slot is served.
    pub fn restart(dir: &Path, ports: &[u16]) -> Cluster {
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let args = Cluster::args(dir, i);
                Redis::start_on(p, dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect();
        let cluster = Cluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every node says every hash slot is served.
    pub fn wait_ok(&self) {
        for n in &self.nodes {
            wait_until("cluster_state:ok", || {
                redis_cli(n.port, &["cluster", "info"]).contains("cluster_state:ok")
            });
        }
    }

    /// What the nodes say, for a failure's message: how each sees the
    /// cluster, the keys that hold `pattern`, and every server's log in
    /// `dir` (killed ones' too).
    pub fn said(&self, dir: &Path, pattern: &str) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let nodes = redis_cli(n.port, &["cluster", "nodes"]);
            let keys = redis_cli(n.port, &["--scan", "--pattern", pattern]);
            out += &format!("--- redis {}: cluster nodes\n{nodes}--- keys\n{keys}", n.port);
            for key in keys.lines() {
                let len = redis_cli(n.port, &["strlen", key]);
                let ttl = redis_cli(n.port, &["pttl", key]);
                out += &format!("{key}: {} bytes, pttl {}", len.trim(), ttl);
            }
        }
        let mut logs: Vec<_> =
            std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            out += &format!("--- {}\n{text}", log.display());
        }
        out
    }

    /// The nodes' URLs, as seed nodes.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(Redis::url).collect()
    }
}

/// The port of a node in a line of `CLUSTER NODES` (`id ip:port@bus …`).
fn node_port(line: &str) -> Option<u16> {
    line.split(' ').nth(1)?.split([':', '@']).nth(1)?.parse().ok()
}

/// `redis-cli -p PORT ARGS…`'s output.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
