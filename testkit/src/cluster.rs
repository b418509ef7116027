//! [`Cluster`]: a whole cluster started with `chatctl up --detach` (embedded or given Redis,
//! workers, HAProxy) in a temp state dir on probed ports, stopped by `chatctl down` — or by
//! the supervisor's pid — when dropped. Every chatctl run is bounded in time.

use crate::proc::{bin, run_bounded, Finished};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Generous bound for anything a chatctl test waits on.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(15);

/// Bound on one chatctl command (`up` included: it returns once the cluster serves).
const CHATCTL_LIMIT: Duration = Duration::from_secs(120);

/// `chatctl --state-dir DIR`, optionally inside network namespace `netns`, with no
/// `CHATCTL_*` variables of the caller's leaking in.
pub fn chatctl_command(state_dir: &Path, netns: Option<&str>) -> Command {
    let chatctl = bin("chatctl");
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(chatctl);
            c
        }
        None => Command::new(chatctl),
    };
    cmd.arg("--state-dir")
        .arg(state_dir)
        .env_remove("CHATCTL_STATE_DIR")
        .env_remove("CHATCTL_WORKER_BIN");
    cmd
}

/// `chatctl --state-dir DIR ARGS`, bounded: for tests of chatctl without a cluster.
pub fn chatctl_at(state_dir: &Path, args: &[&str]) -> Finished {
    run_bounded(chatctl_command(state_dir, None).args(args), CHATCTL_LIMIT)
}

/// A cluster started with `chatctl up --detach`; `Drop` runs `chatctl down` and, if the
/// supervisor still runs after that, SIGKILLs it by the pid it wrote (its children die with
/// it through PR_SET_PDEATHSIG). Distinct from [`crate::Workers`]: here chatctl owns every
/// process and tests reach it through HAProxy and `chatctl`; there the test owns Redis and
/// each bare worker and talks to each one's own port.
pub struct Cluster {
    /// The state dir (short, under /tmp: its Unix sockets must fit in 107 bytes).
    pub dir: tempfile::TempDir,
    /// The public port (HAProxy's), 0 when this host runs no front door.
    pub port: u16,
    /// The network namespace chatctl runs in, if any.
    netns: Option<String>,
    /// `RUST_LOG` for chatctl (and so the supervisor and workers it starts).
    rust_log: &'static str,
}

impl Cluster {
    pub fn up(workers: u32) -> Cluster {
        Self::up_with(workers, &[])
    }

    /// `chatctl up --detach` on 127.0.0.1 with probed free ports, plus `extra` flags.
    pub fn up_with(workers: u32, extra: &[&str]) -> Cluster {
        Self::up_local(workers, extra, "warn")
    }

    /// As [`Cluster::up_with`], everything logging at `info` (the default is `warn`).
    pub fn up_logging_info(workers: u32, extra: &[&str]) -> Cluster {
        Self::up_local(workers, extra, "info")
    }

    fn up_local(workers: u32, extra: &[&str], rust_log: &'static str) -> Cluster {
        let port = crate::free_port_range(1);
        let base = crate::free_port_range(8);
        let (workers, port_s, base_s) = (workers.to_string(), port.to_string(), base.to_string());
        let mut args = vec![
            "--workers",
            &workers,
            "--port",
            &port_s,
            "--base-port",
            &base_s,
            "--bind",
            "127.0.0.1",
        ];
        args.extend_from_slice(extra);
        Self::start(None, port, &args, rust_log)
    }

    /// `chatctl up ARGS --detach` exactly as given (ports included), inside `netns` if given;
    /// `port` is the public port those arguments chose (0 for none).
    pub fn up_in(netns: Option<&str>, port: u16, args: &[&str]) -> Cluster {
        Self::start(netns, port, args, "warn")
    }

    fn start(netns: Option<&str>, port: u16, args: &[&str], rust_log: &'static str) -> Cluster {
        let worker = bin("chatctl").with_file_name("chat-worker");
        assert!(
            worker.is_file(),
            "{} is missing: chatctl starts the chat-worker beside it; run `cargo build --workspace` first",
            worker.display()
        );
        let c = Cluster {
            dir: crate::redis::short_tempdir("ctl"),
            port,
            netns: netns.map(str::to_owned),
            rust_log,
        };
        let out = c.run(&[&["up"], args, &["--detach"]].concat());
        assert!(
            out.success(),
            "{}\n{}",
            out.describe("chatctl up"),
            c.log_tails()
        );
        c
    }

    /// `chatctl --config F up --detach --bind 127.0.0.1` with no `--state-dir`: F (written
    /// beside, returned) names the state dir, the workers and the probed ports.
    pub fn up_from_config(workers: u32) -> (Cluster, PathBuf) {
        let port = crate::free_port_range(1);
        let base = crate::free_port_range(8);
        let c = Cluster {
            dir: crate::redis::short_tempdir("cfg"),
            port,
            netns: None,
            rust_log: "warn",
        };
        let config = c.path().with_extension("toml");
        std::fs::write(
            &config,
            format!(
                "[cluster]\nworkers = {workers}\nport = {port}\nbase_port = {base}\nstate_dir = {:?}\n",
                c.path()
            ),
        )
        .expect("write the config");
        let cfg = config.to_str().expect("utf-8 path");
        let out = c.run_no_state_dir(&["--config", cfg, "up", "--bind", "127.0.0.1", "--detach"]);
        assert!(
            out.success(),
            "{}\n{}",
            out.describe("chatctl up"),
            c.log_tails()
        );
        (c, config)
    }

