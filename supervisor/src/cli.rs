//! The command line (clap derive; doc comments become `--help`).

use chat::config::WorkerCount;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Runs one Socket.IO chat worker per CPU core behind HAProxy, coordinated through Redis.
#[derive(Parser, Debug)]
#[command(name = "chatctl", version)]
pub struct Cli {
    /// Folder for the control socket, haproxy.cfg, HAProxy's admin socket, the embedded
    /// Redis's data and the logs.
    #[arg(long, global = true, env = "CHATCTL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start Redis (unless --redis names one), the workers and HAProxy.
    Up(UpArgs),
    /// Change the number of workers live.
    Scale {
        /// The new number of workers (at least 1).
        #[arg(value_parser = clap::value_parser!(u32).range(1..=1024))]
        workers: u32,
    },
    /// Show workers, HAProxy and Redis.
    Status {
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Stop everything `up` started.
    Down,
    /// Rolling restart of the workers, one at a time, each drained first.
    Reload,
    /// Show the logs of one child (worker-0, haproxy, redis, chatctl) or of all.
    Logs {
        name: Option<String>,
        /// Keep printing what is appended.
        #[arg(short, long)]
        follow: bool,
    },
    /// Print a login token for USERNAME (needs `[auth] secret`).
    Token {
        username: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
    },
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct UpArgs {
    /// Number of workers: `auto` (one per core) or N.
    #[arg(long)]
    pub workers: Option<WorkerCount>,
    /// The public port HAProxy listens on [default: 8080].
    #[arg(long)]
    pub port: Option<u16>,
    /// Address HAProxy's public port binds to [default: 0.0.0.0].
    #[arg(long)]
    pub bind: Option<String>,
    /// Port of worker 0; worker N listens on base-port + N [default: 30001].
    #[arg(long)]
    pub base_port: Option<u16>,
    /// `embedded` (a private redis-server in the state dir) or a Redis URL.
    #[arg(long)]
    pub redis: Option<String>,
    /// Configuration file (TOML) [default: ./chat.toml when it exists].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Return once the cluster is up, leaving the supervisor in the background.
    #[arg(long)]
    pub detach: bool,
    /// PEM with certificate and key: the public port speaks HTTPS/WSS.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// With --tls-cert: answer plain HTTP on this port with a redirect to HTTPS.
    #[arg(long)]
    pub http_redirect_port: Option<u16>,
    /// Seconds a draining worker may take.
    #[arg(long)]
    pub drain_timeout: Option<u64>,
    /// Join a multi-host service: workers listen on ADDR and are registered in the shared
    /// Redis, so every front door (a chatctl running HAProxy) routes to them.
    #[arg(long, value_name = "ADDR")]
    pub advertise: Option<String>,
    /// `off` runs workers only (another host's HAProxy is the front door).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub haproxy: Option<bool>,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected `on` or `off`, not {s:?}")),
    }
}
