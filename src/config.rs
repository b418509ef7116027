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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024,
            max_connections_per_worker: 30_000,
            messages_per_second: 100,
            inbox_max: 1000,
            inbox_ttl: 7 * 24 * 3600,
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
