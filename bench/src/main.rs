//! `chat-bench`: a load generator for the chat cluster (and for any server speaking SPEC §3).
//!
//! It opens `--connections` Socket.IO connections over WebSocket (its own minimal Engine.IO v4 /
//! Socket.IO v5 framing, one task per connection, small buffers), spread over several loopback
//! source addresses (127.0.0.1 … 127.0.0.K) so one machine can exceed the ~28k ephemeral ports
//! of one source address, logs each in as its own user, then sends direct messages between
//! random users either at a fixed total rate (`--rate R`) or as fast as acks allow
//! (`--rate 0`, a window of `--window` unacked sends per connection). Every received
//! `new message` is acknowledged (the server keeps it pending otherwise) and its delivery
//! latency measured from the send timestamp carried in the text.
//!
//! Progress goes to stderr every second; `--json` prints one summary object to stdout at the end.
//! Everything is bounded: connect timeout, run duration, drain timeout, then it exits.

mod procfs;
mod proto;
mod stats;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use proto::Incoming;
use serde_json::json;
use stats::{summary, Stats};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug, Clone)]
#[command(name = "chat-bench", about = "Socket.IO chat load generator (SPEC §3)")]
struct Args {
    /// Server base URL(s), comma-separated or repeated (`http://127.0.0.1:8080`,
    /// `ws://127.0.0.1:30001`). Connection i goes to URL i mod n. Loopback only.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    url: Vec<String>,
    /// Number of connections (each logs in as its own user).
    #[arg(long, short = 'c', default_value_t = 100)]
    connections: usize,
    /// Total offered rate of `send message`, messages per second; 0 = as fast as acks allow.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// With `--rate 0`: unacked sends in flight per sending connection.
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// How many connections send (the first N); 0 = all. Every connection receives.
    #[arg(long, default_value_t = 0)]
    senders: usize,
    /// Length of the run phase in seconds (in `--idle` mode: how long to hold the connections).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of sending before the measured run phase starts (not in --idle mode).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Connect rate limit, connections per second (0 = no limit beyond --connect-concurrency).
    #[arg(long, default_value_t = 0.0)]
    ramp: f64,
    /// Handshakes (TCP + WebSocket + Socket.IO connect + log in) in progress at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Give up on connections not logged in after this many seconds (the run starts with those
    /// that are).
    #[arg(long, default_value_t = 120.0)]
    connect_timeout: f64,
    /// Connect and log in, hold for --duration, report; send nothing.
    #[arg(long)]
    idle: bool,
    /// After the run phase, wait at most this long for outstanding acks and deliveries.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Bytes of padding added to each message text (after the `T<micros>|` timestamp).
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Loopback source addresses to spread connections over: 127.0.0.1 … 127.0.0.K.
    #[arg(long, default_value_t = 8)]
    source_ips: u8,
    /// Username prefix (users are PREFIX0 … PREFIX{C-1}); default: random per run.
    #[arg(long)]
    user_prefix: Option<String>,
    /// Recipients are PREFIX0 … PREFIX{N-1}; default: --connections.
    #[arg(long)]
    users: Option<usize>,
    /// Per connection: unacked sends beyond which sends are skipped (and counted).
    #[arg(long, default_value_t = 64)]
    max_outstanding: usize,
    /// Runtime threads (1 = current_thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Write this file once every connection is logged in (or has failed), for scripts that
    /// measure the server while the connections are held.
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
    /// A server process to account for, `NAME=PID` (repeatable): its CPU time during the run
    /// phase and its RSS before connecting, at the start and at the end of the run phase go into
    /// the summary's `processes` (with this process itself as `chat-bench`).
    #[arg(long, value_parser = procfs::parse_watch)]
    watch: Vec<procfs::Watched>,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Connecting,
    /// Sending, not yet measuring (latency, throughput, CPU).
    Warmup,
    Run,
    Drain,
    Stop,
}

struct Target {
    addr: SocketAddr,
    ws_url: String,
}

struct Shared {
    args: Args,
    targets: Vec<Target>,
    prefix: String,
    users: usize,
    epoch: Instant,
    stats: Stats,
    handshakes: Semaphore,
    ws_config: WebSocketConfig,
}

impl Shared {
    fn now_micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

fn parse_target(url: &str) -> Result<Target> {
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
        ws_url: format!("ws://{hostport}/socket.io/?EIO=4&transport=websocket"),
    })
}

/// xorshift64*: enough randomness for picking recipients, no dependency.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn send_text(ws: &mut Ws, text: String) -> Result<()> {
    ws.send(Message::text(text)).await.context("send")
}

