//! `chatctl scale N`: start the new workers (health-checked, then put in HAProxy), or take
//! the surplus out of HAProxy, drain and stop them.

use super::super::children::ChildId;
use super::super::{Sup, Supervisor};
use crate::plan::{plan_scale, worker_port};
use anyhow::bail;

impl Supervisor {
    pub(in crate::daemon) async fn scale(self: &Sup, target: u32) -> anyhow::Result<String> {
        if target == 0 {
            bail!("scale to at least 1 worker");
        }
        let _op = self.ops.lock().await;
        let current: Vec<u32> = self.lock().slots.keys().copied().collect();
        let plan = plan_scale(&current, target);
        if plan.start.is_empty() && plan.stop.is_empty() {
            return Ok(format!("already at {target} {}", workers_word(target)));
        }
        for id in &plan.start {
            let Some(port) = worker_port(self.settings.base_port, *id) else {
                bail!("worker {id} would need a port past 65535");
            };
            if let Err(e) = std::net::TcpListener::bind((self.worker_host(), port)) {
                bail!("port {port} for worker-{id} is not free ({e}): free it or scale to fewer workers");
            }
        }
        for id in &plan.start {
            self.add_slot(*id)?;
            self.spawn_child(ChildId::Worker(*id))?;
        }
        for id in &plan.start {
            if let Err(e) = self.wait_worker_healthy(*id).await {
                for id in &plan.start {
                    self.stop_worker(*id).await;
                    self.lock().slots.remove(id);
                }
                return Err(e);
            }
        }
        if !plan.start.is_empty() {
            self.register_local().await;
            self.refresh_members().await;
            self.reload_haproxy().await?;
        }
        if !plan.stop.is_empty() {
            let admin = self.state_dir.haproxy_admin_socket();
            for id in &plan.stop {
                self.retire_from_haproxy(&admin, *id).await;
            }
            for id in &plan.stop {
                self.stop_worker(*id).await;
                self.lock().slots.remove(id);
            }
            self.refresh_members().await;
            self.reload_haproxy().await?;
        }
        let names = |verb: &str, ids: &[u32]| {
            (!ids.is_empty()).then(|| {
                let list: Vec<String> = ids.iter().map(|id| format!("worker-{id}")).collect();
                format!("{verb} {}", list.join(", "))
            })
        };
        let what: Vec<String> = [names("started", &plan.start), names("drained", &plan.stop)]
            .into_iter()
            .flatten()
            .collect();
        Ok(format!(
            "scaled to {target} {}: {}",
            workers_word(target),
            what.join("; ")
        ))
    }
}

fn workers_word(n: u32) -> &'static str {
    if n == 1 {
        "worker"
    } else {
        "workers"
    }
}
