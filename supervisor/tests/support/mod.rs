//! Harness for chatctl end-to-end tests: a cluster started with `chatctl up --detach` on
//! ports probed free, in a temp state dir, stopped by `chatctl down` (or by the supervisor's
//! pid) when dropped.
#![allow(dead_code)]

pub mod driver;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(15);

/// A port whose `n - 1` successors are free too, probed by binding, and below the kernel's
/// ephemeral range: ports from that range get taken by outgoing connections (HAProxy to the
/// workers, the load driver to HAProxy) while a test runs, so a scale-up could find its port
/// busy.
pub fn free_port_range(n: u16) -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (lo, hi) = (
        10_000u32,
        ephemeral_low.saturating_sub(n as u32 + 1).max(10_100),
    );
    // Spread concurrent test binaries over the range: seed from the pid and the clock.
    let mut x = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    for _ in 0..500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let base = (lo + (x % (hi - lo) as u64) as u32) as u16;
        if (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range of {n}");
}

/// Kills a child we spawned (by its handle, so by pid) when dropped, so a failing test leaves
/// nothing running.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` every 50 ms on this thread until it holds; panics after `limit`.
pub fn wait_sync(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until none of `pids` runs any more; names the survivors when it gives up.
pub async fn wait_pids_gone(what: &str, pids: &[u32], limit: Duration) {
    let deadline = Instant::now() + limit;
    while pids.iter().any(|p| pid_alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "{what}: still running: {:?}",
            pids.iter().filter(|p| pid_alive(**p)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// A cluster started with `chatctl up --detach`; `Drop` runs `chatctl down` and, if that
/// fails, kills the supervisor by the pid it wrote.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Cluster {
    pub fn up(workers: u32) -> Cluster {
        Self::up_with(workers, &[])
    }

    /// `chatctl up --detach` with extra flags.
    pub fn up_with(workers: u32, extra: &[&str]) -> Cluster {
        let bin = Path::new(env!("CARGO_BIN_EXE_chatctl"));
        assert!(
            bin.with_file_name("chat-worker").exists(),
            "chat-worker must be built beside chatctl: run `cargo build --workspace`"
        );
        let dir = tempfile::Builder::new()
            .prefix("ctl")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let port = free_port_range(1);
        let base = free_port_range(8);
        let c = Cluster { dir, port };
        let workers = workers.to_string();
        let (port_s, base_s) = (port.to_string(), base.to_string());
        let mut args = vec![
            "up",
            "--workers",
            &workers,
            "--port",
            &port_s,
            "--base-port",
            &base_s,
            "--bind",
            "127.0.0.1",
            "--detach",
        ];
        args.extend_from_slice(extra);
        let out = c.chatctl(&args);
        assert!(
            out.status.success(),
            "up failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(c.dir.path().join("logs/chatctl.log")).unwrap_or_default()
        );
        c
    }

    pub fn chatctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_chatctl"))
            .arg("--state-dir")
            .arg(self.dir.path())
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run chatctl")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.chatctl(args);
        assert!(
            out.status.success(),
            "chatctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status JSON")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The embedded Redis, through redis-cli with the generated password.
    pub fn redis(&self, args: &[&str]) -> String {
        let pass = std::fs::read_to_string(self.dir.path().join("redis.pass")).expect("redis.pass");
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(self.dir.path().join("redis.sock"))
            .args(["--no-auth-warning", "-a", pass.trim()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// redis-cli against another Redis socket (no password).
    pub fn redis_url_cli(&self, sock: &Path, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(sock)
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Which worker id holds `user` (from the user map: instance ids start with `ID-`).
    pub fn worker_of(&self, user: &str) -> Option<u32> {
        let members = self.redis(&["SMEMBERS", &format!("chat:u:{user}:workers")]);
        members.lines().next()?.split('-').next()?.parse().ok()
    }

    pub fn our_pids(status: &Value) -> Vec<u32> {
        let mut pids = vec![status["supervisor"]["pid"].as_u64().unwrap() as u32];
        for w in status["workers"].as_array().unwrap() {
            if let Some(p) = w["pid"].as_u64() {
                pids.push(p as u32);
            }
        }
        for p in [&status["haproxy"]["pid"], &status["redis"]["pid"]] {
            if let Some(p) = p.as_u64() {
                pids.push(p as u32);
            }
        }
        pids
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = self.chatctl(&["down"]);
        if !out.status.success() {
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("chatctl.pid")) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
        }
    }
}

pub async fn wait_status(c: &Cluster, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = c.status();
        if check(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn all_up(s: &Value, n: usize) -> bool {
    let workers = s["workers"].as_array().unwrap();
    let servers = s["haproxy"]["servers"].as_array().unwrap();
    workers.len() == n
        && workers.iter().all(|w| w["state"] == "up")
        && servers.len() == n
        && servers
            .iter()
            .all(|sv| sv["state"].as_str().unwrap_or("").starts_with("UP"))
}

pub async fn node_e2e(url: &str, transport: &str) {
    node_e2e_env(url, transport, &[]).await
}

/// The official client's end-to-end script (tests/js/e2e.mjs) against `url`.
pub async fn node_e2e_env(url: &str, transport: &str, env: &[(&str, &std::ffi::OsStr)]) {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js");
    assert!(
        js.join("node_modules/socket.io-client").exists(),
        "tests/js/node_modules missing: run scripts/setup.sh"
    );
    let out = tokio::time::timeout(
        Duration::from_secs(40),
        tokio::process::Command::new("node")
            .arg(js.join("e2e.mjs"))
            .args([url, url, transport])
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("node e2e bounded")
    .expect("node");
    assert!(
        out.status.success(),
        "{transport} through haproxy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
