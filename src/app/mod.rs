//! The worker's shared state and the wiring of the SPEC §3 protocol handlers: `on_connect`
//! registers [`dispatch`]'s one handler, which routes each event to its own module's handler,
//! plus the helpers they share.
//!
//! - [`reply`]: the [`Reply`] extractor (ack or `chat error`) and the byte accounting of
//!   everything emitted to one socket (`max_queued_bytes_per_socket`).
//! - [`acks`]: one task waits for every direct message's ack and records them in batches.
//! - [`delivery`]: direct messages in bounded flights, refills from the inbox, and the
//!   fan-out of what arrives on the worker's Redis channel ([`App::on_delivery`]).
//! - One module per event or event group: [`log_in`], [`send_message`], [`rooms`]
//!   (`join room`, `leave room`, `room message`), [`list_users`].
//!
//! Handlers validate, then call the [`Store`].

mod acks;
mod args;
mod delivery;
mod dispatch;
mod list_users;
mod log_in;
mod reply;
mod rooms;
mod send_message;

pub use acks::{ack_queue, record_acks, AckQueue, AnyAck, ACK_GATHER};
pub use delivery::MAX_IN_FLIGHT;
pub use reply::{wire_size, Reply};
pub use rooms::HISTORY_MAX_BYTES;
pub use send_message::{send_queue, store_sends, SendQueue};

use crate::config::Limits;
use crate::link::LinkConnection;
use crate::metrics::Metrics;
use crate::protocol::{ChatError, ErrorCode};
use crate::registry::Registry;
use crate::store::Store;
use socketioxide::extract::{Event, SocketRef, State};
use socketioxide::socket::DisconnectReason;
use socketioxide::TransportType;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    /// `send message`s waiting to be stored in a batch by [`store_sends`].
    pub sends: SendQueue,
    /// Direct messages waiting for their clients' acks, recorded in batches by [`record_acks`].
    pub acks: AckQueue,
    /// Set on SIGTERM: `/health` answers 503 and new handshakes are refused.
    pub draining: AtomicBool,
    /// Whether Redis serves this worker: its commands and its delivery channel.
    pub redis: RedisHealth,
    /// How long a worker's liveness key lives without a heartbeat.
    pub liveness_ttl: Duration,
    /// Accepted TCP connections still open, upgraded or not (`http::Metered`).
    pub open_connections: AtomicUsize,
    /// The user map may disagree with the registry (a logout whose outcome is unknown):
    /// the heartbeat re-registers everything on its next tick.
    pub resync_due: AtomicBool,
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

    /// Both Redis links work (commands answer and deliveries arrive), or on a cluster
    /// stopped working less than [`RedisHealth`]'s grace ago.
    pub fn redis_up(&self) -> bool {
        self.redis.up()
    }

    pub fn healthy(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.redis_up()
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

/// Whether Redis serves this worker, for `/health` and `chat_redis_up`: its commands answer
/// (the heartbeat) and its delivery channel is subscribed.
///
/// On one Redis a failure shows at once. On a Redis Cluster it shows only after `grace`:
/// while one shard fails over (about 3 s), redis-rs's cluster client can stall every call
/// for a moment, to healthy shards too, and the worker would leave HAProxy (its polling
/// clients reconnecting elsewhere) for what the client recovers from by itself.
pub struct RedisHealth {
    grace: Duration,
    state: std::sync::Mutex<RedisState>,
}

#[derive(Clone, Copy)]
struct RedisState {
    commands_up: bool,
    subscribed: bool,
    /// `None` until both links were up once (a starting worker waits for Redis); then
    /// `Some(None)` while both are up, and `Some(Some(t))` since `t`, when they stopped being.
    down_since: Option<Option<std::time::Instant>>,
}

impl RedisHealth {
    /// Both links down, never up yet; a failure shows after `grace` (zero: at once).
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            state: std::sync::Mutex::new(RedisState {
                commands_up: false,
                subscribed: false,
                down_since: None,
            }),
        }
    }

    fn update(&self, change: impl FnOnce(&mut RedisState)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state);
        let both = state.commands_up && state.subscribed;
        state.down_since = match (both, state.down_since) {
            (true, _) => Some(None),
            (false, Some(None)) => Some(Some(std::time::Instant::now())),
            (false, kept) => kept,
        };
    }

    pub fn set_commands_up(&self, up: bool) {
        self.update(|s| s.commands_up = up);
    }

    pub fn set_subscribed(&self, subscribed: bool) {
        self.update(|s| s.subscribed = subscribed);
    }

    pub fn up(&self) -> bool {
        let state = *self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.down_since {
            None => false,
            Some(None) => true,
            Some(Some(since)) => since.elapsed() < self.grace,
        }
    }
}

