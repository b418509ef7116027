//! [`RedisCluster`]: a real Redis Cluster on loopback (`redis-server --cluster-enabled yes`
//! per node, `redis-cli --cluster create`), on probed ports with explicit cluster-bus ports,
//! each node in its own temp dir, every node killed by pid when dropped. Nodes keep their
//! `nodes.conf`, so a killed node restarted on the same port rejoins (as a replica of whoever
//! took its slots).

use crate::proc::Reaped;
use crate::redis::{cli_output, short_tempdir};
use crate::{free_port_range, wait_sync};
use std::process::Command;
use std::time::Duration;

/// Bound on the cluster forming and on each wait here.
const FORM: Duration = Duration::from_secs(30);

struct Node {
    port: u16,
    bus: u16,
    dir: tempfile::TempDir,
    child: Option<Reaped>,
}

impl Node {
    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &self.bus.to_string(),
            ])
            .args(["--cluster-config-file", "nodes.conf"])
            // Failure detection plus election take about 1.5 × this.
            .args(["--cluster-node-timeout", "1000"])
            // The other shards keep serving while one fails over (docs/deploy.md).
            .args(["--cluster-require-full-coverage", "no"])
            .args(["--save", "", "--appendonly", "no"])
            // A replica's full sync starts at once instead of waiting 5 s for more replicas.
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        self.child = Some(Reaped::spawn(&mut cmd));
        let port = self.port;
        wait_sync("cluster node answers PING", FORM, || {
            cli(port, &["PING"]) == "PONG"
        });
    }
}

/// redis-cli against 127.0.0.1:`port`.
pub fn cli(port: u16, args: &[&str]) -> String {
    cli_output(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
    )
}

/// A running cluster of `primaries × (1 + replicas)` nodes.
pub struct RedisCluster {
    nodes: Vec<Node>,
    /// The primaries just before the last [`RedisCluster::kill`], to tell the promoted one.
    primaries_at_kill: Vec<u16>,
}

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas` replicas each and waits until every node
    /// reports `cluster_state:ok` with all 16384 slots assigned.
    pub fn start(primaries: usize, replicas: usize) -> RedisCluster {
        let n = primaries * (1 + replicas);
        let base = free_port_range((2 * n) as u16);
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                port: base + i as u16,
                bus: base + (n + i) as u16,
                dir: short_tempdir("rcl"),
                child: None,
            })
            .collect();
        for node in &mut nodes {
            node.spawn();
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("timeout")
            .args(["30", "redis-cli", "--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let c = RedisCluster {
            nodes,
            primaries_at_kill: Vec::new(),
        };
        c.wait_ok();
        c.wait_replicas_synced();
        c
    }

    /// Every live replica's link to its primary is up (its initial sync is done), so `WAIT`
    /// on a primary counts it.
    pub fn wait_replicas_synced(&self) {
        wait_sync("every replica synced with its primary", FORM, || {
            self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                let info = cli(n.port, &["INFO", "replication"]);
                info.contains("role:master") || info.contains("master_link_status:up")
            })
        });
    }

    /// Every live node sees the cluster ok and all slots assigned.
    fn wait_ok(&self) {
        wait_sync("cluster_state:ok on every node", FORM, || {
            self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                let info = cli(n.port, &["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_assigned:16384")
            })
        });
    }

    /// `redis+cluster://127.0.0.1:P,…` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// A live node's port, to ask the cluster something.
    fn any_live(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.child.is_some())
            .map(|n| n.port)
            .expect("a live node")
    }

    /// `CLUSTER NODES` lines of the live, non-failed primaries: (port, line).
    fn primary_lines(&self) -> Vec<(u16, String)> {
        cli(self.any_live(), &["CLUSTER", "NODES"])
            .lines()
            .filter(|l| {
                let flags = l.split_whitespace().nth(2).unwrap_or("");
                flags.contains("master") && !flags.contains("fail")
            })
            .filter_map(|l| {
                let addr = l.split_whitespace().nth(1)?;
                let port = addr
                    .split(['@', ','])
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()?;
                Some((port, l.to_owned()))
            })
            .collect()
    }

    /// Ports of the primaries the cluster currently has (live, not failed), sorted.
    pub fn primaries(&self) -> Vec<u16> {
        let mut p: Vec<u16> = self.primary_lines().into_iter().map(|(p, _)| p).collect();
        p.sort_unstable();
        p
    }

    /// The port of the primary serving `key`'s slot now.
    pub fn primary_for_key(&self, key: &str) -> u16 {
        let slot: u32 = cli(self.any_live(), &["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("CLUSTER KEYSLOT");
        self.primary_lines()
            .into_iter()
            .find(|(_, line)| {
                line.split_whitespace().skip(8).any(|range| {
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
                })
            })
            .map(|(p, _)| p)
            .unwrap_or_else(|| panic!("no primary serves slot {slot}"))
    }

    /// `DBSIZE` of each current primary: (port, keys).
    pub fn dbsize_per_primary(&self) -> Vec<(u16, u64)> {
        self.primaries()
            .into_iter()
            .map(|p| (p, cli(p, &["DBSIZE"]).parse().unwrap_or(0)))
            .collect()
    }

    /// SIGKILLs the node on `port` (by the pid this kit started).
    pub fn kill(&mut self, port: u16) {
        self.primaries_at_kill = self.primaries();
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("our node");
        drop(node.child.take());
    }

    /// After [`RedisCluster::kill`] of a primary: waits (bounded) until one of its replicas is
    /// a primary and the cluster is ok again; returns that node's port.
    pub fn wait_promoted(&self, port: u16, limit: Duration) -> u16 {
        let mut promoted = 0;
        wait_sync("a replica promoted and the cluster ok", limit, || {
            let info = cli(self.any_live(), &["CLUSTER", "INFO"]);
            let now = self.primaries();
            promoted = now
                .iter()
                .copied()
                .find(|p| !self.primaries_at_kill.contains(p))
                .unwrap_or(0);
            info.contains("cluster_state:ok") && !now.contains(&port) && promoted != 0
        });
        promoted
    }

    /// Starts the node on `port` again (same dir, same `nodes.conf`): it rejoins the cluster,
    /// as a replica if its slots were taken over meanwhile. Waits until the cluster is ok.
    pub fn restart(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("our node");
        drop(node.child.take());
        node.spawn();
        self.wait_replicas_synced();
    }
}
