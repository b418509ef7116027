//! A thin Socket.IO v5 (Engine.IO v4) client over WebSocket or HTTP long-polling, for tests
//! and load generation.
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
//!
//! Two transports, one [`Client`]: [`Client::connect`] speaks WebSocket (one packet per text
//! frame), [`Client::connect_polling`] speaks HTTP long-polling (packets joined by `\x1e`, see
//! the `polling` module), keeping cookies so HAProxy's `SERVERID` stickiness works. There is no
//! upgrade from polling to WebSocket: a polling client stays on polling. Either way a writer
//! task takes Engine.IO packets from an unbounded channel and a reader task turns incoming
//! packets into events, acks and pongs.

mod polling;

use futures_util::{SinkExt, StreamExt};
use polling::Http;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// An HTTP (polling transport) failure: connection, status or I/O.
    #[error("http: {0}")]
    Http(String),
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

/// What the client hands its transport's writer task.
#[derive(Debug, Clone, PartialEq)]
enum Outgoing {
    /// One Engine.IO packet (`42…`, `3`, …): a text frame, or one record of a POST body.
    Packet(String),
    /// Close the transport: a WebSocket close frame, or a `1` packet over polling.
    Close,
}

/// One connected Socket.IO client. Dropping it closes the connection.
pub struct Client {
    out: mpsc::UnboundedSender<Outgoing>,
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

/// Handles one incoming packet on a connected session: events go to the client, acks to their
/// waiters, pings get a pong. Returns the close reason when the packet ends the session.
fn dispatch(
    text: &str,
    in_tx: &mpsc::UnboundedSender<Incoming>,
    acks: &AckMap,
    out: &mpsc::UnboundedSender<Outgoing>,
) -> Option<String> {
    match parse_packet(text) {
        Ok(Packet::Ping) => {
            let _ = out.send(Outgoing::Packet("3".into()));
        }
        Ok(Packet::Event(ev)) => {
            let _ = in_tx.send(Incoming::Event(ev));
        }
        Ok(Packet::Ack(id, args)) => {
            let waiter = acks.lock().ok().and_then(|mut m| m.remove(&id));
            if let Some(tx) = waiter {
                let _ = tx.send(args);
            }
        }
        Ok(Packet::Disconnect) => return Some("io server disconnect".to_owned()),
        Ok(Packet::Close) => return Some("transport close".to_owned()),
        Ok(_) => {}
        Err(e) => return Some(e.to_string()),
    }
    None
}

/// Why a polling session ended, shared by its reader and writer: the first to see the end
/// records it, the other stops.
type Ended = Arc<watch::Sender<Option<String>>>;

/// Records `reason` unless an earlier one is already there.
fn end_session(ended: &Ended, reason: String) {
    ended.send_if_modified(|r| {
        if r.is_none() {
            *r = Some(reason);
            true
        } else {
            false
        }
    });
}

/// Resolves once the session has ended, with the recorded reason.
async fn session_ended(rx: &mut watch::Receiver<Option<String>>) -> String {
    match rx.wait_for(Option::is_some).await {
        Ok(r) => r.clone().unwrap_or_default(),
        Err(_) => "transport close".to_owned(),
    }
}

/// One Engine.IO polling session: where to send requests, and its limits.
#[derive(Clone)]
struct PollSession {
    http: Http,
    /// The request target with `&sid=…`.
    target: String,
    /// Bound on one long-poll GET.
    get_limit: Duration,
    /// The server's `maxPayload`: a POST body never exceeds it (unless one packet does).
    max_payload: usize,
}

impl PollSession {
    /// POSTs `body` (packets joined by `\x1e`); returns the status (the server answers `200`
    /// `ok`, or `400`/`413` and closes the session).
    async fn post(&self, body: String) -> Result<u16, Error> {
        let (status, _) = self
            .http
            .request(&self.target, Some(body), polling::REQUEST_TIMEOUT)
            .await?;
        Ok(status)
    }

    /// [`PollSession::post`] during the handshake, where anything but `200` is an error.
    async fn post_ok(&self, body: &str) -> Result<(), Error> {
        match self.post(body.to_owned()).await? {
            200 => Ok(()),
            status => Err(Error::Http(format!("POST {body:?}: HTTP {status}"))),
        }
    }

