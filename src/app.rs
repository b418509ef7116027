//! The worker's shared state and the SPEC §3 protocol handlers, one `async fn` per event.
//! Handlers validate, then call the [`Store`]; deliveries that arrive on the worker's Redis
//! channel are fanned out to local sockets by [`App::on_delivery`].

use crate::config::Limits;
use crate::link::LinkConnection;
use crate::metrics::Metrics;
use crate::protocol::{
    self, events, ChatError, Delivered, ErrorCode, LogIn, NewMessage, RoomMessage, RoomRef,
    SendMessage,
};
use crate::registry::{stream_id, Charge, FlightCaps, Registry, Reserve};
use crate::store::{now_ms, Delivery, Store};
use serde::Serialize;
use serde_json::{json, Value};
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::{DisconnectReason, Sid, Socket};
use socketioxide::{AckError, TransportType};
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Unacknowledged `new message`s per socket; the rest waits in the inbox. A client acks
/// each at once, so 64 is far more than a round trip's worth at any real rate.
pub const MAX_IN_FLIGHT: u32 = 64;
/// Most bytes of room history one `join room` answers with (the newest messages that fit),
/// so a room of large messages never makes one reply of megabytes.
pub const HISTORY_MAX_BYTES: usize = 256 * 1024;

/// Shared worker state, cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    /// The only path to Redis.
    pub store: Store<LinkConnection>,
    /// This worker's sockets by user and room.
    pub registry: Registry,
    pub metrics: Metrics,
    pub limits: Limits,
    /// `[auth] secret`: when set, `log in` needs a valid token.
    pub auth_secret: Option<String>,
    /// Set on SIGTERM: `/health` answers 503 and new handshakes are refused.
    pub draining: AtomicBool,
    /// The last heartbeat reached Redis.
    pub redis_commands_up: AtomicBool,
    /// The delivery channel is subscribed.
    pub redis_subscribed: AtomicBool,
    /// How long a worker's liveness key lives without a heartbeat.
    pub liveness_ttl: Duration,
    /// Accepted TCP connections still open, upgraded or not (`http::Metered`).
    pub open_connections: AtomicUsize,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    pub fn new(inner: AppInner) -> Self {
        Self(Arc::new(inner))
    }

    /// Both Redis links work: commands answer and deliveries arrive.
    pub fn redis_up(&self) -> bool {
        self.redis_commands_up.load(Ordering::Relaxed)
            && self.redis_subscribed.load(Ordering::Relaxed)
    }

    pub fn healthy(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.redis_up()
    }

    /// Accounts for a packet whose Socket.IO JSON part is `json_len` bytes; `false` when it
    /// must not go out because the socket's unsent bytes would pass
    /// `max_queued_bytes_per_socket` (the socket is then cut, once).
    fn admit(&self, socket: &SocketRef, json_len: usize) -> bool {
        let websocket = socket.transport_type() == TransportType::Websocket;
        self.admit_bytes(socket, wire_size(json_len, websocket), websocket)
    }

    fn admit_bytes(&self, socket: &SocketRef, bytes: u64, websocket: bool) -> bool {
        let limit = self.limits.max_queued_bytes_per_socket;
        match self.registry.charge(socket.id, bytes, limit, websocket) {
            Charge::Emit => true,
            Charge::Drop => false,
            Charge::Over { queued, user, wire } => {
                self.metrics.slow_disconnect();
                tracing::warn!(
                    sid = %socket.id,
                    user = user.as_deref().unwrap_or("-"),
                    queued,
                    limit,
                    "slow reader disconnected: its unsent data would pass \
                     max_queued_bytes_per_socket; its direct messages wait in the inbox"
                );
                match wire {
                    // The transport closes the session and the disconnect handler runs.
                    Some(wire) => wire.cut(),
                    // Polling: the disconnect packet goes first if the packet channel has
                    // room; otherwise the full channel fails the next ping and engineioxide
                    // closes the session within a ping interval.
                    None => {
                        if let Err(e) = socket.clone().disconnect() {
                            tracing::debug!(sid = %socket.id, "disconnect deferred: {e}");
                        }
                    }
                }
                false
            }
        }
    }

    /// Emits `event` to one socket within its byte bound.
    fn emit_to<T: Serialize>(&self, socket: &SocketRef, event: &str, data: &T) -> bool {
        self.admit(socket, event_json_len(event, data)) && socket.emit(event, data).is_ok()
    }

    /// Unacknowledged direct messages per socket: [`MAX_IN_FLIGHT`], and half the queue
    /// bound in bytes so that a page of them never makes a reading client look slow.
    fn flight_caps(&self) -> FlightCaps {
        FlightCaps {
            count: MAX_IN_FLIGHT,
            bytes: self.limits.max_queued_bytes_per_socket / 2,
        }
    }

    /// Emits a direct message to one socket and, when that client acknowledges, removes it
    /// from the inbox and sends the sender a `delivered` receipt. `Hold` when the socket's
    /// flight is full: the message stays in the inbox and a refill sends it later.
    fn emit_direct(
        &self,
        socket: &SocketRef,
        to: &str,
        message: &NewMessage,
        from_inbox: bool,
    ) -> Reserve {
        let websocket = socket.transport_type() == TransportType::Websocket;
        let bytes = wire_size(event_json_len(events::NEW_MESSAGE, message), websocket);
        let caps = self.flight_caps();
        let sid = socket.id;
        if self
            .registry
            .reserve(sid, &message.id, bytes, caps, from_inbox)
            == Reserve::Hold
        {
            return Reserve::Hold;
        }
        if !self.admit_bytes(socket, bytes, websocket) {
            // Cut: not sent, it stays in the inbox for the next `log in`.
            return Reserve::Emit;
        }
        match socket.emit_with_ack::<_, serde::de::IgnoredAny>(events::NEW_MESSAGE, message) {
            Ok(ack) => {
                self.metrics.delivered();
                let app = self.clone();
                let (to, id, from) = (to.to_owned(), message.id.clone(), message.from.clone());
                tokio::spawn(async move {
                    // Any answer counts as an acknowledgement, whatever its arguments.
                    if matches!(ack.await, Ok(_) | Err(AckError::Decode(_))) {
                        if let Err(e) = app.store.ack(&to, &id, &from).await {
                            tracing::warn!(%to, %id, "ack not recorded, message stays pending: {e}");
                        }
                    }
                    // Acked or timed out, it leaves the flight either way (a timed-out one
                    // stays pending and goes out again at the next `log in`).
                    if app.registry.release(sid, bytes, caps) {
                        app.refill(sid, to).await;
                    }
                });
            }
            Err(e) => {
                tracing::debug!(sid = %socket.id, "emit failed: {e}");
                self.registry.release(sid, bytes, caps);
            }
        }
        Reserve::Emit
    }

    /// Sends a socket that fell behind the next page of its inbox: what follows the newest
    /// message it was sent, until its flight is full again.
    async fn refill(&self, sid: Sid, user: String) {
        let caps = self.flight_caps();
        while let Some(after) = self.registry.refill_from(sid, caps) {
            // The store reads the whole inbox (at most `inbox_max` entries) and this keeps
            // what follows `after`; a ranged read would fetch one page only.
            let pending = match self.store.pending(&user).await {
                Ok(p) => p,
                Err(e) => {
                    // Nothing else may be in flight to trigger the next try: retry here
                    // (the loop ends when the socket is gone).
                    tracing::warn!(%user, "refill failed, retrying in 1 s: {e}");
                    self.registry.end_refill(sid, true);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some(socket) = self.registry.socket(sid) else {
                return;
            };
            if self.registry.user_of(sid).as_deref() != Some(user.as_str()) {
                self.registry.end_refill(sid, false);
                return;
            }
            for message in pending.iter().filter(|m| stream_id(&m.id) > after) {
                if self.emit_direct(&socket, &user, message, true) == Reserve::Hold {
                    break;
                }
            }
            self.registry.end_refill(sid, false);
        }
    }

    /// Fans out what arrived on this worker's channel.
    pub fn on_delivery(&self, delivery: Delivery) {
        match delivery {
            Delivery::Direct { to, message } => {
                for socket in self.registry.direct_targets(&to, &message) {
                    self.emit_direct(&socket, &to, &message, false);
                }
            }
            Delivery::Room {
                except_sid,
                message,
            } => {
                let Some(room) = message.room.as_deref() else {
                    return;
                };
                for socket in self.registry.room_members(room, &except_sid) {
                    if self.emit_to(&socket, events::NEW_MESSAGE, &message) {
                        self.metrics.delivered();
                    }
                }
            }
            Delivery::Delivered { sender, id, to } => {
                for socket in self.registry.sockets_of(&sender) {
                    self.emit_to(&socket, events::DELIVERED, &Delivered { id: &id, to: &to });
                }
            }
        }
    }

    /// After the delivery channel was (re)subscribed, messages published while it was down
    /// were missed: send every local user its inbox again (clients drop duplicates by id).
    pub async fn redeliver_pending(&self) {
        let (users, _) = self.registry.snapshot();
        for user in users {
            match self.store.pending(&user).await {
                Ok(pending) => {
                    // A pass over the whole inbox, in order, per socket up to its first hold.
                    self.registry.rewind_user(&user);
                    let mut full = HashSet::new();
                    for message in pending {
                        for socket in self.registry.direct_targets(&user, &message) {
                            if !full.contains(&socket.id)
                                && self.emit_direct(&socket, &user, &message, true) == Reserve::Hold
                            {
                                full.insert(socket.id);
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("redelivery stopped, redis failed again: {e}");
                    return;
                }
            }
        }
    }

    /// Re-registers every live user and room of this worker, dropping stale entries first.
    pub async fn resync(&self) -> Result<(), crate::store::StoreError> {
        let (users, rooms) = self.registry.snapshot();
        tracing::info!(
            users = users.len(),
            rooms = rooms.len(),
            "re-registering live users in redis"
        );
        // Chunks keep each script short so Redis never blocks for long.
        const CHUNK: usize = 1000;
        let mut first = true;
        let mut user_chunks = users.chunks(CHUNK);
        let mut room_chunks = rooms.chunks(CHUNK);
        loop {
            let u = user_chunks.next().unwrap_or(&[]);
            let r = room_chunks.next().unwrap_or(&[]);
            if !first && u.is_empty() && r.is_empty() {
                return Ok(());
            }
            self.store.resync(self.liveness_ttl, first, u, r).await?;
            first = false;
        }
    }
}

/// Answers an event: through its ack callback when the client sent one, otherwise failures
/// go out as `chat error` (SPEC §3) and successes need no answer.
pub struct Reply {
    ack: AckSender,
    wants_ack: bool,
    socket: SocketRef,
}

impl FromMessageParts<LocalAdapter> for Reply {
    type Error = Infallible;
    fn from_message_parts(
        s: &Arc<Socket>,
        v: &mut socketioxide_core::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Reply {
            ack: AckSender::from_message_parts(s, v, ack_id)?,
            wants_ack: ack_id.is_some(),
            socket: SocketRef::from_message_parts(s, v, ack_id)?,
        })
    }
}

impl Reply {
    fn send(self, app: &App, event: &str, result: Result<Value, ChatError>) {
        let ack = match result {
            Ok(v) => v,
            Err(e) if self.wants_ack => e.to_ack(),
            Err(e) => {
                app.emit_to(&self.socket, events::CHAT_ERROR, &e.to_event(event));
                return;
            }
        };
        // An ack is `43<id>[json]`: the JSON and its brackets.
        if self.wants_ack && app.admit(&self.socket, json_len(&ack) + 2) {
            let _ = self.ack.send(&ack);
        }
    }
}

/// Counts serialized bytes without keeping them.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_len<T: Serialize>(data: &T) -> usize {
    let mut n = ByteCount(0);
    let _ = serde_json::to_writer(&mut n, data);
    n.0
}

/// `["event",JSON]`: the JSON part of an event packet (event names need no escaping).
fn event_json_len<T: Serialize>(event: &str, data: &T) -> usize {
    event.len() + 4 + json_len(data)
}

/// Bytes a Socket.IO packet whose JSON part is `json_len` bytes takes on the wire, never more
/// than it really does (see `Registry::charge`): the `42`/`43` type prefix without ack-id
/// digits, plus the WebSocket frame header (polling separators are left out).
pub fn wire_size(json_len: usize, websocket: bool) -> u64 {
    let packet = json_len as u64 + 2;
    let header = match (websocket, packet) {
        (false, _) => 0,
        (true, 0..=125) => 2,
        (true, 126..=65535) => 4,
        (true, _) => 10,
    };
    packet + header
}

fn payload(event: &str, data: Result<Value, impl std::fmt::Display>) -> Result<Value, ChatError> {
    data.map_err(|e| ChatError::bad_request(format!("`{event}` needs a JSON object payload: {e}")))
}

fn logged_in(app: &App, socket: &SocketRef) -> Result<String, ChatError> {
    app.registry
        .user_of(socket.id)
        .ok_or_else(ChatError::not_logged_in)
}

fn rate_check(app: &App, socket: &SocketRef) -> Result<(), ChatError> {
    if app
        .registry
        .take_token(socket.id, app.limits.messages_per_second)
    {
        Ok(())
    } else {
        Err(ChatError::new(
            ErrorCode::RateLimited,
            format!(
                "more than {} messages per second on this connection; retry shortly",
                app.limits.messages_per_second
            ),
        ))
    }
}

/// `events_per_second` for every event but `send message` and `room message`.
fn event_rate_check(app: &App, socket: &SocketRef) -> Result<(), ChatError> {
    let rate = app.limits.events_per_second;
    if app.registry.take_event_token(socket.id, rate) {
        Ok(())
    } else {
        Err(ChatError::new(
            ErrorCode::RateLimited,
            format!("more than {rate} events per second on this connection; retry shortly"),
        ))
    }
}

/// Registers the handlers on a new socket.
pub async fn on_connect(socket: SocketRef, State(app): State<App>) {
    // Straight over WebSocket, the handshake request's connection is the socket's; a polling
    // session gets its connection when it upgrades (`http::handle`).
    let wire = (socket.transport_type() == TransportType::Websocket)
        .then(|| {
            socket
                .req_parts()
                .extensions
                .get::<Arc<crate::http::Wire>>()
                .cloned()
        })
        .flatten();
    let rates = (app.limits.messages_per_second, app.limits.events_per_second);
    app.registry.connect(socket.clone(), rates, wire);
    app.metrics.connected();
    socket.on(events::LOG_IN, on_log_in);
    socket.on(events::SEND_MESSAGE, on_send_message);
    socket.on(events::JOIN_ROOM, on_join_room);
    socket.on(events::LEAVE_ROOM, on_leave_room);
    socket.on(events::ROOM_MESSAGE, on_room_message);
    socket.on(events::LIST_USERS, on_list_users);
    socket.on_fallback(on_unknown_event);
    socket.on_disconnect(on_disconnect);
    // A transport can close before this handler runs (a client that connects and sends
    // garbage at once): socketioxide then had no disconnect handler to call. Nothing awaits
    // above, so on this single thread the check below cannot race with a close.
    if !socket.connected() {
        app.registry.disconnect(socket.id);
        app.metrics.disconnected();
    }
}

async fn on_log_in(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    reply: Reply,
    State(app): State<App>,
) {
    let result = match event_rate_check(&app, &socket) {
        Ok(()) => log_in(&app, &socket, payload(events::LOG_IN, data)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((username, pending)) => {
            reply.send(
                &app,
                events::LOG_IN,
                Ok(json!({"ok": true, "username": username, "pending": pending.len()})),
            );
            // The ack goes first, then the pending messages oldest first, then whatever
            // arrived while the inbox was being read. The backlog goes out in pages: up to
            // a full flight now, the rest by refills as the client acknowledges.
            for message in &pending {
                if app.emit_direct(&socket, &username, message, true) == Reserve::Hold {
                    break;
                }
            }
            let ids: HashSet<&str> = pending.iter().map(|m| m.id.as_str()).collect();
            for message in app.registry.finish_login(socket.id, &ids) {
                app.emit_direct(&socket, &username, &message, false);
            }
        }
        Err(e) => reply.send(&app, events::LOG_IN, Err(e)),
    }
}

async fn log_in(
    app: &App,
    socket: &SocketRef,
    data: Result<Value, ChatError>,
) -> Result<(String, Vec<NewMessage>), ChatError> {
    let req: LogIn = protocol::parse(events::LOG_IN, data?)?;
    protocol::validate_username(&req.username)?;
    if let Some(secret) = &app.auth_secret {
        // A failed login leaves the socket as it was (logged out, or its previous user).
        crate::auth::verify(secret, req.token.as_deref(), &req.username)?;
    }
    // Counted on this worker only: the cluster-wide socket count of a user is not kept in
    // Redis, so a user spread over W workers may hold up to W times the cap.
    let max = app.limits.max_sockets_per_user;
    if !app.registry.may_log_in(socket.id, &req.username, max) {
        return Err(ChatError::new(
            ErrorCode::LimitReached,
            format!(
                "`{}` already has {max} sockets here (max_sockets_per_user)",
                req.username
            ),
        ));
    }
    if let Some(orphan) = app.registry.begin_login(socket.id, &req.username) {
        forget_user(app, orphan);
    }
    match app.store.login(&req.username).await {
        Ok(pending) => Ok((req.username, pending)),
        Err(e) => {
            tracing::warn!("log in failed: {e}");
            if let Some(orphan) = app.registry.abort_login(socket.id) {
                forget_user(app, orphan);
            }
            Err(ChatError::unavailable())
        }
    }
}

/// The user's last socket here is gone: drop this worker from its user map entry.
fn forget_user(app: &App, user: String) {
    let app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = app.store.logout(&user).await {
            // The next resync after Redis returns drops the stale entry.
            tracing::debug!(%user, "logout not recorded: {e}");
        }
    });
}

async fn on_send_message(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    reply: Reply,
    State(app): State<App>,
) {
    let result = send_message(&app, &socket, payload(events::SEND_MESSAGE, data)).await;
    reply.send(&app, events::SEND_MESSAGE, result);
}

async fn send_message(
    app: &App,
    socket: &SocketRef,
    data: Result<Value, ChatError>,
) -> Result<Value, ChatError> {
    let req: SendMessage = protocol::parse(events::SEND_MESSAGE, data?)?;
    let from = logged_in(app, socket)?;
    protocol::validate_username(&req.username)?;
    protocol::validate_text(&req.message, app.limits.max_message_bytes)?;
    rate_check(app, socket)?;
    match app
        .store
        .send(&from, &req.username, &req.message, now_ms())
        .await
    {
        Ok(id) => {
            app.metrics.received();
            Ok(json!({"ok": true, "id": id}))
        }
        Err(e) => {
            tracing::warn!("send failed: {e}");
            Err(ChatError::unavailable())
        }
    }
}

async fn on_join_room(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    reply: Reply,
    State(app): State<App>,
) {
    let result = match event_rate_check(&app, &socket) {
        Ok(()) => join_room(&app, &socket, payload(events::JOIN_ROOM, data)).await,
        Err(e) => Err(e),
    };
    reply.send(&app, events::JOIN_ROOM, result);
}

async fn join_room(
    app: &App,
    socket: &SocketRef,
    data: Result<Value, ChatError>,
) -> Result<Value, ChatError> {
    let req: RoomRef = protocol::parse(events::JOIN_ROOM, data?)?;
    logged_in(app, socket)?;
    protocol::validate_room(&req.room)?;
    let max = app.limits.max_rooms_per_socket;
    if !app.registry.may_join(socket.id, &req.room, max) {
        return Err(ChatError::new(
            ErrorCode::LimitReached,
            format!(
                "this connection is in {max} rooms already (max_rooms_per_socket); leave one first"
            ),
        ));
    }
    app.registry.join(socket.id, &req.room);
    // Always registers (idempotent), so a join also repairs a registration Redis lost.
    match app.store.join(&req.room).await {
        Ok(mut history) => {
            // Newest last: drop from the front until the rest fits.
            let mut size = json_len(&history);
            while size > HISTORY_MAX_BYTES && !history.is_empty() {
                size -= json_len(&history.remove(0)) + 1;
            }
            Ok(json!({"ok": true, "history": history}))
        }
        Err(e) => {
            tracing::warn!("join failed: {e}");
            if app.registry.leave(socket.id, &req.room) {
                forget_room(app, req.room);
            }
            Err(ChatError::unavailable())
        }
    }
}

fn forget_room(app: &App, room: String) {
    let app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = app.store.leave(&room).await {
            tracing::debug!(%room, "leave not recorded: {e}");
        }
    });
}

