//! Service membership across hosts (SPEC §5). Every `chatctl up --advertise ADDR` registers
//! its healthy workers in the shared Redis with an expiry it keeps pushing forward; every
//! chatctl that runs HAProxy renders all live members into its haproxy.cfg and reloads when
//! the set changes. A host that dies stops refreshing and drops out within [`MEMBER_TTL`].
//!
//! Keys (prefix `chat:`): `chat:members`, a ZSET of `ADDR:PORT` scored by expiry (ms since
//! the epoch); `chat:member-info`, a HASH `ADDR:PORT` → JSON [`MemberInfo`] for `status`.

use chat::link::LinkConnection;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const MEMBER_TTL: Duration = Duration::from_secs(5);
const PREFIX: &str = "chat:";

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
    pub fn key(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The HAProxy server name (and stickiness cookie) of a member: stable across hosts.
pub fn server_name(host: &str, port: u16) -> String {
    let host: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("h{host}_{port}")
}

/// Splits `ADDR:PORT` (IPv6 addresses keep their colons).
pub fn split_key(key: &str) -> Option<(String, u16)> {
    let (h, p) = key.rsplit_once(':')?;
    Some((h.to_owned(), p.parse().ok()?))
}

fn now_ms() -> u64 {
    chat::store::now_ms()
}

/// Registers (or refreshes) `members` for another [`MEMBER_TTL`].
pub async fn register(con: &mut LinkConnection, members: &[MemberInfo]) -> redis::RedisResult<()> {
    if members.is_empty() {
        return Ok(());
    }
    let expiry = now_ms() + MEMBER_TTL.as_millis() as u64;
    let mut pipe = redis::pipe();
    for m in members {
        pipe.cmd("ZADD")
            .arg(format!("{PREFIX}members"))
            .arg(expiry)
            .arg(m.key())
            .ignore();
        pipe.cmd("HSET")
            .arg(format!("{PREFIX}member-info"))
            .arg(m.key())
            .arg(serde_json::to_string(m).unwrap_or_default())
            .ignore();
    }
    pipe.query_async(con).await
}

/// Removes members at once (drain, scale down, `down`).
pub async fn deregister(con: &mut LinkConnection, keys: &[String]) -> redis::RedisResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    redis::pipe()
        .cmd("ZREM")
        .arg(format!("{PREFIX}members"))
        .arg(keys)
        .ignore()
        .cmd("HDEL")
        .arg(format!("{PREFIX}member-info"))
        .arg(keys)
        .ignore()
        .query_async(con)
        .await
}

/// Live members, sorted by key; expired ones are pruned on the way.
pub async fn live(con: &mut LinkConnection) -> redis::RedisResult<Vec<MemberInfo>> {
    let now = now_ms();
    let expired: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(format!("{PREFIX}members"))
        .arg("-inf")
        .arg(now)
        .query_async(con)
        .await?;
    if !expired.is_empty() {
        deregister(con, &expired).await?;
    }
    let keys: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(format!("{PREFIX}members"))
        .arg(now)
        .arg("+inf")
        .query_async(con)
        .await?;
    let mut out = Vec::new();
    for key in keys {
        let info: Option<String> = redis::cmd("HGET")
            .arg(format!("{PREFIX}member-info"))
            .arg(&key)
            .query_async(con)
            .await?;
        let parsed = info.and_then(|j| serde_json::from_str::<MemberInfo>(&j).ok());
        match (parsed, split_key(&key)) {
            (Some(m), _) => out.push(m),
            (None, Some((host, port))) => out.push(MemberInfo {
                host,
                port,
                worker: 0,
                pid: None,
            }),
            _ => {}
        }
    }
    out.sort_by_key(|m| (m.host.clone(), m.port));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_stable_and_haproxy_safe() {
        assert_eq!(server_name("10.0.0.7", 30001), "h10_0_0_7_30001");
        assert_eq!(server_name("::1", 5), "h__1_5");
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
}
