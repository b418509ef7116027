//! The worker slots: add one, wait for its `/health` 200, drain it, and the background
//! health checks whose results `status` shows.

use super::children::ChildId;
use super::http::health;
use super::lifecycle::{Event, Life};
use super::wait::wait_until;
use super::{every_second_until_shutdown, Slot, Sup, Supervisor, START_TIMEOUT};
use crate::plan::{worker_core, worker_port};
use anyhow::{bail, Context};
use chat::control::WorkerState;
use std::time::{Duration, Instant};

impl Supervisor {
    pub(super) fn add_slot(&self, id: u32) -> anyhow::Result<()> {
        let port = worker_port(self.settings.base_port, id).context("worker port past 65535")?;
        self.lock().slots.insert(
            id,
            Slot {
                port,
                core: self.settings.pin.then(|| {
                    crate::procs::core_for(&self.cpus, id as usize)
                        .unwrap_or_else(|| worker_core(id, self.cores))
                }),
                life: Life::giving_up_after(self.settings.max_restarts),
            },
        );
        Ok(())
    }

    pub(super) fn worker_port(&self, id: u32) -> Option<u16> {
        self.lock().slots.get(&id).map(|s| s.port)
    }

    pub(super) async fn wait_worker_healthy(&self, id: u32) -> anyhow::Result<()> {
        let log = self.state_dir.log(&format!("worker-{id}"));
        let check = || async {
            let port = {
                let s = self.lock();
                let Some(slot) = s.slots.get(&id) else {
                    return Some(Err(anyhow::anyhow!("worker vanished")));
                };
                if slot.life.state() == WorkerState::Failed {
                    return Some(Err(anyhow::anyhow!(
                        "worker-{id} keeps crashing: see {}",
                        log.display()
                    )));
                }
                slot.port
            };
            if health(self.worker_host(), port).await == 200 {
                self.apply(ChildId::Worker(id), Event::Health(200));
                return Some(Ok(()));
            }
            None
        };
        match wait_until(Instant::now() + START_TIMEOUT, check).await {
            Some(result) => result,
            None => bail!(
                "worker-{id} did not become healthy within {START_TIMEOUT:?}: see {}",
                log.display()
            ),
        }
    }

    /// SIGTERMs worker `id` and waits for it to exit (SIGKILL after the drain timeout).
    pub(super) async fn stop_worker(&self, id: u32) {
        let grace = self.settings.drain_timeout + Duration::from_secs(2);
        self.stop_child(ChildId::Worker(id), grace).await;
    }

    /// Background `/health` checks; `status` shows what they saw.
    pub(super) async fn health_loop(self: Sup) {
        let mut rx = self.shutdown.subscribe();
        while every_second_until_shutdown(&mut rx).await {
            let ports: Vec<(u32, u16)> = self
                .lock()
                .slots
                .iter()
                .filter(|(_, s)| s.life.pid().is_some())
                .map(|(id, s)| (*id, s.port))
                .collect();
            for (id, port) in ports {
                let code = health(self.worker_host(), port).await;
                self.apply(ChildId::Worker(id), Event::Health(code));
            }
        }
    }
}
