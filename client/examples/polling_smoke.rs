//! Smoke check of the two transports against a running cluster: one HTTP long-polling client
//! and one WebSocket client log in, send each other a direct message, acknowledge it, and
//! check the sender's `delivered` receipt.
//!
//! ```text
//! cargo run -p chat-client --example polling_smoke -- POLLING_BASE [WEBSOCKET_BASE] [--hold SECS]
//! ```
//!
//! With one base (e.g. HAProxy's `http://127.0.0.1:8080`) both clients use it; with two, the
//! polling client talks to the first and the WebSocket client to the second (e.g. two
//! workers). `--hold SECS` idles that long before a second round trip, to prove the polling
//! client answers the server's pings (hold longer than pingInterval + pingTimeout ≈ 45 s).

use chat_client::{Client, Error};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(10);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(what().into())
    }
}

async fn log_in(c: &Client, name: &str) -> Result<Value> {
    let ack = c.emit_ack("log in", json!({ "username": name })).await?;
    check(ack["ok"] == true, || format!("log in as {name}: {ack}"))?;
    Ok(ack)
}

/// `from` sends `to_name` a direct message; `to` receives and acks it; `from` gets the receipt.
async fn round_trip(
    from: &mut Client,
    from_name: &str,
    to: &mut Client,
    to_name: &str,
    text: &str,
) -> Result<()> {
    let ack = from
        .emit_ack(
            "send message",
            json!({ "username": to_name, "message": text }),
        )
        .await?;
    check(ack["ok"] == true, || format!("send to {to_name}: {ack}"))?;
    let id = ack["id"].as_str().unwrap_or_default().to_owned();

    let ev = to
        .wait_for("new message", WAIT, |e| {
            e.name == "new message" && e.data()["id"] == id.as_str()
        })
        .await?;
    check(
        ev.data()["from"] == from_name && ev.data()["message"] == text,
        || format!("unexpected new message: {:?}", ev.data()),
    )?;
    let ack_id = ev
        .ack_id
        .ok_or_else(|| Error::Protocol("direct message without an ack id".into()))?;
    to.ack(ack_id, json!({}));

    let receipt = from.wait_event("delivered", WAIT).await?;
    check(
        receipt.data() == &json!({ "id": id, "to": to_name }),
        || format!("unexpected receipt: {:?}", receipt.data()),
    )?;
    println!("{from_name} -> {to_name}: message {id} delivered and acknowledged");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut hold = None;
    if let Some(i) = args.iter().position(|a| a == "--hold") {
        let secs: u64 = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .ok_or("--hold needs a number of seconds")?;
        hold = Some(Duration::from_secs(secs));
        args.drain(i..i + 2);
    }
    let poll_base = args
        .first()
        .cloned()
        .ok_or("usage: polling_smoke POLLING_BASE [WEBSOCKET_BASE] [--hold SECS]")?;
    let ws_base = args.get(1).cloned().unwrap_or_else(|| poll_base.clone());

    let tag = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000_000)
        .unwrap_or_default();
    let (poll_name, ws_name) = (format!("poll{tag}"), format!("ws{tag}"));

    let mut poll = Client::connect_polling(&poll_base).await?;
    println!("polling client connected to {poll_base}, sid {}", poll.sid);
    let mut ws = Client::connect(&ws_base).await?;
    println!("websocket client connected to {ws_base}, sid {}", ws.sid);

    let ack = log_in(&poll, &poll_name).await?;
    println!("{poll_name} logged in over polling: {ack}");
    let ack = log_in(&ws, &ws_name).await?;
    println!("{ws_name} logged in over websocket: {ack}");

    round_trip(
        &mut poll,
        &poll_name,
        &mut ws,
        &ws_name,
        "hello from polling",
    )
    .await?;
    round_trip(
        &mut ws,
        &ws_name,
        &mut poll,
        &poll_name,
        "hello from websocket",
    )
    .await?;

    if let Some(hold) = hold {
        println!("idling {hold:?} (server pings must be answered)...");
        tokio::time::sleep(hold).await;
        round_trip(&mut poll, &poll_name, &mut ws, &ws_name, "still there?").await?;
        round_trip(&mut ws, &ws_name, &mut poll, &poll_name, "yes").await?;
    }

    poll.close();
    let reason = poll.wait_closed(WAIT).await?;
    println!("polling client closed: {reason}");
    ws.close();
    let reason = ws.wait_closed(WAIT).await?;
    println!("websocket client closed: {reason}");
    println!("OK");
    Ok(())
}
