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
    /// (`["--requirepass", "pw"]`), and waits until it answers.
    pub fn start(dir: &Path, args: &[&str]) -> Redis {
        Redis::start_on(free_port(), dir, args)
    }

    /// The same on a given port (to start a stopped server again).
    pub fn start_on(port: u16, dir: &Path, args: &[&str]) -> Redis {
        let p = port.to_string();
        let d = dir.display().to_string();
        let log = format!("{d}/redis-{port}.log");
        let child = Command::new("redis-server")
            .args(["--port", &p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &d, "--logfile", &log, "--daemonize", "no"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        let child = Reaped(child);
        wait_until(&format!("redis-server on port {port}"), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Redis { port, _child: child }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A Redis Cluster of three masters, no replicas.
pub struct Cluster {
    /// Its nodes.
    pub nodes: Vec<Redis>,
}

impl Cluster {
    /// Starts three cluster-enabled servers, joins them and waits until
    /// every hash slot is served.
    pub fn start(dir: &Path) -> Cluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|i| {
                let args = Cluster::args(dir, i);
                Redis::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli --cluster create: {out:?}");
        let cluster = Cluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// A node's arguments: its own cluster configuration file in `dir`.
    fn args(dir: &Path, i: usize) -> [String; 4] {
        let conf = format!("{}/nodes-{i}.conf", dir.display());
        ["--cluster-enabled".into(), "yes".into(), "--cluster-config-file".into(), conf]
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

    fn wait_ok(&self) {
        for n in &self.nodes {
            wait_until("cluster_state:ok", || {
                let out = Command::new("redis-cli")
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("run redis-cli");
                String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok")
            });
        }
    }

    /// The nodes' URLs, as seed nodes.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(Redis::url).collect()
    }
}
