//! The test kit: what the integration tests of `chat` (tests/) and `chatctl`
//! (supervisor/tests/) share, as one dev-only library crate.
//!
//! Layout:
//! - [`wait`]: bounded polling (`wait_until`, `wait_sync`, `poll`), the one way tests wait.
//! - [`proc`]: processes by pid: `pid_alive`, `signal`, the [`Reaped`] guard, bounded runs,
//!   the workspace's binaries.
//! - [`net`]: free ports, a minimal HTTP GET, Prometheus metric parsing.
//! - [`rng`]: one xorshift generator.
//! - [`redis`]: a private `redis-server` on a Unix socket or a loopback port.
//! - [`rediscluster`]: a real Redis Cluster on loopback (primaries, replicas, kill, restart).
//! - [`worker`]: `chat-worker` processes started directly, and [`Workers`] (Redis plus n of
//!   them, no chatctl) for the worker-level tests.
//! - [`client`]: chat-client helpers (log in, send, error codes).
//! - [`cluster`]: [`Cluster`], a whole cluster started with `chatctl up --detach`.
//! - [`node`]: the official socket.io-client and browser scripts in tests/js.
//! - [`load`]: the chaos load driver (simulated users that reconnect by themselves).

pub mod client;
pub mod cluster;
pub mod load;
pub mod net;
pub mod node;
pub mod proc;
pub mod prom;
pub mod rawws;
pub mod redis;
pub mod rediscluster;
pub mod rng;
pub mod wait;
pub mod worker;

pub use chat_client::{Client, ServerEvent};
pub use client::{ack_code, is_new_message, login, send_ok};
pub use cluster::{all_up, Cluster, CLUSTER_WAIT};
pub use load::Load;
pub use net::{free_port_range, http_get, metric};
pub use node::node_e2e;
pub use proc::{pid_alive, signal, wait_pids_gone, Reaped};
pub use prom::promtool;
pub use rawws::RawWs;
pub use redis::Redis;
pub use rng::XorShift;
pub use wait::{blocking, poll, wait_sync, wait_until, WAIT};
pub use worker::{Worker, Workers};
