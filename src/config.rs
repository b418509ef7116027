//! Settings shared by the worker and the supervisor: the `[limits]` of SPEC §2 and their
//! defaults. The supervisor reads them from `chat.toml` and passes them to workers as flags.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[limits]` (SPEC §2), enforced in the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest `message` text in bytes; longer ones get `message_too_large`.
    pub max_message_bytes: usize,
    /// Sockets one worker accepts; further handshakes get HTTP 503 so HAProxy can go elsewhere.
    pub max_connections_per_worker: usize,
    /// Sustained `send message` + `room message` events per socket per second (a token bucket
    /// of the same depth); beyond it `rate_limited`.
    pub messages_per_second: u32,
    /// Messages an inbox keeps; the oldest unacknowledged ones are trimmed beyond it.
    pub inbox_max: usize,
    /// How long an unacknowledged message waits in an inbox, in seconds.
    pub inbox_ttl: u64,
    /// Unsent outbound bytes one socket may have queued in the worker; a socket that would
    /// pass it is disconnected (its direct messages wait in the inbox).
    pub max_queued_bytes_per_socket: u64,
    /// Sockets one user may have logged in on one worker; one more gets `limit_reached`.
    pub max_sockets_per_user: usize,
    /// Rooms one socket may be in; one more gets `limit_reached`.
    pub max_rooms_per_socket: usize,
    /// Sustained events other than `send message` and `room message` per socket per second
    /// (a token bucket of the same depth); beyond it `rate_limited`.
    pub events_per_second: u32,
    /// Seconds a room's history lives after its last message (the key's TTL).
    pub room_history_ttl: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024,
            max_connections_per_worker: 30_000,
            messages_per_second: 100,
            inbox_max: 1000,
            inbox_ttl: 7 * 24 * 3600,
            max_queued_bytes_per_socket: 1024 * 1024,
            max_sockets_per_user: 16,
            max_rooms_per_socket: 100,
            // A real client logs in once and joins a few rooms; 50 a second is a flood.
            events_per_second: 50,
            room_history_ttl: 30 * 24 * 3600,
        }
    }
}

impl Limits {
    pub fn inbox_ttl(&self) -> Duration {
        Duration::from_secs(self.inbox_ttl)
    }

    /// The Engine.IO payload cap: a largest legal message, JSON-escaped at worst (`\u0000` is
    /// six bytes for one), plus the envelope. A legal message is never refused by the
    /// transport, so it gets a proper `message_too_large`; a frame beyond this closes the socket.
    pub fn max_engine_payload(&self) -> u64 {
        (self.max_message_bytes as u64) * 6 + 4096
    }
}

/// `--workers auto|N` and `[cluster] workers = "auto" | N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerCount {
    /// One worker per CPU core.
    #[default]
    Auto,
    Count(u32),
}

impl WorkerCount {
    /// The concrete count, given the number of cores.
    pub fn resolve(self, cores: usize) -> u32 {
        match self {
            WorkerCount::Auto => cores.max(1) as u32,
            WorkerCount::Count(n) => n,
        }
    }
}

impl std::str::FromStr for WorkerCount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(WorkerCount::Auto);
        }
        match s.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(WorkerCount::Count(n)),
            _ => Err(format!(
                "workers must be `auto` or a whole number of at least 1, not {s:?}"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for WorkerCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u32),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(0) => Err(serde::de::Error::custom("workers must be at least 1")),
            Raw::N(n) => Ok(WorkerCount::Count(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for WorkerCount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WorkerCount::Auto => s.serialize_str("auto"),
            WorkerCount::Count(n) => s.serialize_u32(*n),
        }
    }
}

/// `chat.toml` as written: every field optional, so "flags override file, file overrides
/// defaults" is a plain field-by-field merge. Unknown keys are errors that name the key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub cluster: ClusterSection,
    #[serde(default)]
    pub redis: RedisSection,
    #[serde(default)]
    pub haproxy: HaproxySection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub metrics: MetricsSection,
}

