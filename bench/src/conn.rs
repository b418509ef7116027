//! One benchmark connection: TCP from a chosen loopback source address, WebSocket and
//! Socket.IO handshakes, `log in`, then the send/receive loop driven by the run's phase.

use crate::proto::{self, Incoming};
use crate::stats::Stats;
use crate::{Phase, Shared};
use anyhow::{anyhow, bail, Context, Result};
use chat_client::codec;
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// xorshift64*: enough randomness for picking recipients, no dependency.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
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
            send_text(ws, codec::PONG.to_owned()).await?;
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
    send_text(&mut ws, codec::CONNECT.to_owned()).await?;
    expect_frame(&mut ws, "socket.io connect", |p| {
        Ok(*p == Incoming::Connected)
    })
    .await?;
    let user = idx / sh.args.sockets_per_user.max(1);
    send_text(&mut ws, proto::login(1, &format!("{}{user}", sh.prefix))).await?;
    expect_frame(&mut ws, "log in ack", |p| match p {
        Incoming::Ack(1, arr) if proto::ack_ok(arr) => Ok(true),
        Incoming::Ack(1, arr) => bail!("log in refused: {}", proto::ack_error_code(arr)),
        _ => Ok(false),
    })
    .await?;
    Ok(ws)
}

/// One connection: connect and log in, then send/receive until the phase says stop.
pub async fn connection(sh: Arc<Shared>, idx: usize, mut phase: watch::Receiver<Phase>) {
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
                let me = (idx / a.sockets_per_user.max(1)) as u64;
                if to == me && users > 1 {
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
                    Incoming::Ping => send_text(&mut ws, codec::PONG.to_owned()).await?,
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
