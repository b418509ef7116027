//! Key and channel names: the one place they are spelled. Scripts get them as KEYS, or as
//! templates in ARGV for the names they discover while running (see [`SLOT`]).
//!
//! Every name starts with the service prefix (default [`DEFAULT_PREFIX`]), so several
//! services can share one Redis. Names carry a Redis Cluster hash tag (the part in `{}`), so
//! the keys one script touches share a slot: a user's inbox and worker set under `{u:NAME}`,
//! a room's history and worker set under `{r:NAME}`, a worker instance's sets, liveness key
//! and delivery channel under `{w:ID}` (see `docs/redis.md`). The prefix must not contain
//! braces, or it would become the tag ([`check_prefix`]). Names never contain user text other than usernames and room
//! names, which the protocol restricts to `[A-Za-z0-9_.-]`, so they cannot collide.

/// The prefix `chat-worker --redis-prefix` defaults to; chatctl's membership keys use it too.
pub const DEFAULT_PREFIX: &str = "chat:";

/// Stands for the instance, user or room in a key template: `worker_users(p, SLOT)` is
/// `chat:w:{}:users`, and `key()` in `scripts/key.lua` fills in the last `{}`. A script
/// that reaps another instance's users learns their names only while it runs, so it cannot
/// be handed the finished keys.
pub const SLOT: &str = "{}";

/// SET of live worker instance ids.
pub fn workers(p: &str) -> String {
    format!("{p}workers")
}

/// STRING with a TTL: present while the worker instance heartbeats.
pub fn worker_alive(p: &str, inst: &str) -> String {
    format!("{p}{{w:{inst}}}:alive")
}

/// SET of usernames with at least one socket on the worker instance.
pub fn worker_users(p: &str, inst: &str) -> String {
    format!("{p}{{w:{inst}}}:users")
}

/// SET of rooms with at least one member socket on the worker instance.
pub fn worker_rooms(p: &str, inst: &str) -> String {
    format!("{p}{{w:{inst}}}:rooms")
}

/// Pub/sub channel a worker instance subscribes to; deliveries are published only to the
/// instances that hold a recipient.
pub fn worker_channel(p: &str, inst: &str) -> String {
    format!("{p}{{w:{inst}}}:deliver")
}

/// SET of worker instances holding sockets of the user: the user map.
pub fn user_workers(p: &str, user: &str) -> String {
    format!("{p}{{u:{user}}}:workers")
}

/// STREAM of the user's unacknowledged direct messages.
pub fn inbox(p: &str, user: &str) -> String {
    format!("{p}{{u:{user}}}:inbox")
}

/// SET of worker instances holding member sockets of the room.
pub fn room_workers(p: &str, room: &str) -> String {
    format!("{p}{{r:{room}}}:workers")
}

/// STREAM of the room's last messages.
pub fn room_history(p: &str, room: &str) -> String {
    format!("{p}{{r:{room}}}:history")
}

/// ZSET (all scores 0, so ordered by name) of online usernames, for `list users`, on one
/// Redis. A cluster spreads them over [`ONLINE_BUCKETS`] ZSETs ([`online_bucket`]).
pub fn online(p: &str) -> String {
    format!("{p}online")
}

/// How many ZSETs hold the online users on a Redis Cluster: each its own slot, so logins and
/// logouts spread over the shards instead of all writing one key.
pub const ONLINE_BUCKETS: u32 = 16;

/// The online ZSET that holds `user` on a cluster: bucket [`user_bucket`]`(user)`.
pub fn online_bucket(p: &str, bucket: u32) -> String {
    format!("{p}{{online:{bucket}}}")
}

/// The bucket of a username: FNV-1a, stable across processes and versions.
pub fn user_bucket(user: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in user.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % ONLINE_BUCKETS
}

/// Refuses a prefix with a brace: it would become (part of) every key's hash tag.
pub fn check_prefix(p: &str) -> Result<(), String> {
    if p.contains(['{', '}']) {
        return Err(format!(
            "the Redis key prefix {p:?} must not contain braces (they make Redis Cluster hash tags)"
        ));
    }
    Ok(())
}

/// ZSET of `ADDR:PORT` service members (chatctl hosts' workers), scored by expiry in ms.
pub fn members(p: &str) -> String {
    format!("{p}{{members}}")
}

/// HASH `ADDR:PORT` → JSON member info, for `chatctl status`.
pub fn member_info(p: &str) -> String {
    format!("{p}{{members}}:info")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_prefixed_and_typed() {
        assert_eq!(inbox("chat:", "bob"), "chat:{u:bob}:inbox");
        assert_eq!(user_workers("chat:", "bob"), "chat:{u:bob}:workers");
        assert_eq!(worker_channel("x:", "w1"), "x:{w:w1}:deliver");
        assert_eq!(room_history("chat:", "lobby"), "chat:{r:lobby}:history");
        assert_eq!(members(DEFAULT_PREFIX), "chat:{members}");
        assert_eq!(member_info(DEFAULT_PREFIX), "chat:{members}:info");
        assert_eq!(online_bucket("chat:", 3), "chat:{online:3}");
    }

    #[test]
    fn templates_hold_one_slot_after_the_prefix() {
        assert_eq!(worker_users("chat:", SLOT), "chat:{w:{}}:users");
        assert_eq!(room_workers("chat:", SLOT), "chat:{r:{}}:workers");
    }
}