    /// chatctl ARGS with no `--state-dir` (nor `CHATCTL_STATE_DIR`), from a folder without
    /// a chat.toml: the state dir must come from `--config`.
    pub fn run_no_state_dir(&self, args: &[&str]) -> Finished {
        run_bounded(
            Command::new(bin("chatctl"))
                .args(args)
                .env_remove("CHATCTL_STATE_DIR")
                .env_remove("CHATCTL_WORKER_BIN")
                .current_dir(self.path())
                .env("RUST_LOG", self.rust_log),
            CHATCTL_LIMIT,
        )
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Finished {
        run_bounded(
            chatctl_command(self.path(), self.netns.as_deref())
                .args(args)
                // From the state dir, so no ./chat.toml of the caller's is picked up.
                .current_dir(self.path())
                .env("RUST_LOG", self.rust_log),
            CHATCTL_LIMIT,
        )
    }

    /// Any chatctl command against this cluster, bounded.
    pub fn chatctl(&self, args: &[&str]) -> Finished {
        self.run(args)
    }

    /// A chatctl command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.chatctl(args);
        assert!(
            out.success(),
            "{}",
            out.describe(&format!("chatctl {args:?}"))
        );
        out.stdout
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status JSON")
    }

    /// `status --json`, or `None` when chatctl cannot tell (the supervisor is gone).
    pub fn try_status(&self) -> Option<Value> {
        let out = self.chatctl(&["status", "--json"]);
        serde_json::from_str(&out.stdout).ok()
    }

    /// Polls `status --json` every 200 ms until `check` holds; returns that status. Each
    /// call runs through [`crate::blocking`]: on a multi-thread test runtime the test's
    /// clients keep running while chatctl answers.
    pub async fn wait_status(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        crate::poll(what, CLUSTER_WAIT, Duration::from_millis(200), || {
            let s = crate::blocking(|| self.status());
            std::future::ready(if check(&s) {
                Ok(s)
            } else {
                Err(format!("{s:#}"))
            })
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The embedded Redis, through redis-cli with the generated password.
    pub fn redis(&self, args: &[&str]) -> String {
        let pass = std::fs::read_to_string(self.path().join("redis.pass")).expect("redis.pass");
        crate::redis::cli_output(
            Command::new("redis-cli")
                .arg("-s")
                .arg(self.path().join("redis.sock"))
                .args(["--no-auth-warning", "-a", pass.trim()])
                .args(args),
        )
    }

    /// Which worker id holds `user` (from the user map: instance ids start with `ID-`).
    pub fn worker_of(&self, user: &str) -> Option<u32> {
        let members = self.redis(&["SMEMBERS", &format!("chat:{{u:{user}}}:workers")]);
        members.lines().next()?.split('-').next()?.parse().ok()
    }

    /// Every pid in a status: supervisor, workers, HAProxy, embedded Redis.
    pub fn our_pids(status: &Value) -> Vec<u32> {
        let mut pids = vec![status["supervisor"]["pid"]
            .as_u64()
            .expect("supervisor pid") as u32];
        let workers = status["workers"].as_array().expect("workers");
        let others = [&status["haproxy"]["pid"], &status["redis"]["pid"]];
        for p in workers.iter().map(|w| &w["pid"]).chain(others) {
            if let Some(p) = p.as_u64() {
                pids.push(p as u32);
            }
        }
        pids
    }

    /// The last 30 lines of every log in STATE/logs, for failure messages.
    pub fn log_tails(&self) -> String {
        let Ok(entries) = std::fs::read_dir(self.path().join("logs")) else {
            return "(no logs directory)".to_owned();
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        let mut out = String::new();
        for p in paths {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            out.push_str(&format!("--- {} ---\n{}\n", p.display(), tail.join("\n")));
        }
        out
    }

    /// The supervisor pid from STATE/chatctl.pid, if that process still runs chatctl.
    fn live_supervisor(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.path().join("chatctl.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        (crate::pid_alive(pid) && String::from_utf8_lossy(&cmdline).contains("chatctl"))
            .then_some(pid)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let down = self.chatctl(&["down"]);
        if down.success() {
            // `down` returns once the supervisor stopped; give it a moment to be gone for good.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while self.live_supervisor().is_some() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if let Some(pid) = self.live_supervisor() {
            eprintln!("supervisor {pid} still running after `chatctl down`: SIGKILL");
            crate::signal(pid, libc::SIGKILL);
        }
    }
}

/// Are exactly `n` workers up, and all `n` HAProxy servers UP?
pub fn all_up(s: &Value, n: usize) -> bool {
    let workers = s["workers"].as_array().expect("workers");
    let servers = s["haproxy"]["servers"].as_array().expect("haproxy servers");
    workers.len() == n
        && workers.iter().all(|w| w["state"] == "up")
        && servers.len() == n
        && servers
            .iter()
            .all(|sv| sv["state"].as_str().unwrap_or("").starts_with("UP"))
}
