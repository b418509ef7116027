//! `chatctl restart NAME`: replaces one child — `worker-N` drained and replaced on its port
//! (the others untouched), `haproxy` reloaded, the embedded `redis` restarted on its data.

use super::super::children::ChildId;
use super::super::lifecycle::Event;
use super::super::{Sup, Supervisor};
use anyhow::bail;
use std::time::Duration;

/// How long the embedded Redis gets to persist and exit after SIGTERM.
const REDIS_GRACE: Duration = Duration::from_secs(10);

impl Supervisor {
    pub(in crate::daemon) async fn restart(self: &Sup, name: &str) -> anyhow::Result<String> {
        let _op = self.ops.lock().await;
        match name {
            "haproxy" => {
                if !self.settings.haproxy.enabled {
                    bail!("this host runs no HAProxy (--haproxy off)");
                }
                self.reload_haproxy().await?;
                Ok("reloaded haproxy".to_owned())
            }
            "redis" => {
                if !self.redis.embedded {
                    bail!(
                        "redis is not embedded here (--redis names a server chatctl does not own)"
                    );
                }
                self.stop_child(ChildId::Redis, REDIS_GRACE).await;
                self.apply(ChildId::Redis, Event::ForgetCrashes);
                self.spawn_child(ChildId::Redis)?;
                self.wait_redis().await?;
                Ok("restarted redis".to_owned())
            }
            _ => {
                let ids: Vec<u32> = self.lock().slots.keys().copied().collect();
                let id = name
                    .strip_prefix("worker-")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|id| ids.contains(id));
                let Some(id) = id else {
                    let workers: Vec<String> = ids.iter().map(|i| format!("worker-{i}")).collect();
                    bail!(
                        "no child named {name:?}: restart one of {}, haproxy, redis",
                        workers.join(", ")
                    );
                };
                let admin = self.state_dir.haproxy_admin_socket();
                self.retire_from_haproxy(&admin, id).await;
                self.stop_worker(id).await;
                // A deliberate replacement: its backoff starts over.
                self.apply(ChildId::Worker(id), Event::ForgetCrashes);
                self.spawn_child(ChildId::Worker(id))?;
                self.wait_worker_healthy(id).await?;
                self.register_local().await;
                self.readmit(&admin, id).await?;
                let pid = self.pid_of(ChildId::Worker(id));
                Ok(match pid {
                    Some(pid) => format!("restarted worker-{id} (pid {pid})"),
                    None => format!("restarted worker-{id}"),
                })
            }
        }
    }
}
