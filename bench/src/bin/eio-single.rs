//! `eio-single`: what one idle Socket.IO connection costs in a single-task design, as a
//! measured design option for issue 5/6 (not a server to use). Each connection is one tokio
//! task owning its WebSocket (tokio-tungstenite, 1 KiB read buffer, no write buffer) and its
//! ping timer; it speaks just enough Engine.IO v4 / Socket.IO v5 for chat-bench `--idle`:
//! the open packet, the namespace connect, `log in` acknowledged `{"ok":true,"pending":0}`,
//! pings. No channel, no session map, no extra tasks per socket — the three things that make
//! up most of socketioxide's per-connection memory (see BENCHMARKS.md, "Memory floor").
//!
//! Usage: `eio-single PORT` (127.0.0.1); prints `listening on ADDR`; stops on SIGINT/SIGTERM.

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const PING_INTERVAL: Duration = Duration::from_secs(25);

async fn serve(tcp: tokio::net::TcpStream, n: u64) {
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
        return;
    };
    let sid = format!("s{n:015}");
    let open = format!(
        r#"0{{"sid":"{sid}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
    );
    if ws.send(Message::text(open)).await.is_err() {
        return;
    }
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if ws.send(Message::text("2")).await.is_err() {
                    return;
                }
            }
            frame = ws.next() => {
                let Some(Ok(Message::Text(text))) = frame else {
                    return;
                };
                let reply = if text.as_str() == "40" {
                    Some(format!(r#"40{{"sid":"{sid}"}}"#))
                } else if let Some(rest) = text.as_str().strip_prefix("42") {
                    // `42<id>["log in",…]` → `43<id>[…]`
                    let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    Some(format!(r#"43{id}[{{"ok":true,"pending":0}}]"#))
                } else {
                    None // `3` (pong) and anything else
                };
                if let Some(reply) = reply {
                    if ws.send(Message::text(reply)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(p)) => p,
        _ => anyhow::bail!("usage: eio-single PORT (0 picks one)"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on {}", listener.local_addr()?);
        let stop = async {
            use tokio::signal::unix::{signal, SignalKind};
            match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(mut i), Ok(mut t)) => tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} },
                _ => std::future::pending().await,
            }
        };
        tokio::pin!(stop);
        let mut n = 0u64;
        loop {
            let (tcp, _) = tokio::select! {
                _ = &mut stop => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(c) => c,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            n += 1;
            tokio::spawn(serve(tcp, n));
        }
    })
}
