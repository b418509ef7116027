//! The command line (`--help` text from the doc comments) and the targets it names.

use crate::procfs;
use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Parser, Debug, Clone)]
#[command(name = "chat-bench", about = "Socket.IO chat load generator (SPEC §3)")]
pub struct Args {
    /// Server base URL(s), comma-separated or repeated (`http://127.0.0.1:8080`,
    /// `ws://127.0.0.1:30001`). Connection i goes to URL i mod n. Loopback only.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    pub url: Vec<String>,
    /// Number of connections (each logs in as its own user).
    #[arg(long, short = 'c', default_value_t = 100)]
    pub connections: usize,
    /// Total offered rate of `send message`, messages per second; 0 = as fast as acks allow.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// With `--rate 0`: unacked sends in flight per sending connection.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// How many connections send (the first N); 0 = all. Every connection receives.
    #[arg(long, default_value_t = 0)]
    pub senders: usize,
    /// Length of the run phase in seconds (in `--idle` mode: how long to hold the connections).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of sending before the measured run phase starts (not in --idle mode).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Connect rate limit, connections per second (0 = no limit beyond --connect-concurrency).
    #[arg(long, default_value_t = 0.0)]
    pub ramp: f64,
    /// Handshakes (TCP + WebSocket + Socket.IO connect + log in) in progress at once.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Give up on connections not logged in after this many seconds (the run starts with those
    /// that are).
    #[arg(long, default_value_t = 120.0)]
    pub connect_timeout: f64,
    /// Connect and log in, hold for --duration, report; send nothing.
    #[arg(long)]
    pub idle: bool,
    /// After the run phase, wait at most this long for outstanding acks and deliveries.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Bytes of padding added to each message text (after the `T<micros>|` timestamp).
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Loopback source addresses to spread connections over: 127.0.0.1 … 127.0.0.K.
    #[arg(long, default_value_t = 8)]
    pub source_ips: u8,
    /// Username prefix (users are PREFIX0 … PREFIX{C-1}); default: random per run.
    #[arg(long)]
    pub user_prefix: Option<String>,
    /// Recipients are PREFIX0 … PREFIX{N-1}; default: --connections / --sockets-per-user.
    #[arg(long)]
    pub users: Option<usize>,
    /// Connections logged in as one user, like a user's tabs: connection i logs in as
    /// PREFIX{i / K}, so every message goes to K sockets (fan-out).
    #[arg(long, default_value_t = 1)]
    pub sockets_per_user: usize,
    /// Per connection: unacked sends beyond which sends are skipped (and counted).
    #[arg(long, default_value_t = 64)]
    pub max_outstanding: usize,
    /// Runtime threads (1 = current_thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write this file once every connection is logged in (or has failed), for scripts that
    /// measure the server while the connections are held.
    #[arg(long)]
    pub ready_file: Option<std::path::PathBuf>,
    /// A server process to account for, `NAME=PID` (repeatable): its CPU time during the run
    /// phase and its RSS before connecting, at the start and at the end of the run phase go into
    /// the summary's `processes` (with this process itself as `chat-bench`).
    #[arg(long, value_parser = procfs::parse_watch)]
    pub watch: Vec<procfs::Watched>,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// One server URL, resolved.
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The WebSocket request URL.
    pub ws_url: String,
}

/// Resolves `http://host:port` (or `ws://…`) to a loopback IPv4 target.
pub fn parse_target(url: &str) -> Result<Target> {
    let u = url.trim().trim_end_matches('/');
    let rest = ["http://", "ws://"]
        .iter()
        .find_map(|p| u.strip_prefix(p))
        .unwrap_or(u);
    if u.starts_with("https://") || u.starts_with("wss://") {
        bail!("{url}: TLS is not supported by chat-bench (benchmark the plain port)");
    }
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("{url}: cannot resolve {hostport}"))?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| anyhow!("{url}: no IPv4 address"))?;
    if !addr.ip().is_loopback() {
        bail!("{url}: chat-bench only targets loopback addresses (127.0.0.0/8)");
    }
    Ok(Target {
        addr,
        ws_url: chat_client::socket_url(&format!("ws://{hostport}")),
    })
}
