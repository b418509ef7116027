//! The supervisor: owns the embedded Redis, the workers and HAProxy; restarts what crashes;
//! scales, reloads and stops on request. This module holds the shared state and `start`;
//! each submodule has one job (see `main.rs` for the map). Decisions come from pure
//! functions (`lifecycle::step`, `policy`, `plan`, `haproxy::render`); the rest is plumbing.
//!
//! Concurrency model: one current_thread runtime (so PR_SET_PDEATHSIG, which is tied to the
//! spawning *thread*, is tied to the supervisor's life). State lives behind a std mutex that
//! is never held across an await; operations that change the worker set (`scale`, `reload`,
//! `down`) are serialized by an async mutex.

mod children;
mod frontdoor;
mod handlers;
mod http;
mod lifecycle;
mod members;
mod preflight;
mod redis;
mod scrape;
mod status;
mod wait;
mod workers;

pub use preflight::{check_private_dir, open_door_warning, preflight, Preflight};
pub use scrape::{bind_metrics, serve as serve_metrics};

use crate::membership::MemberInfo;
use crate::procs::{self, Echo, LogSink};
use crate::settings::Settings;
use chat::paths::StateDir;
use children::ChildId;
use lifecycle::Life;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long a new child may take to be ready (worker `/health` 200, Redis PING, HAProxy
/// serving).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One worker position (id ↔ port ↔ core).
struct Slot {
    port: u16,
    /// `None` with `--pin off`.
    core: Option<u32>,
    life: Life,
}

#[derive(Default)]
struct Shared {
    slots: BTreeMap<u32, Slot>,
    /// The embedded Redis.
    redis: Life,
    /// The HAProxy master.
    haproxy: Life,
    /// The haproxy.cfg generation last written.
    generation: u64,
    /// `down` in progress: nothing is restarted or registered any more.
    stopping: bool,
    /// With `--advertise`: the service's live workers (all hosts) last read from Redis; the
    /// HAProxy configuration lists exactly these.
    members: Vec<MemberInfo>,
    /// Numbers every spawned process, so stale exit events are recognised.
    seq: u64,
}

/// Where workers find Redis.
#[derive(Clone)]
struct RedisTarget {
    url: String,
    password: Option<String>,
    embedded: bool,
}

pub struct Supervisor {
    settings: Settings,
    state_dir: StateDir,
    cores: usize,
    /// The CPUs chatctl may run on, read once; workers are pinned within this set.
    cpus: Vec<u32>,
    worker_bin: PathBuf,
    redis_bin: PathBuf,
    haproxy_bin: PathBuf,
    /// The descriptor limit, which sizes HAProxy's maxconn.
    fd_limit: u64,
    /// Echo children's output to the terminal, prefixed by name.
    echo: bool,
    redis: RedisTarget,
    /// The shared Redis, for service membership (with `--advertise`).
    link: Option<Arc<chat::link::Link>>,
    shared: Mutex<Shared>,
    ops: tokio::sync::Mutex<()>,
    shutdown: watch::Sender<bool>,
}

type Sup = Arc<Supervisor>;

impl Supervisor {
    pub fn new(
        settings: Settings,
        state_dir: StateDir,
        pre: Preflight,
        echo: bool,
    ) -> anyhow::Result<Sup> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let redis = redis::target(&settings.redis, &state_dir)?;
        let (shutdown, _) = watch::channel(false);
        let link = match &settings.advertise {
            Some(_) => Some(
                chat::link::Link::new(&redis.url, redis.password.clone(), Duration::from_secs(2))
                    .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let max_restarts = settings.max_restarts;
        Ok(Arc::new(Supervisor {
            link,
            fd_limit: procs::raise_fd_limit(),
            settings,
            state_dir,
            cores,
            cpus: procs::allowed_cpus(),
            worker_bin: pre.worker_bin,
            redis_bin: pre.redis_bin,
            haproxy_bin: pre.haproxy_bin,
            echo,
            redis,
            shared: Mutex::new(Shared {
                redis: Life::giving_up_after(max_restarts),
                haproxy: Life::giving_up_after(max_restarts),
                ..Shared::default()
            }),
            ops: tokio::sync::Mutex::new(()),
            shutdown,
        }))
    }

    /// Where local workers listen: the advertised address in a multi-host service.
    fn worker_host(&self) -> &str {
        self.settings.advertise.as_deref().unwrap_or("127.0.0.1")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sink(&self, name: &str) -> Arc<LogSink> {
        let echo = match (self.echo, self.settings.log_json) {
            (false, _) => Echo::Off,
            (true, false) => Echo::Text,
            (true, true) => Echo::Json,
        };
        LogSink::new(name, self.state_dir.log(name), echo)
    }

    /// The child that has failed for good (crashed too often to be restarted), if the
    /// embedded Redis or HAProxy has: the cluster cannot serve, so chatctl exits non-zero and
    /// a service manager (systemd's `Restart=on-failure`) can act.
    pub fn failed_for_good(&self) -> Option<&'static str> {
        use chat::control::WorkerState;
        let s = self.lock();
        if s.redis.state() == WorkerState::Failed {
            Some("the embedded Redis")
        } else if s.haproxy.state() == WorkerState::Failed {
            Some("HAProxy")
        } else {
            None
        }
    }

    /// Asks the supervisor to stop (as `chatctl down`, Ctrl-C or SIGTERM do).
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    pub async fn wait_shutdown_requested(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Starts everything; on error the caller runs [`Supervisor::down`].
    pub async fn start(self: &Sup) -> anyhow::Result<()> {
        preflight::write_private(&self.state_dir.pid_file(), &std::process::id().to_string())?;
        if self.redis.embedded {
            self.spawn_child(ChildId::Redis)?;
            self.wait_redis().await?;
            tracing::info!(
                "redis ready (embedded, pid {})",
                opt_pid(self.pid_of(ChildId::Redis))
            );
        } else if self.redis_ping().await.is_none() {
            tracing::warn!(
                "redis at {} does not answer yet; workers will report 503 until it does",
                chat::store::redact_url(&self.redis.url)
            );
        }
        for id in 0..self.settings.workers {
            self.add_slot(id)?;
            self.spawn_child(ChildId::Worker(id))?;
        }
        for id in 0..self.settings.workers {
            self.wait_worker_healthy(id).await?;
            tracing::info!(
                "worker-{id} ready on port {} (pid {})",
                self.worker_port(id).unwrap_or(0),
                opt_pid(self.pid_of(ChildId::Worker(id)))
            );
        }
        if self.link.is_some() {
            self.register_local().await;
            self.refresh_members().await;
            tokio::spawn(self.clone().membership_loop());
        }
        if self.settings.haproxy.enabled {
            let generation = self.write_cfg().await?;
            self.spawn_child(ChildId::Haproxy)?;
            self.wait_haproxy(generation).await?;
            tracing::info!(
                "haproxy ready on port {} (pid {})",
                self.settings.port,
                opt_pid(self.pid_of(ChildId::Haproxy))
            );
        }
        tokio::spawn(self.clone().health_loop());
        Ok(())
    }
}

fn opt_pid(pid: Option<u32>) -> String {
    pid.map_or_else(|| "-".to_owned(), |p| p.to_string())
}

/// Sleeps a second; `false` once shutdown was requested (the loops then end).
async fn every_second_until_shutdown(rx: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = rx.wait_for(|s| *s) => false,
        _ = tokio::time::sleep(Duration::from_secs(1)) => true,
    }
}