async fn on_leave_room(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    reply: Reply,
    State(app): State<App>,
) {
    let result = (|| {
        event_rate_check(&app, &socket)?;
        let req: RoomRef = protocol::parse(events::LEAVE_ROOM, payload(events::LEAVE_ROOM, data)?)?;
        logged_in(&app, &socket)?;
        protocol::validate_room(&req.room)?;
        if app.registry.leave(socket.id, &req.room) {
            forget_room(&app, req.room);
        }
        Ok(json!({"ok": true}))
    })();
    reply.send(&app, events::LEAVE_ROOM, result);
}

async fn on_room_message(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    reply: Reply,
    State(app): State<App>,
) {
    let result = room_message(&app, &socket, payload(events::ROOM_MESSAGE, data)).await;
    reply.send(&app, events::ROOM_MESSAGE, result);
}

async fn room_message(
    app: &App,
    socket: &SocketRef,
    data: Result<Value, ChatError>,
) -> Result<Value, ChatError> {
    let req: RoomMessage = protocol::parse(events::ROOM_MESSAGE, data?)?;
    let from = logged_in(app, socket)?;
    protocol::validate_room(&req.room)?;
    if !app.registry.in_room(socket.id, &req.room) {
        return Err(ChatError::bad_request(format!(
            "join room `{}` before sending to it",
            req.room
        )));
    }
    protocol::validate_text(&req.message, app.limits.max_message_bytes)?;
    rate_check(app, socket)?;
    match app
        .store
        .room_send(&req.room, &from, &req.message, now_ms(), socket.id.as_str())
        .await
    {
        Ok(id) => {
            app.metrics.received();
            Ok(json!({"ok": true, "id": id}))
        }
        Err(e) => {
            tracing::warn!("room send failed: {e}");
            Err(ChatError::unavailable())
        }
    }
}

