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

/// A key or channel name as its parts: `prefix`, then `open` (the hash tag's start, when
/// any), `name`, `close`. It is written into a command piece by piece
/// ([`ToRedisArgs`](redis::ToRedisArgs)), so the hot path (a send, an ack, a delivery) builds
/// no `String` and runs no formatting machinery for it; `to_string()` spells it where a
/// `String` is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name<'a> {
    prefix: &'a str,
    open: &'static str,
    name: &'a str,
    close: &'static str,
}

impl<'a> Name<'a> {
    const fn new(prefix: &'a str, open: &'static str, name: &'a str, close: &'static str) -> Self {
        Self {
            prefix,
            open,
            name,
            close,
        }
    }

    fn parts(&self) -> [&str; 4] {
        [self.prefix, self.open, self.name, self.close]
    }

    /// The name's length in bytes.
    pub fn len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    /// Never: every name has a suffix; here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.parts().iter().try_for_each(|p| f.write_str(p))
    }
}

impl redis::ToRedisArgs for Name<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        let mut arg = out.writer_for_next_arg();
        for part in self.parts() {
            // Writing into the command's own buffer cannot fail.
            let _ = arg.write_all(part.as_bytes());
        }
    }
}

/// SET of live worker instance ids.
pub fn workers(p: &str) -> Name<'_> {
    Name::new(p, "", "", "workers")
}

/// STRING with a TTL: present while the worker instance heartbeats.
pub fn worker_alive<'a>(p: &'a str, inst: &'a str) -> Name<'a> {
    Name::new(p, "{w:", inst, "}:alive")
}

/// SET of usernames with at least one socket on the worker instance.
pub fn worker_users<'a>(p: &'a str, inst: &'a str) -> Name<'a> {
    Name::new(p, "{w:", inst, "}:users")
}

/// SET of rooms with at least one member socket on the worker instance.
pub fn worker_rooms<'a>(p: &'a str, inst: &'a str) -> Name<'a> {
    Name::new(p, "{w:", inst, "}:rooms")
}

/// Pub/sub channel a worker instance subscribes to; deliveries are published only to the
/// instances that hold a recipient.
pub fn worker_channel<'a>(p: &'a str, inst: &'a str) -> Name<'a> {
    Name::new(p, "{w:", inst, "}:deliver")
}

/// SET of worker instances holding sockets of the user: the user map.
pub fn user_workers<'a>(p: &'a str, user: &'a str) -> Name<'a> {
    Name::new(p, "{u:", user, "}:workers")
}

/// STREAM of the user's unacknowledged direct messages.
pub fn inbox<'a>(p: &'a str, user: &'a str) -> Name<'a> {
    Name::new(p, "{u:", user, "}:inbox")
}

/// SET of worker instances holding member sockets of the room.
pub fn room_workers<'a>(p: &'a str, room: &'a str) -> Name<'a> {
    Name::new(p, "{r:", room, "}:workers")
}

/// STREAM of the room's last messages.
pub fn room_history<'a>(p: &'a str, room: &'a str) -> Name<'a> {
    Name::new(p, "{r:", room, "}:history")
}

/// ZSET (all scores 0, so ordered by name) of online usernames, for `list users`, on one
/// Redis. A cluster spreads them over [`ONLINE_BUCKETS`] ZSETs ([`online_bucket`]).
pub fn online(p: &str) -> Name<'_> {
    Name::new(p, "", "", "online")
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
        assert_eq!(inbox("chat:", "bob").to_string(), "chat:{u:bob}:inbox");
        assert_eq!(
            user_workers("chat:", "bob").to_string(),
            "chat:{u:bob}:workers"
        );
        assert_eq!(worker_channel("x:", "w1").to_string(), "x:{w:w1}:deliver");
        assert_eq!(
            room_history("chat:", "lobby").to_string(),
            "chat:{r:lobby}:history"
        );
        assert_eq!(workers("chat:").to_string(), "chat:workers");
        assert_eq!(online("chat:").to_string(), "chat:online");
        assert_eq!(members(DEFAULT_PREFIX), "chat:{members}");
        assert_eq!(member_info(DEFAULT_PREFIX), "chat:{members}:info");
        assert_eq!(online_bucket("chat:", 3), "chat:{online:3}");
    }

    #[test]
    fn templates_hold_one_slot_after_the_prefix() {
        assert_eq!(worker_users("chat:", SLOT).to_string(), "chat:{w:{}}:users");
        assert_eq!(
            room_workers("chat:", SLOT).to_string(),
            "chat:{r:{}}:workers"
        );
    }

    #[test]
    fn a_name_is_written_into_a_command_as_one_argument() {
        let mut cmd = redis::cmd("XDEL");
        cmd.arg(inbox("chat:", "bob")).arg("1-0");
        let args: Vec<_> = cmd.args_iter().collect();
        assert_eq!(args.len(), 3);
        assert_eq!(args[1], redis::Arg::Simple(&b"chat:{u:bob}:inbox"[..]));
        assert_eq!(inbox("chat:", "bob").len(), "chat:{u:bob}:inbox".len());
    }
}
