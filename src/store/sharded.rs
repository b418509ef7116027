//! The store's operations on a Redis Cluster, where every script must touch one slot.
//!
//! The same keys as on one Redis (they carry hash tags, see [`keys`]); what differs is that
//! an operation spanning a user, a worker instance, a room or the online buckets is a short
//! sequence of single-slot calls, in an order that keeps SPEC §3's guarantee, and that
//! deliveries are `SPUBLISH`ed by the worker after the storing script returns the recipients'
//! instances (a script may not publish to a channel in another slot). `docs/redis.md` gives
//! the reasoning for each order.

use super::call::ScriptCall;
use super::delivery::{entry_to_message, RawEntry};
use super::scripts::{JOIN_ROOM, LOGIN_USER, ROOM_STORE, SEND_STORE, UNREGISTER_USER};
use super::{keys, now_ms, Delivery, Op, Sharded, Store, StoreError};
use crate::protocol::NewMessage;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use redis::aio::ConnectionLike;
use std::time::Duration;

/// How many single-key calls of one bulk step (a resync, a reap) are in flight at once.
const FAN_OUT: usize = 64;

/// Runs `calls` with at most [`FAN_OUT`] in flight; the first error wins. (Boxed futures in
/// a Vec, not a mapped iterator: a closure borrowing `self` inside a spawned task trips
/// rustc's higher-ranked `Send` check.)
async fn fan_out(calls: Vec<BoxFuture<'_, Result<(), StoreError>>>) -> Result<(), StoreError> {
    stream::iter(calls)
        .buffer_unordered(FAN_OUT)
        .try_collect::<()>()
        .await
}

