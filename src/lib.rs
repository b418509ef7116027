//! The chat worker: Socket.IO chat on one thread, coordinated through Redis (SPEC §2–3).
//!
//! Layout, from the wire inwards:
//! - [`http`]: the HTTP face — `/socket.io/` (socketioxide), `/`, `/health`, `/metrics`.
//! - [`app`]: shared state and one handler per protocol event; validation comes from
//!   [`protocol`], cluster state from [`store`], local sockets from [`registry`].
//! - [`store`]: the only module that speaks Redis (keys, Lua scripts); [`bus`]: the
//!   self-healing subscriber that receives deliveries for this worker.
//! - [`worker`]: `run(config, listener, shutdown)`, the wiring, heartbeat and drain.
//! - Shared with the supervisor (`chatctl`, built without the `worker` feature):
//!   [`config`] (`chat.toml`), [`control`] (the control protocol), [`paths`] (the state
//!   dir), [`protocol`] and [`store`].
//!
//! The Redis design is described in `docs/redis.md`.

#[cfg(feature = "worker")]
pub mod app;
pub mod auth;
#[cfg(feature = "worker")]
pub mod bus;
pub mod config;
pub mod control;
#[cfg(feature = "worker")]
pub mod http;
pub mod link;
#[cfg(feature = "worker")]
pub mod metrics;
pub mod paths;
pub mod protocol;
#[cfg(feature = "worker")]
pub mod registry;
pub mod store;
#[cfg(feature = "worker")]
pub mod worker;
