//! The worker's local view: which of its own sockets belong to which user and room. Redis
//! holds the cluster-wide view (which *workers* hold a user); this holds which *sockets*.
//!
//! Everything runs on one thread, so the mutex is never contended; it exists because
//! socketioxide requires state to be `Send + Sync`.
//!
//! Here: sockets and users (`log in`, direct targets, departures). Beside it, each a part of
//! the per-socket state: [`rooms`], [`outbound`] (unsent bytes, `max_queued_bytes_per_socket`),
//! [`flight`] (unacknowledged direct messages) and [`rate`] (token buckets).

mod flight;
mod outbound;
mod rate;
mod rooms;

pub use flight::{stream_id, FlightCaps, Reserve};
pub use outbound::Charge;
pub use rate::TokenBucket;

use crate::http::Wire;
use crate::protocol::NewMessage;
use flight::Flight;
use outbound::Outbound;
use smallvec::SmallVec;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One socket of this worker and what is kept per socket.
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

#[derive(Default)]
struct Inner {
    /// Boxed: a `LocalSocket` is about 230 bytes, and a hash table keeps up to half its
    /// buckets empty after growing; a pointer per bucket wastes less (about 0.13 KB per
    /// connection at 10,000).
    sockets: HashMap<Sid, Box<LocalSocket>, BySid>,
    users: HashMap<String, Sids>,
    rooms: HashMap<String, Sids>,
}

/// Hashes a [`Sid`] cheaply. The default SipHash resists keys an attacker picks; a sid is 96
/// random bits engineioxide draws for each new session, and only sockets that exist are ever
/// looked up by theirs, so a multiply per word spreads them as well. Per message the
/// registry is asked about the sender's sid four times (user, rate, flight in and out).
#[derive(Default, Clone, Copy)]
struct BySid;

impl std::hash::BuildHasher for BySid {
    type Hasher = SidHasher;

    fn build_hasher(&self) -> SidHasher {
        SidHasher(0)
    }
}

/// FxHash's step (rustc's hasher): rotate, xor in a word, multiply.
struct SidHasher(u64);

impl SidHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl std::hash::Hasher for SidHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0; 8];
            w.copy_from_slice(word);
            self.add(u64::from_le_bytes(w));
        }
        for &b in words.remainder() {
            self.add(u64::from(b));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The sockets of one user or room here. Most users hold one socket: inline, it costs no
/// allocation (a `Vec`'s first push allocates room for four, 64 bytes plus the allocator's).
type Sids = SmallVec<[Sid; 1]>;

/// What a socket's departure leaves for Redis to forget.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Departure {
    /// The user whose last socket on this worker left.
    pub last_of_user: Option<String>,
    /// Rooms that have no member on this worker any more.
    pub emptied_rooms: Vec<String>,
}

/// The sockets of this worker by id, user and room.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

/// Removes `sid` from `key`'s list; `true` when that emptied (and removed) the list.
fn remove_sid(map: &mut HashMap<String, Sids>, key: &str, sid: Sid) -> bool {
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
        self.lock().sockets.insert(
            sid,
            Box::new(LocalSocket {
                socket,
                user: None,
                rooms: HashSet::new(),
                catch_up: None,
                bucket: TokenBucket::new(rates.0, Instant::now()),
                events: TokenBucket::new(rates.1, Instant::now()),
                out: Outbound::new(wire),
                flight: Flight::default(),
            }),
        );
    }

    /// A socket by id.
    pub fn socket(&self, sid: Sid) -> Option<SocketRef> {
        self.lock().sockets.get(&sid).map(|s| s.socket.clone())
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

    /// Would logging `sid` in as `user` stay within `max` sockets of that user here? A socket
    /// that already is `user` does not count twice.
    pub fn may_log_in(&self, sid: Sid, user: &str, max: usize) -> bool {
        let inner = self.lock();
        let sids = inner.users.get(user).map_or(&[][..], |v| v.as_slice());
        sids.contains(&sid) || sids.len() < max
    }

    /// Marks `sid` as `user` and starts its catch-up. Returns the previous user of the socket
    /// if that user has no other socket here now (the caller logs them out of Redis).
    pub fn begin_login(&self, sid: Sid, user: &str) -> Option<String> {
        let mut inner = self.lock();
        let previous = match inner.sockets.get_mut(&sid) {
            Some(s) => {
                s.catch_up = Some(Vec::new());
                // The log in sends the inbox again from its start.
                s.flight.rewind();
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
    use std::hash::BuildHasher;

    #[test]
    fn session_ids_spread_over_a_table_like_random_keys() {
        let hashes: HashSet<u64> = (0..10_000).map(|_| BySid.hash_one(Sid::new())).collect();
        assert_eq!(hashes.len(), 10_000, "no two sessions share a hash");
        // hashbrown picks the bucket from the low bits: 10,000 random keys fill about 7,470
        // of 16,384 buckets; a hash that kept them together would fill far fewer.
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & 0x3fff).collect();
        assert!(buckets.len() > 7_000, "{} buckets used", buckets.len());
        // …and the control byte from the top seven.
        let tops: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tops.len(), 128);
    }
}
