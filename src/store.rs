//! The store: the only module that speaks Redis commands. Handlers call its methods; every
//! method is one script or command (one round trip), bounded by a timeout, and any failure is
//! [`StoreError::Unavailable`] so the client hears `unavailable` instead of losing a message.
//!
//! The data model is documented in `docs/redis.md`; the key names live in [`keys`] and the
//! scripts below are the only writers. It is generic over redis-rs's
//! [`ConnectionLike`](redis::aio::ConnectionLike) so unit tests can record the commands it
//! sends without a server; production uses a reconnecting `ConnectionManager`.

use crate::protocol::NewMessage;
use redis::aio::ConnectionLike;
use redis::{RedisError, Script};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Key and channel names. Every name starts with the service prefix (default `chat:`), so
/// several services can share one Redis. Names never contain user text other than usernames
/// and room names, which the protocol restricts to `[A-Za-z0-9_.-]`, so they cannot collide.
pub mod keys {
    /// SET of live worker instance ids.
    pub fn workers(p: &str) -> String {
        format!("{p}workers")
    }
    /// STRING with a TTL: present while the worker instance heartbeats.
    pub fn worker_alive(p: &str, inst: &str) -> String {
        format!("{p}w:{inst}:alive")
    }
    /// SET of usernames with at least one socket on the worker instance.
    pub fn worker_users(p: &str, inst: &str) -> String {
        format!("{p}w:{inst}:users")
    }
    /// SET of rooms with at least one member socket on the worker instance.
    pub fn worker_rooms(p: &str, inst: &str) -> String {
        format!("{p}w:{inst}:rooms")
    }
    /// Pub/sub channel a worker instance subscribes to; deliveries are published only to the
    /// instances that hold a recipient.
    pub fn worker_channel(p: &str, inst: &str) -> String {
        format!("{p}w:{inst}:deliver")
    }
    /// SET of worker instances holding sockets of the user: the user map.
    pub fn user_workers(p: &str, user: &str) -> String {
        format!("{p}u:{user}:workers")
    }
    /// STREAM of the user's unacknowledged direct messages.
    pub fn inbox(p: &str, user: &str) -> String {
        format!("{p}u:{user}:inbox")
    }
    /// SET of worker instances holding member sockets of the room.
    pub fn room_workers(p: &str, room: &str) -> String {
        format!("{p}r:{room}:workers")
    }
    /// STREAM of the room's last messages.
    pub fn room_history(p: &str, room: &str) -> String {
        format!("{p}r:{room}:history")
    }
    /// ZSET (all scores 0, so ordered by name) of online usernames, for `list users`.
    pub fn online(p: &str) -> String {
        format!("{p}online")
    }
}

/// Removes every membership of worker `w` (its users from the user map and the online set,
/// its rooms) and the worker itself. Shared by the heartbeat's reaper, drain and resync.
const REAP_FN: &str = r#"
local function reap(p, w)
  local wu = p .. 'w:' .. w .. ':users'
  for _, u in ipairs(redis.call('SMEMBERS', wu)) do
    local uw = p .. 'u:' .. u .. ':workers'
    redis.call('SREM', uw, w)
    if redis.call('SCARD', uw) == 0 then redis.call('ZREM', p .. 'online', u) end
  end
  local wr = p .. 'w:' .. w .. ':rooms'
  for _, r in ipairs(redis.call('SMEMBERS', wr)) do
    redis.call('SREM', p .. 'r:' .. r .. ':workers', w)
  end
  redis.call('DEL', wu, wr, p .. 'w:' .. w .. ':alive')
  redis.call('SREM', p .. 'workers', w)
end
"#;

/// ARGV: prefix, me, ttl_ms. Refreshes this worker's liveness and reaps workers whose
/// liveness expired (they died without cleaning up). Returns {fresh, reaped}: `fresh` is 1
/// when this worker was not registered, i.e. Redis lost our state (restarted empty) or
/// another worker reaped us after a stall; the caller then re-registers its live sockets.
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            REAP_FN,
            r#"
