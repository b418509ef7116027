//! Wiring of one worker: the Socket.IO server on a current_thread runtime, the Redis links
//! (reconnecting commands, the self-healing subscriber, the heartbeat) and the drain.

use crate::app::{on_connect, App, AppInner, RedisHealth};
use crate::bus::{run_sharded_subscriber, run_subscriber, BusEvent};
use crate::config::Limits;
use crate::http::{Metered, Wire};
use crate::link::{Link, LinkConnection};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::store::{InboxBounds, Store};
use anyhow::Context;
use hyper_util::rt::{TokioIo, TokioTimer};
use socketioxide::{ParserConfig, SocketIo};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How often a worker proves it is alive; its liveness key lives [`LIVENESS_TTL`], so a
/// worker that dies without cleaning up leaves the user map within that time.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
pub const LIVENESS_TTL: Duration = Duration::from_secs(5);
/// Longest a connection may stay half-open: its request head incomplete, or its session
/// not joined to the namespace.
pub const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// socketioxide configured as the worker runs it (the memory-floor bench serves a bare
/// server with exactly these settings: `bench/src/bin/sio-floor.rs`).
pub fn socketio_builder(
    limits: &crate::config::Limits,
    ws_read_buffer: usize,
    ack_timeout: Duration,
) -> socketioxide::SocketIoBuilder {
    SocketIo::builder()
        // max_payload bounds polling bodies; WebSocket frames have their own caps, which
        // default to megabytes, so set them to the same bound.
        .max_payload(limits.max_engine_payload())
        .ws_max_message_size(limits.max_engine_payload() as usize)
        .ws_max_frame_size(limits.max_engine_payload() as usize)
        // Read side: small chunks (memory per idle connection). Write side: socketioxide
        // exposes no setting; tungstenite's `write_buffer_size` (128 KiB) is only a flush
        // threshold and its Vec grows with pending output, so an idle socket holds none.
        .ws_read_buffer_size(ws_read_buffer)
        .max_buffer_size(256)
        .ack_timeout(ack_timeout)
        // A session that has not joined the namespace this long after its handshake is
        // closed (SPEC §4); socketioxide's default is 45 s.
        .connect_timeout(HALF_OPEN_TIMEOUT)
        // The chat protocol has no binary payloads: a packet announcing attachments closes
        // its socket at once instead of holding a partial packet for a minute.
        .with_parser(
            ParserConfig::common()
                .max_incoming_binaries(0)
                .max_incoming_binary_buf_size(limits.max_engine_payload() as usize)
                .packet_completion_timeout(Duration::from_secs(5)),
        )
}

/// On a Redis Cluster, how long Redis may fail this worker before `/health` says so
/// ([`crate::app::RedisHealth`]): longer than a shard's failover and the cluster client's
/// recovery after it, so that one shard failing over takes no worker out of HAProxy.
pub const CLUSTER_HEALTH_GRACE: Duration = Duration::from_secs(5);

/// Longest wait for one Redis call before the client hears `unavailable`.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a draining worker keeps its sessions open before closing them: long enough for
/// a client in the middle of a polling→WebSocket upgrade to finish it or hear the Engine.IO
/// close packet on its next poll (engine.io-client stalls if the upgrade fails instead).
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Everything one worker needs; `chat-worker`'s flags map onto it.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Worker number (chatctl's index); part of the instance id, for logs.
    pub id: u32,
    /// `redis://…`, `rediss://…`, `redis+unix:///path` (a password in the URL is used).
    pub redis_url: String,
    /// Prefix of every Redis key and channel, so services can share a Redis.
    pub redis_prefix: String,
    pub limits: Limits,
    /// Longest a SIGTERM drain may take.
    pub drain_timeout: Duration,
    /// Per-socket WebSocket read buffer: memory per connection is a headline figure. It is
    /// also the most tungstenite reads per `recv`, so 1 KiB, not less: 256 B saved 0.75 KB per
    /// idle connection but took 75 % more reads per 1 KB message (BENCHMARKS.md, "The
    /// WebSocket read buffer").
    pub ws_read_buffer: usize,
    /// How long a `new message` waits for the client's ack before it stays pending.
    pub ack_timeout: Duration,
    /// `[auth] secret`; `None` = auth off.
    pub auth_secret: Option<String>,
    /// Replicas that must have a direct message before its ack (`WAIT`); 0 = none.
    pub min_replicas_acked: u32,
}