/// `[metrics]`: where chatctl serves the cluster's Prometheus endpoint.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// `ADDR:PORT` or `off`.
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    pub workers: Option<WorkerCount>,
    pub port: Option<u16>,
    pub base_port: Option<u16>,
    pub state_dir: Option<std::path::PathBuf>,
    /// Seconds.
    pub drain_timeout: Option<u64>,
    pub advertise: Option<String>,
    /// Pin each worker to one CPU of the allowed set (default true).
    pub pin: Option<bool>,
    /// Crashes of one child within 60 s before it is given up (default 10).
    pub max_restarts: Option<usize>,
    /// Each worker's wake-up coalescing window in microseconds (`chat::coalesce`; default
    /// 1000, 0 = off).
    pub coalesce_us: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// `embedded` or a URL.
    pub url: Option<String>,
    pub min_replicas_acked: Option<u32>,
    /// The embedded Redis's `maxmemory`, in bytes (an integer); default a quarter of the
    /// machine's memory.
    pub maxmemory: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxySection {
    pub enabled: Option<bool>,
    pub binary: Option<std::path::PathBuf>,
    pub tls_cert: Option<std::path::PathBuf>,
    pub http_redirect_port: Option<u16>,
    /// HAProxy's `nbthread`; unset: HAProxy's default, one thread per CPU.
    pub threads: Option<u32>,
    /// Seconds each.
    pub timeout_connect: Option<u64>,
    pub timeout_client: Option<u64>,
    pub timeout_server: Option<u64>,
    pub timeout_tunnel: Option<u64>,
    pub timeout_client_fin: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_message_bytes: Option<usize>,
    pub max_connections_per_worker: Option<usize>,
    pub messages_per_second: Option<u32>,
    pub inbox_max: Option<usize>,
    /// Seconds.
    pub inbox_ttl: Option<u64>,
    pub max_queued_bytes_per_socket: Option<u64>,
    pub max_sockets_per_user: Option<usize>,
    pub max_rooms_per_socket: Option<usize>,
    pub events_per_second: Option<u32>,
    /// Seconds.
    pub room_history_ttl: Option<u64>,
}

impl LimitsSection {
    pub fn apply(&self, base: Limits) -> Limits {
        Limits {
            max_message_bytes: self.max_message_bytes.unwrap_or(base.max_message_bytes),
            max_connections_per_worker: self
                .max_connections_per_worker
                .unwrap_or(base.max_connections_per_worker),
            messages_per_second: self.messages_per_second.unwrap_or(base.messages_per_second),
            inbox_max: self.inbox_max.unwrap_or(base.inbox_max),
            inbox_ttl: self.inbox_ttl.unwrap_or(base.inbox_ttl),
            max_queued_bytes_per_socket: self
                .max_queued_bytes_per_socket
                .unwrap_or(base.max_queued_bytes_per_socket),
            max_sockets_per_user: self
                .max_sockets_per_user
                .unwrap_or(base.max_sockets_per_user),
            max_rooms_per_socket: self
                .max_rooms_per_socket
                .unwrap_or(base.max_rooms_per_socket),
            events_per_second: self.events_per_second.unwrap_or(base.events_per_second),
            room_history_ttl: self.room_history_ttl.unwrap_or(base.room_history_ttl),
        }
    }
}

#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub secret: Option<String>,
}

impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSection")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl FileConfig {
    /// Parses `chat.toml` text. The error is one line that names the offending key and its
    /// line (toml's own message, without its multi-line source excerpt).
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let message = e.message().trim().replace('\n', " ");
            match line {
                Some(l) => format!("line {l}: {message}"),
                None => message,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let c = FileConfig::parse(
            r#"
            [cluster]
            workers = "auto"
            port = 9000
            [redis]
            url = "redis://127.0.0.1:6379"
            [limits]
            inbox_max = 5
            [auth]
            secret = "s"
            "#,
        )
        .unwrap();
        assert_eq!(c.cluster.workers, Some(WorkerCount::Auto));
        assert_eq!(c.cluster.port, Some(9000));
        assert_eq!(c.limits.apply(Limits::default()).inbox_max, 5);
        assert!(
            !format!("{:?}", c.auth).contains("\"s\""),
            "secret redacted"
        );
    }

    #[test]
    fn parses_the_per_socket_limits() {
        let c = FileConfig::parse(
            "[limits]\nmax_queued_bytes_per_socket = 2048\nmax_sockets_per_user = 3\n\
             max_rooms_per_socket = 4\nevents_per_second = 5\n",
        )
        .unwrap();
        let l = c.limits.apply(Limits::default());
        assert_eq!(
            (
                l.max_queued_bytes_per_socket,
                l.max_sockets_per_user,
                l.max_rooms_per_socket,
                l.events_per_second
            ),
            (2048, 3, 4, 5)
        );
        let d = Limits::default();
        assert_eq!(d.max_queued_bytes_per_socket, 1024 * 1024);
        assert_eq!((d.max_sockets_per_user, d.max_rooms_per_socket), (16, 100));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = FileConfig::parse("[cluster]\nworkerz = 3\n").unwrap_err();
        assert!(e.contains("workerz"), "{e}");
        let e = FileConfig::parse("[clusterr]\n").unwrap_err();
        assert!(e.contains("clusterr"), "{e}");
    }

    #[test]
    fn worker_counts() {
        assert_eq!("auto".parse::<WorkerCount>(), Ok(WorkerCount::Auto));
        assert_eq!("3".parse::<WorkerCount>(), Ok(WorkerCount::Count(3)));
        assert!("0".parse::<WorkerCount>().is_err());
        assert!("many".parse::<WorkerCount>().is_err());
        assert_eq!(WorkerCount::Auto.resolve(2), 2);
        assert!(FileConfig::parse("[cluster]\nworkers = 0\n").is_err());
    }
}
