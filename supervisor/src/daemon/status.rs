//! Assembles `chatctl status`: each worker's lifecycle, CPU (two /proc samples), its
//! `/metrics`, HAProxy's `show stat`, Redis's PING and the service members.

use super::children::ChildId;
use super::http::worker_metrics;
use super::{Sup, Supervisor};
use crate::haproxy;
use crate::procs;
use chat::control::{
    HaproxyStatus, MemberStatus, RedisStatus, ServerStatus, StatusReport, SupervisorStatus,
    WorkerState, WorkerStatus,
};
use std::time::{Duration, Instant};

/// One worker as the lock saw it.
struct Snap {
    id: u32,
    port: u16,
    core: Option<u32>,
    state: WorkerState,
    pid: Option<u32>,
    restarts: u32,
    started: Option<Instant>,
    health: u16,
}

impl Supervisor {
    pub(super) async fn status(self: &Sup) -> StatusReport {
        let slots: Vec<Snap> = self
            .lock()
            .slots
            .iter()
            .map(|(id, s)| Snap {
                id: *id,
                port: s.port,
                core: s.core,
                state: s.life.state(),
                pid: s.life.pid(),
                restarts: s.life.restarts(),
                started: s.life.started_at(),
                health: s.life.health(),
            })
            .collect();
        let (workers, machine) = self.worker_statuses(slots).await;
        let generation = self.lock().generation;
        let servers = if self.settings.haproxy.enabled {
            let csv = haproxy::cli(&self.state_dir.haproxy_admin_socket(), "show stat")
                .await
                .unwrap_or_default();
            haproxy::parse_server_states(&csv)
                .into_iter()
                .map(|(name, state)| ServerStatus { name, state })
                .collect()
        } else {
            Vec::new()
        };
        let rtt = self.redis_ping().await;
        let nodes = self.redis_cluster_nodes().await;
        let members = self
            .lock()
            .members
            .iter()
            .map(|m| MemberStatus {
                host: m.host.clone(),
                port: m.port,
                worker: m.worker,
                pid: m.pid,
                local: Some(m.host.as_str()) == self.settings.advertise.as_deref(),
            })
            .collect();
        StatusReport {
            machine,
            members,
            supervisor: SupervisorStatus {
                pid: std::process::id(),
                state_dir: self.state_dir.root().display().to_string(),
            },
            workers,
            haproxy: HaproxyStatus {
                pid: self.pid_of(ChildId::Haproxy),
                port: self.settings.port,
                generation,
                servers,
            },
            redis: RedisStatus {
                url: chat::store::redact_url(&self.redis.url),
                embedded: self.redis.embedded,
                pid: self.pid_of(ChildId::Redis),
                up: rtt.is_some(),
                rtt_ms: rtt.map(|r| (r * 100.0).round() / 100.0),
                nodes,
            },
        }
    }

    /// The worker rows and the machine line, from one usage sample.
    async fn worker_statuses(
        &self,
        slots: Vec<Snap>,
    ) -> (Vec<WorkerStatus>, Option<chat::control::MachineStatus>) {
        let pids: Vec<u32> = slots.iter().filter_map(|s| s.pid).collect();
        let usage = procs::sample_usage(&pids, Duration::from_millis(250)).await;
        let mut workers = Vec::new();
        for w in slots {
            let measured = w.pid.and_then(|p| usage.processes.get(&p).copied());
            let metrics = match w.pid {
                Some(_) => worker_metrics(self.worker_host(), w.port).await,
                None => None,
            };
            workers.push(WorkerStatus {
                id: w.id,
                pid: w.pid,
                port: w.port,
                core: w.core,
                state: w.state,
                restarts: w.restarts,
                connections: metrics.map(|m| m.0),
                users: metrics.map(|m| m.1),
                cpu_percent: measured.map(|(c, _)| (c * 10.0).round() / 10.0),
                rss_bytes: measured.map(|(_, rss)| rss),
                uptime_secs: w.pid.and(w.started).map(|t| t.elapsed().as_secs()),
                health: w.health,
            });
        }
        (workers, usage.machine)
    }
}
