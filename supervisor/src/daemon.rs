//! The supervisor: owns the embedded Redis, the workers and HAProxy; restarts what crashes;
//! scales, reloads and stops on request. Decisions come from the pure modules (`policy`,
//! `plan`, `haproxy::render`); this file is the plumbing around them.
//!
//! Concurrency model: one current_thread runtime (so PR_SET_PDEATHSIG, which is tied to the
//! spawning *thread*, is tied to the supervisor's life). State lives behind a std mutex that
//! is never held across an await; operations that change the worker set (`scale`, `reload`,
//! `down`) are serialized by an async mutex.

use crate::haproxy::{self, CfgView, Server};
use crate::membership::{self, MemberInfo};
use crate::plan::{plan_scale, worker_core, worker_port};
use crate::policy::{CrashHistory, Decision, RestartPolicy};
use crate::procs::{self, harden, spawn_logged, LogSink};
use crate::settings::{RedisChoice, Settings};
use anyhow::{bail, Context};
use chat::control::{
    HaproxyStatus, MemberStatus, RedisStatus, Request, Response, ServerStatus, StatusReport,
    SupervisorStatus, WorkerState, WorkerStatus,
};
use chat::paths::StateDir;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio::sync::watch;

/// How long a new worker may take to answer `/health` 200.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One worker position (id ↔ port ↔ core).
struct Slot {
    port: u16,
    core: u32,
    state: WorkerState,
    pid: Option<u32>,
    restarts: u32,
    started_at: Option<Instant>,
    history: CrashHistory,
    /// Last `/health` status (0 = no answer).
    health: u16,
    /// Identifies the current process; exit events of older ones are ignored.
    seq: u64,
    /// We stopped it on purpose: its exit is not a crash.
    stopping: bool,
}

/// The embedded Redis or HAProxy master.
#[derive(Default)]
struct Aux {
    pid: Option<u32>,
    seq: u64,
    started_at: Option<Instant>,
    history: CrashHistory,
    restarts: u32,
    failed: bool,
}

#[derive(Default)]
struct Shared {
    slots: BTreeMap<u32, Slot>,
    redis: Aux,
    haproxy: Aux,
    generation: u64,
    /// `down` in progress: nothing is restarted any more.
    stopping: bool,
    /// With `--advertise`: the service's live workers (all hosts) last read from Redis; the
    /// HAProxy configuration lists exactly these.
    members: Vec<MemberInfo>,
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
    worker_bin: PathBuf,
    redis_bin: PathBuf,
    haproxy_bin: PathBuf,
    fd_limit: u64,
    /// Echo children's output to the terminal, prefixed by name.
    echo: bool,
    redis: RedisTarget,
    /// The shared Redis, for service membership (with `--advertise`).
    link: Option<Arc<chat::link::Link>>,
    policy: RestartPolicy,
    shared: Mutex<Shared>,
    ops: tokio::sync::Mutex<()>,
    shutdown: watch::Sender<bool>,
}

type Sup = Arc<Supervisor>;

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Everything `up` checks before starting anything, so a failure leaves nothing behind.
pub struct Preflight {
    pub worker_bin: PathBuf,
    pub redis_bin: PathBuf,
    pub haproxy_bin: PathBuf,
}