/// Reads frames until `want` matches one, answering pings meanwhile.
async fn expect_frame<F>(ws: &mut Ws, what: &str, mut want: F) -> Result<()>
where
    F: FnMut(&Incoming<'_>) -> Result<bool>,
{
    loop {
        let msg = ws
            .next()
            .await
            .ok_or_else(|| anyhow!("closed waiting for {what}"))?
            .with_context(|| format!("waiting for {what}"))?;
        let Message::Text(t) = msg else {
            if let Message::Close(_) = msg {
                bail!("closed waiting for {what}");
            }
            continue;
        };
        let p = proto::parse(t.as_str());
        if p == Incoming::Ping {
            send_text(ws, "3".to_owned()).await?;
            continue;
        }
        if let Incoming::ConnectError(e) = p {
            bail!("connect error {e}");
        }
        if want(&p)? {
            return Ok(());
        }
    }
}

/// TCP connect from 127.0.0.x, WebSocket handshake, Socket.IO connect, `log in`.
async fn connect(sh: &Shared, idx: usize) -> Result<Ws> {
    let t = &sh.targets[idx % sh.targets.len()];
    let k = sh.args.source_ips.max(1) as usize;
    let src = Ipv4Addr::new(127, 0, 0, 1 + (idx % k) as u8);
    let sock = TcpSocket::new_v4().context("socket")?;
    sock.bind(SocketAddr::new(IpAddr::V4(src), 0))
        .with_context(|| format!("bind {src}"))?;
    let stream = sock.connect(t.addr).await.context("tcp connect")?;
    stream.set_nodelay(true).context("nodelay")?;
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(t.ws_url.as_str(), stream, Some(sh.ws_config))
            .await
            .context("websocket handshake")?;
    expect_frame(&mut ws, "engine.io open", |p| Ok(*p == Incoming::Open)).await?;
    send_text(&mut ws, "40".to_owned()).await?;
    expect_frame(&mut ws, "socket.io connect", |p| {
        Ok(*p == Incoming::Connected)
    })
    .await?;
    send_text(&mut ws, proto::login(1, &format!("{}{idx}", sh.prefix))).await?;
    expect_frame(&mut ws, "log in ack", |p| match p {
        Incoming::Ack(1, arr) if proto::ack_ok(arr) => Ok(true),
        Incoming::Ack(1, arr) => bail!("log in refused: {}", proto::ack_error_code(arr)),
        _ => Ok(false),
    })
    .await?;
    Ok(ws)
}

/// One connection: connect and log in, then send/receive until the phase says stop.
async fn connection(sh: Arc<Shared>, idx: usize, mut phase: watch::Receiver<Phase>) {
    let c = &sh.stats.c;
    let started = Instant::now();
    let permit = sh.handshakes.acquire().await;
    Stats::inc(&c.connect_started);
    let timeout = Duration::from_secs_f64(sh.args.connect_timeout);
    let ws = match tokio::time::timeout(timeout, connect(&sh, idx)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            Stats::inc(&c.connect_failed);
            sh.stats.error(&format!("connect: {}", root_cause(&e)));
            return;
        }
        Err(_) => {
            Stats::inc(&c.connect_failed);
            sh.stats.error("connect: timed out");
            return;
        }
    };
    drop(permit);
    Stats::record(
        &sh.stats.login_latency,
        started.elapsed().as_micros() as u64,
    );
    Stats::inc(&c.logged_in);
    if let Err(e) = run_loop(&sh, idx, ws, &mut phase).await {
        Stats::inc(&c.dropped);
        sh.stats.error(&format!("dropped: {}", root_cause(&e)));
    }
}

fn root_cause(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    if let Some(src) = e.chain().last() {
        let last = src.to_string();
        if last != s {
            s = format!("{s}: {last}");
        }
    }
    // Keep error kinds few: strip numbers (ports, ids) so they aggregate.
    s.chars()
        .map(|ch| if ch.is_ascii_digit() { '#' } else { ch })
        .collect()
}

