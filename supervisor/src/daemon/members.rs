//! Service membership (with `--advertise`): register this host's healthy workers in the
//! shared Redis, withdraw the others, and, as a front door, follow the live member set. The
//! Redis side is `crate::membership`.

use super::{every_second_until_shutdown, Sup, Supervisor};
use crate::membership::{self, MemberInfo};
use chat::control::WorkerState;
use chat::link::LinkConnection;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// Invalid member keys already warned about, so that a bad record (re-read every second)
/// makes one warning line, not one a second. One supervisor per process.
static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Drops members that may not become server lines (`haproxy::check_member`), with a warning
/// the first time each is seen.
fn valid_only(members: Vec<MemberInfo>) -> Vec<MemberInfo> {
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    let mut bad_now = BTreeSet::new();
    let valid = members
        .into_iter()
        .filter(|m| match crate::haproxy::check_member(&m.host, m.port) {
            Ok(()) => true,
            Err(why) => {
                let key = m.key();
                if !warned.contains(&key) {
                    tracing::warn!("skipping service member {key:?} read from redis: {why}");
                }
                bad_now.insert(key);
                false
            }
        })
        .collect();
    // Forget the ones that left, so a bad record written again is reported again.
    *warned = bad_now;
    valid
}

impl Supervisor {
    /// Registers this host's healthy workers and withdraws the others.
    pub(super) async fn register_local(&self) {
        let Some(link) = &self.link else { return };
        let host = self.worker_host().to_owned();
        let (healthy, unhealthy): (Vec<MemberInfo>, Vec<String>) = {
            let s = self.lock();
            let mut healthy = Vec::new();
            let mut unhealthy = Vec::new();
            for (id, slot) in &s.slots {
                let l = &slot.life;
                let ok = l.state() == WorkerState::Up && l.health() == 200 && !l.stopping();
                if ok && !s.stopping {
                    healthy.push(MemberInfo {
                        host: host.clone(),
                        port: slot.port,
                        worker: *id,
                        pid: l.pid(),
                    });
                } else {
                    unhealthy.push(format!("{host}:{}", slot.port));
                }
            }
            (healthy, unhealthy)
        };
        let mut con = LinkConnection(link.clone());
        if let Err(e) = membership::register(&mut con, &healthy).await {
            tracing::warn!("cannot register workers in redis: {e}");
        }
        if let Err(e) = membership::deregister(&mut con, &unhealthy).await {
            tracing::debug!("cannot withdraw workers: {e}");
        }
    }

    pub(super) async fn deregister(&self, ids: &[u32]) {
        let Some(link) = &self.link else { return };
        let keys: Vec<String> = {
            let s = self.lock();
            ids.iter()
                .filter_map(|id| s.slots.get(id))
                .map(|slot| format!("{}:{}", self.worker_host(), slot.port))
                .collect()
        };
        let mut con = LinkConnection(link.clone());
        if let Err(e) = membership::deregister(&mut con, &keys).await {
            tracing::warn!("cannot withdraw workers from redis: {e}");
        }
    }

    /// Reads the live members; `true` when the set changed.
    pub(super) async fn refresh_members(&self) -> bool {
        let Some(link) = &self.link else {
            return false;
        };
        let mut con = LinkConnection(link.clone());
        match membership::live(&mut con).await {
            Ok(members) => {
                let members = valid_only(members);
                let mut s = self.lock();
                let changed = s.members != members;
                s.members = members;
                changed
            }
            Err(e) => {
                // Keep routing to the last known set while Redis is away.
                tracing::warn!("cannot read the service's members: {e}");
                false
            }
        }
    }

    /// Every second: refresh our registrations and, as a front door, follow the member set.
    pub(super) async fn membership_loop(self: Sup) {
        let mut rx = self.shutdown.subscribe();
        while every_second_until_shutdown(&mut rx).await {
            if self.lock().stopping {
                return;
            }
            self.register_local().await;
            if !self.settings.haproxy.enabled {
                continue;
            }
            // Scale and reload render and reload themselves; don't interleave with them.
            let Ok(_op) = self.ops.try_lock() else {
                continue;
            };
            let before: Vec<String> = self.lock().members.iter().map(MemberInfo::key).collect();
            if self.refresh_members().await {
                let after: Vec<String> = self.lock().members.iter().map(MemberInfo::key).collect();
                tracing::info!("service members changed: {before:?} -> {after:?}");
                if let Err(e) = self.reload_haproxy().await {
                    tracing::error!("cannot reload haproxy for the new member set: {e:#}");
                }
            }
        }
    }
}
