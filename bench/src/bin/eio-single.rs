//! `eio-single`: what one idle Socket.IO connection costs in a single-task design, as a
//! measured design option for issue 5/6 (not a server to use). Each connection is one tokio
//! task owning its WebSocket (tokio-tungstenite, 1 KiB read buffer, no write buffer) and its
//! ping timer; it speaks just enough Engine.IO v4 / Socket.IO v5 for chat-bench `--idle`:
//! the open packet, the namespace connect, `log in` acknowledged `{"ok":true,"pending":0}`,
//! pings. No channel, no session map, no extra tasks per socket — the three things that make
//! up most of socketioxide's per-connection memory (see BENCHMARKS.md, "Memory floor").
//!
//! Usage: `eio-single PORT` (127.0.0.1); prints `listening on ADDR`; stops on SIGINT/SIGTERM.

#[path = "../loopback_server.rs"]
mod loopback_server;

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
    loopback_server::run(
        tokio::runtime::Builder::new_current_thread(),
        "eio-single",
        || {
            let next = std::cell::Cell::new(0u64);
            move |tcp| {
                next.set(next.get() + 1);
                serve(tcp, next.get())
            }
        },
    )
}
