//! A thin Socket.IO v5 (Engine.IO v4) client over WebSocket, for tests and load generation.
//!
//! Why our own: `rust_socketio` 0.6 cannot acknowledge a server's emit-with-ack, which our
//! `new message` delivery needs; its fork `tf-rust-socketio` can, but both spend a task,
//! buffers and a callback registry per socket, and the load generator of `bench/` wants
//! thousands of sockets per core. Engine.IO v4 over WebSocket is small: each text frame is one
//! packet — `0` open, `2`/`3` ping/pong, `4x` a Socket.IO packet (`40` connect, `41`
//! disconnect, `42[id][…]` event, `43id[…]` ack, `44` connect error).
//!
//! Only the default namespace `/` and text (JSON) packets are spoken; binary is not needed by
//! the chat protocol.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("connection closed ({0})")]
    Closed(String),
}

/// An event the server sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEvent {
    pub name: String,
    /// The event's arguments (usually one object).
    pub args: Vec<Value>,
    /// Set when the server asked for an acknowledgement: answer with [`Client::ack`].
    pub ack_id: Option<u64>,
}

impl ServerEvent {
    /// The first argument, or `null`.
    pub fn data(&self) -> &Value {
        self.args.first().unwrap_or(&Value::Null)
    }
}

enum Incoming {
    Event(ServerEvent),
    Closed(String),
}

type AckMap = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<Value>>>>>;

/// One connected Socket.IO client. Dropping it closes the connection.
pub struct Client {
    out: mpsc::UnboundedSender<Message>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// Events received but not yet taken by [`Client::wait_for`].
    backlog: VecDeque<ServerEvent>,
    acks: AckMap,
    next_ack: AtomicU64,
    closed: Option<String>,
    /// The Socket.IO session id the server assigned.
    pub sid: String,
}

/// `ws://host:port/socket.io/?EIO=4&transport=websocket` from `http://host:port` or
/// `ws://host:port`.
pub fn socket_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = base
        .strip_prefix("http://")
        .map(|rest| format!("ws://{rest}"))
        .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .unwrap_or_else(|| base.to_owned());
    format!("{base}/socket.io/?EIO=4&transport=websocket")
}

/// Splits a Socket.IO packet body after its type digit: `[ack id digits][json]`.
fn split_ack_id(body: &str) -> (Option<u64>, &str) {
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        (None, body)
    } else {
        (body[..digits].parse().ok(), &body[digits..])
    }
}

/// Parses one Engine.IO text packet into what the client must do with it.
#[derive(Debug, PartialEq)]
enum Packet {
    Open(Value),
    Ping,
    Connect(Value),
    ConnectError(Value),
    Disconnect,
    Event(ServerEvent),
    Ack(u64, Vec<Value>),
    Close,
    Other,
}

fn parse_packet(text: &str) -> Result<Packet, Error> {
    let bad = || Error::Protocol(format!("unparsable packet {text:?}"));
    let mut chars = text.chars();
    match chars.next() {
        Some('0') => Ok(Packet::Open(
            serde_json::from_str(&text[1..]).map_err(|_| bad())?,
        )),
        Some('1') => Ok(Packet::Close),
        Some('2') => Ok(Packet::Ping),
        Some('4') => {
            let body = &text[2.min(text.len())..];
            match chars.next() {
                Some('0') => Ok(Packet::Connect(
                    serde_json::from_str(body).unwrap_or(Value::Null),
                )),
                Some('1') => Ok(Packet::Disconnect),
                Some('2') => {
                    let (ack_id, json) = split_ack_id(body);
                    let mut arr: Vec<Value> = serde_json::from_str(json).map_err(|_| bad())?;
                    if arr.is_empty() {
                        return Err(bad());
                    }
                    let name = match arr.remove(0) {
                        Value::String(s) => s,
                        _ => return Err(bad()),
                    };
                    Ok(Packet::Event(ServerEvent {
                        name,
                        args: arr,
                        ack_id,
                    }))
                }
                Some('3') => {
                    let (ack_id, json) = split_ack_id(body);
                    let args = serde_json::from_str(json).map_err(|_| bad())?;
                    Ok(Packet::Ack(ack_id.ok_or_else(bad)?, args))
                }
                Some('4') => Ok(Packet::ConnectError(
                    serde_json::from_str(body).unwrap_or(Value::Null),
                )),
                _ => Ok(Packet::Other),
            }
        }
        _ => Ok(Packet::Other),
    }
}