local p, me = ARGV[1], ARGV[2]
local fresh = redis.call('SADD', p .. 'workers', me)
redis.call('SET', p .. 'w:' .. me .. ':alive', '1', 'PX', ARGV[3])
local reaped = 0
for _, w in ipairs(redis.call('SMEMBERS', p .. 'workers')) do
  if w ~= me and redis.call('EXISTS', p .. 'w:' .. w .. ':alive') == 0 then
    reap(p, w)
    reaped = reaped + 1
  end
end
return {fresh, reaped}
"#,
        ]
        .concat(),
    )
});

/// ARGV: prefix, me, ttl_ms, reset (1/0), n_users, users…, rooms…. With reset, first drops
/// everything registered for this worker; then registers the given users and rooms.
static RESYNC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            REAP_FN,
            r#"
local p, me = ARGV[1], ARGV[2]
if ARGV[4] == '1' then reap(p, me) end
redis.call('SADD', p .. 'workers', me)
redis.call('SET', p .. 'w:' .. me .. ':alive', '1', 'PX', ARGV[3])
local n = tonumber(ARGV[5])
for i = 6, 5 + n do
  local u = ARGV[i]
  redis.call('SADD', p .. 'u:' .. u .. ':workers', me)
  redis.call('SADD', p .. 'w:' .. me .. ':users', u)
  redis.call('ZADD', p .. 'online', 0, u)
end
for i = 6 + n, #ARGV do
  local r = ARGV[i]
  redis.call('SADD', p .. 'r:' .. r .. ':workers', me)
  redis.call('SADD', p .. 'w:' .. me .. ':rooms', r)
end
return n
"#,
        ]
        .concat(),
    )
});

/// ARGV: prefix, me. Drops this worker and all its memberships (drain).
static REMOVE_WORKER: LazyLock<Script> =
    LazyLock::new(|| Script::new(&[REAP_FN, "\nreap(ARGV[1], ARGV[2])\nreturn 1\n"].concat()));

/// KEYS: user_workers, worker_users, online, inbox. ARGV: user, me, min_id, count.
/// Registers the user on this worker, trims expired messages and returns the pending ones,
/// atomically, so nothing sent after this can be missed by both the list and the channel.
static LOGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('XTRIM', KEYS[4], 'MINID', ARGV[3])
return redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', ARGV[4])
"#,
    )
});

/// KEYS: user_workers, worker_users, online. ARGV: user, me. The user's last local socket left.
static LOGOUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('SREM', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('ZREM', KEYS[3], ARGV[1]) end
return 1
"#,
    )
});

/// KEYS: inbox, user_workers(to). ARGV: prefix, to, from, text, sent_at, max_len, min_id, ttl_ms.
/// Appends to the inbox (the message is safe before the sender's ack), trims by count and
/// age, and publishes the delivery only to the workers that hold the recipient.
static SEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[6], '*', 'from', ARGV[3], 'message', ARGV[4], 'sentAt', ARGV[5])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
local payload = 'm\n' .. ARGV[2] .. '\n' .. id .. '\n' .. ARGV[3] .. '\n' .. ARGV[5] .. '\n' .. ARGV[4]
for _, w in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('PUBLISH', ARGV[1] .. 'w:' .. w .. ':deliver', payload)
end
return id
"#,
    )
});

/// KEYS: inbox(to), user_workers(sender). ARGV: prefix, id, sender, to.
/// Removes an acknowledged message; only the first ack publishes the `delivered` receipt.
static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = redis.call('XDEL', KEYS[1], ARGV[2])
if n == 1 then
  local payload = 'd\n' .. ARGV[3] .. '\n' .. ARGV[2] .. '\n' .. ARGV[4]
  for _, w in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    redis.call('PUBLISH', ARGV[1] .. 'w:' .. w .. ':deliver', payload)
  end
end
return n
"#,
    )
});

/// KEYS: room_workers, worker_rooms, history. ARGV: room, me, count.
static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', ARGV[3])
"#,
    )
});

