//! The chat worker: Socket.IO chat on one thread, coordinated through Redis (SPEC §2–3).
//!
//! Layout, from the wire inwards:
//! - [`http`]: the HTTP face — `/socket.io/` (socketioxide), `/`, `/health`, `/metrics`;
//!   [`metrics`] its counters.
//! - [`app`]: shared state and one handler per protocol event; validation comes from
//!   [`protocol`], authentication from [`auth`], cluster state from [`store`], local sockets
//!   from [`registry`].
//! - [`store`]: everything Redis holds — key names ([`store::keys`]), the Lua scripts
//!   (`src/store/scripts/*.lua`), the delivery format ([`store::Delivery`]), errors, and
//!   chatctl's service membership ([`store::membership`]).
//! - [`link`]: the connection to Redis (direct or Sentinel), URLs, password, PING. Redis
//!   commands are built only in [`store`] and [`link`].
//! - [`bus`]: the self-healing subscriber that receives deliveries for this worker.
//! - [`worker`]: `run(config, listener, shutdown)`, the wiring, heartbeat and drain.
//! - Shared with the supervisor (`chatctl`, built without the `worker` feature):
//!   [`config`] (`chat.toml`), [`control`] (the control protocol), [`paths`] (the state
//!   dir), [`protocol`], [`auth`], [`link`] and [`store`].
//!
//! The Redis design is described in `docs/redis.md`.

#[cfg(feature = "worker")]
pub mod app;
pub mod auth;
#[cfg(feature = "worker")]
pub mod bus;
pub mod coalesce;
pub mod command_wire;
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
pub mod subscription;
#[cfg(feature = "worker")]
pub mod worker;
