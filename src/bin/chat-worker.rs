//! `chat-worker --port P --redis URL --id N [--host H]`: one single-threaded chat worker.

use anyhow::Context;
use chat::config::Limits;
use chat::worker::{run, WorkerConfig};
use clap::Parser;
use std::time::Duration;

/// A Socket.IO chat worker (one thread) that shares users and messages with its peers
/// through Redis. Normally started by `chatctl up`; usable alone.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// TCP port to listen on (0 picks a free one; the chosen address is printed on stdout).
    #[arg(long)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Redis URL: redis://[:password@]host:port, rediss://…, redis+unix:///path,
    /// redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE, or redis+cluster://HOST:PORT[,…].
    #[arg(long)]
    redis: String,
    /// Worker number, shown in logs and part of its Redis identity.
    #[arg(long)]
    id: u32,
    /// Prefix of every Redis key and channel (services sharing one Redis use different ones).
    #[arg(long, default_value = "chat:")]
    redis_prefix: String,
    /// Longest a SIGTERM drain may take, in seconds.
    #[arg(long, default_value_t = 10)]
    drain_timeout: u64,
    /// Wake up at most once per this many microseconds: out of work, sleep what is left of
    /// it since the last wake-up, so that one wake-up handles a batch (`chat::coalesce`: less
    /// CPU per message, up to this much more latency per hop); 0 turns it off; at most 10000.
    #[arg(long, default_value_t = chat::coalesce::DEFAULT_MICROS)]
    coalesce_us: u64,
    /// Largest message text in bytes.
    #[arg(long, default_value_t = Limits::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Sockets this worker accepts before answering new handshakes with 503.
    #[arg(long, default_value_t = Limits::default().max_connections_per_worker)]
    max_connections: usize,
    /// Messages per second per socket (token bucket of the same depth).
    #[arg(long, default_value_t = Limits::default().messages_per_second)]
    messages_per_second: u32,
    /// Messages an inbox keeps.
    #[arg(long, default_value_t = Limits::default().inbox_max)]
    inbox_max: usize,
    /// Seconds an unacknowledged message is kept.
    #[arg(long, default_value_t = Limits::default().inbox_ttl)]
    inbox_ttl: u64,
    /// Seconds a room's history lives after its last message.
    #[arg(long, default_value_t = Limits::default().room_history_ttl,
          value_parser = clap::value_parser!(u64).range(1..))]
    room_history_ttl: u64,
    /// Unsent bytes one socket may have queued before it is disconnected as a slow reader.
    #[arg(long, default_value_t = Limits::default().max_queued_bytes_per_socket,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_queued_bytes_per_socket: u64,
    /// Sockets one user may have logged in on this worker.
    #[arg(long, default_value_t = Limits::default().max_sockets_per_user)]
    max_sockets_per_user: usize,
    /// Rooms one socket may be in.
    #[arg(long, default_value_t = Limits::default().max_rooms_per_socket)]
    max_rooms_per_socket: usize,
    /// Other events (log in, join/leave room, list users, unknown) per second per socket.
    #[arg(long, default_value_t = Limits::default().events_per_second,
          value_parser = clap::value_parser!(u32).range(1..))]
    events_per_second: u32,
    /// Replicas that must confirm a direct message before its ack (Redis `WAIT`, on the
    /// inbox's shard with a cluster); default 1 with a redis+sentinel:// or redis+cluster://
    /// URL, else 0.
    #[arg(long)]
    min_replicas_acked: Option<u32>,
    /// WebSocket read buffer per connection, in bytes (a read chunk, not a message limit:
    /// larger messages are read in several chunks). Small saves memory per idle connection.
    #[arg(long, default_value_t = 1024)]
    ws_read_buffer: usize,
    /// Log lines on stderr: `text` for people, `json` (one object per line: timestamp,
    /// level, target, fields, message) for a log collector.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // The message stays inside `fields` as tracing-subscriber puts it; a collector maps
        // `fields.message`.
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

fn main() -> anyhow::Result<()> {
    // Parsed first so that the log format applies to every line; clap prints its own errors.
    let args = Args::parse();
    let log_format = args.log_format;
    init_logging(log_format);
    raise_fd_limit();
    let config = WorkerConfig {
        redis_prefix: args.redis_prefix,
        limits: Limits {
            max_message_bytes: args.max_message_bytes,
            max_connections_per_worker: args.max_connections,
            messages_per_second: args.messages_per_second,
            inbox_max: args.inbox_max,
            inbox_ttl: args.inbox_ttl,
            room_history_ttl: args.room_history_ttl,
            max_queued_bytes_per_socket: args.max_queued_bytes_per_socket,
            max_sockets_per_user: args.max_sockets_per_user,
            max_rooms_per_socket: args.max_rooms_per_socket,
            events_per_second: args.events_per_second,
        },
        drain_timeout: Duration::from_secs(args.drain_timeout),
        ws_read_buffer: args.ws_read_buffer,
        // From the environment, not a flag: command lines are visible to every user.
        auth_secret: std::env::var(chat::auth::SECRET_ENV)
            .ok()
            .filter(|s| !s.is_empty()),
        min_replicas_acked: args.min_replicas_acked.unwrap_or(
            if args.redis.starts_with("redis+sentinel://")
                || args.redis.starts_with("redis+cluster://")
            {
                1
            } else {
                0
            },
        ),
        ..WorkerConfig::new(args.id, args.redis)
    };
    if let Some(secret) = &config.auth_secret {
        chat::auth::check_secret(secret).map_err(anyhow::Error::msg)?;
    }
    let window = chat::coalesce::window_from_micros(args.coalesce_us)
        .map_err(anyhow::Error::msg)
        .context("bad --coalesce-us")?;
    // One thread per worker is the point of one worker per core.
    let rt = chat::coalesce::runtime_builder(window)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}:{} (port busy? pick another with --port)",
                    args.host, args.port
                )
            })?;
        // The test harness reads this line to learn the port when --port 0 was given. With
        // `--log-format json` it is a JSON object too, so every line of the worker parses.
        let addr = listener.local_addr()?;
        match log_format {
            LogFormat::Text => println!("listening on {addr}"),
            LogFormat::Json => println!("{}", serde_json::json!({ "listening": addr.to_string() })),
        }
        run(config, listener, shutdown_signal()).await
    })
}

/// Each connection is a file descriptor: lift the soft limit to the hard one. A failure only
/// means fewer connections, so it is logged, not fatal.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot read the open-file limit: {e}"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers the worker can only be killed; serve on.
            std::future::pending::<()>().await
        }
    }
}
