//! A private `redis-server` without persistence, on a Unix socket in its own temp dir or on a
//! loopback port, killed by pid when dropped.

use crate::{Reaped, WAIT};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where a [`Redis`] listens.
enum Addr {
    Unix(PathBuf),
    Tcp(u16),
}

/// A private `redis-server`; data is never persisted, so a restart comes back empty.
pub struct Redis {
    /// The running server; `None` between [`Redis::kill`] and [`Redis::restart`].
    child: Option<Reaped>,
    /// Its working dir (and the socket's): a short path, a Unix socket path must fit 107 bytes.
    dir: tempfile::TempDir,
    addr: Addr,
    /// Extra `redis-server` flags, kept for restarts.
    extra: Vec<String>,
}

impl Redis {
    /// Redis on a Unix socket (mode 0700) in its own temp dir.
    pub async fn start() -> Redis {
        let dir = short_tempdir("rds");
        let socket = dir.path().join("redis.sock");
        Self::launch(dir, Addr::Unix(socket), &[]).await
    }

    /// Redis on 127.0.0.1:`port`, with extra flags (`--replicaof`, …).
    pub async fn start_tcp(port: u16, extra: &[&str]) -> Redis {
        Self::launch(short_tempdir("rdt"), Addr::Tcp(port), extra).await
    }

    async fn launch(dir: tempfile::TempDir, addr: Addr, extra: &[&str]) -> Redis {
        let mut r = Redis {
            child: None,
            dir,
            addr,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--save", "", "--appendonly", "no"]);
        match &self.addr {
            Addr::Unix(socket) => {
                cmd.args(["--port", "0", "--unixsocket"])
                    .arg(socket)
                    .args(["--unixsocketperm", "700"]);
            }
            Addr::Tcp(port) => {
                cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
            }
        }
        cmd.arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .args(&self.extra);
        self.child = Some(Reaped::spawn(&mut cmd));
        crate::poll(
            "redis to answer PING",
            WAIT,
            Duration::from_millis(50),
            || std::future::ready(self.ping().then_some(()).ok_or_else(String::new)),
        )
        .await;
    }

    /// `redis://…` or `redis+unix://…`, as workers and chatctl take it.
    pub fn url(&self) -> String {
        match &self.addr {
            Addr::Unix(socket) => format!("redis+unix://{}", socket.display()),
            Addr::Tcp(port) => format!("redis://127.0.0.1:{port}"),
        }
    }

    /// Its working dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGKILLs Redis (nothing is persisted: it comes back empty).
    pub fn kill(&mut self) {
        drop(self.child.take());
        if let Addr::Unix(socket) = &self.addr {
            let _ = std::fs::remove_file(socket);
        }
    }

    /// Starts Redis again on the same address, empty.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Runs one command through redis-cli and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        match &self.addr {
            Addr::Unix(socket) => cmd.arg("-s").arg(socket),
            Addr::Tcp(port) => cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]),
        };
        cli_output(cmd.args(args))
    }

    fn ping(&self) -> bool {
        let limit = Some(Duration::from_secs(1));
        match &self.addr {
            Addr::Unix(socket) => std::os::unix::net::UnixStream::connect(socket)
                .is_ok_and(|s| s.set_read_timeout(limit).is_ok() && pong(s)),
            Addr::Tcp(port) => std::net::TcpStream::connect(("127.0.0.1", *port))
                .is_ok_and(|s| s.set_read_timeout(limit).is_ok() && pong(s)),
        }
    }
}

/// A temp dir under /tmp with a short name, so Unix sockets in it fit their path limit.
pub fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("temp dir in /tmp")
}

/// Runs a prepared redis-cli command: its trimmed stdout.
pub fn cli_output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .expect("redis-cli must be installed (scripts/setup.sh)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn pong(mut s: impl Read + Write) -> bool {
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}
