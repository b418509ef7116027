//! Service membership across hosts (SPEC §5). Every `chatctl up --advertise ADDR` registers
//! its healthy workers in the shared Redis with an expiry it keeps pushing forward; every
//! chatctl that runs HAProxy renders all live members into its haproxy.cfg and reloads when
//! the set changes. A host that dies stops refreshing and drops out within
//! [`MEMBER_TTL`](store::MEMBER_TTL).
//!
//! The Redis side (keys, pipelines, the pruning script) is `chat::store::membership`; this
//! module adds the HAProxy naming and binds it to the supervisor's [`LinkConnection`].

use chat::link::LinkConnection;
use chat::store::membership as store;

pub use store::MemberInfo;
// Part of this module's API for the daemon (a member key back to host and port), though
// nothing in the supervisor calls it at the moment.
#[allow(unused_imports)]
pub use store::split_key;

/// The HAProxy server name (and stickiness cookie) of a member: stable across hosts.
pub fn server_name(host: &str, port: u16) -> String {
    let host: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("h{host}_{port}")
}

/// Registers (or refreshes) `members` for another [`MEMBER_TTL`](store::MEMBER_TTL).
pub async fn register(con: &mut LinkConnection, members: &[MemberInfo]) -> redis::RedisResult<()> {
    store::register(con, members).await
}

/// Removes members at once (drain, scale down, `down`).
pub async fn deregister(con: &mut LinkConnection, keys: &[String]) -> redis::RedisResult<()> {
    store::deregister(con, keys).await
}

/// Live members, sorted by key; expired ones are pruned on the way.
pub async fn live(con: &mut LinkConnection) -> redis::RedisResult<Vec<MemberInfo>> {
    store::live(con).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_stable_and_haproxy_safe() {
        assert_eq!(server_name("10.0.0.7", 30001), "h10_0_0_7_30001");
        assert_eq!(server_name("::1", 5), "h__1_5");
    }
}
