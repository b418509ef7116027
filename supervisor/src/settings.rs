//! The effective settings of `chatctl up`: flags override `chat.toml`, which overrides the
//! defaults. A pure merge that collects every problem before failing.

use crate::cli::UpArgs;
use crate::plan::worker_port;
use chat::config::{FileConfig, Limits};
use chat::paths::StateDir;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_BASE_PORT: u16 = 30001;
pub const DEFAULT_STATE_DIR: &str = ".chatctl";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisChoice {
    /// A private `redis-server` child in the state dir.
    Embedded,
    External(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxySettings {
    pub enabled: bool,
    pub binary: PathBuf,
    pub bind: String,
    pub tls_cert: Option<PathBuf>,
    pub http_redirect_port: Option<u16>,
    /// HAProxy's `nbthread`; `None` leaves HAProxy's default, a thread per CPU.
    pub threads: Option<u32>,
    pub timeout_connect: u64,
    pub timeout_client: u64,
    pub timeout_server: u64,
    pub timeout_tunnel: u64,
    pub timeout_client_fin: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub workers: u32,
    pub port: u16,
    pub base_port: u16,
    pub redis: RedisChoice,
    pub min_replicas_acked: u32,
    /// The embedded Redis's `maxmemory` in bytes (with `noeviction`).
    pub redis_maxmemory: u64,
    pub drain_timeout: Duration,
    /// Each worker's wake-up coalescing window (`--coalesce-us`, `[cluster] coalesce_us`).
    pub coalesce: Duration,
    pub advertise: Option<String>,
    /// Workers pinned one per CPU of the allowed set (`--pin`, `[cluster] pin`).
    pub pin: bool,
    /// Crashes of one child within 60 s before it is left `failed` (`--max-restarts`).
    pub max_restarts: usize,
    /// `--log-format json`: workers log JSON, and echoed child lines are JSON objects.
    pub log_json: bool,
    pub haproxy: HaproxySettings,
    pub limits: Limits,
    pub auth_secret: Option<String>,
    /// The cluster's Prometheus endpoint; `None` with `off`.
    pub metrics: Option<MetricsListen>,
}

/// `--metrics ADDR` / `[metrics] listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsListen {
    pub addr: std::net::SocketAddr,
    /// Named by the operator (flag or file): failing to bind it fails `up`. The default only
    /// warns, so a second cluster on one host still starts.
    pub explicit: bool,
}

/// The default `--metrics` address (SPEC §2).
pub const DEFAULT_METRICS: &str = "127.0.0.1:9464";

fn parse_metrics(value: Option<&str>) -> Result<Option<MetricsListen>, String> {
    let (text, explicit) = match value {
        Some(v) => (v, true),
        None => (DEFAULT_METRICS, false),
    };
    if text == "off" {
        return Ok(None);
    }
    text.parse()
        .map(|addr| Some(MetricsListen { addr, explicit }))
        .map_err(|_| {
            format!("--metrics must be IP:PORT (e.g. {DEFAULT_METRICS}) or `off`, not {text:?}")
        })
}

/// Below this an empty embedded Redis is already about full.
pub const MIN_REDIS_MAXMEMORY: u64 = 1 << 20;

/// A quarter of `MemTotal` in `/proc/meminfo` (given as text); 1 GiB when it cannot be read.
/// Past it, writes fail (`noeviction`) instead of the kernel killing Redis or its neighbours.
pub fn default_redis_maxmemory(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb.saturating_mul(1024) / 4)
        .filter(|b| *b >= MIN_REDIS_MAXMEMORY)
        .unwrap_or(1 << 30)
}