impl<C: ConnectionLike + Sharded + Clone + Send + Sync + 'static> Store<C> {
    fn cmd(name: &str) -> redis::Cmd {
        redis::cmd(name)
    }

    /// `SADD workers me` (1 when we were not registered) and the liveness key.
    async fn refresh_sharded(&self, ttl: Duration) -> Result<bool, StoreError> {
        let p = &*self.prefix;
        let mut sadd = Self::cmd("SADD");
        sadd.arg(keys::workers(p)).arg(&*self.instance);
        let fresh: i64 = self.query(Op::Heartbeat, &sadd).await?;
        let mut set = Self::cmd("SET");
        set.arg(keys::worker_alive(p, &self.instance))
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        let _: () = self.query(Op::Heartbeat, &set).await?;
        Ok(fresh == 1)
    }

    pub(super) async fn heartbeat_sharded(&self, ttl: Duration) -> Result<bool, StoreError> {
        let fresh = self.refresh_sharded(ttl).await?;
        let p = &*self.prefix;
        let mut members = Self::cmd("SMEMBERS");
        members.arg(keys::workers(p));
        let all: Vec<String> = self.query(Op::Heartbeat, &members).await?;
        for w in all.iter().filter(|w| **w != *self.instance) {
            let mut exists = Self::cmd("EXISTS");
            exists.arg(keys::worker_alive(p, w));
            let alive: i64 = self.query(Op::Heartbeat, &exists).await?;
            if alive == 0 {
                self.reap(w).await?;
            }
        }
        Ok(fresh)
    }

    /// Removes instance `w` from every user map and room it is in, then the instance itself.
    /// Its own sets go last, so a reap cut short is finished by the next one.
    async fn reap(&self, w: &str) -> Result<(), StoreError> {
        let p = &*self.prefix;
        let mut users = Self::cmd("SMEMBERS");
        users.arg(keys::worker_users(p, w));
        let users: Vec<String> = self.query(Op::RemoveWorker, &users).await?;
        let mut calls: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
        for u in &users {
            calls.push(Box::pin(self.unregister_user(u, w)));
        }
        fan_out(calls).await?;
        let mut rooms = Self::cmd("SMEMBERS");
        rooms.arg(keys::worker_rooms(p, w));
        let rooms: Vec<String> = self.query(Op::RemoveWorker, &rooms).await?;
        let mut calls: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
        for r in &rooms {
            let mut srem = Self::cmd("SREM");
            srem.arg(keys::room_workers(p, r)).arg(w);
            calls.push(Box::pin(async move {
                self.query::<i64>(Op::RemoveWorker, &srem).await.map(drop)
            }));
        }
        fan_out(calls).await?;
        let mut del = Self::cmd("DEL");
        del.arg(keys::worker_users(p, w))
            .arg(keys::worker_rooms(p, w))
            .arg(keys::worker_alive(p, w));
        let _: i64 = self.query(Op::RemoveWorker, &del).await?;
        let mut srem = Self::cmd("SREM");
        srem.arg(keys::workers(p)).arg(w);
        let _: i64 = self.query(Op::RemoveWorker, &srem).await?;
        Ok(())
    }

    /// Drops instance `w` from `user`'s worker set; the user leaves the online list when no
    /// instance holds it any more. A login elsewhere may add an instance between our count
    /// and our ZREM, so the count is read again after it: a login's ZADD comes after its own
    /// SADD, so either it lands after our ZREM or our second count sees it.
    async fn unregister_user(&self, user: &str, w: &str) -> Result<(), StoreError> {
        let p = &*self.prefix;
        let mut inv = ScriptCall::new(&UNREGISTER_USER, 1);
        inv.key(keys::user_workers(p, user)).arg(w);
        let left: i64 = self.invoke(Op::Logout, &inv).await?;
        if left > 0 {
            return Ok(());
        }
        let bucket = keys::online_bucket(p, keys::user_bucket(user));
        let mut zrem = Self::cmd("ZREM");
        zrem.arg(&bucket).arg(user);
        let _: i64 = self.query(Op::Logout, &zrem).await?;
        let mut scard = Self::cmd("SCARD");
        scard.arg(keys::user_workers(p, user));
        let again: i64 = self.query(Op::Logout, &scard).await?;
        if again > 0 {
            self.mark_online(user).await?;
        }
        Ok(())
    }

    async fn mark_online(&self, user: &str) -> Result<(), StoreError> {
        let mut zadd = Self::cmd("ZADD");
        zadd.arg(keys::online_bucket(&self.prefix, keys::user_bucket(user)))
            .arg(0)
            .arg(user);
        let _: i64 = self.query(Op::Login, &zadd).await?;
        Ok(())
    }

    pub(super) async fn resync_sharded(
        &self,
        ttl: Duration,
        reset: bool,
        users: &[String],
        rooms: &[String],
    ) -> Result<(), StoreError> {
        let p = &*self.prefix;
        if reset {
            self.reap(&self.instance).await?;
        }
        self.refresh_sharded(ttl).await?;
        // The instance's own sets first: a reap of this instance then finds everything.
        for chunk in users.chunks(1000) {
            let mut sadd = Self::cmd("SADD");
            sadd.arg(keys::worker_users(p, &self.instance)).arg(chunk);
            let _: i64 = self.query(Op::Resync, &sadd).await?;
        }
        for chunk in rooms.chunks(1000) {
            let mut sadd = Self::cmd("SADD");
            sadd.arg(keys::worker_rooms(p, &self.instance)).arg(chunk);
            let _: i64 = self.query(Op::Resync, &sadd).await?;
        }
        let mut calls: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
        for u in users {
            let mut sadd = Self::cmd("SADD");
            sadd.arg(keys::user_workers(p, u)).arg(&*self.instance);
            calls.push(Box::pin(async move {
                let _: i64 = self.query(Op::Resync, &sadd).await?;
                self.mark_online(u).await
            }));
        }
        for r in rooms {
            let mut sadd = Self::cmd("SADD");
            sadd.arg(keys::room_workers(p, r)).arg(&*self.instance);
            calls.push(Box::pin(async move {
                self.query::<i64>(Op::Resync, &sadd).await.map(drop)
            }));
        }
        fan_out(calls).await
    }

    pub(super) async fn remove_self_sharded(&self) -> Result<(), StoreError> {
        self.reap(&self.instance).await
    }

    /// The instance's user set first (so a reap of this instance finds the user), then the
    /// user's slot atomically (user map + pending inbox), then the online bucket.
    pub(super) async fn login_sharded(&self, user: &str) -> Result<Vec<NewMessage>, StoreError> {
        let p = &*self.prefix;
        let mut sadd = Self::cmd("SADD");
        sadd.arg(keys::worker_users(p, &self.instance)).arg(user);
        let _: i64 = self.query(Op::Login, &sadd).await?;
        let mut inv = ScriptCall::new(&LOGIN_USER, 2);
        inv.key(keys::user_workers(p, user))
            .key(keys::inbox(p, user))
            .arg(&*self.instance)
            .arg(self.min_id(now_ms()))
            .arg(self.inbox.max_len);
        let raw: Vec<RawEntry> = self.invoke(Op::Login, &inv).await?;
        self.mark_online(user).await?;
        Ok(raw
            .into_iter()
            .filter_map(|e| entry_to_message(e, None))
            .collect())
    }

    pub(super) async fn logout_sharded(&self, user: &str) -> Result<(), StoreError> {
        self.unregister_user(user, &self.instance).await?;
        let mut srem = Self::cmd("SREM");
        srem.arg(keys::worker_users(&self.prefix, &self.instance))
            .arg(user);
        let _: i64 = self.query(Op::Logout, &srem).await?;
        Ok(())
    }

    /// `SPUBLISH`es `payload` on the channel of every instance in `instances`. A publish that
    /// fails or reaches no subscriber is retried in the background for about 9 s: during a
    /// failover a worker whose slot map is a moment stale can publish to the dead primary, or
    /// to the restarted one in the instant before it learns it was replaced (it accepts and
    /// drops the message: 0 receivers). Each channel has exactly one subscriber, so 0 means
    /// "not delivered". The message is stored either way; the retries only keep it from
    /// waiting for the recipient's next `log in`.
    async fn publish_to(&self, instances: &[String], payload: &str) {
        let missed = self.publish_once(instances, payload).await;
        if !missed.is_empty() {
            let store = self.clone();
            let payload = payload.to_owned();
            tokio::spawn(async move { store.republish(missed, payload).await });
        }
    }

    /// One `SPUBLISH` per instance, concurrently; returns the instances it did not reach.
    async fn publish_once(&self, instances: &[String], payload: &str) -> Vec<String> {
        let p = &*self.prefix;
        let mut sends: Vec<BoxFuture<'_, Option<String>>> = Vec::new();
        for w in instances {
            let mut cmd = Self::cmd("SPUBLISH");
            cmd.arg(keys::worker_channel(p, w)).arg(payload);
            sends.push(Box::pin(async move {
                match self.query::<i64>(Op::Publish, &cmd).await {
                    Ok(n) if n > 0 => None,
                    Ok(_) => Some(w.clone()),
                    Err(e) => {
                        tracing::debug!("SPUBLISH to {w} failed: {e}");
                        Some(w.clone())
                    }
                }
            }));
        }
        futures_util::future::join_all(sends)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn republish(&self, mut missed: Vec<String>, payload: String) {
        for delay_ms in [100, 200, 400, 800, 1600, 2000, 2000, 2000] {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            missed = self.publish_once(&missed, &payload).await;
            if missed.is_empty() {
                return;
            }
        }
        // A dead instance not reaped yet; a live one resends its users' inboxes when its
        // subscription comes back.
        tracing::debug!(?missed, "gave up publishing a delivery");
    }

    pub(super) async fn send_sharded(
        &self,
        delivery: &Delivery,
        from: &str,
        to: &str,
        text: &str,
        sent_at: u64,
    ) -> Result<String, StoreError> {
        let p = &*self.prefix;
        let inbox = keys::inbox(p, to);
        let mut inv = ScriptCall::new(&SEND_STORE, 2);
        inv.key(inbox)
            .key(keys::user_workers(p, to))
            .arg(from)
            .arg(text)
            .arg(sent_at)
            .arg(self.inbox.max_len)
            .arg(self.min_id(sent_at))
            .arg(self.inbox.ttl.as_millis() as u64);
        let (id, instances): (String, Vec<String>) = self.invoke(Op::Send, &inv).await?;
        let payload = delivery.parts().around(&id);
        self.publish_to(&instances, &payload).await;
        self.wait_replicated(inbox).await?;
        Ok(id)
    }

    /// The XDEL decides (only the first ack of a message deletes it) in the recipient's slot;
    /// the receipt goes to the sender's instances after it.
    pub(super) async fn ack_sharded(
        &self,
        to: &str,
        id: &str,
        sender: &str,
        receipt: &str,
    ) -> Result<bool, StoreError> {
        let p = &*self.prefix;
        let mut xdel = Self::cmd("XDEL");
        xdel.arg(keys::inbox(p, to)).arg(id);
        let n: i64 = self.query(Op::Ack, &xdel).await?;
        if n == 1 {
            let mut members = Self::cmd("SMEMBERS");
            members.arg(keys::user_workers(p, sender));
            let instances: Vec<String> = self.query(Op::Ack, &members).await?;
            self.publish_to(&instances, receipt).await;
        }
        Ok(n == 1)
    }

    pub(super) async fn join_sharded(&self, room: &str) -> Result<Vec<RawEntry>, StoreError> {
        let p = &*self.prefix;
        let mut sadd = Self::cmd("SADD");
        sadd.arg(keys::worker_rooms(p, &self.instance)).arg(room);
        let _: i64 = self.query(Op::Join, &sadd).await?;
        let mut inv = ScriptCall::new(&JOIN_ROOM, 2);
        inv.key(keys::room_workers(p, room))
            .key(keys::room_history(p, room))
            .arg(&*self.instance)
            .arg(crate::protocol::ROOM_HISTORY_LEN);
        self.invoke(Op::Join, &inv).await
    }

    pub(super) async fn leave_sharded(&self, room: &str) -> Result<(), StoreError> {
        let p = &*self.prefix;
        let mut srem = Self::cmd("SREM");
        srem.arg(keys::room_workers(p, room)).arg(&*self.instance);
        let _: i64 = self.query(Op::Leave, &srem).await?;
        let mut srem = Self::cmd("SREM");
        srem.arg(keys::worker_rooms(p, &self.instance)).arg(room);
        let _: i64 = self.query(Op::Leave, &srem).await?;
        Ok(())
    }

    pub(super) async fn room_send_sharded(
        &self,
        delivery: &Delivery,
        room: &str,
        from: &str,
        text: &str,
        sent_at: u64,
    ) -> Result<String, StoreError> {
        let p = &*self.prefix;
        let mut inv = ScriptCall::new(&ROOM_STORE, 2);
        inv.key(keys::room_history(p, room))
            .key(keys::room_workers(p, room))
            .arg(from)
            .arg(text)
            .arg(sent_at)
            .arg(crate::protocol::ROOM_HISTORY_LEN)
            .arg(self.room_history_ttl.as_secs().max(1));
        let (id, instances): (String, Vec<String>) = self.invoke(Op::RoomSend, &inv).await?;
        let payload = delivery.parts().around(&id);
        self.publish_to(&instances, &payload).await;
        Ok(id)
    }

    /// The first `max` names of every online bucket, merged: still the first `max` overall.
    pub(super) async fn list_users_sharded(&self, max: usize) -> Result<Vec<String>, StoreError> {
        let p = &*self.prefix;
        let mut reads: Vec<BoxFuture<'_, Result<Vec<String>, StoreError>>> = Vec::new();
        for b in 0..keys::ONLINE_BUCKETS {
            let mut cmd = Self::cmd("ZRANGE");
            cmd.arg(keys::online_bucket(p, b))
                .arg(0)
                .arg(max.saturating_sub(1));
            reads.push(Box::pin(async move { self.query(Op::Zrange, &cmd).await }));
        }
        let mut all: Vec<String> = futures_util::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect();
        all.sort_unstable();
        all.dedup();
        all.truncate(max);
        Ok(all)
    }
}
