//! A thin Socket.IO v5 (Engine.IO v4) client over WebSocket or HTTP long-polling, for tests
//! and load generation.
//!
//! Why our own: `rust_socketio` 0.6 cannot acknowledge a server's emit-with-ack, which our
//! `new message` delivery needs; its fork `tf-rust-socketio` can, but both spend a task,
//! buffers and a callback registry per socket, and the load generator of `bench/` wants
//! thousands of sockets per core. Only the default namespace `/` and text (JSON) packets are
//! spoken; binary is not needed by the chat protocol.
//!
//! Layout:
//! - `lib.rs` (here): the public [`Client`] API, [`Error`] and [`ServerEvent`].
//! - [`codec`]: Engine.IO v4 / Socket.IO v5 packets and polling payloads, pure encode and
//!   parse; public, so `bench/` frames its packets with it.
//! - `ws`: the WebSocket transport (one packet per text frame); [`socket_url`].
//! - `polling`: the HTTP long-polling transport (packets joined by `\x1e`), with its minimal
//!   HTTP client and cookie jar in `polling/http.rs`, so HAProxy's `SERVERID` stickiness
//!   works. No upgrade from polling to WebSocket: a polling client stays on polling.
//! - `session`: what both transports share: the channels between a [`Client`] and its
//!   transport's writer task (Engine.IO packets from an unbounded channel) and reader task
//!   (incoming packets turned into events, acks and pongs).

pub mod codec;
mod polling;
mod session;
mod ws;

pub use ws::socket_url;

use serde_json::Value;
use session::{AckMap, Incoming, Outgoing};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What can go wrong connecting, emitting or waiting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A WebSocket (transport) failure.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// An HTTP (polling transport) failure: connection, status or I/O.
    #[error("http: {0}")]
    Http(String),
    /// A packet that does not parse, or the wrong one at a handshake step.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A bounded wait ran out; names what was awaited.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The session ended (the reason as the transport reported it).
    #[error("connection closed ({0})")]
    Closed(String),
}

/// An event the server sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEvent {
    /// The event's name (`new message`, `delivered`, …).
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

/// One connected Socket.IO client. Dropping it closes the connection.
pub struct Client {
    /// To the transport's writer task.
    out: mpsc::UnboundedSender<Outgoing>,
    /// From the transport's reader task.
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// Events received but not yet taken by [`Client::wait_for`].
    backlog: VecDeque<ServerEvent>,
    /// Waiters for the acks of [`Client::emit_ack`], shared with the reader.
    acks: AckMap,
    /// The next ack id to ask for.
    next_ack: AtomicU64,
    /// Why the session ended, once the reader said so.
    closed: Option<String>,
    /// The Socket.IO session id the server assigned.
    pub sid: String,
}

/// Runs a connect attempt bounded by `limit`; a timeout names `what`.
async fn within(
    limit: Duration,
    what: String,
    attempt: impl std::future::Future<Output = Result<Client, Error>>,
) -> Result<Client, Error> {
    tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| Error::Timeout(what))?
}

impl Client {
    /// Connects over WebSocket to `base` (`http://host:port` or `ws://host:port`) and joins
    /// namespace `/`.
    pub async fn connect(base: &str) -> Result<Client, Error> {
        Self::connect_timeout(base, Duration::from_secs(10)).await
    }

    /// [`Client::connect`] bounded by `limit` (handshake and Socket.IO connect).
    pub async fn connect_timeout(base: &str, limit: Duration) -> Result<Client, Error> {
        within(limit, format!("connect to {base}"), ws::connect(base)).await
    }

    /// Connects over HTTP long-polling to `base` (`http://host:port[/prefix]`) and joins
    /// namespace `/`. The returned client behaves exactly like a WebSocket one; it keeps the
    /// cookies the server (or HAProxy) sets and sends them back on every request.
    pub async fn connect_polling(base: &str) -> Result<Client, Error> {
        Self::connect_polling_timeout(base, Duration::from_secs(10)).await
    }

    /// [`Client::connect_polling`] bounded by `limit` (handshake and Socket.IO connect).
    pub async fn connect_polling_timeout(base: &str, limit: Duration) -> Result<Client, Error> {
        within(
            limit,
            format!("polling connect to {base}"),
            polling::connect(base),
        )
        .await
    }

