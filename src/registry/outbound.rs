//! Outbound byte accounting per socket: what was emitted against what the transport wrote,
//! to cut a socket whose unsent bytes pass `max_queued_bytes_per_socket` (SPEC §3).

use super::Registry;
use crate::http::Wire;
use socketioxide::socket::Sid;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The bytes a socket has been handed and the bytes its transport has written, to bound what
/// sits unsent in between (`max_queued_bytes_per_socket`, SPEC §3).
///
/// queued = emitted − written, where
/// - emitted is the wire size of every packet this worker emitted to the socket (events,
///   acks), computed from the serialized JSON as it is emitted (`app::wire_size`);
/// - written is, over WebSocket, what the socket's TCP stream accepted since the socket got
///   it ([`Wire`], counted in `poll_write`), and over polling, what the poll responses
///   carried ([`crate::http`]'s counted body).
///
/// Whatever sits in between is ours: socketioxide's packet channel, tungstenite's write
/// buffer, hyper's. Sizes are estimated never above the real bytes (no ack-id digits, no
/// polling separators), and bytes the transport writes on its own (handshake, pings) are not
/// in emitted: both only make written run ahead, so whenever written passes emitted, emitted
/// is raised to it. The estimate is then low by at most the few bytes per packet still queued,
/// and never drifts over a connection's life.
#[derive(Default)]
pub(super) struct Outbound {
    emitted: u64,
    /// Bytes of poll responses, shared with the HTTP face (polling sessions only).
    polled: Option<Arc<AtomicU64>>,
    /// The WebSocket's connection and its written count when the socket got it.
    wire: Option<(Arc<Wire>, u64)>,
    /// Over the bound once: never emit to it again.
    cut: bool,
}

impl Outbound {
    /// A socket's meter; `wire` is its TCP connection when it came straight over WebSocket.
    pub(super) fn new(wire: Option<Arc<Wire>>) -> Self {
        Self {
            wire: wire.map(|w| {
                let base = w.written();
                (w, base)
            }),
            ..Self::default()
        }
    }

    fn written(&self) -> u64 {
        let polled = self
            .polled
            .as_ref()
            .map_or(0, |p| p.load(Ordering::Relaxed));
        let wired = self
            .wire
            .as_ref()
            .map_or(0, |(w, base)| w.written().saturating_sub(*base));
        polled + wired
    }
}

/// The answer of [`Registry::charge`].
pub enum Charge {
    /// Within the bound (or not metered): emit.
    Emit,
    /// Already cut: drop the packet.
    Drop,
    /// This packet would pass the bound: cut the socket (once), drop the packet.
    Over {
        queued: u64,
        user: Option<String>,
        /// Its connection over WebSocket; `None` over polling.
        wire: Option<Arc<Wire>>,
    },
}

impl Registry {
    /// A polling socket upgrades to WebSocket on `wire`.
    pub fn attach_wire(&self, sid: Sid, wire: Arc<Wire>) {
        if let Some(s) = self.lock().sockets.get_mut(&sid) {
            let base = wire.written();
            s.out.wire = Some((wire, base));
        }
    }

    /// The count a poll response of `sid` adds to (created on its first poll).
    pub fn poll_meter(&self, sid: Sid) -> Option<Arc<AtomicU64>> {
        let mut inner = self.lock();
        let s = inner.sockets.get_mut(&sid)?;
        Some(s.out.polled.get_or_insert_with(Arc::default).clone())
    }

    /// Accounts for a packet of `bytes` about to be emitted to `sid`. `websocket` is the
    /// socket's transport now: a WebSocket whose connection is unknown here (it upgraded
    /// before joining the namespace) is not metered, rather than cut for bytes it did write.
    pub fn charge(&self, sid: Sid, bytes: u64, limit: u64, websocket: bool) -> Charge {
        let mut inner = self.lock();
        let Some(s) = inner.sockets.get_mut(&sid) else {
            return Charge::Emit;
        };
        let out = &mut s.out;
        if out.cut {
            return Charge::Drop;
        }
        if websocket && out.wire.is_none() {
            return Charge::Emit;
        }
        let written = out.written();
        out.emitted = out.emitted.max(written);
        let queued = out.emitted - written;
        if queued.saturating_add(bytes) > limit {
            out.cut = true;
            return Charge::Over {
                queued,
                user: s.user.clone(),
                wire: out.wire.as_ref().map(|(w, _)| w.clone()),
            };
        }
        out.emitted += bytes;
        Charge::Emit
    }
}