pub fn preflight(settings: &Settings, state_dir: &StateDir) -> anyhow::Result<Preflight> {
    let worker_bin = procs::worker_binary().context(
        "chat-worker not found beside chatctl or on PATH: build it with `cargo build --release` (or set CHATCTL_WORKER_BIN)",
    )?;
    let redis_bin = procs::find_binary(std::path::Path::new("redis-server"));
    if settings.redis == RedisChoice::Embedded && redis_bin.is_none() {
        bail!("redis-server not found: install the `redis-server` package (scripts/setup.sh does), or pass --redis URL");
    }
    let haproxy_bin = procs::find_binary(&settings.haproxy.binary);
    if settings.haproxy.enabled && haproxy_bin.is_none() {
        bail!(
            "{} not found: install the `haproxy` package (scripts/setup.sh does)",
            settings.haproxy.binary.display()
        );
    }
    state_dir.check_socket_paths().map_err(anyhow::Error::msg)?;
    for dir in [
        state_dir.root().to_path_buf(),
        state_dir.logs_dir(),
        state_dir.redis_dir(),
    ] {
        std::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "cannot create {}: choose a writable --state-dir",
                dir.display()
            )
        })?;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        // Only the owner may reach the sockets and the Redis password inside.
        let _ = std::fs::set_permissions(state_dir.root(), std::fs::Permissions::from_mode(0o700));
    }
    let probe = state_dir.root().join(".write-test");
    std::fs::write(&probe, b"ok").with_context(|| {
        format!(
            "state dir {} is not writable: fix its permissions or choose another --state-dir",
            state_dir.root().display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    let mut ports = vec![(settings.port, "--port")];
    for id in 0..settings.workers {
        if let Some(p) = worker_port(settings.base_port, id) {
            ports.push((p, "--base-port"));
        }
    }
    if let (Some(p), true) = (
        settings.haproxy.http_redirect_port,
        settings.haproxy.enabled,
    ) {
        ports.push((p, "--http-redirect-port"));
    }
    for (port, flag) in ports {
        let addr = if flag == "--base-port" {
            settings
                .advertise
                .clone()
                .unwrap_or_else(|| "127.0.0.1".to_owned())
        } else {
            settings.haproxy.bind.clone()
        };
        if let Err(e) = std::net::TcpListener::bind((addr.as_str(), port)) {
            bail!("port {port} on {addr} is not free ({e}): choose another with {flag}");
        }
    }
    Ok(Preflight {
        worker_bin,
        redis_bin: redis_bin.unwrap_or_else(|| PathBuf::from("redis-server")),
        haproxy_bin: haproxy_bin.unwrap_or_else(|| PathBuf::from("haproxy")),
    })
}

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
        let redis = match &settings.redis {
            RedisChoice::Embedded => {
                let pass_file = state_dir.redis_password();
                let password = match std::fs::read_to_string(&pass_file) {
                    Ok(p) if !p.trim().is_empty() => p.trim().to_owned(),
                    _ => {
                        let p = random_hex(24)?;
                        write_private(&pass_file, &p)?;
                        p
                    }
                };
                RedisTarget {
                    url: format!("redis+unix://{}", state_dir.redis_socket().display()),
                    password: Some(password),
                    embedded: true,
                }
            }
            RedisChoice::External(url) => RedisTarget {
                url: url.clone(),
                // For Sentinel URLs (which carry no data-node password) and to keep passwords
                // off command lines: taken from the environment, handed on to the workers.
                password: std::env::var(chat::store::PASSWORD_ENV)
                    .ok()
                    .filter(|p| !p.is_empty()),
                embedded: false,
            },
        };
        let (shutdown, _) = watch::channel(false);
        let link = match &settings.advertise {
            Some(_) => Some(
                chat::link::Link::new(&redis.url, redis.password.clone(), Duration::from_secs(2))
                    .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        Ok(Arc::new(Supervisor {
            link,
            fd_limit: procs::raise_fd_limit(),
            settings,
            state_dir,
            cores,
            worker_bin: pre.worker_bin,
            redis_bin: pre.redis_bin,
            haproxy_bin: pre.haproxy_bin,
            echo,
            redis,
            policy: RestartPolicy::default(),
            shared: Mutex::new(Shared::default()),
            ops: tokio::sync::Mutex::new(()),
            shutdown,
        }))
    }

    /// Where local workers listen: the advertised address in a multi-host service.
    fn worker_host(&self) -> &str {
        self.settings.advertise.as_deref().unwrap_or("127.0.0.1")
    }

    /// HAProxy's name (and cookie) for local worker `id`.
    fn server_name(&self, id: u32, port: u16) -> String {
        match &self.settings.advertise {
            Some(host) => membership::server_name(host, port),
            None => format!("w{id}"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sink(&self, name: &str) -> Arc<LogSink> {
        LogSink::new(name, self.state_dir.log(name), self.echo)
    }

    /// Asks the supervisor to stop (as `chatctl down`, Ctrl-C or SIGTERM do).
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    pub async fn wait_shutdown_requested(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    // ---------------------------------------------------------------- Redis

    fn redis_conf(&self, password: &str) -> String {
        let sd = &self.state_dir;
        format!(
            "# Written by chatctl: the embedded Redis. Unix socket only, password required.\n\
             port 0\n\
             unixsocket {sock}\n\
             unixsocketperm 700\n\
             requirepass {password}\n\
             dir {dir}\n\
             appendonly yes\n\
             appendfsync everysec\n\
             save \"\"\n\
             daemonize no\n\
             maxclients 10000\n",
            sock = sd.redis_socket().display(),
            dir = sd.redis_dir().display(),
        )
    }

    fn spawn_redis(self: &Sup) -> anyhow::Result<()> {
        let Some(password) = self.redis.password.clone() else {
            return Ok(());
        };
        let conf = self.state_dir.root().join("redis.conf");
        write_private(&conf, &self.redis_conf(&password))?;
        let _ = std::fs::remove_file(self.state_dir.redis_socket());
        let mut cmd = Command::new(&self.redis_bin);
        cmd.arg(&conf);
        harden(&mut cmd, None);
        let child = spawn_logged(&mut cmd, self.sink("redis"))
            .with_context(|| format!("cannot start {}", self.redis_bin.display()))?;
        self.track_aux(true, child);
        Ok(())
    }

    /// Records the embedded Redis (`redis`) or HAProxy master as running and watches for
    /// its exit.
    fn track_aux(self: &Sup, redis: bool, mut child: tokio::process::Child) {
        let pid = child.id().unwrap_or(0);
        let seq = {
            let mut s = self.lock();
            s.seq += 1;
            let seq = s.seq;
            let aux = if redis { &mut s.redis } else { &mut s.haproxy };
            aux.pid = Some(pid);
            aux.seq = seq;
            aux.started_at = Some(Instant::now());
            seq
        };
        let me = self.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            me.aux_exited(redis, seq, format!("{status:?}"));
        });
    }

    /// PING with the round-trip time in ms, or `None`.
    pub async fn redis_ping(&self) -> Option<f64> {
        let link = chat::link::Link::new(
            &self.redis.url,
            self.redis.password.clone(),
            Duration::from_secs(2),
        )
        .ok()?;
        let attempt = async {
            let client = link.client().await.ok()?;
            let mut con = client.get_multiplexed_async_connection().await.ok()?;
            let t = Instant::now();
            let _: String = redis::cmd("PING").query_async(&mut con).await.ok()?;
            Some(t.elapsed().as_secs_f64() * 1000.0)
        };
        tokio::time::timeout(Duration::from_secs(2), attempt)
            .await
            .ok()
            .flatten()
    }

    async fn wait_redis(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while self.redis_ping().await.is_none() {
            if Instant::now() > deadline {
                bail!(
                    "redis did not answer within {START_TIMEOUT:?}: see {}",
                    self.state_dir.log("redis").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// The embedded Redis or the HAProxy master exited.
    fn aux_exited(self: &Sup, redis: bool, seq: u64, how: String) {
        let name = if redis { "redis" } else { "haproxy" };
        let decision = {
            let mut s = self.lock();
            let stopping = s.stopping;
            let aux = if redis { &mut s.redis } else { &mut s.haproxy };
            if aux.seq != seq {
                return;
            }
            aux.pid = None;
            if stopping {
                return;
            }
            let started = aux.started_at.unwrap_or_else(Instant::now);
            let d = self
                .policy
                .on_crash(&mut aux.history, started, Instant::now());
            match d {
                Decision::RestartAfter(_) => aux.restarts += 1,
                Decision::GiveUp => aux.failed = true,
            }
            d
        };
        tracing::warn!("{name} exited unexpectedly ({how}); {decision:?}");
        if let Decision::RestartAfter(delay) = decision {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if me.lock().stopping {
                    return;
                }
                let r = if redis {
                    me.spawn_redis()
                } else {
                    me.spawn_haproxy()
                };
                if let Err(e) = r {
                    tracing::error!("cannot restart {name}: {e:#}");
                }
            });
        }
    }

    // ---------------------------------------------------------------- workers

    fn spawn_worker(self: &Sup, id: u32) -> anyhow::Result<()> {
        let (port, core) = {
            let s = self.lock();
            let slot = s.slots.get(&id).context("no such worker")?;
            (slot.port, slot.core)
        };
        let l = &self.settings.limits;
        let mut cmd = Command::new(&self.worker_bin);
        cmd.args(["--port", &port.to_string()])
            .args(["--redis", &self.redis.url])
            .args(["--id", &id.to_string()])
            .args(["--host", self.worker_host()])
            .args([
                "--drain-timeout",
                &self.settings.drain_timeout.as_secs().to_string(),
            ])
            .args(["--max-message-bytes", &l.max_message_bytes.to_string()])
            .args([
                "--max-connections",
                &l.max_connections_per_worker.to_string(),
            ])
            .args(["--messages-per-second", &l.messages_per_second.to_string()])
            .args(["--inbox-max", &l.inbox_max.to_string()])
            .args(["--inbox-ttl", &l.inbox_ttl.to_string()])
            .args([
                "--min-replicas-acked",
                &self.settings.min_replicas_acked.to_string(),
            ]);
        if let Some(pw) = &self.redis.password {
            cmd.env(chat::store::PASSWORD_ENV, pw);
        }
        match &self.settings.auth_secret {
            Some(secret) => cmd.env(chat::auth::SECRET_ENV, secret),
            None => cmd.env_remove(chat::auth::SECRET_ENV),
        };
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        harden(&mut cmd, Some(core));
        let mut child = spawn_logged(&mut cmd, self.sink(&format!("worker-{id}")))
            .with_context(|| format!("cannot start {}", self.worker_bin.display()))?;
        let pid = child.id().unwrap_or(0);
        let seq = {
            let mut s = self.lock();
            s.seq += 1;
            let seq = s.seq;
            if let Some(slot) = s.slots.get_mut(&id) {
                slot.pid = Some(pid);
                slot.seq = seq;
                slot.state = WorkerState::Starting;
                slot.started_at = Some(Instant::now());
                slot.stopping = false;
                slot.health = 0;
            }
            seq
        };
        let me = self.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            me.worker_exited(id, seq, format!("{status:?}"));
        });
        Ok(())
    }

    fn worker_exited(self: &Sup, id: u32, seq: u64, how: String) {
        let decision = {
            let mut s = self.lock();
            let stopping = s.stopping;
            let Some(slot) = s.slots.get_mut(&id) else {
                return;
            };
            if slot.seq != seq {
                return;
            }
            slot.pid = None;
            slot.health = 0;
            if slot.stopping || stopping {
                return;
            }
            let started = slot.started_at.unwrap_or_else(Instant::now);
            let d = self
                .policy
                .on_crash(&mut slot.history, started, Instant::now());
            slot.restarts += 1;
            slot.state = match d {
                Decision::RestartAfter(_) => WorkerState::Restarting,
                Decision::GiveUp => WorkerState::Failed,
            };
            d
        };
        tracing::warn!("worker-{id} exited unexpectedly ({how}); {decision:?}");
        if let Decision::RestartAfter(delay) = decision {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let still_wanted = {
                    let s = me.lock();
                    !s.stopping
                        && s.slots
                            .get(&id)
                            .is_some_and(|sl| sl.seq == seq && sl.state == WorkerState::Restarting)
                };
                if still_wanted {
                    if let Err(e) = me.spawn_worker(id) {
                        tracing::error!("cannot restart worker-{id}: {e:#}");
                    }
                }
            });
        }
    }

    fn add_slot(&self, id: u32) -> anyhow::Result<()> {
        let port = worker_port(self.settings.base_port, id).context("worker port past 65535")?;
        self.lock().slots.insert(
            id,
            Slot {
                port,
                core: worker_core(id, self.cores),
                state: WorkerState::Starting,
                pid: None,
                restarts: 0,
                started_at: None,
                history: CrashHistory::default(),
                health: 0,
                seq: 0,
                stopping: false,
            },
        );
        Ok(())
    }

    async fn wait_worker_healthy(&self, id: u32) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let port = {
                let s = self.lock();
                let slot = s.slots.get(&id).context("worker vanished")?;
                if slot.state == WorkerState::Failed {
                    bail!(
                        "worker-{id} keeps crashing: see {}",
                        self.state_dir.log(&format!("worker-{id}")).display()
                    );
                }
                slot.port
            };
            if health(self.worker_host(), port).await == 200 {
                let mut s = self.lock();
                if let Some(slot) = s.slots.get_mut(&id) {
                    slot.health = 200;
                    if slot.state == WorkerState::Starting {
                        slot.state = WorkerState::Up;
                    }
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "worker-{id} did not become healthy within {START_TIMEOUT:?}: see {}",
                    self.state_dir.log(&format!("worker-{id}")).display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERMs worker `id` and waits for it to exit (SIGKILL after the drain timeout).
    async fn stop_worker(&self, id: u32) {
        let pid = {
            let mut s = self.lock();
            let Some(slot) = s.slots.get_mut(&id) else {
                return;
            };
            slot.stopping = true;
            slot.state = WorkerState::Draining;
            slot.pid
        };
        let Some(pid) = pid else { return };
        procs::signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + self.settings.drain_timeout + Duration::from_secs(2);
        loop {
            let gone = self
                .lock()
                .slots
                .get(&id)
                .is_none_or(|s| s.pid != Some(pid));
            if gone {
                return;
            }
            if Instant::now() > deadline {
                tracing::warn!("worker-{id} did not drain in time; killing it");
                procs::signal(pid, libc::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Background `/health` checks; `status` shows what they saw.
    async fn health_loop(self: Sup) {
        let mut rx = self.shutdown.subscribe();
        while every_second_until_shutdown(&mut rx).await {
            let ports: Vec<(u32, u16)> = self
                .lock()
                .slots
                .iter()
                .filter(|(_, s)| s.pid.is_some())
                .map(|(id, s)| (*id, s.port))
                .collect();
            for (id, port) in ports {
                let code = health(self.worker_host(), port).await;
                let mut s = self.lock();
                if let Some(slot) = s.slots.get_mut(&id) {
                    slot.health = code;
                    if code == 200 && slot.state == WorkerState::Starting {
                        slot.state = WorkerState::Up;
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- HAProxy

    fn cfg_view(&self, generation: u64) -> CfgView {
        let h = &self.settings.haproxy;
        let servers = if self.settings.advertise.is_some() {
            self.lock()
                .members
                .iter()
                .map(|m| Server {
                    name: membership::server_name(&m.host, m.port),
                    addr: m.host.clone(),
                    port: m.port,
                })
                .collect()
        } else {
            self.lock()
                .slots
                .iter()
                .map(|(id, s)| Server {
                    name: self.server_name(*id, s.port),
                    addr: self.worker_host().to_owned(),
                    port: s.port,
                })
                .collect()
        };
        CfgView {
            generation,
            bind: h.bind.clone(),
            port: self.settings.port,
            maxconn: haproxy::maxconn_for_fd_limit(self.fd_limit),
            server_maxconn: self.settings.limits.max_connections_per_worker as u64,
            admin_socket: self.state_dir.haproxy_admin_socket(),
            hard_stop_after_secs: h.timeout_tunnel,
            timeout_connect: h.timeout_connect,
            timeout_client: h.timeout_client,
            timeout_server: h.timeout_server,
            timeout_tunnel: h.timeout_tunnel,
            timeout_client_fin: h.timeout_client_fin,
            tls_cert: h.tls_cert.clone(),
            http_redirect_port: h.http_redirect_port,
            servers,
        }
    }

    /// Renders the next generation into haproxy.cfg after `haproxy -c` accepted it.
    async fn write_cfg(&self) -> anyhow::Result<u64> {
        let generation = self.lock().generation + 1;
        let text = haproxy::render(&self.cfg_view(generation));
        let cfg = self.state_dir.haproxy_cfg();
        let next = cfg.with_extension("cfg.next");
        std::fs::write(&next, &text).with_context(|| format!("cannot write {}", next.display()))?;
        haproxy::validate(&self.haproxy_bin, &next).await?;
        std::fs::rename(&next, &cfg)?;
        self.lock().generation = generation;
        Ok(generation)
    }

    fn spawn_haproxy(self: &Sup) -> anyhow::Result<()> {
        let master = self.state_dir.haproxy_master_socket();
        let _ = std::fs::remove_file(&master);
        let _ = std::fs::remove_file(self.state_dir.haproxy_admin_socket());
        let mut cmd = Command::new(&self.haproxy_bin);
        cmd.arg("-W")
            .arg("-S")
            .arg(format!("{},mode,600", master.display()))
            .arg("-f")
            .arg(self.state_dir.haproxy_cfg());
        harden(&mut cmd, None);
        let child = spawn_logged(&mut cmd, self.sink("haproxy"))
            .with_context(|| format!("cannot start {}", self.haproxy_bin.display()))?;
        self.track_aux(false, child);
        Ok(())
    }

    /// Waits until HAProxy's current worker runs `generation` and the public port accepts.
    async fn wait_haproxy(&self, generation: u64) -> anyhow::Result<()> {
        let admin = self.state_dir.haproxy_admin_socket();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if haproxy::running_generation(&admin).await == Some(generation) {
                let addr = if self.settings.haproxy.bind == "0.0.0.0" {
                    "127.0.0.1".to_owned()
                } else {
                    self.settings.haproxy.bind.clone()
                };
                if tokio::net::TcpStream::connect((addr.as_str(), self.settings.port))
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "haproxy did not serve configuration generation {generation} within {START_TIMEOUT:?}: see {}",
                    self.state_dir.log("haproxy").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Renders, validates and reloads (SIGUSR2 to the master), then confirms the new
    /// generation serves. Open WebSockets stay with the old HAProxy worker.
    async fn reload_haproxy(self: &Sup) -> anyhow::Result<()> {
        if !self.settings.haproxy.enabled {
            return Ok(());
        }
        let generation = self.write_cfg().await?;
        let pid = self.lock().haproxy.pid.context("haproxy is not running")?;
        procs::signal(pid, libc::SIGUSR2);
        self.wait_haproxy(generation).await
    }

    // ---------------------------------------------------------------- lifecycle

    /// Starts everything; on error the caller runs [`Supervisor::down`].
    pub async fn start(self: &Sup) -> anyhow::Result<()> {
        std::fs::write(self.state_dir.pid_file(), std::process::id().to_string())?;
        if self.redis.embedded {
            self.spawn_redis()?;
            self.wait_redis().await?;
        } else if self.redis_ping().await.is_none() {
            tracing::warn!(
                "redis at {} does not answer yet; workers will report 503 until it does",
                chat::store::redact_url(&self.redis.url)
            );
        }
        for id in 0..self.settings.workers {
            self.add_slot(id)?;
            self.spawn_worker(id)?;
        }
        for id in 0..self.settings.workers {
            self.wait_worker_healthy(id).await?;
        }
        if self.link.is_some() {
            self.register_local().await;
            self.refresh_members().await;
            tokio::spawn(self.clone().membership_loop());
        }
        if self.settings.haproxy.enabled {
            let generation = self.write_cfg().await?;
            self.spawn_haproxy()?;
            self.wait_haproxy(generation).await?;
        }
        tokio::spawn(self.clone().health_loop());
        Ok(())
    }

    pub async fn scale(self: &Sup, target: u32) -> anyhow::Result<String> {
        let _op = self.ops.lock().await;
        let current: Vec<u32> = self.lock().slots.keys().copied().collect();
        let plan = plan_scale(&current, target);
        for id in &plan.start {
            if worker_port(self.settings.base_port, *id).is_none() {
                bail!("worker {id} would need a port past 65535");
            }
            let port = worker_port(self.settings.base_port, *id).unwrap_or(0);
            if let Err(e) = std::net::TcpListener::bind((self.worker_host(), port)) {
                bail!("port {port} for worker-{id} is not free ({e}): free it or scale to fewer workers");
            }
        }
        for id in &plan.start {
            self.add_slot(*id)?;
            self.spawn_worker(*id)?;
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
        Ok(format!(
            "{target} workers (started {:?}, drained {:?})",
            plan.start, plan.stop
        ))
    }

    /// New clients stop going to `w<id>` (drain), then nothing does (maint) so that its
    /// clients, reconnecting with its stickiness cookie, are redispatched elsewhere.
    async fn retire_from_haproxy(&self, admin: &std::path::Path, id: u32) {
        let port = {
            let mut s = self.lock();
            match s.slots.get_mut(&id) {
                Some(slot) => {
                    // From here on it is on its way out: not re-registered, not restarted.
                    slot.state = WorkerState::Draining;
                    slot.stopping = true;
                    slot.port
                }
                None => 0,
            }
        };
        // Other front doors drop it when it leaves the membership.
        self.deregister(&[id]).await;
        if !self.settings.haproxy.enabled {
            return;
        }
        let name = self.server_name(id, port);
        for state in ["drain", "maint"] {
            if let Err(e) = haproxy::set_server_state(admin, &name, state).await {
                tracing::warn!("set {name} {state}: {e:#}");
            }
        }
    }

    /// Rolling restart: one worker at a time is taken out of HAProxy, drained, replaced on
    /// the same port, checked healthy and put back before the next.
    pub async fn rolling_reload(self: &Sup) -> anyhow::Result<String> {
        let _op = self.ops.lock().await;
        let ids: Vec<u32> = self.lock().slots.keys().copied().collect();
        let admin = self.state_dir.haproxy_admin_socket();
        for id in &ids {
            self.retire_from_haproxy(&admin, *id).await;
            self.stop_worker(*id).await;
            {
                let mut s = self.lock();
                if let Some(slot) = s.slots.get_mut(id) {
                    slot.history = CrashHistory::default();
                }
            }
            self.spawn_worker(*id)?;
            self.wait_worker_healthy(*id).await?;
            self.register_local().await;
            if self.settings.haproxy.enabled {
                let port = self.lock().slots.get(id).map(|s| s.port).unwrap_or(0);
                haproxy::set_server_state(&admin, &self.server_name(*id, port), "ready").await?;
                self.wait_server_up(&admin, *id).await?;
            }
        }
        Ok(format!("restarted {} workers one at a time", ids.len()))
    }

    async fn wait_server_up(&self, admin: &std::path::Path, id: u32) -> anyhow::Result<()> {
        let port = self.lock().slots.get(&id).map(|s| s.port).unwrap_or(0);
        let name = self.server_name(id, port);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let csv = haproxy::cli(admin, "show stat").await.unwrap_or_default();
            if haproxy::parse_server_states(&csv)
                .iter()
                .any(|(n, st)| *n == name && st.starts_with("UP"))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("haproxy did not see {name} UP within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Graceful stop of everything: workers drain (in parallel), then HAProxy, then Redis
    /// (which persists its append-only file on SIGTERM).
    pub async fn down(self: &Sup) {
        let _op = self.ops.lock().await;
        self.lock().stopping = true;
        let ids: Vec<u32> = self.lock().slots.keys().copied().collect();
        self.deregister(&ids).await;
        futures_util::future::join_all(ids.iter().map(|id| self.stop_worker(*id))).await;
        for redis in [false, true] {
            let pid = {
                let s = self.lock();
                if redis {
                    s.redis.pid
                } else {
                    s.haproxy.pid
                }
            };
            let Some(pid) = pid else { continue };
            procs::signal(pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let now = {
                    let s = self.lock();
                    if redis {
                        s.redis.pid
                    } else {
                        s.haproxy.pid
                    }
                };
                if now != Some(pid) {
                    break;
                }
                if Instant::now() > deadline {
                    procs::signal(pid, libc::SIGKILL);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let _ = std::fs::remove_file(self.state_dir.pid_file());
    }

    // ---------------------------------------------------------------- membership

    /// Registers this host's healthy workers and withdraws the others.
    async fn register_local(&self) {
        let Some(link) = &self.link else { return };
        let host = self.worker_host().to_owned();
        let (healthy, unhealthy): (Vec<MemberInfo>, Vec<String>) = {
            let s = self.lock();
            let mut healthy = Vec::new();
            let mut unhealthy = Vec::new();
            for (id, slot) in &s.slots {
                let ok = slot.state == WorkerState::Up && slot.health == 200 && !slot.stopping;
                if ok && !s.stopping {
                    healthy.push(MemberInfo {
                        host: host.clone(),
                        port: slot.port,
                        worker: *id,
                        pid: slot.pid,
                    });
                } else {
                    unhealthy.push(format!("{host}:{}", slot.port));
                }
            }
            (healthy, unhealthy)
        };
        let mut con = chat::link::LinkConnection(link.clone());
        if let Err(e) = membership::register(&mut con, &healthy).await {
            tracing::warn!("cannot register workers in redis: {e}");
        }
        if let Err(e) = membership::deregister(&mut con, &unhealthy).await {
            tracing::debug!("cannot withdraw workers: {e}");
        }
    }

    async fn deregister(&self, ids: &[u32]) {
        let Some(link) = &self.link else { return };
        let keys: Vec<String> = {
            let s = self.lock();
            ids.iter()
                .filter_map(|id| s.slots.get(id))
                .map(|slot| format!("{}:{}", self.worker_host(), slot.port))
                .collect()
        };
        let mut con = chat::link::LinkConnection(link.clone());
        if let Err(e) = membership::deregister(&mut con, &keys).await {
            tracing::warn!("cannot withdraw workers from redis: {e}");
        }
    }

    /// Reads the live members; `true` when the set changed.
    async fn refresh_members(&self) -> bool {
        let Some(link) = &self.link else {
            return false;
        };
        let mut con = chat::link::LinkConnection(link.clone());
        match membership::live(&mut con).await {
            Ok(members) => {
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
    async fn membership_loop(self: Sup) {
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

    // ---------------------------------------------------------------- status

    pub async fn status(self: &Sup) -> StatusReport {
        struct Snap {
            id: u32,
            port: u16,
            core: u32,
            state: WorkerState,
            pid: Option<u32>,
            restarts: u32,
            started: Option<Instant>,
            health: u16,
        }
        let slots: Vec<Snap> = self
            .lock()
            .slots
            .iter()
            .map(|(id, s)| Snap {
                id: *id,
                port: s.port,
                core: s.core,
                state: s.state,
                pid: s.pid,
                restarts: s.restarts,
                started: s.started_at,
                health: s.health,
            })
            .collect();
        // CPU %: two /proc samples an interval apart.
        let interval = Duration::from_millis(250);
        let before: Vec<Option<(u64, u64)>> = slots
            .iter()
            .map(|s| s.pid.and_then(procs::proc_usage))
            .collect();
        tokio::time::sleep(interval).await;
        let ticks = procs::clock_ticks() as f64;
        let mut workers = Vec::new();
        for (i, w) in slots.into_iter().enumerate() {
            let after = w.pid.and_then(procs::proc_usage);
            let cpu_percent = match (before[i], after) {
                (Some((t0, _)), Some((t1, _))) => {
                    Some(((t1.saturating_sub(t0)) as f64 / ticks) / interval.as_secs_f64() * 100.0)
                }
                _ => None,
            };
            let metrics = match w.pid {
                Some(_) => worker_metrics(self.worker_host(), w.port).await,
                None => None,
            };
            workers.push(WorkerStatus {
                id: w.id,
                pid: w.pid,
                port: w.port,
                core: Some(w.core),
                state: w.state,
                restarts: w.restarts,
                connections: metrics.map(|m| m.0),
                users: metrics.map(|m| m.1),
                cpu_percent: cpu_percent.map(|c| (c * 10.0).round() / 10.0),
                rss_bytes: after.map(|a| a.1),
                uptime_secs: w.pid.and(w.started).map(|t| t.elapsed().as_secs()),
                health: w.health,
            });
        }
        let (haproxy_pid, generation, redis_pid) = {
            let s = self.lock();
            (s.haproxy.pid, s.generation, s.redis.pid)
        };
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
            members,
            supervisor: SupervisorStatus {
                pid: std::process::id(),
                state_dir: self.state_dir.root().display().to_string(),
            },
            workers,
            haproxy: HaproxyStatus {
                pid: haproxy_pid,
                port: self.settings.port,
                generation,
                servers,
            },
            redis: RedisStatus {
                url: chat::store::redact_url(&self.redis.url),
                embedded: self.redis.embedded,
                pid: redis_pid,
                up: rtt.is_some(),
                rtt_ms: rtt.map(|r| (r * 100.0).round() / 100.0),
            },
        }
    }

    pub async fn handle(self: Sup, request: Request) -> Response {
        let result = match request {
            Request::Ping => {
                return Response::Pong {
                    pid: std::process::id(),
                }
            }
            Request::Status => return Response::Status(Box::new(self.status().await)),
            Request::Scale { workers: 0 } => Err(anyhow::anyhow!("scale to at least 1 worker")),
            Request::Scale { workers } => self.scale(workers).await,
            Request::Reload => self.rolling_reload().await,
            Request::Down => {
                self.request_shutdown();
                Ok("stopping".to_owned())
            }
            Request::Token { username, ttl_secs } => {
                return match crate::token::issue(
                    self.settings.auth_secret.as_deref(),
                    &username,
                    ttl_secs,
                ) {
                    Ok(token) => Response::Token { token },
                    Err(message) => Response::Error { message },
                }
            }
        };
        match result {
            Ok(message) => Response::Done { message },
            Err(e) => Response::Error {
                message: format!("{e:#}"),
            },
        }
    }
}

/// Sleeps a second; `false` once shutdown was requested (the loops then end).
async fn every_second_until_shutdown(rx: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = rx.wait_for(|s| *s) => false,
        _ = tokio::time::sleep(Duration::from_secs(1)) => true,
    }
}

/// A worker's `/health` status, 0 when it does not answer.
pub async fn health(host: &str, port: u16) -> u16 {
    http_get(host, port, "/health")
        .await
        .map(|r| r.0)
        .unwrap_or(0)
}

/// (connections, users) from a worker's `/metrics`.
async fn worker_metrics(host: &str, port: u16) -> Option<(u64, u64)> {
    let (_, body) = http_get(host, port, "/metrics").await?;
    let value = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .map(|v| v as u64)
    };
    Some((value("chat_connections")?, value("chat_users")?))
}

/// A tiny HTTP/1.0 GET against a local worker: (status, body).
async fn http_get(host: &str, port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
}