impl WorkerConfig {
    pub fn new(id: u32, redis_url: impl Into<String>) -> Self {
        Self {
            id,
            redis_url: redis_url.into(),
            redis_prefix: "chat:".into(),
            limits: Limits::default(),
            drain_timeout: Duration::from_secs(10),
            ws_read_buffer: 1024,
            ack_timeout: Duration::from_secs(30),
            auth_secret: None,
            min_replicas_acked: 0,
        }
    }
}

/// An id unique to this process start: the worker number plus random hex.
fn instance_id(id: u32) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{id}-{:016x}", h.finish())
}

/// Serves until `shutdown` resolves, then drains: `/health` goes 503, every client
/// transport is closed so clients reconnect elsewhere, the worker leaves the user map, and
/// the function returns (within `drain_timeout`).
pub async fn run(
    config: WorkerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    crate::store::keys::check_prefix(&config.redis_prefix)
        .map_err(anyhow::Error::msg)
        .context("bad --redis-prefix")?;
    let password = std::env::var(crate::store::PASSWORD_ENV).ok();
    let link = Link::new(&config.redis_url, password, REDIS_TIMEOUT)
        .map_err(anyhow::Error::msg)
        .context("bad --redis URL")?;
    let con = LinkConnection(link.clone());
    let instance = instance_id(config.id);
    let store = Store::new(
        con,
        &config.redis_prefix,
        &instance,
        REDIS_TIMEOUT,
        InboxBounds {
            max_len: config.limits.inbox_max,
            ttl: config.limits.inbox_ttl(),
        },
    )
    .with_min_replicas(config.min_replicas_acked)
    .with_room_history_ttl(Duration::from_secs(config.limits.room_history_ttl))
    .with_cluster(link.is_cluster());
    let channel = store.channel();
    let (acks, ack_queue) = crate::app::ack_queue();
    let (sends, send_queue) = crate::app::send_queue();
    let app = App::new(AppInner {
        store,
        acks,
        sends,
        registry: Registry::default(),
        metrics: Metrics::default(),
        limits: config.limits.clone(),
        auth_secret: config.auth_secret.clone(),
        draining: AtomicBool::new(false),
        redis: RedisHealth::new(if link.is_cluster() {
            CLUSTER_HEALTH_GRACE
        } else {
            Duration::ZERO
        }),
        liveness_ttl: LIVENESS_TTL,
        open_connections: Default::default(),
        resync_due: AtomicBool::new(false),
    });

    tokio::spawn(crate::app::record_acks(app.clone(), ack_queue));
    tokio::spawn(crate::app::store_sends(app.clone(), send_queue));

    let (sio_svc, io) = socketio_builder(&config.limits, config.ws_read_buffer, config.ack_timeout)
        .with_state(app.clone())
        .build_svc();
    io.ns("/", on_connect);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let on_bus_event = {
        let app = app.clone();
        move |event| match event {
            BusEvent::Subscribed => {
                app.redis.set_subscribed(true);
                let app = app.clone();
                tokio::spawn(async move {
                    app.redeliver_pending().await;
                    // On a cluster, publishers whose slot map is still stale can miss this
                    // subscription for a few seconds after a failover: look again.
                    if app.store.is_cluster() {
                        for wait in [2, 5] {
                            tokio::time::sleep(Duration::from_secs(wait)).await;
                            app.redeliver_pending().await;
                        }
                    }
                });
            }
            BusEvent::Lost => app.redis.set_subscribed(false),
            BusEvent::Delivery(d) => app.on_delivery(d),
        }
    };
    let subscriber = if link.is_cluster() {
        tokio::spawn(run_sharded_subscriber(
            link,
            channel,
            on_bus_event,
            stopped(),
        ))
    } else {
        tokio::spawn(run_subscriber(
            link,
            channel,
            REDIS_TIMEOUT,
            on_bus_event,
            stopped(),
        ))
    };
    let heartbeat = tokio::spawn(heartbeat_loop(app.clone(), stopped()));

    tracing::info!(
        instance = %app.store.instance(),
        addr = %listener.local_addr()?,
        "chat worker serving"
    );
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let sio = sio_svc.clone();
        tokio::spawn(async move {
            // Every request carries its connection's meter: socketioxide keeps the handshake
            // request's extensions, so a socket finds its own connection (`app::on_connect`).
            let wire = Arc::new(Wire::default());
            let io = TokioIo::new(Metered::new(tcp, wire.clone(), &app));
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(wire.clone());
                crate::http::handle(app.clone(), sio.clone(), req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(8192)
                // A request head not complete in time closes the connection (SPEC §4);
                // hyper needs a timer for it.
                .timer(TokioTimer::new())
                .header_read_timeout(HALF_OPEN_TIMEOUT)
                .serve_connection(io, svc)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }

    tracing::info!("draining");
    app.draining.store(true, Ordering::Relaxed);
    drop(listener);
    let drain = async {
        // Clients mid-upgrade either finish it or get the close packet on their next poll
        // (`http::handle`) before `io.close()` cuts their transports.
        tokio::time::sleep(DRAIN_GRACE.min(config.drain_timeout)).await;
        io.close().await;
        if let Err(e) = app.store.remove_self().await {
            tracing::warn!("could not leave the user map ({e}); it expires in {LIVENESS_TTL:?}");
        }
    };
    if tokio::time::timeout(config.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!("drain timed out after {:?}", config.drain_timeout);
    }
    let _ = stop_tx.send(true);
    let _ = tokio::join!(subscriber, heartbeat);
    tracing::info!("stopped");
    Ok(())
}

/// Keeps the liveness key fresh, reaps dead workers, and re-registers everything local when
/// Redis lost it (restarted empty) or came back after an outage.
async fn heartbeat_loop(app: App, stopped: impl Future<Output = ()>) {
    tokio::pin!(stopped);
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = false;
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = tick.tick() => {}
        }
        if app.draining.load(Ordering::Relaxed) {
            continue;
        }
        let result = match app.store.heartbeat(app.liveness_ttl).await {
            // `swap` last: a due resync waits for a tick that reaches Redis.
            Ok(fresh) if fresh || !was_up || app.resync_due.swap(false, Ordering::Relaxed) => {
                // A Redis that is new or back may have an empty script cache: fill it before
                // the worker counts as up, so its first sends need no `NOSCRIPT` fallback.
                if let Err(e) = app.store.load_scripts().await {
                    tracing::debug!("scripts not preloaded (each call loads its own): {e}");
                }
                let r = app.resync().await;
                if r.is_ok() {
                    // Messages sent while our users were missing from the user map were
                    // stored but published to nobody: send every local user its inbox.
                    let app = app.clone();
                    tokio::spawn(async move { app.redeliver_pending().await });
                }
                r
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                if !was_up {
                    tracing::info!("redis reachable");
                }
                was_up = true;
            }
            Err(e) => {
                if was_up {
                    tracing::warn!("heartbeat failed, redis unreachable or a shard failing: {e}");
                }
                was_up = false;
            }
        }
        // On a cluster the heartbeat touches several shards (the service's worker set, every
        // peer's liveness key); one of them failing over must not take every worker out of
        // HAProxy at once. The worker counts as up while its own shard answers; `was_up`
        // stays false, so the next heartbeat that succeeds re-registers and resends.
        let commands_up = was_up || (app.store.is_cluster() && app.store.own_shard_answers().await);
        app.redis.set_commands_up(commands_up);
    }
}