    /// Emits an event without an ack callback.
    pub fn emit(&self, event: &str, data: Value) {
        let _ = self
            .out
            .send(Outgoing::Packet(codec::event(event, &data, None)));
    }

    /// Emits an event with an ack callback and waits for the ack's first argument.
    pub async fn emit_ack(&self, event: &str, data: Value) -> Result<Value, Error> {
        self.emit_ack_timeout(event, data, Duration::from_secs(10))
            .await
    }

    /// [`Client::emit_ack`] waiting at most `limit` for the ack.
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
            .send(Outgoing::Packet(codec::event(event, &data, Some(id))))
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
        let _ = self.out.send(Outgoing::Packet(codec::ack(ack_id, &data)));
    }

    /// Sends a raw Engine.IO text packet (for malformed-input tests): a text frame over
    /// WebSocket, one record of a POST body over polling.
    pub fn send_raw(&self, frame: &str) {
        let _ = self.out.send(Outgoing::Packet(frame.to_owned()));
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

    /// Closes the transport (a WebSocket close frame, or a `1` packet over polling).
    pub fn close(&self) {
        let _ = self.out.send(Outgoing::Close);
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

    #[tokio::test]
    async fn emits_and_acks_reach_the_writer_and_acks_resolve_waiters() {
        let (client, mut ends) = session::attach("s".into());
        client.emit("e", json!(1));
        client.ack(7, json!({}));
        client.send_raw("2probe");
        assert_eq!(
            ends.out_rx.recv().await,
            Some(Outgoing::Packet("42[\"e\",1]".into()))
        );
        assert_eq!(
            ends.out_rx.recv().await,
            Some(Outgoing::Packet("437[{}]".into()))
        );
        assert_eq!(
            ends.out_rx.recv().await,
            Some(Outgoing::Packet("2probe".into()))
        );
        let acks = ends.acks.clone();
        let in_tx = ends.in_tx.clone();
        let out_tx = ends.out_tx.clone();
        let answer = tokio::spawn(async move {
            let sent = ends.out_rx.recv().await;
            assert_eq!(sent, Some(Outgoing::Packet("420[\"q\",{}]".into())));
            assert_eq!(
                session::dispatch("430[{\"ok\":true}]", &in_tx, &acks, &out_tx),
                None
            );
            ends
        });
        let got = client.emit_ack("q", json!({})).await.unwrap();
        assert_eq!(got, json!({"ok": true}));
        let _ends = answer.await.unwrap();
    }

    #[tokio::test]
    async fn a_pending_ack_fails_when_the_transport_ends_not_at_its_timeout() {
        let (client, mut ends) = session::attach("s".into());
        let acks = ends.acks.clone();
        let in_tx = ends.in_tx.clone();
        let close = tokio::spawn(async move {
            // The emit is out: the transport now dies before any answer.
            let _ = ends.out_rx.recv().await;
            session::end(&in_tx, &acks, "transport close".into());
            ends
        });
        let started = std::time::Instant::now();
        let got = client
            .emit_ack_timeout("q", json!({}), Duration::from_secs(30))
            .await;
        assert!(matches!(got, Err(Error::Closed(_))), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let _ends = close.await.unwrap();
    }

    #[tokio::test]
    async fn events_wait_in_the_backlog_and_close_is_reported() {
        let (mut client, ends) = session::attach("s".into());
        let ev = |name: &str| ServerEvent {
            name: name.into(),
            args: vec![json!(1)],
            ack_id: None,
        };
        for name in ["a", "b"] {
            let _ = ends.in_tx.send(Incoming::Event(ev(name)));
        }
        let _ = ends.in_tx.send(Incoming::Closed("bye".into()));
        let t = Duration::from_secs(5);
        assert_eq!(client.wait_event("b", t).await.unwrap(), ev("b"));
        assert_eq!(client.wait_closed(t).await.unwrap(), "bye");
        assert_eq!(client.wait_event("a", t).await.unwrap(), ev("a"));
        assert!(matches!(
            client.wait_event("c", t).await,
            Err(Error::Closed(r)) if r == "bye"
        ));
    }
}
