//! The chat worker: Socket.IO chat on one thread, coordinated through Redis (SPEC §2–3).
//!
//! Layout, from the wire inwards:
//! - [`http`]: the HTTP face — `/socket.io/` (socketioxide), `/`, `/health`, `/metrics`.
//! - [`app`]: shared state and one handler per protocol event; validation comes from
//!   [`protocol`], cluster state from [`store`], local sockets from [`registry`].
//! - [`store`]: the only module that speaks Redis (keys, Lua scripts); [`bus`]: the
//!   self-healing subscriber that receives deliveries for this worker.
//! - [`worker`]: `run(config, listener, shutdown)`, the wiring, heartbeat and drain.
//! - [`config`]: settings shared with the supervisor.
//!
//! The Redis design is described in `docs/redis.md`.

pub mod app;
pub mod bus;
pub mod config;
pub mod http;
pub mod metrics;
pub mod protocol;
pub mod registry;
pub mod store;
pub mod worker;