/// KEYS: room_workers, worker_rooms. ARGV: room, me. The room's last local member left.
static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('SREM', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"#,
    )
});

/// KEYS: history, room_workers. ARGV: prefix, room, from, text, sent_at, except_sid, max_len.
static ROOM_SEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[7], '*', 'from', ARGV[3], 'message', ARGV[4], 'sentAt', ARGV[5])
local payload = 'r\n' .. ARGV[2] .. '\n' .. id .. '\n' .. ARGV[3] .. '\n' .. ARGV[5] .. '\n' .. ARGV[6] .. '\n' .. ARGV[4]
for _, w in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('PUBLISH', ARGV[1] .. 'w:' .. w .. ':deliver', payload)
end
return id
"#,
    )
});

/// What the store could not do. Every variant reaches clients as `unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    #[error("only {got} of {want} replicas confirmed the write")]
    NotReplicated { got: i64, want: u32 },
}

/// One message a worker's channel carries (the payloads the scripts above publish).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A direct message for `to`'s sockets on this worker.
    Direct { to: String, message: NewMessage },
    /// A room message for this worker's members of `message.room`, except socket `except_sid`.
    Room {
        except_sid: String,
        message: NewMessage,
    },
    /// `to` acknowledged message `id` from `sender`: tell `sender`'s sockets.
    Delivered {
        sender: String,
        id: String,
        to: String,
    },
}

impl Delivery {
    /// Parses a channel payload: a kind letter, then fields separated by `\n`, the message
    /// text last (it may itself contain newlines; no other field can).
    pub fn parse(payload: &str) -> Option<Delivery> {
        let (kind, rest) = payload.split_once('\n')?;
        match kind {
            "m" => {
                let mut f = rest.splitn(5, '\n');
                let to = f.next()?.to_owned();
                let message = NewMessage {
                    id: f.next()?.to_owned(),
                    from: f.next()?.to_owned(),
                    sent_at: f.next()?.parse().ok()?,
                    message: f.next()?.to_owned(),
                    room: None,
                };
                Some(Delivery::Direct { to, message })
            }
            "r" => {
                let mut f = rest.splitn(6, '\n');
                let room = Some(f.next()?.to_owned());
                let id = f.next()?.to_owned();
                let from = f.next()?.to_owned();
                let sent_at = f.next()?.parse().ok()?;
                let except_sid = f.next()?.to_owned();
                let message = NewMessage {
                    id,
                    from,
                    sent_at,
                    message: f.next()?.to_owned(),
                    room,
                };
                Some(Delivery::Room {
                    except_sid,
                    message,
                })
            }
            "d" => {
                let mut f = rest.splitn(3, '\n');
                Some(Delivery::Delivered {
                    sender: f.next()?.to_owned(),
                    id: f.next()?.to_owned(),
                    to: f.next()?.to_owned(),
                })
            }
            _ => None,
        }
    }
}

/// Inbox bounds, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct InboxBounds {
    pub max_len: usize,
    pub ttl: Duration,
}

/// The store of one worker instance.
#[derive(Clone)]
pub struct Store<C> {
    /// The command connection; `ConnectionManager` reconnects by itself.
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
}

/// A raw stream entry as XRANGE returns it: id and a flat field/value list.
type RawEntry = (String, Vec<String>);

fn entry_to_message(entry: RawEntry, room: Option<&str>) -> Option<NewMessage> {
    let (id, fields) = entry;
    let (mut from, mut message, mut sent_at) = (None, None, None);
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        match k.as_str() {
            "from" => from = Some(v),
            "message" => message = Some(v),
            "sentAt" => sent_at = v.parse().ok(),
            _ => {}
        }
    }
    Some(NewMessage {
        id,
        from: from?,
        message: message?,
        sent_at: sent_at?,
        room: room.map(str::to_owned),
    })
}

/// Environment variable through which chatctl hands a worker the Redis password, so that it
/// never appears in a command line (`ps` shows those to every user).
pub const PASSWORD_ENV: &str = "CHAT_REDIS_PASSWORD";

