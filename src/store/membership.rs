//! Service membership across hosts (SPEC §5), the Redis side: every `chatctl up --advertise
//! ADDR` registers its healthy workers with an expiry it keeps pushing forward, and every
//! front door reads the live set. Keys: [`keys::members`] (ZSET of `ADDR:PORT` scored by
//! expiry, ms since the epoch) and [`keys::member_info`] (HASH `ADDR:PORT` → JSON
//! [`MemberInfo`]), under [`keys::DEFAULT_PREFIX`].

use super::call::ScriptCall;
use super::keys::{self, DEFAULT_PREFIX};
use super::now_ms;
use super::scripts::MEMBERS_LIVE;
use redis::aio::ConnectionLike;
use redis::RedisResult;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a registration lives unless refreshed: a host that dies drops out within this.
pub const MEMBER_TTL: Duration = Duration::from_secs(5);

/// One registered worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The advertised address of the host.
    pub host: String,
    pub port: u16,
    /// The worker's number on its host.
    pub worker: u32,
    pub pid: Option<u32>,
}

impl MemberInfo {
    /// `ADDR:PORT`, the member's name in both keys.
    pub fn key(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Splits `ADDR:PORT` (IPv6 addresses keep their colons).
pub fn split_key(key: &str) -> Option<(String, u16)> {
    let (h, p) = key.rsplit_once(':')?;
    Some((h.to_owned(), p.parse().ok()?))
}

/// Registers (or refreshes) `members` for another [`MEMBER_TTL`], in one pipeline.
pub async fn register<C: ConnectionLike>(con: &mut C, members: &[MemberInfo]) -> RedisResult<()> {
    if members.is_empty() {
        return Ok(());
    }
    let expiry = now_ms() + MEMBER_TTL.as_millis() as u64;
    let mut zadd = redis::cmd("ZADD");
    zadd.arg(keys::members(DEFAULT_PREFIX));
    let mut hset = redis::cmd("HSET");
    hset.arg(keys::member_info(DEFAULT_PREFIX));
    for m in members {
        zadd.arg(expiry).arg(m.key());
        hset.arg(m.key())
            .arg(serde_json::to_string(m).unwrap_or_default());
    }
    redis::pipe()
        .add_command(zadd)
        .ignore()
        .add_command(hset)
        .ignore()
        .query_async(con)
        .await
}

/// Removes members at once (drain, scale down, `down`).
pub async fn deregister<C: ConnectionLike>(con: &mut C, keys: &[String]) -> RedisResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    redis::pipe()
        .cmd("ZREM")
        .arg(keys::members(DEFAULT_PREFIX))
        .arg(keys)
        .ignore()
        .cmd("HDEL")
        .arg(keys::member_info(DEFAULT_PREFIX))
        .arg(keys)
        .ignore()
        .query_async(con)
        .await
}

/// Live members, sorted by key; expired ones are pruned on the way. One script, one round
/// trip; a member whose info is missing or unreadable is still listed, from its key.
pub async fn live<C: ConnectionLike>(con: &mut C) -> RedisResult<Vec<MemberInfo>> {
    let mut inv = ScriptCall::new(&MEMBERS_LIVE, 2);
    inv.key(keys::members(DEFAULT_PREFIX))
        .key(keys::member_info(DEFAULT_PREFIX))
        .arg(now_ms());
    let flat: Vec<Option<String>> = inv.invoke(con).await?;
    let mut out: Vec<MemberInfo> = flat
        .chunks_exact(2)
        .filter_map(|pair| {
            let key = pair[0].as_deref()?;
            let info = pair[1].as_deref();
            match info.and_then(|j| serde_json::from_str::<MemberInfo>(j).ok()) {
                Some(m) => Some(m),
                None => split_key(key).map(|(host, port)| MemberInfo {
                    host,
                    port,
                    worker: 0,
                    pid: None,
                }),
            }
        })
        .collect();
    out.sort_by_key(|m| (m.host.clone(), m.port));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::recorder::{bulk, Recorder};
    use redis::Value;

    fn member(host: &str, port: u16) -> MemberInfo {
        MemberInfo {
            host: host.into(),
            port,
            worker: 1,
            pid: Some(42),
        }
    }

    #[test]
    fn keys_split_back() {
        assert_eq!(
            split_key("127.0.0.2:30001"),
            Some(("127.0.0.2".into(), 30001))
        );
        assert_eq!(split_key("::1:7"), Some(("::1".into(), 7)));
        assert_eq!(split_key("nope"), None);
    }

    #[tokio::test]
    async fn register_is_one_zadd_and_one_hset() {
        let mut rec = Recorder::default();
        let ms = [member("10.0.0.1", 30001), member("10.0.0.2", 30002)];
        register(&mut rec, &ms).await.unwrap();
        let sent = rec.sent();
        assert_eq!(sent.len(), 2);
        let (zadd, hset) = (&sent[0], &sent[1]);
        assert_eq!(zadd[..2], ["ZADD", "chat:{members}"]);
        let expiry: u64 = zadd[2].parse().unwrap();
        assert!(expiry > now_ms());
        assert_eq!(
            zadd[2..],
            [&zadd[2], "10.0.0.1:30001", &zadd[2], "10.0.0.2:30002"]
        );
        assert_eq!(hset[..3], ["HSET", "chat:{members}:info", "10.0.0.1:30001"]);
        assert_eq!(serde_json::from_str::<MemberInfo>(&hset[3]).unwrap(), ms[0]);
        assert_eq!(hset[4], "10.0.0.2:30002");
        assert_eq!(hset.len(), 6);
    }

    #[tokio::test]
    async fn deregister_removes_from_both_keys() {
        let mut rec = Recorder::default();
        deregister(&mut rec, &["a:1".into(), "b:2".into()])
            .await
            .unwrap();
        assert_eq!(
            rec.sent(),
            [
                vec!["ZREM", "chat:{members}", "a:1", "b:2"],
                vec!["HDEL", "chat:{members}:info", "a:1", "b:2"],
            ]
        );
        // Nothing to do, nothing sent.
        deregister(&mut rec, &[]).await.unwrap();
        register(&mut rec, &[]).await.unwrap();
        assert_eq!(rec.sent().len(), 2);
    }

    #[tokio::test]
    async fn live_is_one_script_and_falls_back_to_the_key() {
        let json = serde_json::to_string(&member("10.0.0.2", 30002)).unwrap();
        let mut rec = Recorder::default().reply(Value::Array(vec![
            bulk("10.0.0.2:30002"),
            bulk(&json),
            bulk("10.0.0.1:30001"),
            Value::Nil,
        ]));
        let members = live(&mut rec).await.unwrap();
        assert_eq!(
            members,
            [
                MemberInfo {
                    host: "10.0.0.1".into(),
                    port: 30001,
                    worker: 0,
                    pid: None
                },
                member("10.0.0.2", 30002),
            ]
        );
        let sent = rec.sent();
        assert_eq!(sent.len(), 1, "one round trip");
        assert_eq!(sent[0][0], "EVALSHA");
        assert_eq!(
            sent[0][2..5],
            ["2", "chat:{members}", "chat:{members}:info"]
        );
    }
}
