//! The worker's local view: which of its own sockets belong to which user and room. Redis
//! holds the cluster-wide view (which *workers* hold a user); this holds which *sockets*.
//!
//! Everything runs on one thread, so the mutex is never contended; it exists because
//! socketioxide requires state to be `Send + Sync`.

use crate::http::Wire;
use crate::protocol::NewMessage;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A token bucket for `messages_per_second`: `rate` tokens per second, `rate` deep.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, now: Instant) -> Self {
        Self {
            tokens: rate as f64,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, rate: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate as f64).min(rate as f64);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

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
struct Outbound {
    emitted: u64,
    /// Bytes of poll responses, shared with the HTTP face (polling sessions only).
    polled: Option<Arc<AtomicU64>>,
    /// The WebSocket's connection and its written count when the socket got it.
    wire: Option<(Arc<Wire>, u64)>,
    /// Over the bound once: never emit to it again.
    cut: bool,
}

impl Outbound {
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

struct LocalSocket {
    socket: SocketRef,
    user: Option<String>,
    rooms: HashSet<String>,
    /// While a `log in` fetches the inbox, direct deliveries for this socket wait here so
    /// that the pending (older) messages go out first, in order.
    catch_up: Option<Vec<NewMessage>>,
    /// `messages_per_second`: `send message` and `room message`.
    bucket: TokenBucket,
    /// `events_per_second`: every other event.
    events: TokenBucket,
    out: Outbound,
    flight: Flight,
}

/// Direct messages emitted to one socket and not yet acknowledged (or timed out), bounded so
/// that a client that does not acknowledge is not sent the whole inbox; what is held back
/// stays in the inbox and goes out, in order, as acknowledgements come in.
#[derive(Default)]
struct Flight {
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

#[derive(Default)]
struct Inner {
    sockets: HashMap<Sid, LocalSocket>,
    users: HashMap<String, Vec<Sid>>,
    rooms: HashMap<String, Vec<Sid>>,
}

/// What a socket's departure leaves for Redis to forget.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Departure {
    /// The user whose last socket on this worker left.
    pub last_of_user: Option<String>,
    /// Rooms that have no member on this worker any more.
    pub emptied_rooms: Vec<String>,
}

/// Where a direct delivery goes on this worker.
pub enum Target {
    /// Emit now.
    Emit(SocketRef),
    /// The socket is catching up; the message was queued behind its pending ones.
    Queued,
}

#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

fn remove_sid(map: &mut HashMap<String, Vec<Sid>>, key: &str, sid: Sid) -> bool {
    if let Some(list) = map.get_mut(key) {
        list.retain(|s| *s != sid);
        if list.is_empty() {
            map.remove(key);
            return true;
        }
    }
    false
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than stopping would, so recover the guard.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A socket joined the namespace; `wire` is its TCP connection when it came straight
    /// over WebSocket.
    pub fn connect(&self, socket: SocketRef, rates: (u32, u32), wire: Option<Arc<Wire>>) {
        let sid = socket.id;
        let out = Outbound {
            wire: wire.map(|w| {
                let base = w.written();
                (w, base)
            }),
            ..Outbound::default()
        };
        self.lock().sockets.insert(
            sid,
            LocalSocket {
                socket,
                user: None,
                rooms: HashSet::new(),
                catch_up: None,
                bucket: TokenBucket::new(rates.0, Instant::now()),
                events: TokenBucket::new(rates.1, Instant::now()),
                out,
                flight: Flight::default(),
            },
        );
    }

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

    /// A socket by id.
    pub fn socket(&self, sid: Sid) -> Option<SocketRef> {
        self.lock().sockets.get(&sid).map(|s| s.socket.clone())
    }

    /// Before a pass over the whole inbox of `user`: every socket of it starts from the
    /// inbox's beginning again.
    pub fn rewind_user(&self, user: &str) {
        let mut inner = self.lock();
        let Inner { sockets, users, .. } = &mut *inner;
        for sid in users.get(user).into_iter().flatten() {
            if let Some(s) = sockets.get_mut(sid) {
                s.flight.behind = false;
                s.flight.last_sent = None;
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

    pub fn connections(&self) -> usize {
        self.lock().sockets.len()
    }

    pub fn user_count(&self) -> usize {
        self.lock().users.len()
    }

    pub fn user_of(&self, sid: Sid) -> Option<String> {
        self.lock().sockets.get(&sid).and_then(|s| s.user.clone())
    }

    pub fn in_room(&self, sid: Sid, room: &str) -> bool {
        self.lock()
            .sockets
            .get(&sid)
            .is_some_and(|s| s.rooms.contains(room))
    }

    pub fn take_token(&self, sid: Sid, rate: u32) -> bool {
        self.lock()
            .sockets
            .get_mut(&sid)
            .is_none_or(|s| s.bucket.try_take(rate, Instant::now()))
    }

    /// Would logging `sid` in as `user` stay within `max` sockets of that user here? A socket
    /// that already is `user` does not count twice.
    pub fn may_log_in(&self, sid: Sid, user: &str, max: usize) -> bool {
        let inner = self.lock();
        let sids = inner.users.get(user).map_or(&[][..], |v| v.as_slice());
        sids.contains(&sid) || sids.len() < max
    }

    /// Would `sid` joining `room` stay within `max` rooms? Rejoining a room does.
    pub fn may_join(&self, sid: Sid, room: &str, max: usize) -> bool {
        self.lock()
            .sockets
            .get(&sid)
            .is_none_or(|s| s.rooms.contains(room) || s.rooms.len() < max)
    }

    /// Takes a token of `events_per_second`.
    pub fn take_event_token(&self, sid: Sid, rate: u32) -> bool {
        self.lock()
            .sockets
            .get_mut(&sid)
            .is_none_or(|s| s.events.try_take(rate, Instant::now()))
    }

    /// Marks `sid` as `user` and starts its catch-up. Returns the previous user of the socket
    /// if that user has no other socket here now (the caller logs them out of Redis).
    pub fn begin_login(&self, sid: Sid, user: &str) -> Option<String> {
        let mut inner = self.lock();
        let previous = match inner.sockets.get_mut(&sid) {
            Some(s) => {
                s.catch_up = Some(Vec::new());
                // The log in sends the inbox again from its start.
                s.flight.behind = false;
                s.flight.last_sent = None;
                s.user.replace(user.to_owned())
            }
            None => return None,
        };
        let mut orphaned = None;
        if let Some(prev) = previous {
            if prev == user {
                return None;
            }
            if remove_sid(&mut inner.users, &prev, sid) {
                orphaned = Some(prev);
            }
        }
        inner.users.entry(user.to_owned()).or_default().push(sid);
        orphaned
    }

    /// Ends the catch-up: returns what arrived meanwhile that is not among `pending_ids`.
    pub fn finish_login(&self, sid: Sid, pending_ids: &HashSet<&str>) -> Vec<NewMessage> {
        let mut inner = self.lock();
        let queued = inner
            .sockets
            .get_mut(&sid)
            .and_then(|s| s.catch_up.take())
            .unwrap_or_default();
        queued
            .into_iter()
            .filter(|m| !pending_ids.contains(m.id.as_str()))
            .collect()
    }

    /// Undoes `begin_login` after a failed inbox fetch. Returns the user if it has no
    /// socket here any more.
    pub fn abort_login(&self, sid: Sid) -> Option<String> {
        let mut inner = self.lock();
        let user = inner.sockets.get_mut(&sid).and_then(|s| {
            s.catch_up = None;
            s.user.take()
        })?;
        remove_sid(&mut inner.users, &user, sid).then_some(user)
    }

    /// Where a direct message for `user` goes: every local socket, queued for those that are
    /// catching up.
    pub fn direct_targets(&self, user: &str, message: &NewMessage) -> Vec<SocketRef> {
        let mut inner = self.lock();
        let Inner { sockets, users, .. } = &mut *inner;
        let Some(sids) = users.get(user) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(sids.len());
        for sid in sids {
            if let Some(s) = sockets.get_mut(sid) {
                match &mut s.catch_up {
                    Some(queue) => queue.push(message.clone()),
                    None => out.push(s.socket.clone()),
                }
            }
        }
        out
    }

    /// Every local socket of `user`.
    pub fn sockets_of(&self, user: &str) -> Vec<SocketRef> {
        let inner = self.lock();
        inner
            .users
            .get(user)
            .map(|sids| {
                sids.iter()
                    .filter_map(|sid| inner.sockets.get(sid).map(|s| s.socket.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Local members of `room`, except `except`.
    pub fn room_members(&self, room: &str, except: &str) -> Vec<SocketRef> {
        let inner = self.lock();
        inner
            .rooms
            .get(room)
            .map(|sids| {
                sids.iter()
                    .filter(|sid| sid.as_str() != except)
                    .filter_map(|sid| inner.sockets.get(sid).map(|s| s.socket.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Adds `sid` to `room`; `true` when it is the room's first member here.
    pub fn join(&self, sid: Sid, room: &str) -> bool {
        let mut inner = self.lock();
        let Some(s) = inner.sockets.get_mut(&sid) else {
            return false;
        };
        if !s.rooms.insert(room.to_owned()) {
            return false;
        }
        let list = inner.rooms.entry(room.to_owned()).or_default();
        list.push(sid);
        list.len() == 1
    }

    /// Removes `sid` from `room`; `true` when the room has no member here any more.
    pub fn leave(&self, sid: Sid, room: &str) -> bool {
        let mut inner = self.lock();
        let was_member = inner
            .sockets
            .get_mut(&sid)
            .is_some_and(|s| s.rooms.remove(room));
        was_member && remove_sid(&mut inner.rooms, room, sid)
    }

    /// Forgets a closed socket.
    pub fn disconnect(&self, sid: Sid) -> Departure {
        let mut inner = self.lock();
        let Some(s) = inner.sockets.remove(&sid) else {
            return Departure::default();
        };
        let last_of_user = s.user.filter(|u| remove_sid(&mut inner.users, u, sid));
        let emptied_rooms = s
            .rooms
            .into_iter()
            .filter(|r| remove_sid(&mut inner.rooms, r, sid))
            .collect();
        Departure {
            last_of_user,
            emptied_rooms,
        }
    }

    /// Users and rooms present here, to re-register after Redis lost them.
    pub fn snapshot(&self) -> (Vec<String>, Vec<String>) {
        let inner = self.lock();
        (
            inner.users.keys().cloned().collect(),
            inner.rooms.keys().cloned().collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_rate_then_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, t0);
        assert!(b.try_take(3, t0));
        assert!(b.try_take(3, t0));
        assert!(b.try_take(3, t0));
        assert!(!b.try_take(3, t0));
        assert!(b.try_take(3, t0 + Duration::from_millis(400)));
        assert!(!b.try_take(3, t0 + Duration::from_millis(400)));
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

    #[test]
    fn bucket_never_exceeds_its_depth() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, t0);
        let later = t0 + Duration::from_secs(100);
        assert!(b.try_take(2, later));
        assert!(b.try_take(2, later));
        assert!(!b.try_take(2, later));
    }
}
