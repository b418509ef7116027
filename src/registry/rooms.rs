//! Room membership of this worker's sockets (`max_rooms_per_socket` is checked here).

use super::{remove_sid, Registry};
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;

impl Registry {
    pub fn in_room(&self, sid: Sid, room: &str) -> bool {
        self.lock()
            .sockets
            .get(&sid)
            .is_some_and(|s| s.rooms.contains(room))
    }

    /// Would `sid` joining `room` stay within `max` rooms? Rejoining a room does.
    pub fn may_join(&self, sid: Sid, room: &str, max: usize) -> bool {
        self.lock()
            .sockets
            .get(&sid)
            .is_none_or(|s| s.rooms.contains(room) || s.rooms.len() < max)
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
}