    /// Long-polls once; returns the payload. A non-`200` status or an empty payload (what the
    /// server answers when the session closes under a pending poll) is `Error::Closed`.
    async fn get(&self) -> Result<String, Error> {
        let (status, body) = self
            .http
            .request(&self.target, None, self.get_limit)
            .await?;
        if status != 200 {
            return Err(Error::Closed(format!("GET: HTTP {status} {body}")));
        }
        if body.is_empty() {
            return Err(Error::Closed("GET: empty payload".into()));
        }
        Ok(body)
    }
}

/// The polling writer: batches whatever is queued into one POST at a time, until a close
/// has been sent, a POST fails, or the reader saw the session end.
async fn poll_writer(
    session: PollSession,
    mut out_rx: mpsc::UnboundedReceiver<Outgoing>,
    ended: Ended,
) {
    let mut ended_rx = ended.subscribe();
    let mut queue: VecDeque<String> = VecDeque::new();
    let mut closing = false;
    let queue_one = |m: Outgoing, queue: &mut VecDeque<String>, closing: &mut bool| match m {
        Outgoing::Packet(p) => queue.push_back(p),
        Outgoing::Close => {
            queue.push_back("1".into());
            *closing = true;
        }
    };
    let reason = loop {
        if queue.is_empty() {
            if closing {
                break "transport close".to_owned();
            }
            tokio::select! {
                m = out_rx.recv() => match m {
                    Some(m) => queue_one(m, &mut queue, &mut closing),
                    None => break "transport close".to_owned(),
                },
                _ = session_ended(&mut ended_rx) => return,
            }
        }
        while !closing {
            match out_rx.try_recv() {
                Ok(m) => queue_one(m, &mut queue, &mut closing),
                Err(_) => break,
            }
        }
        let body = polling::take_batch(&mut queue, session.max_payload);
        let sent = tokio::select! {
            r = session.post(body) => r,
            _ = session_ended(&mut ended_rx) => return,
        };
        match sent {
            Ok(200) => {}
            Ok(_) => break "transport close".to_owned(),
            Err(e) => break format!("transport error: {e}"),
        }
    };
    end_session(&ended, reason);
}

/// The polling reader: long-polls one GET at a time and dispatches the packets, starting with
/// `leftover` (what followed the connect packet in the handshake's last payload).
async fn poll_reader(
    session: PollSession,
    leftover: Vec<String>,
    in_tx: mpsc::UnboundedSender<Incoming>,
    acks: AckMap,
    pong: mpsc::UnboundedSender<Outgoing>,
    ended: Ended,
) {
    let mut ended_rx = ended.subscribe();
    let mut reason = leftover
        .iter()
        .find_map(|p| dispatch(p, &in_tx, &acks, &pong));
    while reason.is_none() {
        let got = tokio::select! {
            r = session.get() => r,
            r = session_ended(&mut ended_rx) => {
                let _ = in_tx.send(Incoming::Closed(r));
                return;
            }
        };
        reason = match got {
            Ok(body) => {
                polling::split_payload(&body).find_map(|p| dispatch(p, &in_tx, &acks, &pong))
            }
            Err(Error::Closed(_)) => Some("transport close".to_owned()),
            Err(e) => Some(format!("transport error: {e}")),
        };
    }
    let reason = reason.unwrap_or_default();
    end_session(&ended, reason.clone());
    // Report what ended the session first (the writer may have recorded it).
    let reason = ended.borrow().clone().unwrap_or(reason);
    let _ = in_tx.send(Incoming::Closed(reason));
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

    pub async fn connect_timeout(base: &str, limit: Duration) -> Result<Client, Error> {
        within(
            limit,
            format!("connect to {base}"),
            Self::connect_inner(base),
        )
        .await
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

        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outgoing>();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let acks: AckMap = Arc::default();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let (frame, close) = match m {
                    Outgoing::Packet(p) => (Message::text(p), false),
                    Outgoing::Close => (Message::Close(None), true),
                };
                if sink.send(frame).await.is_err() || close {
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
                if let Some(reason) = dispatch(&text, &in_tx, &reader_acks, &pong) {
                    break reason;
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
            Self::connect_polling_inner(base),
        )
        .await
    }

    async fn connect_polling_inner(base: &str) -> Result<Client, Error> {
        let http = Http::new(base)?;
        // Engine.IO open.
        let (status, body) = http
            .request(&http.target(None), None, polling::REQUEST_TIMEOUT)
            .await?;
        if status != 200 {
            return Err(Error::Http(format!("handshake: HTTP {status} {body}")));
        }
        let open = match polling::split_payload(&body).next().map(parse_packet) {
            Some(Ok(Packet::Open(v))) => v,
            Some(Err(e)) => return Err(e),
            other => return Err(Error::Protocol(format!("expected open, got {other:?}"))),
        };
        let eio_sid = open["sid"]
            .as_str()
            .ok_or_else(|| Error::Protocol(format!("open packet without sid: {open}")))?;
        let millis =
            |key: &str, default: u64| Duration::from_millis(open[key].as_u64().unwrap_or(default));
        let session = PollSession {
            target: http.target(Some(eio_sid)),
            get_limit: polling::get_limit(
                millis("pingInterval", 25_000),
                millis("pingTimeout", 20_000),
            ),
            max_payload: open["maxPayload"]
                .as_u64()
                .and_then(|m| usize::try_from(m).ok())
                .unwrap_or(100_000),
            http,
        };
        // Socket.IO connect to `/`.
        session.post_ok("40").await?;
        let mut leftover = Vec::new();
        let sid = 'connected: loop {
            let body = session
                .get()
                .await
                .map_err(|e| Error::Closed(format!("before connect: {e}")))?;
            let mut packets = polling::split_payload(&body);
            while let Some(p) = packets.next() {
                match parse_packet(p)? {
                    Packet::Connect(v) => {
                        leftover.extend(packets.map(str::to_owned));
                        break 'connected v["sid"].as_str().unwrap_or_default().to_owned();
                    }
                    Packet::ConnectError(v) => {
                        return Err(Error::Protocol(format!("connect refused: {v}")))
                    }
                    Packet::Ping => session.post_ok("3").await?,
                    Packet::Close => return Err(Error::Closed("before connect".into())),
                    _ => {}
                }
            }
        };

        let (out_tx, out_rx) = mpsc::unbounded_channel::<Outgoing>();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let acks: AckMap = Arc::default();
        let ended: Ended = Arc::new(watch::channel(None).0);
        tokio::spawn(poll_writer(session.clone(), out_rx, ended.clone()));
        tokio::spawn(poll_reader(
            session,
            leftover,
            in_tx,
            acks.clone(),
            out_tx.clone(),
            ended,
        ));
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
            .send(Outgoing::Packet(Self::encode_event(event, &data, None)));
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
            .send(Outgoing::Packet(Self::encode_event(event, &data, Some(id))))
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
        let _ = self.out.send(Outgoing::Packet(format!("43{ack_id}{body}")));
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
