//! The store: Redis keys, scripts and the delivery format, behind one method per operation.
//!
//! Redis commands are built here and in [`link`](crate::link) (which owns the connection)
//! only. Every [`Store`] method is one script or command (one round trip), bounded by a
//! timeout; any failure is a [`StoreError`], which a client hears as `unavailable` instead of
//! losing a message. The data model is described in `docs/redis.md`.
//!
//! - [`keys`]: every key and channel name, spelled once.
//! - `scripts/*.lua` (loaded by `scripts.rs`): the only writers; they get key names as
//!   KEYS, or as templates in ARGV, never spell them.
//! - [`delivery`]: the channel payload ([`Delivery`]) and stream entry formats.
//! - [`error`]: [`StoreError`] and its mapping to the client's `unavailable`.
//! - [`membership`]: chatctl's service membership across hosts.
//!
//! Everything is generic over redis-rs's [`ConnectionLike`] so unit tests record the
//! commands sent without a server; production uses [`LinkConnection`](crate::link::LinkConnection).

mod call;
pub mod delivery;
pub mod error;
pub mod keys;
pub mod membership;
#[cfg(test)]
pub(crate) mod recorder;
mod scripts;
mod sharded;

pub use delivery::Delivery;
pub use error::StoreError;
// Moved to `link`; kept here for the callers that name them through the store.
pub use crate::link::{redact_url, redis_client, PASSWORD_ENV};