impl Client {
    /// Connects over WebSocket to `base` (`http://host:port` or `ws://host:port`) and joins
    /// namespace `/`.
    pub async fn connect(base: &str) -> Result<Client, Error> {
        Self::connect_timeout(base, Duration::from_secs(10)).await
    }

    pub async fn connect_timeout(base: &str, limit: Duration) -> Result<Client, Error> {
        tokio::time::timeout(limit, Self::connect_inner(base))
            .await
            .map_err(|_| Error::Timeout(format!("connect to {base}")))?
    }

    async fn connect_inner(base: &str) -> Result<Client, Error> {
        let (ws, _) = tokio_tungstenite::connect_async(socket_url(base)).await?;
        let (mut sink, mut stream) = ws.split();
        // Engine.IO open, then Socket.IO connect to `/`.
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => match parse_packet(&t)? {
                    Packet::Open(_) => break,
                    other => return Err(Error::Protocol(format!("expected open, got {other:?}"))),
                },
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Error::Closed("before open".into())),
            }
        }
        sink.send(Message::text("40")).await?;
        let sid = loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => match parse_packet(&t)? {
                    Packet::Connect(v) => {
                        break v["sid"].as_str().unwrap_or_default().to_owned();
                    }
                    Packet::ConnectError(v) => {
                        return Err(Error::Protocol(format!("connect refused: {v}")))
                    }
                    Packet::Ping => sink.send(Message::text("3")).await?,
                    _ => {}
                },
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Error::Closed("before connect".into())),
            }
        };

        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let acks: AckMap = Arc::default();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let close = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || close {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let reader_acks = acks.clone();
        let pong = out_tx.clone();
        tokio::spawn(async move {
            let reason = loop {
                let text = match stream.next().await {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => break "transport close".to_owned(),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break format!("transport error: {e}"),
                };
                match parse_packet(&text) {
                    Ok(Packet::Ping) => {
                        let _ = pong.send(Message::text("3"));
                    }
                    Ok(Packet::Event(ev)) => {
                        let _ = in_tx.send(Incoming::Event(ev));
                    }
                    Ok(Packet::Ack(id, args)) => {
                        let waiter = reader_acks.lock().ok().and_then(|mut m| m.remove(&id));
                        if let Some(tx) = waiter {
                            let _ = tx.send(args);
                        }
                    }
                    Ok(Packet::Disconnect) => break "io server disconnect".to_owned(),
                    Ok(Packet::Close) => break "transport close".to_owned(),
                    Ok(_) => {}
                    Err(e) => break e.to_string(),
                }
            };
            let _ = in_tx.send(Incoming::Closed(reason));
        });
        Ok(Client {
            out: out_tx,
            incoming: in_rx,
            backlog: VecDeque::new(),
            acks,
            next_ack: AtomicU64::new(0),
            closed: None,
            sid,
        })
    }

    fn encode_event(event: &str, data: &Value, ack_id: Option<u64>) -> String {
        let body = serde_json::to_string(&[Value::String(event.to_owned()), data.clone()])
            .unwrap_or_default();
        match ack_id {
            Some(id) => format!("42{id}{body}"),
            None => format!("42{body}"),
        }
    }

    /// Emits an event without an ack callback.
    pub fn emit(&self, event: &str, data: Value) {
        let _ = self
            .out
            .send(Message::text(Self::encode_event(event, &data, None)));
    }

    /// Emits an event with an ack callback and waits for the ack's first argument.
    pub async fn emit_ack(&self, event: &str, data: Value) -> Result<Value, Error> {
        self.emit_ack_timeout(event, data, Duration::from_secs(10))
            .await
    }

    pub async fn emit_ack_timeout(
        &self,
        event: &str,
        data: Value,
        limit: Duration,
    ) -> Result<Value, Error> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut m) = self.acks.lock() {
            m.insert(id, tx);
        }
        self.out
            .send(Message::text(Self::encode_event(event, &data, Some(id))))
            .map_err(|_| Error::Closed("writer gone".into()))?;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(mut args)) => Ok(if args.is_empty() {
                Value::Null
            } else {
                args.remove(0)
            }),
            Ok(Err(_)) => Err(Error::Closed("while waiting for an ack".into())),
            Err(_) => {
                if let Ok(mut m) = self.acks.lock() {
                    m.remove(&id);
                }
                Err(Error::Timeout(format!("ack of `{event}`")))
            }
        }
    }

    /// Acknowledges a server event that asked for it.
    pub fn ack(&self, ack_id: u64, data: Value) {
        let body = serde_json::to_string(&[data]).unwrap_or_default();
        let _ = self.out.send(Message::text(format!("43{ack_id}{body}")));
    }

    /// Sends a raw Engine.IO text frame (for malformed-input tests).
    pub fn send_raw(&self, frame: &str) {
        let _ = self.out.send(Message::text(frame.to_owned()));
    }

    /// Waits for the next event that `matches`, keeping others for later calls.
    pub async fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        matches: impl Fn(&ServerEvent) -> bool,
    ) -> Result<ServerEvent, Error> {
        if let Some(pos) = self.backlog.iter().position(&matches) {
            return Ok(self.backlog.remove(pos).unwrap_or_else(|| unreachable!()));
        }
        if let Some(reason) = &self.closed {
            return Err(Error::Closed(reason.clone()));
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Err(_) => return Err(Error::Timeout(what.to_owned())),
                Ok(None) => return Err(Error::Closed("reader gone".into())),
                Ok(Some(Incoming::Closed(reason))) => {
                    self.closed = Some(reason.clone());
                    return Err(Error::Closed(reason));
                }
                Ok(Some(Incoming::Event(ev))) => {
                    if matches(&ev) {
                        return Ok(ev);
                    }
                    self.backlog.push_back(ev);
                }
            }
        }
    }

    /// Waits for the next event named `name`.
    pub async fn wait_event(&mut self, name: &str, limit: Duration) -> Result<ServerEvent, Error> {
        self.wait_for(name, limit, |e| e.name == name).await
    }

    /// Collects every event named `name` that arrives within `window`.
    pub async fn collect_events(&mut self, name: &str, window: Duration) -> Vec<ServerEvent> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.wait_event(name, left).await {
                Ok(ev) => out.push(ev),
                Err(_) => return out,
            }
        }
    }

    /// Waits until the connection closes; returns the reason.
    pub async fn wait_closed(&mut self, limit: Duration) -> Result<String, Error> {
        if let Some(reason) = &self.closed {
            return Ok(reason.clone());
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Err(_) => return Err(Error::Timeout("close".into())),
                Ok(None) => return Ok("reader gone".into()),
                Ok(Some(Incoming::Closed(reason))) => {
                    self.closed = Some(reason.clone());
                    return Ok(reason);
                }
                Ok(Some(Incoming::Event(ev))) => self.backlog.push_back(ev),
            }
        }
    }

    /// Closes the WebSocket.
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_events_acks_and_control_packets() {
        assert_eq!(parse_packet("2").unwrap(), Packet::Ping);
        assert_eq!(parse_packet("41").unwrap(), Packet::Disconnect);
        assert_eq!(
            parse_packet("42[\"new message\",{\"id\":\"1-0\"}]").unwrap(),
            Packet::Event(ServerEvent {
                name: "new message".into(),
                args: vec![json!({"id":"1-0"})],
                ack_id: None
            })
        );
        assert_eq!(
            parse_packet("4217[\"x\"]").unwrap(),
            Packet::Event(ServerEvent {
                name: "x".into(),
                args: vec![],
                ack_id: Some(17)
            })
        );
        assert_eq!(
            parse_packet("433[{\"ok\":true}]").unwrap(),
            Packet::Ack(3, vec![json!({"ok":true})])
        );
        assert!(parse_packet("42{").is_err());
    }

    #[test]
    fn encodes_events_with_and_without_ack_ids() {
        assert_eq!(
            Client::encode_event("log in", &json!({"username":"a"}), Some(4)),
            "424[\"log in\",{\"username\":\"a\"}]"
        );
        assert_eq!(Client::encode_event("e", &json!(1), None), "42[\"e\",1]");
    }

    #[test]
    fn builds_socket_urls() {
        assert_eq!(
            socket_url("http://127.0.0.1:5/"),
            "ws://127.0.0.1:5/socket.io/?EIO=4&transport=websocket"
        );
    }
}
