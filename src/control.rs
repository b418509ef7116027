//! The control protocol between `chatctl` and its supervisor: HTTP/1.1 + JSON over the Unix
//! socket in the state dir. One request enum, one response enum, shared by both sides.
//! The status fields are fixed by SPEC §2 (`chatctl status --json`).

use serde::{Deserialize, Serialize};

/// Path of the one endpoint; the body is a [`Request`].
pub const ENDPOINT: &str = "/v1";
/// Largest request or response body either side accepts.
pub const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Is a supervisor alive on this socket?
    Ping,
    Status,
    Scale {
        workers: u32,
    },
    /// Rolling restart of the workers.
    Reload,
    /// Replace one child: `worker-N`, `haproxy` or `redis` (embedded).
    Restart {
        name: String,
    },
    Down,
    /// A login token for `username` (auth on).
    Token {
        username: String,
        ttl_secs: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Pong { pid: u32 },
    Status(Box<StatusReport>),
    Done { message: String },
    Token { token: String },
    Error { message: String },
}

/// Worker lifecycle states (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Starting,
    Up,
    Draining,
    Restarting,
    Failed,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Up => "up",
            WorkerState::Draining => "draining",
            WorkerState::Restarting => "restarting",
            WorkerState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub supervisor: SupervisorStatus,
    pub workers: Vec<WorkerStatus>,
    pub haproxy: HaproxyStatus,
    pub redis: RedisStatus,
    /// With `--advertise`: every live worker of the service, on every host.
    #[serde(default)]
    pub members: Vec<MemberStatus>,
    /// The host chatctl runs on (from sysinfo); null if it could not be read.
    #[serde(default)]
    pub machine: Option<MachineStatus>,
}

/// The machine line of `chatctl status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineStatus {
    /// Logical CPUs of the machine.
    pub cpus: u32,
    /// How busy all of them were during the status sample, 0–100.
    pub cpu_percent: f64,
    /// Load average over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    pub memory_total_bytes: u64,
    /// Memory the kernel can give without swapping (MemAvailable).
    pub memory_available_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// The host's advertised address.
    pub host: String,
    pub port: u16,
    /// The worker's number on its host.
    pub worker: u32,
    pub pid: Option<u32>,
    /// On this host.
    pub local: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorStatus {
    pub pid: u32,
    /// The state dir it runs on.
    pub state_dir: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub id: u32,
    pub pid: Option<u32>,
    pub port: u16,
    /// The CPU core it is pinned to.
    pub core: Option<u32>,
    pub state: WorkerState,
    pub restarts: u32,
    /// From the worker's `/metrics`; null when it did not answer.
    pub connections: Option<u64>,
    pub users: Option<u64>,
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub uptime_secs: Option<u64>,
    /// What the last `/health` check answered (HTTP status, 0 = no answer).
    pub health: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaproxyStatus {
    pub pid: Option<u32>,
    pub port: u16,
    /// Bumped on every rendered configuration; HAProxy reports it back as its description.
    pub generation: u64,
    pub servers: Vec<ServerStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub name: String,
    /// HAProxy's own word: UP, DOWN, DRAIN, MAINT, `no check`…
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedisStatus {
    /// Without the password.
    pub url: String,
    pub embedded: bool,
    pub pid: Option<u32>,
    pub up: bool,
    pub rtt_ms: Option<f64>,
    /// With a Redis Cluster: its nodes, roles and whether each is up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<crate::link::ClusterNode>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json() {
        let j = serde_json::to_string(&Request::Scale { workers: 3 }).unwrap();
        assert_eq!(j, r#"{"request":"scale","workers":3}"#);
        let back: Request = serde_json::from_str(&j).unwrap();
        assert_eq!(back, Request::Scale { workers: 3 });
    }

    #[test]
    fn states_serialize_as_spec_words() {
        assert_eq!(
            serde_json::to_string(&WorkerState::Restarting).unwrap(),
            "\"restarting\""
        );
    }
}