/// Calls (scripts) that store or record a batch hold at most this many messages: bounds how
/// long one script runs in Redis, whatever arrives in one tick.
const MAX_BATCH: usize = 128;

/// A batch: `first`, then what `more` still has ready, at most [`MAX_BATCH`] in all.
fn batch_of<T>(first: T, mut more: impl FnMut() -> Option<T>) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match more() {
            Some(next) => batch.push(next),
            None => break,
        }
    }
    batch
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
    socket.on_fallback(dispatch::OnEvent);
    socket.on_disconnect(on_disconnect);
    // A transport can close before this handler runs (a client that connects and sends
    // garbage at once): socketioxide then had no disconnect handler to call. Nothing awaits
    // above, so on this single thread the check below cannot race with a close.
    if !socket.connected() {
        app.registry.disconnect(socket.id);
        app.metrics.disconnected();
    }
}

/// The user's last socket here is gone: drop this worker from its user map entry.
///
/// The logout may run late: after a log in whose reply Redis never sent, it waits for Redis,
/// and the client's retry can log the user in again before it runs. Then the logout just
/// removed a live user (messages to it would be stored and published to nobody), so the
/// user is registered again; when the logout's outcome is unknown, the heartbeat resyncs.
fn forget_user(app: &App, user: String) {
    let app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = app.store.logout(&user).await {
            tracing::debug!(%user, "logout not recorded: {e}");
            app.resync_due.store(true, Ordering::Relaxed);
            return;
        }
        if app.registry.sockets_of(&user).is_empty() {
            return;
        }
        match app.store.login(&user).await {
            // Whatever was sent while the user was missing was published to nobody.
            Ok(pending) => app.send_inbox(&user, pending),
            Err(e) => {
                tracing::warn!(%user, "re-registering a user after a late logout failed: {e}");
                app.resync_due.store(true, Ordering::Relaxed);
            }
        }
    });
}

/// The room's last member here left: drop this worker from the room's entry.
fn forget_room(app: &App, room: String) {
    let app = app.clone();
    tokio::spawn(async move {
        if let Err(e) = app.store.leave(&room).await {
            tracing::debug!(%room, "leave not recorded: {e}");
        }
    });
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
    reply.fail(&app, &event, err);
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

#[cfg(test)]
mod tests {
    use super::{batch_of, RedisHealth, MAX_BATCH};
    use std::time::{Duration, Instant};

    #[test]
    fn redis_counts_as_up_only_once_both_links_were_up() {
        let health = RedisHealth::new(Duration::from_secs(60));
        assert!(
            !health.up(),
            "a starting worker waits for Redis, grace or not"
        );
        health.set_commands_up(true);
        assert!(!health.up(), "deliveries cannot arrive yet");
        health.set_subscribed(true);
        assert!(health.up());
    }

    #[test]
    fn on_one_redis_a_failure_shows_at_once() {
        let health = RedisHealth::new(Duration::ZERO);
        health.set_commands_up(true);
        health.set_subscribed(true);
        health.set_subscribed(false);
        assert!(!health.up());
        health.set_subscribed(true);
        assert!(health.up(), "back");
    }

    #[test]
    fn on_a_cluster_a_failure_shows_after_the_grace_counted_from_the_first_link_lost() {
        let grace = Duration::from_millis(200);
        let health = RedisHealth::new(grace);
        health.set_commands_up(true);
        health.set_subscribed(true);
        let lost = Instant::now();
        health.set_subscribed(false);
        health.set_commands_up(false);
        assert!(health.up() || lost.elapsed() >= grace, "within the grace");
        let deadline = Instant::now() + Duration::from_secs(5);
        while health.up() && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(!health.up(), "down once the grace is over");
        assert!(lost.elapsed() >= grace, "not before it");
        health.set_subscribed(true);
        assert!(!health.up(), "one link back is not enough");
        health.set_commands_up(true);
        assert!(health.up());
    }

    #[test]
    fn a_batch_stops_at_its_cap_and_leaves_the_rest_for_the_next() {
        let mut ready = 1..300;
        let batch = batch_of(0, || ready.next());
        assert_eq!(batch.len(), MAX_BATCH);
        assert_eq!(batch[MAX_BATCH - 1], MAX_BATCH - 1, "in order");
        assert_eq!(ready.next(), Some(MAX_BATCH), "the rest waits");
        let mut none = std::iter::empty();
        assert_eq!(batch_of(7, || none.next()), [7]);
    }
}