async fn on_list_users(socket: SocketRef, reply: Reply, State(app): State<App>) {
    let result = match event_rate_check(&app, &socket).and_then(|()| logged_in(&app, &socket)) {
        Err(e) => Err(e),
        Ok(_) => match app.store.list_users(protocol::LIST_USERS_MAX).await {
            Ok(users) => Ok(json!({"ok": true, "users": users})),
            Err(e) => {
                tracing::warn!("list users failed: {e}");
                Err(ChatError::unavailable())
            }
        },
    };
    reply.send(&app, events::LIST_USERS, result);
}

async fn on_unknown_event(
    socket: SocketRef,
    Event(event): Event,
    reply: Reply,
    State(app): State<App>,
) {
    let err = event_rate_check(&app, &socket)
        .err()
        .unwrap_or_else(|| ChatError::bad_request(format!("unknown event `{event}`")));
    reply.send(&app, &event, Err(err));
}

async fn on_disconnect(socket: SocketRef, reason: DisconnectReason, State(app): State<App>) {
    tracing::debug!(sid = %socket.id, ?reason, "disconnected");
    app.metrics.disconnected();
    let departure = app.registry.disconnect(socket.id);
    if app.draining.load(Ordering::Relaxed) {
        // Draining removes the whole worker from Redis at once.
        return;
    }
    if let Some(user) = departure.last_of_user {
        forget_user(&app, user);
    }
    for room in departure.emptied_rooms {
        forget_room(&app, room);
    }
}
