//! `chat-worker` processes started directly (port 0, a log file in a temp dir), and
//! [`Workers`]: Redis plus n of them, for tests of the worker itself.

use crate::{http_get, Client, Redis, WAIT};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A `chat-worker` process, killed by pid when dropped.
pub struct Worker {
    /// `None` once [`Worker::wait_exit`] reaped it.
    child: Option<Child>,
    pub id: u32,
    pub port: u16,
    pub pid: u32,
    /// Its stderr (the tracing log).
    pub log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Worker {
    pub async fn start(redis_url: &str, id: u32) -> Worker {
        Self::start_with(redis_url, id, &[]).await
    }

    /// Starts a worker with extra flags; returns once it listens and `/health` is 200.
    pub async fn start_with(redis_url: &str, id: u32, extra: &[&str]) -> Worker {
        Self::start_env(redis_url, id, extra, &[]).await
    }

    /// Starts a worker with extra flags and environment variables.
    pub async fn start_env(
        redis_url: &str,
        id: u32,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Worker {
        let log_dir = tempfile::tempdir().expect("temp dir");
        let log = log_dir.path().join(format!("worker-{id}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(crate::proc::bin("chat-worker"))
            .args(["--port", "0", "--redis", redis_url, "--id", &id.to_string()])
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chat-worker");
        let pid = child.id().expect("pid");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("worker did not report its port in time")
            .expect("read worker stdout")
            .expect("worker exited before listening");
        // `listening on 127.0.0.1:PORT`, or `{"listening":"127.0.0.1:PORT"}` in JSON mode.
        let port = line
            .trim_end_matches(['"', '}'])
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let w = Worker {
            child: Some(child),
            id,
            port,
            pid,
            log,
            _log_dir: log_dir,
        };
        w.wait_healthy().await;
        w
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn connect(&self) -> Client {
        Client::connect(&self.url()).await.expect("connect")
    }

    /// A client logged in as `user`; returns it and the ack.
    pub async fn login(&self, user: &str) -> (Client, serde_json::Value) {
        crate::login(&self.url(), user).await
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path).await
    }

    pub async fn health(&self) -> u16 {
        self.get("/health").await.0
    }

    pub async fn wait_healthy(&self) {
        wait_health(self.port, "worker /health 200", |s| s == 200).await
    }

    /// Waits until `/health` answers a status for which `want` holds.
    pub async fn wait_health(&self, what: &str, want: impl Fn(u16) -> bool) {
        wait_health(self.port, what, want).await
    }

    /// A metric's value from `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        crate::metric(&body, name).unwrap_or_else(|| panic!("metric {name} missing in {body}"))
    }

    pub fn sigterm(&self) {
        crate::signal(self.pid, libc::SIGTERM);
    }

    pub fn sigkill(&mut self) {
        crate::signal(self.pid, libc::SIGKILL);
    }

    /// Waits for the process to exit; returns its status code (None if killed by signal).
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut child = self.child.take().expect("worker already reaped");
        tokio::time::timeout(limit, child.wait())
            .await
            .expect("worker did not exit in time")
            .expect("wait")
            .code()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

async fn wait_health(port: u16, what: &str, want: impl Fn(u16) -> bool) {
    let want = &want;
    crate::wait_until(what, WAIT, || async move {
        want(http_get(port, "/health").await.0)
    })
    .await
}

/// Redis plus `n` workers started directly: no chatctl, no HAProxy. The worker-level tests
/// (tests/) talk to each worker by its own port; a chatctl-managed cluster is [`crate::Cluster`].
pub struct Workers {
    pub redis: Redis,
    pub workers: Vec<Worker>,
}

impl Workers {
    pub async fn start(n: u32) -> Workers {
        Self::start_with(n, &[]).await
    }

    pub async fn start_with(n: u32, extra: &[&str]) -> Workers {
        let redis = Redis::start().await;
        let mut workers = Vec::new();
        for id in 0..n {
            workers.push(Worker::start_with(&redis.url(), id, extra).await);
        }
        Workers { redis, workers }
    }

    pub fn w(&self, i: usize) -> &Worker {
        &self.workers[i]
    }
}
