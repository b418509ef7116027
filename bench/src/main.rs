//! `chat-bench`: a load generator for the chat cluster (and for any server speaking SPEC §3).
//!
//! It opens `--connections` Socket.IO connections over WebSocket (framed with
//! `chat_client::codec`, one task per connection, small buffers), spread over several loopback
//! source addresses (127.0.0.1 … 127.0.0.K) so one machine can exceed the ~28k ephemeral ports
//! of one source address, logs each in as its own user, then sends direct messages between
//! random users either at a fixed total rate (`--rate R`) or as fast as acks allow
//! (`--rate 0`, a window of `--window` unacked sends per connection). Every received
//! `new message` is acknowledged (the server keeps it pending otherwise) and its delivery
//! latency measured from the send timestamp carried in the text.
//!
//! Progress goes to stderr every second; `--json` prints one summary object to stdout at the end.
//! Everything is bounded: connect timeout, run duration, drain timeout, then it exits.
//!
//! Layout: `main.rs` (here) runs the phases (connect, warm-up, run, drain, stop); `cli` the
//! flags and targets; `conn` one connection's handshake and send/receive loop; `proto` the chat
//! events on top of the client's codec; `stats` the shared counters and histograms; `procfs`
//! CPU and memory of watched processes; `report` the progress lines and the summary.

mod cli;
mod conn;
mod procfs;
mod proto;
mod report;
mod stats;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{Args, Target};
use stats::Stats;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Where the run is; every connection task watches it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Connecting,
    /// Sending, not yet measuring (latency, throughput, CPU).
    Warmup,
    Run,
    Drain,
    Stop,
}

/// What every connection task shares.
pub struct Shared {
    args: Args,
    /// Connection i goes to `targets[i % len]`.
    targets: Vec<Target>,
    /// Usernames are `{prefix}{i}`.
    prefix: String,
    /// How many users recipients are drawn from.
    users: usize,
    /// Timestamps in messages are micros since this instant.
    epoch: Instant,
    stats: Stats,
    /// Bounds handshakes in progress (`--connect-concurrency`).
    handshakes: Semaphore,
    /// Small WebSocket buffers: thousands of sockets per process.
    ws_config: WebSocketConfig,
}

impl Shared {
    pub fn now_micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

fn main() {
    let args = Args::parse();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let code = match rt
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(args)))
    {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("chat-bench: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

async fn run(args: Args) -> Result<()> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if args.source_ips == 0 || args.source_ips > 254 {
        bail!("--source-ips must be 1..=254");
    }
    let targets = args
        .url
        .iter()
        .filter(|u| !u.trim().is_empty())
        .map(|u| cli::parse_target(u))
        .collect::<Result<Vec<_>>>()?;
    if targets.is_empty() {
        bail!("no --url given");
    }
    let before = procfs::snapshot(&args.watch);
    let epoch = Instant::now();
    let prefix = args.user_prefix.clone().unwrap_or_else(|| {
        let r = conn::Rng::new(std::process::id() as u64 ^ now_unix_nanos()).next() % 1_000_000;
        format!("b{r}-")
    });
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    let sh = Arc::new(Shared {
        users: args
            .users
            .unwrap_or(args.connections.div_ceil(args.sockets_per_user.max(1))),
        handshakes: Semaphore::new(args.connect_concurrency.max(1)),
        targets,
        prefix,
        epoch,
        stats: Stats::new(),
        ws_config,
        args: args.clone(),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);
    let phase_tx = Arc::new(phase_tx);

    let progress = tokio::spawn(report::progress_loop(sh.clone(), phase_rx.clone()));

    // Connect phase: spawn at the ramp rate; the semaphore bounds handshakes in progress.
    let mut tasks = JoinSet::new();
    let connect_start = Instant::now();
    let connect_deadline = connect_start + Duration::from_secs_f64(args.connect_timeout);
    for idx in 0..args.connections {
        if args.ramp > 0.0 {
            let due = connect_start + Duration::from_secs_f64(idx as f64 / args.ramp);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        if Instant::now() > connect_deadline {
            break;
        }
        tasks.spawn(conn::connection(sh.clone(), idx, phase_rx.clone()));
    }
    let c = &sh.stats.c;
    let n = args.connections as u64;
    while Stats::get(&c.logged_in) + Stats::get(&c.connect_failed) < n
        && Instant::now() < connect_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();
    let logged_in_at_start = Stats::get(&c.logged_in);
    if let Some(path) = &args.ready_file {
        std::fs::write(path, format!("{logged_in_at_start}\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }

    // Warm-up (sending, not measured), then the run phase.
    if !args.idle && args.warmup > 0.0 {
        let _ = phase_tx.send(Phase::Warmup);
        tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    }
    let at_start = procfs::snapshot(&args.watch);
    let busy_start = procfs::machine_busy_ms();
    let (sent0, acked0) = (Stats::get(&c.sent), Stats::get(&c.acked_ok));
    let run_start = Instant::now();
    let _ = phase_tx.send(Phase::Run);
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let run_secs = run_start.elapsed().as_secs_f64();
    let at_end = procfs::snapshot(&args.watch);
    let busy_end = procfs::machine_busy_ms();
    let sent_at_end = Stats::get(&c.sent) - sent0;
    let received_in_run = Stats::get(&c.received_in_run);
    let acked_in_run = Stats::get(&c.acked_ok) - acked0;

    // Drain: wait for outstanding acks and deliveries (each acked message goes to every
    // socket of its recipient, as the report's `lost` counts it).
    let _ = phase_tx.send(Phase::Drain);
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain);
    let deliveries_per_message = args.sockets_per_user.max(1) as u64;
    while Instant::now() < drain_deadline {
        let answered = Stats::get(&c.acked_ok) + Stats::get(&c.ack_err) + dropped_unacked(&sh);
        let due = Stats::get(&c.acked_ok) * deliveries_per_message;
        if answered >= Stats::get(&c.sent) && Stats::get(&c.received) >= due {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = phase_tx.send(Phase::Stop);
    let still_connected = Stats::get(&c.logged_in) - Stats::get(&c.dropped);
    let close_deadline = Instant::now() + Duration::from_secs(10);
    while !tasks.is_empty() {
        match tokio::time::timeout_at(close_deadline.into(), tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    tasks.abort_all();
    progress.abort();

    let out = report::summary(
        &sh,
        &report::Measured {
            connect_secs,
            logged_in_at_start,
            still_connected,
            run_secs,
            sent_in_run: sent_at_end,
            received_in_run,
            acked_in_run,
            before,
            at_start,
            at_end,
            busy_start,
            busy_end,
        },
    );
    if args.json {
        println!("{out}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&out).unwrap_or_else(|_| out.to_string())
        );
    }
    Ok(())
}

/// Sends of dropped connections will never be answered; the drain does not wait for them.
fn dropped_unacked(sh: &Shared) -> u64 {
    // Approximation: each dropped connection can hold at most max_outstanding.
    Stats::get(&sh.stats.c.dropped) * sh.args.max_outstanding as u64
}

fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