async fn run_loop(
    sh: &Shared,
    idx: usize,
    mut ws: Ws,
    phase: &mut watch::Receiver<Phase>,
) -> Result<()> {
    let a = &sh.args;
    let c = &sh.stats.c;
    let mut rng = Rng::new(idx as u64 ^ sh.epoch.elapsed().as_nanos() as u64);
    let sender = !a.idle && (a.senders == 0 || idx < a.senders);
    let n_senders = if a.senders == 0 {
        a.connections
    } else {
        a.senders.min(a.connections)
    } as f64;
    let rate_mode = a.rate > 0.0;
    // Each sender sends every n_senders / rate seconds, from a random phase offset.
    let period = if rate_mode {
        Duration::from_secs_f64((n_senders / a.rate).max(1e-6))
    } else {
        Duration::from_secs(3600)
    };
    let offset = Duration::from_micros(rng.below(period.as_micros().max(1) as u64));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next_id: u64 = 2;
    // (ack id, send time µs) of unacked sends; a handful per connection.
    let mut outstanding: Vec<(u64, u64)> = Vec::new();
    let mut current = *phase.borrow();
    let users = sh.users.max(1) as u64;

    // Builds and sends one `send message` to a random other user.
    macro_rules! send_one {
        () => {{
            if outstanding.len() >= a.max_outstanding {
                Stats::inc(&c.skipped);
            } else {
                let mut to = rng.below(users);
                if to == idx as u64 && users > 1 {
                    to = (to + 1) % users;
                }
                let now = sh.now_micros();
                let id = next_id;
                next_id += 1;
                outstanding.push((id, now));
                Stats::inc(&c.sent);
                let text = proto::send_message(id, &format!("{}{to}", sh.prefix), now, a.size);
                send_text(&mut ws, text).await?;
            }
        }};
    }

    let sending = |p: Phase| p == Phase::Run || p == Phase::Warmup;
    if sending(current) && sender && !rate_mode {
        for _ in 0..a.window.max(1) {
            send_one!();
        }
    }
    loop {
        tokio::select! {
            msg = ws.next() => {
                let msg = match msg {
                    None => bail!("server closed the connection"),
                    Some(m) => m.context("read")?,
                };
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Close(_) => bail!("server closed the connection"),
                    _ => continue,
                };
                match proto::parse(text.as_str()) {
                    Incoming::Ping => send_text(&mut ws, "3".to_owned()).await?,
                    Incoming::Ack(id, arr) => {
                        if let Some(pos) = outstanding.iter().position(|(i, _)| *i == id) {
                            let (_, t) = outstanding.swap_remove(pos);
                            if proto::ack_ok(arr) {
                                Stats::inc(&c.acked_ok);
                                if current != Phase::Warmup {
                                    Stats::record(&sh.stats.ack_latency, sh.now_micros().saturating_sub(t));
                                }
                            } else {
                                Stats::inc(&c.ack_err);
                                sh.stats.error(&format!("send ack: {}", proto::ack_error_code(arr)));
                            }
                            if sender && !rate_mode && sending(current) {
                                send_one!();
                            }
                        }
                    }
                    Incoming::NewMessage(ack, arr) => {
                        Stats::inc(&c.received);
                        if current == Phase::Run {
                            Stats::inc(&c.received_in_run);
                        }
                        if let Some(t) = proto::sent_micros(arr) {
                            if current != Phase::Warmup {
                                sh.stats.record_delivery(sh.now_micros().saturating_sub(t));
                            }
                        }
                        if let Some(id) = ack {
                            send_text(&mut ws, proto::ack(id)).await?;
                        }
                    }
                    Incoming::Delivered => Stats::inc(&c.delivered_receipts),
                    Incoming::Disconnect | Incoming::Close => bail!("server disconnected the socket"),
                    Incoming::OtherEvent(ack, arr) => {
                        let name = arr.split('"').nth(1).unwrap_or("?");
                        sh.stats.error(&format!("event: {name}"));
                        if let Some(id) = ack {
                            send_text(&mut ws, proto::ack(id)).await?;
                        }
                    }
                    _ => {}
                }
            }
            _ = ticker.tick(), if rate_mode && sender && sending(current) => {
                send_one!();
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let previous = current;
                current = *phase.borrow();
                match current {
                    Phase::Run | Phase::Warmup if sender && !rate_mode && !sending(previous) => {
                        for _ in 0..a.window.max(1) {
                            send_one!();
                        }
                    }
                    Phase::Stop => {
                        let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
                        return Ok(());
                    }
                    _ => {}
                }
            }
        }
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
        .map(|u| parse_target(u))
        .collect::<Result<Vec<_>>>()?;
    if targets.is_empty() {
        bail!("no --url given");
    }
    let before = procfs::snapshot(&args.watch);
    let epoch = Instant::now();
    let prefix = args.user_prefix.clone().unwrap_or_else(|| {
        let r = Rng::new(std::process::id() as u64 ^ now_unix_nanos()).next() % 1_000_000;
        format!("b{r}-")
    });
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    let sh = Arc::new(Shared {
        users: args.users.unwrap_or(args.connections),
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

    let progress = tokio::spawn(progress_loop(sh.clone(), phase_rx.clone()));

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
        tasks.spawn(connection(sh.clone(), idx, phase_rx.clone()));
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

    // Drain: wait for outstanding acks and deliveries.
    let _ = phase_tx.send(Phase::Drain);
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain);
    while Instant::now() < drain_deadline {
        let answered = Stats::get(&c.acked_ok) + Stats::get(&c.ack_err) + dropped_unacked(&sh);
        if answered >= Stats::get(&c.sent) && Stats::get(&c.received) >= Stats::get(&c.acked_ok) {
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

    let sent = Stats::get(&c.sent);
    let acked = Stats::get(&c.acked_ok);
    let received = Stats::get(&c.received);
    let errors = sh
        .stats
        .errors
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let out = json!({
        "config": {
            "urls": args.url,
            "connections": args.connections,
            "mode": if args.idle { "idle" } else if args.rate > 0.0 { "rate" } else { "ack-window" },
            "rate": args.rate,
            "window": args.window,
            "senders": if args.senders == 0 { args.connections } else { args.senders },
            "duration_s": args.duration,
            "warmup_s": if args.idle { 0.0 } else { args.warmup },
            "size": args.size,
            "source_ips": args.source_ips,
            "threads": args.threads,
            "user_prefix": sh.prefix,
        },
        "connect": {
            "logged_in": logged_in_at_start,
            "failed": Stats::get(&c.connect_failed),
            "seconds": round3(connect_secs),
            "rate_per_s": round3(logged_in_at_start as f64 / connect_secs.max(1e-9)),
            "login_latency_ms": summary(&sh.stats.login_latency),
            "held_at_end": still_connected,
            "dropped": Stats::get(&c.dropped),
        },
        "messages": {
            "sent": sent,
            "acked_ok": acked,
            "ack_errors": Stats::get(&c.ack_err),
            "unanswered": sent.saturating_sub(acked + Stats::get(&c.ack_err)),
            "received": received,
            "lost": acked.saturating_sub(received),
            "delivered_receipts": Stats::get(&c.delivered_receipts),
            "skipped_window_full": Stats::get(&c.skipped),
        },
        "throughput": {
            "run_seconds": round3(run_secs),
            "sent_per_s": round3(sent_at_end as f64 / run_secs.max(1e-9)),
            "acked_per_s": round3(acked_in_run as f64 / run_secs.max(1e-9)),
            "delivered_per_s": round3(received_in_run as f64 / run_secs.max(1e-9)),
        },
        "latency_ms": summary(&sh.stats.latency),
        "ack_latency_ms": summary(&sh.stats.ack_latency),
        "errors": errors,
        "processes": procfs::report(&args.watch, &before, &at_start, &at_end),
        "machine": procfs::others(busy_start, busy_end, &args.watch, &at_start, &at_end, run_secs),
    });
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

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

async fn progress_loop(sh: Arc<Shared>, phase: watch::Receiver<Phase>) {
    if sh.args.quiet {
        return;
    }
    let c = &sh.stats.c;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_sent, mut last_acked, mut last_recv) = (0, 0, 0);
    let start = Instant::now();
    loop {
        tick.tick().await;
        let p = *phase.borrow();
        let (sent, acked, recv) = (
            Stats::get(&c.sent),
            Stats::get(&c.acked_ok),
            Stats::get(&c.received),
        );
        let (p50, p99, _) = stats::take_interval(&sh.stats.latency_interval);
        eprintln!(
            "[{:>5.1}s] {:<10} conns {}/{} failed {} dropped {} | sent/s {} acked/s {} recv/s {} | p50 {:.2} ms p99 {:.2} ms | unanswered {} ack-errors {}",
            start.elapsed().as_secs_f64(),
            format!("{p:?}").to_lowercase(),
            Stats::get(&c.logged_in) - Stats::get(&c.dropped),
            sh.args.connections,
            Stats::get(&c.connect_failed),
            Stats::get(&c.dropped),
            sent - last_sent,
            acked - last_acked,
            recv - last_recv,
            p50,
            p99,
            sent.saturating_sub(acked + Stats::get(&c.ack_err)),
            Stats::get(&c.ack_err),
        );
        (last_sent, last_acked, last_recv) = (sent, acked, recv);
    }
}