/// Chooses the state dir: flag or env first, then the file's `[cluster] state_dir`, then
/// `./.chatctl`.
pub fn state_dir(flag: Option<&PathBuf>, file: Option<&FileConfig>) -> StateDir {
    let chosen = flag
        .cloned()
        .or_else(|| file.and_then(|f| f.cluster.state_dir.clone()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    StateDir::new(chosen)
}

/// HAProxy 2.6's compile-time limit (`MAX_THREADS`); `haproxy -c` refuses more.
pub const MAX_HAPROXY_THREADS: u32 = 64;

pub fn merge(flags: &UpArgs, file: &FileConfig, cores: usize) -> Result<Settings, Vec<String>> {
    let mut errors = Vec::new();
    let workers = flags
        .workers
        .or(file.cluster.workers)
        .unwrap_or_default()
        .resolve(cores);
    let port = flags.port.or(file.cluster.port).unwrap_or(DEFAULT_PORT);
    let base_port = flags
        .base_port
        .or(file.cluster.base_port)
        .unwrap_or(DEFAULT_BASE_PORT);
    if worker_port(base_port, workers.saturating_sub(1)).is_none() {
        errors.push(format!(
            "{workers} workers from base port {base_port} run past port 65535: lower --base-port or --workers"
        ));
    }
    if (base_port as u32..base_port as u32 + workers).contains(&(port as u32)) {
        errors.push(format!(
            "public port {port} collides with the worker ports {base_port}..{}: choose another --port or --base-port",
            base_port as u32 + workers - 1
        ));
    }
    let redis = match flags.redis.clone().or(file.redis.url.clone()) {
        None => RedisChoice::Embedded,
        Some(u) if u == "embedded" => RedisChoice::Embedded,
        Some(u)
            if [
                "redis://",
                "rediss://",
                "redis+unix://",
                "unix://",
                "redis+sentinel://",
                "redis+cluster://",
            ]
            .iter()
            .any(|s| u.starts_with(s)) =>
        {
            RedisChoice::External(u)
        }
        Some(u) => {
            errors.push(format!(
                "--redis must be `embedded` or a redis://, rediss://, redis+unix://, redis+sentinel:// or redis+cluster:// URL, not {u:?}"
            ));
            RedisChoice::Embedded
        }
    };
    // Sentinel and Cluster mean replicas: an acked message waits for one (per shard).
    let sentinel = matches!(&redis, RedisChoice::External(u)
        if u.starts_with("redis+sentinel://") || u.starts_with("redis+cluster://"));
    let tls_cert = flags.tls_cert.clone().or(file.haproxy.tls_cert.clone());
    let http_redirect_port = flags.http_redirect_port.or(file.haproxy.http_redirect_port);
    if http_redirect_port.is_some() && tls_cert.is_none() {
        errors.push(
            "--http-redirect-port needs --tls-cert (it redirects plain HTTP to HTTPS)".into(),
        );
    }
    let advertise = flags.advertise.as_ref().or(file.cluster.advertise.as_ref());
    if let Some(a) = advertise {
        if a.parse::<std::net::IpAddr>().is_err() {
            errors.push(format!(
                "--advertise takes this host's IP address as other hosts reach it, not {a:?}"
            ));
        }
    }
    let haproxy_enabled = flags.haproxy.or(file.haproxy.enabled).unwrap_or(true);
    if !haproxy_enabled && advertise.is_none() {
        errors.push(
            "--haproxy off needs --advertise ADDR: without a front door elsewhere, nothing would reach the workers"
                .into(),
        );
    }
    let limits = file.limits.apply(Limits::default());
    // A zero here would refuse every message or cut every socket: surely a typo.
    for (name, value) in [
        ("max_message_bytes", limits.max_message_bytes as u64),
        ("inbox_max", limits.inbox_max as u64),
        ("messages_per_second", u64::from(limits.messages_per_second)),
        ("events_per_second", u64::from(limits.events_per_second)),
        (
            "max_queued_bytes_per_socket",
            limits.max_queued_bytes_per_socket,
        ),
        ("max_sockets_per_user", limits.max_sockets_per_user as u64),
        ("room_history_ttl", limits.room_history_ttl),
    ] {
        if value == 0 {
            errors.push(format!("[limits] {name} must be at least 1"));
        }
    }
    let redis_maxmemory = file.redis.maxmemory.unwrap_or_else(|| {
        default_redis_maxmemory(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
    });
    if redis_maxmemory < MIN_REDIS_MAXMEMORY {
        errors.push(format!(
            "[redis] maxmemory must be at least {MIN_REDIS_MAXMEMORY} bytes (an integer number of bytes), not {redis_maxmemory}"
        ));
    }
    let max_restarts = flags
        .max_restarts
        .or(file.cluster.max_restarts)
        .unwrap_or(10);
    if max_restarts == 0 {
        errors.push(
            "--max-restarts ([cluster] max_restarts) must be at least 1: the crash that leaves a child failed is counted"
                .into(),
        );
    }
    let coalesce = chat::coalesce::window_from_micros(
        flags
            .coalesce_us
            .or(file.cluster.coalesce_us)
            .unwrap_or(chat::coalesce::DEFAULT_MICROS),
    )
    .unwrap_or_else(|e| {
        errors.push(format!("--coalesce-us ([cluster] coalesce_us): {e}"));
        chat::coalesce::DEFAULT_WINDOW
    });
    // Unset by default: on 2 cores one thread spent 10-18 % less HAProxy CPU per message at
    // 2,000 msg/s, but its p99 passed 50 ms at 6,928 msg/s, a rate HAProxy's default (a thread
    // per CPU) held (BENCHMARKS.md "HAProxy threads"). Headroom is worth more than the saving.
    let threads = file.haproxy.threads;
    if let Some(n) = threads.filter(|n| !(1..=MAX_HAPROXY_THREADS).contains(n)) {
        errors.push(format!(
            "[haproxy] threads = {n}: HAProxy 2.6 runs 1 to {MAX_HAPROXY_THREADS} threads; leave it out for one per CPU"
        ));
    }
    let metrics = parse_metrics(flags.metrics.as_deref().or(file.metrics.listen.as_deref()))
        .unwrap_or_else(|e| {
            errors.push(e);
            None
        });
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Settings {
        metrics,
        workers,
        port,
        base_port,
        redis,
        min_replicas_acked: file
            .redis
            .min_replicas_acked
            .unwrap_or(if sentinel { 1 } else { 0 }),
        redis_maxmemory,
        drain_timeout: Duration::from_secs(
            flags
                .drain_timeout
                .or(file.cluster.drain_timeout)
                .unwrap_or(10),
        ),
        coalesce,
        advertise: flags.advertise.clone().or(file.cluster.advertise.clone()),
        pin: flags.pin.or(file.cluster.pin).unwrap_or(true),
        log_json: false,
        max_restarts,
        haproxy: HaproxySettings {
            enabled: flags.haproxy.or(file.haproxy.enabled).unwrap_or(true),
            binary: file
                .haproxy
                .binary
                .clone()
                .unwrap_or_else(|| PathBuf::from("haproxy")),
            bind: flags.bind.clone().unwrap_or_else(|| "0.0.0.0".into()),
            tls_cert,
            http_redirect_port,
            threads,
            timeout_connect: file.haproxy.timeout_connect.unwrap_or(4),
            timeout_client: file.haproxy.timeout_client.unwrap_or(60),
            timeout_server: file.haproxy.timeout_server.unwrap_or(60),
            timeout_tunnel: file.haproxy.timeout_tunnel.unwrap_or(3600),
            timeout_client_fin: file.haproxy.timeout_client_fin.unwrap_or(10),
        },
        limits,
        auth_secret: file.auth.secret.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat::config::WorkerCount;

    #[test]
    fn defaults_without_file_or_flags() {
        let s = merge(&UpArgs::default(), &FileConfig::default(), 2).unwrap();
        assert_eq!(s.workers, 2, "auto = cores");
        assert_eq!(s.port, 8080);
        assert_eq!(s.base_port, 30001);
        assert_eq!(s.redis, RedisChoice::Embedded);
        assert_eq!(s.min_replicas_acked, 0);
        assert!(s.haproxy.enabled);
        assert!(s.pin);
    }

    #[test]
    fn haproxy_threads_are_haproxys_default_unless_the_file_sets_them() {
        let threads = |file: &str| {
            merge(&UpArgs::default(), &FileConfig::parse(file).unwrap(), 2)
                .map(|s| s.haproxy.threads)
        };
        assert_eq!(threads(""), Ok(None));
        assert_eq!(threads("[haproxy]\nthreads = 1\n"), Ok(Some(1)));
        assert_eq!(threads("[haproxy]\nthreads = 64\n"), Ok(Some(64)));
        for bad in [0, 65] {
            let errors = threads(&format!("[haproxy]\nthreads = {bad}\n")).unwrap_err();
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains("[haproxy] threads") && e.contains("1 to 64")),
                "{errors:?}"
            );
        }
    }

    #[test]
    fn the_coalescing_window_from_the_file_and_the_flag_within_its_bound() {
        let window = |flag: Option<u64>, file: &str| {
            let flags = UpArgs {
                coalesce_us: flag,
                ..Default::default()
            };
            merge(&flags, &FileConfig::parse(file).unwrap(), 2).map(|s| s.coalesce)
        };
        assert_eq!(window(None, ""), Ok(chat::coalesce::DEFAULT_WINDOW));
        let file = "[cluster]\ncoalesce_us = 0\n";
        assert_eq!(window(None, file), Ok(Duration::ZERO));
        assert_eq!(window(Some(250), file), Ok(Duration::from_micros(250)));
        let errors = window(Some(20_000), "").unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("[cluster] coalesce_us") && e.contains("at most 10000")),
            "{errors:?}"
        );
    }

    #[test]
    fn pin_from_the_file_and_the_flag() {
        let file = FileConfig::parse("[cluster]\npin = false\n").unwrap();
        assert!(!merge(&UpArgs::default(), &file, 2).unwrap().pin);
        let flags = UpArgs {
            pin: Some(true),
            ..Default::default()
        };
        assert!(merge(&flags, &file, 2).unwrap().pin);
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let file =
            FileConfig::parse("[cluster]\nworkers = 3\nport = 9000\nbase_port = 40000\n").unwrap();
        let s = merge(&UpArgs::default(), &file, 2).unwrap();
        assert_eq!((s.workers, s.port, s.base_port), (3, 9000, 40000));
        let flags = UpArgs {
            workers: Some(WorkerCount::Count(5)),
            port: Some(9100),
            ..Default::default()
        };
        let s = merge(&flags, &file, 2).unwrap();
        assert_eq!((s.workers, s.port, s.base_port), (5, 9100, 40000));
    }

    #[test]
    fn all_problems_are_reported_together() {
        let flags = UpArgs {
            port: Some(30002),
            redis: Some("http://x".into()),
            http_redirect_port: Some(80),
            ..Default::default()
        };
        let errs = merge(&flags, &FileConfig::default(), 4).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("collides")));
        assert!(errs.iter().any(|e| e.contains("redis://")));
        assert!(errs.iter().any(|e| e.contains("--tls-cert")));
    }

    #[test]
    fn metrics_default_explicit_off_and_bad() {
        let none = merge(&UpArgs::default(), &FileConfig::default(), 1).unwrap();
        let m = none.metrics.unwrap();
        assert_eq!(
            (m.addr.to_string().as_str(), m.explicit),
            (DEFAULT_METRICS, false)
        );
        let file = FileConfig::parse("[metrics]\nlisten = \"off\"\n").unwrap();
        assert_eq!(merge(&UpArgs::default(), &file, 1).unwrap().metrics, None);
        let flags = UpArgs {
            metrics: Some("127.0.0.1:9999".into()),
            ..Default::default()
        };
        assert!(merge(&flags, &file, 1).unwrap().metrics.unwrap().explicit);
        let bad = UpArgs {
            metrics: Some("everywhere".into()),
            ..Default::default()
        };
        let errs = merge(&bad, &FileConfig::default(), 1).unwrap_err();
        assert!(errs[0].contains("--metrics must be"), "{errs:?}");
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        let file =
            FileConfig::parse("[limits]\nevents_per_second = 0\nmax_queued_bytes_per_socket = 0\n")
                .unwrap();
        let errs = merge(&UpArgs::default(), &file, 1).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("events_per_second")));
        assert!(errs
            .iter()
            .any(|e| e.contains("max_queued_bytes_per_socket")));
    }

    #[test]
    fn sentinel_urls_default_to_one_replica_ack() {
        let flags = UpArgs {
            redis: Some("redis+sentinel://127.0.0.1:26379/mymaster".into()),
            ..Default::default()
        };
        assert_eq!(
            merge(&flags, &FileConfig::default(), 1)
                .unwrap()
                .min_replicas_acked,
            1
        );
    }

    #[test]
    fn cluster_urls_are_accepted_and_default_to_one_replica_ack() {
        let flags = UpArgs {
            redis: Some("redis+cluster://127.0.0.1:7000,127.0.0.1:7001".into()),
            ..Default::default()
        };
        let s = merge(&flags, &FileConfig::default(), 1).unwrap();
        assert_eq!(s.min_replicas_acked, 1);
    }

    #[test]
    fn redis_maxmemory_from_the_file_or_a_quarter_of_the_machine() {
        let meminfo = "MemTotal:        8000000 kB\nMemFree:  100 kB\n";
        assert_eq!(default_redis_maxmemory(meminfo), 8_000_000 * 1024 / 4);
        assert_eq!(default_redis_maxmemory(""), 1 << 30);
        let s = merge(&UpArgs::default(), &FileConfig::default(), 1).unwrap();
        assert!(s.redis_maxmemory >= MIN_REDIS_MAXMEMORY);
        let file = FileConfig::parse("[redis]\nmaxmemory = 4194304\n").unwrap();
        assert_eq!(
            merge(&UpArgs::default(), &file, 1).unwrap().redis_maxmemory,
            4 << 20
        );
        let file = FileConfig::parse("[redis]\nmaxmemory = 1000\n").unwrap();
        let errs = merge(&UpArgs::default(), &file, 1).unwrap_err();
        assert!(errs[0].contains("[redis] maxmemory"), "{errs:?}");
    }

    #[test]
    fn state_dir_precedence() {
        let file = FileConfig::parse("[cluster]\nstate_dir = \"/from/file\"\n").unwrap();
        assert_eq!(
            state_dir(None, Some(&file)).root(),
            std::path::Path::new("/from/file")
        );
        let flag = PathBuf::from("/from/flag");
        assert_eq!(state_dir(Some(&flag), Some(&file)).root(), flag.as_path());
        assert!(state_dir(None, None).root().ends_with(".chatctl"));
    }
}