/// A Redis client for `url`, with `password` (when given) replacing any in the URL.
pub fn redis_client(url: &str, password: Option<&str>) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let info = match password {
        Some(pw) if !pw.is_empty() => {
            let settings = info.redis_settings().clone().set_password(pw);
            info.set_redis_settings(settings)
        }
        _ => info,
    };
    redis::Client::open(info)
}

/// `url` with any password replaced by `***`, for logs and `status`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let rest = match rest.split_once('@') {
        Some((cred, host)) if !cred.contains('/') => match cred.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        _ => rest.to_owned(),
    };
    let rest = match rest.split_once("pass=") {
        Some((before, after)) => {
            let tail = after
                .split_once('&')
                .map(|(_, t)| format!("&{t}"))
                .unwrap_or_default();
            format!("{before}pass=***{tail}")
        }
        None => rest,
    };
    format!("{scheme}://{rest}")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl<C: ConnectionLike + Clone + Send + Sync> Store<C> {
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
        }
    }

    /// With replicas: a direct message is acked only once this many replicas have it.
    pub fn with_min_replicas(mut self, n: u32) -> Self {
        self.min_replicas = n;
        self
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The worker's own delivery channel.
    pub fn channel(&self) -> String {
        keys::worker_channel(&self.prefix, &self.instance)
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    fn min_id(&self, now: u64) -> String {
        format!(
            "{}-0",
            now.saturating_sub(self.inbox.ttl.as_millis() as u64)
        )
    }

    /// Refreshes liveness and reaps dead workers; `Ok(true)` when our registration had been
    /// lost and must be rebuilt with [`Store::resync`].
    pub async fn heartbeat(&self, ttl: Duration) -> Result<bool, StoreError> {
        let mut con = self.con.clone();
        let mut inv = HEARTBEAT.prepare_invoke();
        inv.arg(&*self.prefix)
            .arg(&*self.instance)
            .arg(ttl.as_millis() as u64);
        let (fresh, _reaped): (i64, i64) = self.bounded(inv.invoke_async(&mut con)).await?;
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
        let mut con = self.con.clone();
        let mut inv = RESYNC.prepare_invoke();
        inv.arg(&*self.prefix)
            .arg(&*self.instance)
            .arg(ttl.as_millis() as u64)
            .arg(if reset { "1" } else { "0" })
            .arg(users.len())
            .arg(users)
            .arg(rooms);
        let _: i64 = self.bounded(inv.invoke_async(&mut con)).await?;
        Ok(())
    }

    /// Drops this worker's registrations (on drain).
    pub async fn remove_self(&self) -> Result<(), StoreError> {
        let mut con = self.con.clone();
        let mut inv = REMOVE_WORKER.prepare_invoke();
        inv.arg(&*self.prefix).arg(&*self.instance);
        let _: i64 = self.bounded(inv.invoke_async(&mut con)).await?;
        Ok(())
    }

    /// Registers `user` on this worker and returns the messages waiting in its inbox,
    /// oldest first.
    pub async fn login(&self, user: &str) -> Result<Vec<NewMessage>, StoreError> {
        let p = &*self.prefix;
        let mut con = self.con.clone();
        let mut inv = LOGIN.prepare_invoke();
        inv.key(keys::user_workers(p, user))
            .key(keys::worker_users(p, &self.instance))
            .key(keys::online(p))
            .key(keys::inbox(p, user))
            .arg(user)
            .arg(&*self.instance)
            .arg(self.min_id(now_ms()))
            .arg(self.inbox.max_len);
        let raw: Vec<RawEntry> = self.bounded(inv.invoke_async(&mut con)).await?;
        Ok(raw
            .into_iter()
            .filter_map(|e| entry_to_message(e, None))
            .collect())
    }

    /// The messages waiting in `user`'s inbox, oldest first (redelivery after a pub/sub gap).
    pub async fn pending(&self, user: &str) -> Result<Vec<NewMessage>, StoreError> {
        let mut con = self.con.clone();
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(keys::inbox(&self.prefix, user))
            .arg(self.min_id(now_ms()))
            .arg("+")
            .arg("COUNT")
            .arg(self.inbox.max_len);
        let raw: Vec<RawEntry> = self.bounded(cmd.query_async(&mut con)).await?;
        Ok(raw
            .into_iter()
            .filter_map(|e| entry_to_message(e, None))
            .collect())
    }

    /// The user's last socket on this worker is gone.
    pub async fn logout(&self, user: &str) -> Result<(), StoreError> {
        let p = &*self.prefix;
        let mut con = self.con.clone();
        let mut inv = LOGOUT.prepare_invoke();
        inv.key(keys::user_workers(p, user))
            .key(keys::worker_users(p, &self.instance))
            .key(keys::online(p))
            .arg(user)
            .arg(&*self.instance);
        let _: i64 = self.bounded(inv.invoke_async(&mut con)).await?;
        Ok(())
    }

    /// Stores a direct message in `to`'s inbox and publishes it to `to`'s workers. When this
    /// returns `Ok(id)`, the message is in Redis.
    pub async fn send(
        &self,
        from: &str,
        to: &str,
        text: &str,
        sent_at: u64,
    ) -> Result<String, StoreError> {
        let p = &*self.prefix;
        let mut con = self.con.clone();
        let mut inv = SEND.prepare_invoke();
        inv.key(keys::inbox(p, to))
            .key(keys::user_workers(p, to))
            .arg(p)
            .arg(to)
            .arg(from)
            .arg(text)
            .arg(sent_at)
            .arg(self.inbox.max_len)
            .arg(self.min_id(sent_at))
            .arg(self.inbox.ttl.as_millis() as u64);
        let id: String = self.bounded(inv.invoke_async(&mut con)).await?;
        if self.min_replicas > 0 {
            // WAIT covers every write sent before it on this connection, the XADD included.
            let wait_ms = (self.timeout.as_millis() as u64 / 2).max(1);
            let got: i64 = self
                .bounded(
                    redis::cmd("WAIT")
                        .arg(self.min_replicas)
                        .arg(wait_ms)
                        .query_async(&mut con),
                )
                .await?;
            if got < self.min_replicas as i64 {
                return Err(StoreError::NotReplicated {
                    got,
                    want: self.min_replicas,
                });
            }
        }
        Ok(id)
    }

    /// `to` acknowledged message `id` from `sender`; `Ok(true)` for the first ack.
    pub async fn ack(&self, to: &str, id: &str, sender: &str) -> Result<bool, StoreError> {
        let p = &*self.prefix;
        let mut con = self.con.clone();
        let mut inv = ACK.prepare_invoke();
        inv.key(keys::inbox(p, to))
            .key(keys::user_workers(p, sender))
            .arg(p)
            .arg(id)
            .arg(sender)
            .arg(to);
        let n: i64 = self.bounded(inv.invoke_async(&mut con)).await?;
        Ok(n == 1)
    }

    /// Registers this worker as holding members of `room`; returns the room's history,
    /// oldest first.
    pub async fn join(&self, room: &str) -> Result<Vec<NewMessage>, StoreError> {
        let p = &*self.prefix;
        let mut con = self.con.clone();
        let mut inv = JOIN.prepare_invoke();
        inv.key(keys::room_workers(p, room))
            .key(keys::worker_rooms(p, &self.instance))
            .key(keys::room_history(p, room))
            .arg(room)
            .arg(&*self.instance)
            .arg(crate::protocol::ROOM_HISTORY_LEN);
        let raw: Vec<RawEntry> = self.bounded(inv.invoke_async(&mut con)).await?;
        let mut history: Vec<NewMessage> = raw
            .into_iter()
            .filter_map(|e| entry_to_message(e, Some(room)))
            .collect();
        history.reverse();
        Ok(history)
    }

    /// This worker's last member of `room` left.
    pub async fn leave(&self, room: &str) -> Result<(), StoreError> {
        let p = &*self.prefix;
        let mut con = self.con.clone();
        let mut inv = LEAVE.prepare_invoke();
        inv.key(keys::room_workers(p, room))
            .key(keys::worker_rooms(p, &self.instance))
            .arg(room)
            .arg(&*self.instance);
        let _: i64 = self.bounded(inv.invoke_async(&mut con)).await?;
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
        let mut con = self.con.clone();
        let mut inv = ROOM_SEND.prepare_invoke();
        inv.key(keys::room_history(p, room))
            .key(keys::room_workers(p, room))
            .arg(p)
            .arg(room)
            .arg(from)
            .arg(text)
            .arg(sent_at)
            .arg(except_sid)
            .arg(crate::protocol::ROOM_HISTORY_LEN);
        self.bounded(inv.invoke_async(&mut con)).await
    }

    /// Online users, sorted, at most `max`.
    pub async fn list_users(&self, max: usize) -> Result<Vec<String>, StoreError> {
        let mut con = self.con.clone();
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(keys::online(&self.prefix))
            .arg(0)
            .arg(max.saturating_sub(1));
        self.bounded(cmd.query_async(&mut con)).await
    }

    /// A PING, for `/health` and the round-trip figure.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut con = self.con.clone();
        let _: String = self
            .bounded(redis::cmd("PING").query_async(&mut con))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{Cmd, RedisFuture, Value};
    use std::sync::Mutex;

    /// Records every command as its argument strings and answers from a queue.
    #[derive(Clone, Default)]
    struct Recorder {
        sent: Arc<Mutex<Vec<Vec<String>>>>,
        replies: Arc<Mutex<Vec<Value>>>,
    }

    impl Recorder {
        fn reply(self, v: Value) -> Self {
            self.replies.lock().unwrap().push(v);
            self
        }
        fn sent(&self) -> Vec<Vec<String>> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl ConnectionLike for Recorder {
        fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
            let args = cmd
                .args_iter()
                .map(|a| match a {
                    redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                    _ => "<other>".into(),
                })
                .collect();
            self.sent.lock().unwrap().push(args);
            let v = self.replies.lock().unwrap().remove(0);
            Box::pin(async move { Ok(v) })
        }
        fn req_packed_commands<'a>(
            &'a mut self,
            _: &'a redis::Pipeline,
            _: usize,
            _: usize,
        ) -> RedisFuture<'a, Vec<Value>> {
            Box::pin(async { Ok(vec![]) })
        }
        fn get_db(&self) -> i64 {
            0
        }
    }

    fn store(rec: &Recorder) -> Store<Recorder> {
        Store::new(
            rec.clone(),
            "chat:",
            "w0-abc",
            Duration::from_secs(1),
            InboxBounds {
                max_len: 1000,
                ttl: Duration::from_secs(60),
            },
        )
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("redis://u:pw@h:1"), "redis://u:***@h:1");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(
            redact_url("redis+unix:///s/redis.sock?pass=x&db=0"),
            "redis+unix:///s/redis.sock?pass=***&db=0"
        );
    }

    #[test]
    fn key_names_are_prefixed_and_typed() {
        assert_eq!(keys::inbox("chat:", "bob"), "chat:u:bob:inbox");
        assert_eq!(keys::user_workers("chat:", "bob"), "chat:u:bob:workers");
        assert_eq!(keys::worker_channel("x:", "w1"), "x:w:w1:deliver");
        assert_eq!(keys::room_history("chat:", "lobby"), "chat:r:lobby:history");
    }

    #[tokio::test]
    async fn send_runs_one_script_on_the_inbox_and_the_user_map() {
        let rec = Recorder::default().reply(bulk("5-0"));
        let id = store(&rec)
            .send("alice", "bob", "hi", 1_000_000)
            .await
            .unwrap();
        assert_eq!(id, "5-0");
        let sent = rec.sent();
        assert_eq!(sent.len(), 1, "one round trip");
        let cmd = &sent[0];
        assert_eq!(cmd[0], "EVALSHA");
        assert_eq!(cmd[2], "2", "two keys");
        assert_eq!(&cmd[3..5], ["chat:u:bob:inbox", "chat:u:bob:workers"]);
        assert_eq!(
            &cmd[5..],
            ["chat:", "bob", "alice", "hi", "1000000", "1000", "940000-0", "60000"]
        );
    }

    #[tokio::test]
    async fn login_parses_pending_entries_in_order() {
        let entry = |id: &str, text: &str| {
            Value::Array(vec![
                bulk(id),
                Value::Array(vec![
                    bulk("from"),
                    bulk("alice"),
                    bulk("message"),
                    bulk(text),
                    bulk("sentAt"),
                    bulk("7"),
                ]),
            ])
        };
        let rec =
            Recorder::default().reply(Value::Array(vec![entry("1-0", "a"), entry("2-0", "b")]));
        let pending = store(&rec).login("bob").await.unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].id, "1-0");
        assert_eq!(pending[1].message, "b");
        assert_eq!(pending[1].sent_at, 7);
        let cmd = &rec.sent()[0];
        assert_eq!(
            &cmd[3..7],
            [
                "chat:u:bob:workers",
                "chat:w:w0-abc:users",
                "chat:online",
                "chat:u:bob:inbox"
            ]
        );
    }

    #[tokio::test]
    async fn join_returns_history_oldest_first() {
        let entry = |id: &str| {
            Value::Array(vec![
                bulk(id),
                Value::Array(vec![
                    bulk("from"),
                    bulk("a"),
                    bulk("message"),
                    bulk("m"),
                    bulk("sentAt"),
                    bulk("1"),
                ]),
            ])
        };
        let rec = Recorder::default().reply(Value::Array(vec![entry("2-0"), entry("1-0")]));
        let h = store(&rec).join("lobby").await.unwrap();
        assert_eq!(h[0].id, "1-0");
        assert_eq!(h[0].room.as_deref(), Some("lobby"));
    }

    #[tokio::test]
    async fn redis_errors_become_store_errors() {
        #[derive(Clone)]
        struct Down;
        impl ConnectionLike for Down {
            fn req_packed_command<'a>(&'a mut self, _: &'a Cmd) -> RedisFuture<'a, Value> {
                Box::pin(async {
                    Err(RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "refused",
                    )))
                })
            }
            fn req_packed_commands<'a>(
                &'a mut self,
                _: &'a redis::Pipeline,
                _: usize,
                _: usize,
            ) -> RedisFuture<'a, Vec<Value>> {
                Box::pin(async { Ok(vec![]) })
            }
            fn get_db(&self) -> i64 {
                0
            }
        }
        let s = Store::new(
            Down,
            "chat:",
            "w",
            Duration::from_secs(1),
            InboxBounds {
                max_len: 1,
                ttl: Duration::from_secs(1),
            },
        );
        assert!(s.send("a", "b", "c", 1).await.is_err());
    }

    #[test]
    fn channel_payloads_parse() {
        let d = Delivery::parse("m\nbob\n5-0\nalice\n42\nhello\nworld").unwrap();
        assert_eq!(
            d,
            Delivery::Direct {
                to: "bob".into(),
                message: NewMessage {
                    id: "5-0".into(),
                    from: "alice".into(),
                    message: "hello\nworld".into(),
                    sent_at: 42,
                    room: None
                }
            }
        );
        match Delivery::parse("r\nlobby\n1-0\nalice\n9\nSID\ntext").unwrap() {
            Delivery::Room {
                except_sid,
                message,
            } => {
                assert_eq!(except_sid, "SID");
                assert_eq!(message.room.as_deref(), Some("lobby"));
                assert_eq!(message.message, "text");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Delivery::parse("d\nalice\n5-0\nbob"),
            Some(Delivery::Delivered {
                sender: "alice".into(),
                id: "5-0".into(),
                to: "bob".into()
            })
        );
        assert_eq!(Delivery::parse("m\nbob\n5-0"), None);
        assert_eq!(Delivery::parse("x\n"), None);
    }
}
