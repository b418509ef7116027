//! chat-client helpers the scenarios share: log in, send a direct message, read an error code.

use chat_client::{Client, ServerEvent};
use serde_json::{json, Value};

/// A client connected to `url` (a worker or HAProxy) and logged in as `user`; returns it and
/// the `log in` ack.
pub async fn login(url: &str, user: &str) -> (Client, Value) {
    let c = Client::connect(url).await.expect("connect");
    let ack = c
        .emit_ack("log in", json!({ "username": user }))
        .await
        .expect("log in ack");
    assert_eq!(ack["ok"], true, "log in as {user}: {ack}");
    (c, ack)
}

/// Is this a `new message` event?
pub fn is_new_message(e: &ServerEvent) -> bool {
    e.name == "new message"
}

/// `send message` that must be acked ok; returns the message id.
pub async fn send_ok(c: &Client, to: &str, text: &str) -> String {
    let ack = c
        .emit_ack("send message", json!({"username": to, "message": text}))
        .await
        .expect("send ack");
    assert_eq!(ack["ok"], true, "send to {to}: {ack}");
    ack["id"].as_str().expect("id is a string").to_owned()
}

/// Emits `event` with an ack callback: `"ok"`, or the error code (whose message must say
/// something).
pub async fn ack_code(c: &Client, event: &str, data: Value) -> String {
    let ack = c.emit_ack(event, data).await.expect("ack");
    if ack["ok"] == true {
        return "ok".into();
    }
    assert!(
        ack["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{event}: {ack}"
    );
    ack["error"]["code"]
        .as_str()
        .expect("error code")
        .to_owned()
}
