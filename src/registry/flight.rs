//! Unacknowledged direct messages per socket (its flight), bounded in count and bytes; what
//! is held back stays in the inbox and goes out in pages (refills) as acks come in.

use super::{Inner, Registry};
use socketioxide::socket::Sid;

/// Direct messages emitted to one socket and not yet acknowledged (or timed out), bounded so
/// that a client that does not acknowledge is not sent the whole inbox; what is held back
/// stays in the inbox and goes out, in order, as acknowledgements come in.
#[derive(Default)]
pub(super) struct Flight {
    count: u32,
    bytes: u64,
    /// Something was held back: the inbox has more for this socket after `last_sent`, and
    /// live messages wait behind it so the order holds.
    behind: bool,
    /// A refill is reading the inbox: live messages wait (they are in the inbox too).
    refilling: bool,
    /// The newest direct message id emitted to this socket.
    last_sent: Option<(u64, u64)>,
}

/// The caps of [`Flight`].
#[derive(Debug, Clone, Copy)]
pub struct FlightCaps {
    pub count: u32,
    pub bytes: u64,
}

impl Flight {
    /// The next pass sends the inbox again from its start. `behind` stays: a live message
    /// held while the pass's inbox read was under way is newer than what that read returned,
    /// so only a refill after the pass sends it ([`super::Registry::rewind_user`]'s caller
    /// starts one). Clearing it here left such a message in the inbox until the next
    /// `log in` while its recipient stayed connected (seen in the chaos suite around a Redis
    /// restart, when redelivery passes and held live messages meet).
    pub(super) fn rewind(&mut self) {
        self.last_sent = None;
    }

    fn has_room(&self, bytes: u64, caps: FlightCaps) -> bool {
        // One message always fits, however large, so a big one cannot block the queue.
        self.count == 0 || (self.count < caps.count && self.bytes + bytes <= caps.bytes)
    }

    /// Low enough to fetch the next page.
    fn wants_more(&self, caps: FlightCaps) -> bool {
        self.count <= caps.count / 2 && self.bytes <= caps.bytes / 2
    }
}

/// A stream id `ms-seq` as numbers, to compare ids.
pub fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The answer of [`Registry::reserve`].
#[derive(Debug, PartialEq, Eq)]
pub enum Reserve {
    Emit,
    /// Held back: it stays in the inbox for a refill or the next `log in`.
    Hold,
}

impl Registry {
    /// Takes a place in `sid`'s flight for direct message `id` of `bytes`. `from_inbox` is
    /// for passes over the inbox in order (the `log in` backlog, a refill): they go ahead of
    /// the messages held behind them, and stop at their first `Hold`.
    pub fn reserve(
        &self,
        sid: Sid,
        id: &str,
        bytes: u64,
        caps: FlightCaps,
        from_inbox: bool,
    ) -> Reserve {
        let mut inner = self.lock();
        let Some(s) = inner.sockets.get_mut(&sid) else {
            return Reserve::Hold;
        };
        let f = &mut s.flight;
        if !from_inbox && (f.behind || f.refilling) || !f.has_room(bytes, caps) {
            f.behind = true;
            return Reserve::Hold;
        }
        f.count += 1;
        f.bytes += bytes;
        f.last_sent = f.last_sent.max(stream_id(id));
        Reserve::Emit
    }

    /// A direct message of `bytes` was acknowledged or timed out. `true` when the caller
    /// should now refill the socket from the inbox ([`Registry::refill_from`] first).
    pub fn release(&self, sid: Sid, bytes: u64, caps: FlightCaps) -> bool {
        let mut inner = self.lock();
        let Some(s) = inner.sockets.get_mut(&sid) else {
            return false;
        };
        let f = &mut s.flight;
        f.count = f.count.saturating_sub(1);
        f.bytes = f.bytes.saturating_sub(bytes);
        f.behind && !f.refilling && f.wants_more(caps)
    }

    /// Starts a refill: returns the id after which the inbox is to be sent, or `None` when
    /// no refill is due (or one runs).
    pub fn refill_from(&self, sid: Sid, caps: FlightCaps) -> Option<Option<(u64, u64)>> {
        let mut inner = self.lock();
        let f = &mut inner.sockets.get_mut(&sid)?.flight;
        if !f.behind || f.refilling || !f.wants_more(caps) {
            return None;
        }
        f.behind = false;
        f.refilling = true;
        Some(f.last_sent)
    }

    /// Before a pass over the whole inbox of `user`: every socket of it starts from the
    /// inbox's beginning again.
    pub fn rewind_user(&self, user: &str) {
        let mut inner = self.lock();
        let Inner { sockets, users, .. } = &mut *inner;
        for sid in users.get(user).into_iter().flatten() {
            if let Some(s) = sockets.get_mut(sid) {
                s.flight.rewind();
            }
        }
    }

    /// Ends a refill; `failed` keeps the socket behind (the next release retries).
    pub fn end_refill(&self, sid: Sid, failed: bool) {
        if let Some(s) = self.lock().sockets.get_mut(&sid) {
            s.flight.refilling = false;
            s.flight.behind |= failed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewind_keeps_what_was_held_due_for_a_refill() {
        let mut f = Flight {
            behind: true,
            last_sent: Some((5, 0)),
            ..Flight::default()
        };
        f.rewind();
        assert_eq!(
            f.last_sent, None,
            "the pass starts from the inbox's beginning"
        );
        assert!(
            f.behind,
            "a message held before the pass still needs its refill"
        );
    }

    #[test]
    fn stream_ids_compare_as_numbers() {
        assert!(stream_id("10-0") > stream_id("9-5"));
        assert!(stream_id("10-10") > stream_id("10-9"));
        assert_eq!(stream_id("x"), None);
    }

    #[test]
    fn flight_holds_past_its_caps_and_wants_more_at_half() {
        let caps = FlightCaps {
            count: 4,
            bytes: 100,
        };
        let mut f = Flight::default();
        assert!(f.has_room(500, caps), "one always fits");
        f.count = 1;
        f.bytes = 500;
        assert!(!f.has_room(1, caps));
        f = Flight {
            count: 4,
            bytes: 4,
            ..Flight::default()
        };
        assert!(!f.has_room(1, caps));
        assert!(!f.wants_more(caps));
        f.count = 2;
        assert!(f.wants_more(caps));
    }
}