use crate::protocol::NewMessage;
use call::{ScriptCall, ScriptGate};
use delivery::{entry_to_message, RawEntry};
use keys::SLOT;
use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, RedisError};
use scripts::LuaScript;
use scripts::{
    ACK_MANY, HEARTBEAT, JOIN, LEAVE, LOGIN, LOGOUT, REMOVE_WORKER, RESYNC, ROOM_SEND, SEND_MANY,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One direct message for [`Store::send_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub from: String,
    pub to: String,
    pub text: String,
    pub sent_at: u64,
}

/// One acknowledgement for [`Store::ack_many`]: `to` acknowledged message `id` from `sender`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub to: String,
    pub id: String,
    pub sender: String,
}

/// Inbox bounds, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct InboxBounds {
    /// Longest inbox, in messages (XADD MAXLEN).
    pub max_len: usize,
    /// Age past which an unacknowledged message is dropped, and the inbox key's TTL.
    pub ttl: Duration,
}

/// The store of one worker instance.
#[derive(Clone)]
pub struct Store<C> {
    /// The command connection; it reconnects by itself.
    con: C,
    /// Key prefix of the service.
    prefix: Arc<str>,
    /// This worker instance's id: unique per process start, so a restarted worker never
    /// inherits (or deletes) the registrations of its previous life.
    instance: Arc<str>,
    /// Longest wait for any Redis call before answering `unavailable`.
    timeout: Duration,
    inbox: InboxBounds,
    /// `WAIT` for this many replicas after storing a direct message (0 = don't).
    min_replicas: u32,
    /// TTL of a room's history, renewed by each message (`[limits] room_history_ttl`).
    room_history_ttl: Duration,
    /// On a Redis Cluster: single-slot steps and `SPUBLISH` ([`sharded`]).
    cluster: bool,
    /// Keeps script calls in order across a `NOSCRIPT` ([`call`]).
    gate: ScriptGate,
}

/// What the store needs beyond [`ConnectionLike`] on a Redis Cluster: sending a command to
/// the primary that serves a key's slot. Elsewhere the command just goes on the connection.
pub trait Sharded: ConnectionLike {
    fn on_primary_of<'a>(
        &'a mut self,
        _key: &'a str,
        cmd: Cmd,
    ) -> redis::RedisFuture<'a, redis::Value>
    where
        Self: Send,
    {
        Box::pin(async move { self.req_packed_command(&cmd).await })
    }
}

impl Sharded for crate::link::LinkConnection {
    fn on_primary_of<'a>(
        &'a mut self,
        key: &'a str,
        cmd: Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move { self.0.on_primary_of(key, cmd).await })
    }
}

/// Every Redis call the store makes, the `op` label of `chat_redis_call_seconds`: the
/// script's name, or the command's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Heartbeat,
    Resync,
    RemoveWorker,
    Login,
    Logout,
    Send,
    Ack,
    Join,
    Leave,
    RoomSend,
    Xrange,
    Wait,
    Zrange,
    Ping,
    Publish,
}

impl Op {
    /// In declaration order, so `op as usize` indexes it.
    pub const ALL: [Op; 15] = [
        Op::Heartbeat,
        Op::Resync,
        Op::RemoveWorker,
        Op::Login,
        Op::Logout,
        Op::Send,
        Op::Ack,
        Op::Join,
        Op::Leave,
        Op::RoomSend,
        Op::Xrange,
        Op::Wait,
        Op::Zrange,
        Op::Ping,
        Op::Publish,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Heartbeat => "heartbeat",
            Op::Resync => "resync",
            Op::RemoveWorker => "remove_worker",
            Op::Login => "login",
            Op::Logout => "logout",
            Op::Send => "send",
            Op::Ack => "ack",
            Op::Join => "join",
            Op::Leave => "leave",
            Op::RoomSend => "room_send",
            Op::Xrange => "xrange",
            Op::Wait => "wait",
            Op::Zrange => "zrange",
            Op::Ping => "ping",
            Op::Publish => "spublish",
        }
    }
}

/// Feeds `chat_redis_call_seconds`; chatctl builds the library without the worker's metrics.
fn observe(op: Op, took: Duration) {
    #[cfg(feature = "worker")]
    crate::metrics::REDIS_CALLS.observe(op, took);
    #[cfg(not(feature = "worker"))]
    let _ = (op, took);
}

/// A reply of a shape our own script never returns.
fn unexpected_reply(what: &'static str) -> StoreError {
    StoreError::Redis(RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        what,
    )))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl<C: ConnectionLike + Sharded + Clone + Send + Sync + 'static> Store<C> {
    /// The store of worker `instance`, naming keys with `prefix`.
    pub fn new(
        con: C,
        prefix: &str,
        instance: &str,
        timeout: Duration,
        inbox: InboxBounds,
    ) -> Self {
        Self {
            con,
            prefix: prefix.into(),
            instance: instance.into(),
            timeout,
            inbox,
            min_replicas: 0,
            room_history_ttl: Duration::from_secs(30 * 24 * 3600),
            cluster: false,
            gate: ScriptGate::default(),
        }
    }

    /// On a Redis Cluster: every call touches one slot, deliveries go by `SPUBLISH`.
    pub fn with_cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// Whether the store runs on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// A room's history expires this long after its last message.
    pub fn with_room_history_ttl(mut self, ttl: Duration) -> Self {
        self.room_history_ttl = ttl;
        self
    }

    /// With replicas: a direct message is acked only once this many replicas have it.
    pub fn with_min_replicas(mut self, n: u32) -> Self {
        self.min_replicas = n;
        self
    }

    /// This worker instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The worker's own delivery channel.
    pub fn channel(&self) -> String {
        keys::worker_channel(&self.prefix, &self.instance).to_string()
    }

    /// Any instance's delivery channel, as a template for the publishing scripts.
    fn channel_template(&self) -> keys::Name<'_> {
        keys::worker_channel(&self.prefix, SLOT)
    }

    /// Bounded by the timeout and timed, failures and timeouts included.
    async fn bounded<T>(
        &self,
        op: Op,
        fut: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let result = tokio::time::timeout(self.timeout, fut).await;
        observe(op, start.elapsed());
        match result {
            Ok(r) => Ok(r?),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    /// Runs a script (sent again as `EVAL` if Redis does not have it, in order with the
    /// other calls), bounded by the timeout, a wait at a closed gate included.
    async fn invoke<T: FromRedisValue>(
        &self,
        op: Op,
        inv: &ScriptCall<'_>,
    ) -> Result<T, StoreError> {
        let mut con = self.con.clone();
        self.bounded(op, self.gate.invoke(inv, &mut con)).await
    }

    /// Loads every script a worker runs into Redis's script cache, so that calls find them
    /// (`EVALSHA`) instead of taking the `NOSCRIPT` fallback ([`ScriptCall::invoke`]). Run
    /// when Redis comes into reach, new or back: a restarted Redis or a promoted replica has
    /// an empty cache. One `SCRIPT LOAD` each (on a cluster redis-rs sends it to every primary).
    pub async fn load_scripts(&self) -> Result<(), StoreError> {
        for script in &scripts::WORKER_SCRIPTS {
            let mut load = redis::cmd("SCRIPT");
            load.arg("LOAD").arg(script.source);
            let _: redis::Value = self.query(Op::Resync, &load).await?;
        }
        Ok(())
    }

    /// Runs one plain command, bounded by the timeout.
    async fn query<T: FromRedisValue>(&self, op: Op, cmd: &Cmd) -> Result<T, StoreError> {
        let mut con = self.con.clone();
        self.bounded(op, cmd.query_async(&mut con)).await
    }

    /// A call of one of the scripts built on `worker.lua`, with the KEYS and ARGV it
    /// expects first: the workers and online keys, this instance, and key templates.
    fn worker_script<'s>(&self, script: &'s LuaScript) -> ScriptCall<'s> {
        let p = &*self.prefix;
        let mut inv = ScriptCall::new(script, 2);
        inv.key(keys::workers(p))
            .key(keys::online(p))
            .arg(&*self.instance)
            .arg(keys::worker_alive(p, SLOT))
            .arg(keys::worker_users(p, SLOT))
            .arg(keys::worker_rooms(p, SLOT))
            .arg(keys::user_workers(p, SLOT))
            .arg(keys::room_workers(p, SLOT));
        inv
    }

    /// The oldest stream id an inbox keeps (`MINID`). Built without `format!`: one per send.
    fn min_id(&self, now: u64) -> String {
        let oldest = now.saturating_sub(self.inbox.ttl.as_millis() as u64);
        [itoa::Buffer::new().format(oldest), "-0"].concat()
    }

    /// Refreshes liveness and reaps dead workers; `Ok(true)` when our registration had been
    /// lost and must be rebuilt with [`Store::resync`].
    pub async fn heartbeat(&self, ttl: Duration) -> Result<bool, StoreError> {
        if self.cluster {
            return self.heartbeat_sharded(ttl).await;
        }
        let mut inv = self.worker_script(&HEARTBEAT);
        inv.arg(ttl.as_millis() as u64);
        let (fresh, _reaped): (i64, i64) = self.invoke(Op::Heartbeat, &inv).await?;
        Ok(fresh == 1)
    }

    /// Re-registers the worker's live users and rooms; with `reset`, drops stale ones first.
    pub async fn resync(
        &self,
        ttl: Duration,
        reset: bool,
        users: &[String],
        rooms: &[String],
    ) -> Result<(), StoreError> {
        if self.cluster {
            return self.resync_sharded(ttl, reset, users, rooms).await;
        }
        let mut inv = self.worker_script(&RESYNC);
        inv.arg(ttl.as_millis() as u64)
            .arg(if reset { "1" } else { "0" })
            .arg(users.len())
            .arg(users)
            .arg(rooms);
        let _: i64 = self.invoke(Op::Resync, &inv).await?;
        Ok(())
    }

    /// Drops this worker's registrations (on drain).
    pub async fn remove_self(&self) -> Result<(), StoreError> {
        if self.cluster {
            return self.remove_self_sharded().await;
        }
        let _: i64 = self
            .invoke(Op::RemoveWorker, &self.worker_script(&REMOVE_WORKER))
            .await?;
        Ok(())
    }

    /// Registers `user` on this worker and returns the messages waiting in its inbox,
    /// oldest first.
    pub async fn login(&self, user: &str) -> Result<Vec<NewMessage>, StoreError> {
        if self.cluster {
            return self.login_sharded(user).await;
        }
        let p = &*self.prefix;
        let mut inv = ScriptCall::new(&LOGIN, 4);
        inv.key(keys::user_workers(p, user))
            .key(keys::worker_users(p, &self.instance))
            .key(keys::online(p))
            .key(keys::inbox(p, user))
            .arg(user)
            .arg(&*self.instance)
            .arg(self.min_id(now_ms()))
            .arg(self.inbox.max_len);
        let raw: Vec<RawEntry> = self.invoke(Op::Login, &inv).await?;
        Ok(raw
            .into_iter()
            .filter_map(|e| entry_to_message(e, None))
            .collect())
    }

    /// The messages waiting in `user`'s inbox, oldest first (redelivery after a pub/sub gap).
    pub async fn pending(&self, user: &str) -> Result<Vec<NewMessage>, StoreError> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(keys::inbox(&self.prefix, user))
            .arg(self.min_id(now_ms()))
            .arg("+")
            .arg("COUNT")
            .arg(self.inbox.max_len);
        let raw: Vec<RawEntry> = self.query(Op::Xrange, &cmd).await?;
        Ok(raw
            .into_iter()
            .filter_map(|e| entry_to_message(e, None))
            .collect())
    }

    /// The user's last socket on this worker is gone.
    pub async fn logout(&self, user: &str) -> Result<(), StoreError> {
        if self.cluster {
            return self.logout_sharded(user).await;
        }
        let p = &*self.prefix;
        let mut inv = ScriptCall::new(&LOGOUT, 3);
        inv.key(keys::user_workers(p, user))
            .key(keys::worker_users(p, &self.instance))
            .key(keys::online(p))
            .arg(user)
            .arg(&*self.instance);
        let _: i64 = self.invoke(Op::Logout, &inv).await?;
        Ok(())
    }

    /// Stores a direct message in `to`'s inbox and publishes it to `to`'s workers. When this
    /// returns `Ok(id)`, the message is in Redis. On one Redis it is a [`Store::send_many`] of
    /// one message.
    pub async fn send(
        &self,
        from: &str,
        to: &str,
        text: &str,
        sent_at: u64,
    ) -> Result<String, StoreError> {
        if self.cluster {
            let delivery = Delivery::Direct {
                to: to.to_owned(),
                message: NewMessage {
                    id: String::new(), // XADD makes it
                    from: from.to_owned(),
                    message: text.to_owned(),
                    sent_at,
                    room: None,
                },
            };
            return self.send_sharded(&delivery, from, to, text, sent_at).await;
        }
        let message = Outgoing {
            from: from.to_owned(),
            to: to.to_owned(),
            text: text.to_owned(),
            sent_at,
        };
        self.send_many(std::slice::from_ref(&message))
            .await
            .pop()
            .unwrap_or_else(|| Err(unexpected_reply("send returned no id")))
    }

    /// Stores several direct messages and publishes them; each message's outcome, in order.
    /// When one is `Ok(id)`, that message is in Redis. On one Redis they are one call (one
    /// script, one `PUBLISH` per worker instance that holds a recipient) and share its outcome;
    /// on a cluster the messages live in many slots, so each is its own [`Store::send`], all at
    /// once, with its own outcome.
    pub async fn send_many(&self, messages: &[Outgoing]) -> Vec<Result<String, StoreError>> {
        if self.cluster {
            let calls = messages
                .iter()
                .map(|m| self.send(&m.from, &m.to, &m.text, m.sent_at));
            return futures_util::future::join_all(calls).await;
        }
        match self.send_script(messages).await {
            Ok(ids) => ids.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e); messages.len()],
        }
    }

    /// `send_many.lua` on one Redis: the messages' ids, in order.
    async fn send_script(&self, messages: &[Outgoing]) -> Result<Vec<String>, StoreError> {
        let Some(first) = messages.first() else {
            return Ok(Vec::new());
        };
        let p = &*self.prefix;
        let mut inv = ScriptCall::new(&SEND_MANY, 2 * messages.len());
        for m in messages {
            inv.key(keys::inbox(p, &m.to))
                .key(keys::user_workers(p, &m.to));
        }
        inv.arg(self.inbox.max_len)
            .arg(self.min_id(first.sent_at))
            .arg(self.inbox.ttl.as_millis() as u64)
            .arg(self.channel_template())
            .arg(delivery::BATCH_HEAD)
            .arg(delivery::BATCH_SEP);
        for m in messages {
            let (head, middle) = delivery::direct_parts(&m.to, &m.from, m.sent_at);
            inv.arg(&m.from)
                .arg(&m.text)
                .arg(m.sent_at)
                .arg(head)
                .arg(middle);
        }
        let ids: Vec<String> = self.invoke(Op::Send, &inv).await?;
        if ids.len() != messages.len() {
            return Err(unexpected_reply(
                "send_many returned the wrong number of ids",
            ));
        }
        // WAIT covers every write before it: one for the whole batch.
        self.wait_replicated(keys::inbox(p, &first.to)).await?;
        Ok(ids)
    }

    /// With `min_replicas`: waits until that many replicas have the write just made to
    /// `key`. WAIT covers every write sent before it on this connection, the XADD included
    /// (clones of the connection share one multiplexed socket per node). On a cluster it is
    /// routed to the primary that serves `key`: redis-rs would otherwise ask every primary
    /// and take the minimum.
    async fn wait_replicated(&self, key: keys::Name<'_>) -> Result<(), StoreError> {
        if self.min_replicas == 0 {
            return Ok(());
        }
        let wait_ms = (self.timeout.as_millis() as u64 / 2).max(1);
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.min_replicas).arg(wait_ms);
        let got: i64 = if self.cluster {
            let mut con = self.con.clone();
            let key = key.to_string();
            self.bounded(Op::Wait, async move {
                let v = con.on_primary_of(&key, wait).await?;
                redis::from_redis_value::<i64>(v).map_err(Into::into)
            })
            .await?
        } else {
            self.query(Op::Wait, &wait).await?
        };
        if got < self.min_replicas as i64 {
            return Err(StoreError::NotReplicated {
                got,
                want: self.min_replicas,
            });
        }
        Ok(())
    }

    /// `to` acknowledged message `id` from `sender`; `Ok(true)` for the first ack.
    pub async fn ack(&self, to: &str, id: &str, sender: &str) -> Result<bool, StoreError> {
        if self.cluster {
            let receipt = Delivery::Delivered {
                sender: sender.to_owned(),
                id: id.to_owned(),
                to: to.to_owned(),
            };
            return self.ack_sharded(to, id, sender, &receipt.encode()).await;
        }
        let ack = Ack {
            to: to.to_owned(),
            id: id.to_owned(),
            sender: sender.to_owned(),
        };
        Ok(self.ack_script(&[&ack]).await? == 1)
    }

    /// Records several acknowledgements in one call: on one Redis, one script that removes
    /// them all and publishes their receipts, one `PUBLISH` per worker instance for all the
    /// receipts it gets; on a cluster the acks touch many slots, so each is its own
    /// [`Store::ack`], all at once. An error means some may not be recorded: those messages
    /// stay pending and go out again at the recipient's next `log in` (clients drop
    /// duplicates by id).
    pub async fn ack_many(&self, acks: &[&Ack]) -> Result<(), StoreError> {
        if acks.is_empty() {
            return Ok(());
        }
        if self.cluster {
            let calls = acks.iter().map(|a| self.ack(&a.to, &a.id, &a.sender));
            return futures_util::future::join_all(calls)
                .await
                .into_iter()
                .find_map(Result::err)
                .map_or(Ok(()), Err);
        }
        self.ack_script(acks).await.map(drop)
    }

    /// `ack_many.lua` on one Redis: how many of `acks` were first acks.
    async fn ack_script(&self, acks: &[&Ack]) -> Result<i64, StoreError> {
        let p = &*self.prefix;
        let mut inv = ScriptCall::new(&ACK_MANY, 2 * acks.len());
        for a in acks {
            inv.key(keys::inbox(p, &a.to))
                .key(keys::user_workers(p, &a.sender));
        }
        inv.arg(self.channel_template())
            .arg(delivery::RECEIPTS_HEAD)
            .arg(delivery::RECEIPT_SEP);
        for a in acks {
            inv.arg(&a.id)
                .arg(delivery::receipt_record(&a.sender, &a.id, &a.to));
        }
        self.invoke(Op::Ack, &inv).await
    }

    /// Registers this worker as holding members of `room`; returns the room's history,
    /// oldest first.
    pub async fn join(&self, room: &str) -> Result<Vec<NewMessage>, StoreError> {
        let p = &*self.prefix;
        let raw: Vec<RawEntry> = if self.cluster {
            self.join_sharded(room).await?
        } else {
            let mut inv = ScriptCall::new(&JOIN, 3);
            inv.key(keys::room_workers(p, room))
                .key(keys::worker_rooms(p, &self.instance))
                .key(keys::room_history(p, room))
                .arg(room)
                .arg(&*self.instance)
                .arg(crate::protocol::ROOM_HISTORY_LEN);
            self.invoke(Op::Join, &inv).await?
        };
        let mut history: Vec<NewMessage> = raw
            .into_iter()
            .filter_map(|e| entry_to_message(e, Some(room)))
            .collect();
        history.reverse();
        Ok(history)
    }

    /// This worker's last member of `room` left.
    pub async fn leave(&self, room: &str) -> Result<(), StoreError> {
        if self.cluster {
            return self.leave_sharded(room).await;
        }
        let p = &*self.prefix;
        let mut inv = ScriptCall::new(&LEAVE, 2);
        inv.key(keys::room_workers(p, room))
            .key(keys::worker_rooms(p, &self.instance))
            .arg(room)
            .arg(&*self.instance);
        let _: i64 = self.invoke(Op::Leave, &inv).await?;
        Ok(())
    }

    /// Appends to the room's history and publishes to the room's workers.
    pub async fn room_send(
        &self,
        room: &str,
        from: &str,
        text: &str,
        sent_at: u64,
        except_sid: &str,
    ) -> Result<String, StoreError> {
        let p = &*self.prefix;
        let delivery = Delivery::Room {
            except_sid: except_sid.to_owned(),
            message: NewMessage {
                id: String::new(), // XADD makes it
                from: from.to_owned(),
                message: text.to_owned(),
                sent_at,
                room: Some(room.to_owned()),
            },
        };
        if self.cluster {
            return self
                .room_send_sharded(&delivery, room, from, text, sent_at)
                .await;
        }
        // The script appends `text`, which it already has, after head .. id .. middle.
        let payload = delivery.parts();
        let mut inv = ScriptCall::new(&ROOM_SEND, 2);
        inv.key(keys::room_history(p, room))
            .key(keys::room_workers(p, room))
            .arg(from)
            .arg(text)
            .arg(sent_at)
            .arg(crate::protocol::ROOM_HISTORY_LEN)
            .arg(self.channel_template())
            .arg(payload.head)
            .arg(payload.middle)
            .arg(self.room_history_ttl.as_secs().max(1));
        self.invoke(Op::RoomSend, &inv).await
    }

    /// Online users, sorted, at most `max`.
    pub async fn list_users(&self, max: usize) -> Result<Vec<String>, StoreError> {
        if self.cluster {
            return self.list_users_sharded(max).await;
        }
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(keys::online(&self.prefix))
            .arg(0)
            .arg(max.saturating_sub(1));
        self.query(Op::Zrange, &cmd).await
    }

    /// A PING, for `/health` and the round-trip figure.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query(Op::Ping, &redis::cmd("PING")).await?;
        Ok(())
    }

    /// On a Redis Cluster: whether the shard that serves this worker's own keys (its
    /// liveness key and its delivery channel, one slot) answers a command on them. Another
    /// shard's failure stops the calls for the users and rooms it serves, which answer
    /// `unavailable`, not the worker. A keyed command, not a PING: a cluster that lost its
    /// majority (`CLUSTERDOWN`) still answers PING but refuses every key.
    pub async fn own_shard_answers(&self) -> bool {
        let key = keys::worker_alive(&self.prefix, &self.instance).to_string();
        let mut exists = redis::cmd("EXISTS");
        exists.arg(&key);
        let mut con = self.con.clone();
        let ask = async move {
            let answer = con.on_primary_of(&key, exists).await?;
            redis::from_redis_value::<i64>(answer).map_err(Into::into)
        };
        self.bounded(Op::Ping, ask).await.is_ok()
    }
}

#[cfg(test)]
mod tests;
