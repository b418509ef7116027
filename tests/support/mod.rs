//! Test harness: a real `redis-server` and real `chat-worker` processes, each on addresses
//! the harness picks itself (a Unix socket in a temp dir for Redis, port 0 for workers), all
//! stopped by the pid we spawned when dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub use chat_client::Client;

/// Generous bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `check` every 50 ms until it returns true or `limit` passes.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we spawned ourselves; no memory is touched.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// A private `redis-server` listening on a Unix socket in its own temp dir.
pub struct Redis {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl Redis {
    pub async fn start() -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("redis.sock");
        let mut r = Redis {
            child: None,
            dir,
            socket,
        };
        r.spawn().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&self.socket)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed (scripts/setup.sh)");
        self.child = Some(child);
        let socket = self.socket.clone();
        wait_until("redis to answer PING", WAIT, || {
            let socket = socket.clone();
            async move { redis_ping(&socket).await }
        })
        .await;
    }

    /// SIGKILLs Redis (data is not persisted: it comes back empty).
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts Redis again on the same socket, empty.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// Runs one command through redis-cli and returns its output.
    pub async fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .await
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

async fn redis_ping(socket: &Path) -> bool {
    let Ok(mut s) = tokio::net::UnixStream::connect(socket).await else {
        return false;
    };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await,
        Ok(Ok(n)) if buf[..n].starts_with(b"+PONG")
    )
}

/// A `chat-worker` process.
pub struct Worker {
    child: Option<Child>,
    pub id: u32,
    pub port: u16,
    pub pid: u32,
    pub log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Worker {
    pub async fn start(redis_url: &str, id: u32) -> Worker {
        Self::start_with(redis_url, id, &[]).await
    }

    /// Starts a worker with extra flags; returns once it listens.
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-worker"))
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
        let port = line
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
        let c = self.connect().await;
        let ack = c
            .emit_ack("log in", serde_json::json!({ "username": user }))
            .await
            .expect("log in ack");
        assert_eq!(ack["ok"], true, "log in as {user}: {ack}");
        (c, ack)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path).await
    }

    pub async fn health(&self) -> u16 {
        self.get("/health").await.0
    }

    pub async fn wait_healthy(&self) {
        let port = self.port;
        wait_until("worker /health 200", WAIT, || async move {
            http_get(port, "/health").await.0 == 200
        })
        .await;
    }

    /// A metric's value from `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing in {body}"))
    }

    pub fn sigterm(&self) {
        signal(self.pid, libc::SIGTERM);
    }

    pub fn sigkill(&mut self) {
        signal(self.pid, libc::SIGKILL);
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

/// A minimal HTTP/1.0 GET: (status, body); status 0 when nothing answers.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new());
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    if tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .is_err()
    {
        return (0, String::new());
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Is this a `new message` event?
pub fn is_new_message(e: &chat_client::ServerEvent) -> bool {
    e.name == "new message"
}

/// `send message` that must be acked ok; returns the message id.
pub async fn send_ok(c: &Client, to: &str, text: &str) -> String {
    let ack = c
        .emit_ack(
            "send message",
            serde_json::json!({"username": to, "message": text}),
        )
        .await
        .expect("send ack");
    assert_eq!(ack["ok"], true, "send to {to}: {ack}");
    ack["id"].as_str().expect("id is a string").to_owned()
}

/// Emits `event` with an ack callback: `"ok"`, or the error code (whose message must say
/// something).
pub async fn ack_code(c: &Client, event: &str, data: serde_json::Value) -> String {
    let ack = c.emit_ack(event, data).await.expect("ack");
    if ack["ok"] == true {
        return "ok".into();
    }
    assert!(
        ack["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{event}: {ack}"
    );
    ack["error"]["code"]
        .as_str()
        .expect("error code")
        .to_owned()
}

/// Redis plus `n` workers.
pub struct Cluster {
    pub redis: Redis,
    pub workers: Vec<Worker>,
}

impl Cluster {
    pub async fn start(n: u32) -> Cluster {
        Self::start_with(n, &[]).await
    }

    pub async fn start_with(n: u32, extra: &[&str]) -> Cluster {
        let redis = Redis::start().await;
        let mut workers = Vec::new();
        for id in 0..n {
            workers.push(Worker::start_with(&redis.url(), id, extra).await);
        }
        Cluster { redis, workers }
    }

    pub fn w(&self, i: usize) -> &Worker {
        &self.workers[i]
    }
}
