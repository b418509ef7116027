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
    /// Configuration file (TOML) [default: ./chat.toml when it exists]; every subcommand
    /// reads it (its `[cluster] state_dir` too).
    #[arg(long, global = true, env = "CHATCTL_CONFIG")]
    pub config: Option<PathBuf>,
    /// chatctl's own log lines (stderr): `text`, or `json` (one object per line, as
    /// `chat-worker --log-format json`). With `up`, the workers log the same way, and in the
    /// foreground every child's line is echoed as one JSON object with a `child` field.
    #[arg(long, global = true, value_enum, env = "CHATCTL_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start Redis (unless --redis names one), the workers and HAProxy.
    Up(UpArgs),
    /// Validate the configuration and haproxy.cfg (through `haproxy -c`), starting nothing.
    Check {
        #[command(flatten)]
        up: UpArgs,
        /// One JSON object instead of the line.
        #[arg(long)]
        json: bool,
    },
    /// Change the number of workers live: to N, or by +N / -N.
    Scale {
        /// N, +N or -N.
        #[arg(allow_hyphen_values = true, value_parser = parse_scale)]
        workers: ScaleTarget,
        /// One JSON object instead of the sentence.
        #[arg(long)]
        json: bool,
    },
    /// Show workers, HAProxy and Redis.
    Status {
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Redraw every 2 s until Ctrl-C.
        #[arg(long, short)]
        watch: bool,
    },
    /// Stop everything `up` started; returns once all of it has exited.
    Down {
        /// One JSON object instead of the line.
        #[arg(long)]
        json: bool,
    },
    /// Replace one child: `worker-N` (drained, replaced on its port), `haproxy` (reloaded)
    /// or `redis` (the embedded one, restarted).
    Restart {
        name: String,
        /// One JSON object instead of the line.
        #[arg(long)]
        json: bool,
    },
    /// Rolling restart of the workers, one at a time, each drained first.
    Reload {
        /// One JSON object instead of the line.
        #[arg(long)]
        json: bool,
    },
    /// Show the logs of one child (worker-0, haproxy, redis, chatctl) or of all.
    Logs {
        name: Option<String>,
        /// Keep printing what is appended.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (of each log).
        #[arg(short = 'n', long, value_name = "N")]
        lines: Option<usize>,
        /// One JSON object per line: `{"child","timestamp","line"}`.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) on stdout.
    Man,
    /// Print a systemd unit for this install (Type=notify, ordered drain on stop); see
    /// packaging/README.md for installing it.
    Service,
    /// Print a login token for USERNAME (needs `[auth] secret`).
    Token {
        username: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
        /// One JSON object: `{"username","token","ttl_secs"}`.
        #[arg(long)]
        json: bool,
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
    /// Return once the cluster is up, leaving the supervisor in the background.
    #[arg(short, long)]
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
    /// A worker wakes up at most once per this long: out of work, it sleeps what is left of
    /// it since it last woke, so one wake-up handles a batch: less CPU per message for up to
    /// this much latency per hop; 0 = off, at most 10000 [default: 1000].
    #[arg(long, value_name = "MICROSECONDS")]
    pub coalesce_us: Option<u64>,
    /// Join a multi-host service: workers listen on ADDR and are registered in the shared
    /// Redis, so every front door (a chatctl running HAProxy) routes to them.
    #[arg(long, value_name = "ADDR")]
    pub advertise: Option<String>,
    /// `off` runs workers only (another host's HAProxy is the front door).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub haproxy: Option<bool>,
    /// The cluster's one Prometheus endpoint, `http://ADDR/metrics` (every worker, HAProxy
    /// and chatctl), or `off` [default: 127.0.0.1:9464].
    #[arg(long, value_name = "ADDR|off")]
    pub metrics: Option<String>,
    /// `on` pins worker N to the N-th CPU this process may use (its affinity set, so a
    /// cpuset or `taskset` is respected); `off` lets the kernel place them [default: on].
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub pin: Option<bool>,
    /// A child that crashes this many times within 60 s is left `failed` (backoff doubles
    /// from 100 ms to 10 s meanwhile); when that child is Redis or HAProxy, chatctl stops
    /// everything and exits 1 so a service manager acts [default: 10].
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<usize>,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected `on` or `off`, not {s:?}")),
    }
}

/// What `chatctl scale` was asked: an absolute count or a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleTarget {
    To(u32),
    By(i64),
}

impl ScaleTarget {
    /// The absolute count from the current one; `None` below 1 or above 1024.
    pub fn resolve(self, current: u32) -> Option<u32> {
        let n = match self {
            ScaleTarget::To(n) => i64::from(n),
            ScaleTarget::By(d) => i64::from(current) + d,
        };
        (1..=1024).contains(&n).then_some(n as u32)
    }
}

fn parse_scale(s: &str) -> Result<ScaleTarget, String> {
    let bad = || format!("expected N, +N or -N (a whole number), not {s:?}");
    if let Some(rest) = s.strip_prefix('+') {
        rest.parse::<u32>()
            .map(|n| ScaleTarget::By(i64::from(n)))
            .map_err(|_| bad())
    } else if let Some(rest) = s.strip_prefix('-') {
        rest.parse::<u32>()
            .map(|n| ScaleTarget::By(-i64::from(n)))
            .map_err(|_| bad())
    } else {
        match s.parse::<u32>() {
            Ok(0) => Err("scale to at least 1 worker".to_owned()),
            Ok(n) => Ok(ScaleTarget::To(n)),
            Err(_) => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_targets() {
        assert_eq!(parse_scale("3"), Ok(ScaleTarget::To(3)));
        assert_eq!(parse_scale("+2"), Ok(ScaleTarget::By(2)));
        assert_eq!(parse_scale("-1"), Ok(ScaleTarget::By(-1)));
        assert!(parse_scale("0").is_err() && parse_scale("x").is_err());
        assert_eq!(ScaleTarget::By(-1).resolve(3), Some(2));
        assert_eq!(ScaleTarget::By(-3).resolve(3), None);
    }

    #[test]
    fn negative_scale_parses_as_a_value() {
        let cli = Cli::try_parse_from(["chatctl", "scale", "-1"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Scale {
                workers: ScaleTarget::By(-1),
                ..
            }
        ));
    }
}
