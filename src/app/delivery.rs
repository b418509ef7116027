//! Direct messages and fan-out: each socket's unacknowledged `new message`s are a bounded
//! flight, the rest waits in the inbox and goes out in pages (refills) as acks come in;
//! deliveries that arrive on the worker's Redis channel go to the local sockets.

use super::acks::{AnyAck, Awaited};
use super::reply::{event_json_len, wire_size, Json};
use super::App;
use crate::protocol::{events, Delivered, NewMessage};
use crate::registry::{stream_id, FlightCaps, Reserve};
use crate::store::{Ack, Delivery};
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use socketioxide::TransportType;
use std::collections::HashSet;
use std::time::Duration;

/// Unacknowledged `new message`s per socket; the rest waits in the inbox. A client acks
/// each at once, so 64 is far more than a round trip's worth at any real rate.
pub const MAX_IN_FLIGHT: u32 = 64;

impl App {
    /// Unacknowledged direct messages per socket: [`MAX_IN_FLIGHT`], and half the queue
    /// bound in bytes so that a page of them never makes a reading client look slow.
    pub(super) fn flight_caps(&self) -> FlightCaps {
        FlightCaps {
            count: MAX_IN_FLIGHT,
            bytes: self.limits.max_queued_bytes_per_socket / 2,
        }
    }

    /// Emits a direct message to one socket and, when that client acknowledges, removes it
    /// from the inbox and sends the sender a `delivered` receipt. `Hold` when the socket's
    /// flight is full: the message stays in the inbox and a refill sends it later.
    pub(super) fn emit_direct(
        &self,
        socket: &SocketRef,
        to: &str,
        message: &NewMessage,
        from_inbox: bool,
    ) -> Reserve {
        match Json::of(message) {
            Some(json) => self.emit_direct_json(socket, to, message, &json, from_inbox),
            None => Reserve::Emit,
        }
    }

    /// [`App::emit_direct`] with `message` already serialized, for a message that goes to
    /// several sockets.
    pub(super) fn emit_direct_json(
        &self,
        socket: &SocketRef,
        to: &str,
        message: &NewMessage,
        json: &Json,
        from_inbox: bool,
    ) -> Reserve {
        let websocket = socket.transport_type() == TransportType::Websocket;
        let bytes = wire_size(event_json_len(events::NEW_MESSAGE, json), websocket);
        let caps = self.flight_caps();
        let sid = socket.id;
        if self
            .registry
            .reserve(sid, &message.id, bytes, caps, from_inbox)
            == Reserve::Hold
        {
            return Reserve::Hold;
        }
        if !self.admit_bytes(socket, bytes, websocket) {
            // Cut: not sent, it stays in the inbox for the next `log in`.
            return Reserve::Emit;
        }
        match socket.emit_with_ack::<_, AnyAck>(events::NEW_MESSAGE, json) {
            Ok(ack) => {
                self.metrics.delivered();
                let awaited = Awaited {
                    ack,
                    sid,
                    bytes,
                    sent_at: message.sent_at,
                    record: Ack {
                        to: to.to_owned(),
                        id: message.id.clone(),
                        sender: message.from.clone(),
                    },
                };
                if self.acks.send(awaited).is_err() {
                    // The worker is stopping: nothing will record it; it stays pending.
                    self.registry.release(sid, bytes, caps);
                }
            }
            Err(e) => {
                tracing::debug!(sid = %socket.id, "emit failed: {e}");
                self.registry.release(sid, bytes, caps);
            }
        }
        Reserve::Emit
    }

    /// Sends a socket that fell behind the next page of its inbox: what follows the newest
    /// message it was sent, until its flight is full again.
    pub(super) async fn refill(&self, sid: Sid, user: String) {
        let caps = self.flight_caps();
        while let Some(after) = self.registry.refill_from(sid, caps) {
            // The store reads the whole inbox (at most `inbox_max` entries) and this keeps
            // what follows `after`; a ranged read would fetch one page only.
            let pending = match self.store.pending(&user).await {
                Ok(p) => p,
                Err(e) => {
                    // Nothing else may be in flight to trigger the next try: retry here
                    // (the loop ends when the socket is gone).
                    tracing::warn!(%user, "refill failed, retrying in 1 s: {e}");
                    self.registry.end_refill(sid, true);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some(socket) = self.registry.socket(sid) else {
                return;
            };
            if self.registry.user_of(sid).as_deref() != Some(user.as_str()) {
                self.registry.end_refill(sid, false);
                return;
            }
            for message in pending.iter().filter(|m| stream_id(&m.id) > after) {
                if self.emit_direct(&socket, &user, message, true) == Reserve::Hold {
                    break;
                }
            }
            self.registry.end_refill(sid, false);
        }
    }

    /// Fans out what arrived on this worker's channel.
    pub fn on_delivery(&self, delivery: Delivery) {
        match delivery {
            Delivery::Direct { to, message } => {
                let Some(json) = Json::of(&message) else {
                    return;
                };
                for socket in self.registry.direct_targets(&to, &message) {
                    self.emit_direct_json(&socket, &to, &message, &json, false);
                }
            }
            Delivery::Room {
                except_sid,
                message,
            } => {
                let (Some(room), Some(json)) = (message.room.as_deref(), Json::of(&message)) else {
                    return;
                };
                for socket in self.registry.room_members(room, &except_sid) {
                    if self.emit_to(&socket, events::NEW_MESSAGE, &json) {
                        self.metrics.delivered();
                    }
                }
            }
            Delivery::Delivered { sender, id, to } => self.emit_receipt(&sender, &id, &to),
            Delivery::Receipts(receipts) => {
                for (sender, id, to) in &receipts {
                    self.emit_receipt(sender, id, to);
                }
            }
            Delivery::Batch(batch) => {
                for d in batch {
                    self.on_delivery(d);
                }
            }
        }
    }

    /// Tells `sender`'s sockets here that `to` acknowledged message `id`.
    fn emit_receipt(&self, sender: &str, id: &str, to: &str) {
        for socket in self.registry.sockets_of(sender) {
            self.emit_to(&socket, events::DELIVERED, &Delivered { id, to });
        }
    }

    /// Sends `user`'s local sockets its inbox again: a pass over the whole inbox, in order,
    /// per socket up to its first hold (clients drop duplicates by id).
    pub(super) fn send_inbox(&self, user: &str, pending: Vec<NewMessage>) {
        self.registry.rewind_user(user);
        let mut full = HashSet::new();
        for message in pending {
            let Some(json) = Json::of(&message) else {
                continue;
            };
            for socket in self.registry.direct_targets(user, &message) {
                if !full.contains(&socket.id)
                    && self.emit_direct_json(&socket, user, &message, &json, true) == Reserve::Hold
                {
                    full.insert(socket.id);
                }
            }
        }
        // A live message held while `pending` was being read is newer than all of it: a
        // refill sends what follows the pass (a no-op when nothing is held, or when the
        // flight is full: then the acks start it).
        for socket in self.registry.sockets_of(user) {
            let app = self.clone();
            let user = user.to_owned();
            tokio::spawn(async move { app.refill(socket.id, user).await });
        }
    }

    /// After the delivery channel was (re)subscribed, messages published while it was down
    /// were missed: send every local user its inbox again (clients drop duplicates by id).
    pub async fn redeliver_pending(&self) {
        let (users, _) = self.registry.snapshot();
        for user in users {
            match self.store.pending(&user).await {
                Ok(pending) => self.send_inbox(&user, pending),
                Err(e) => {
                    tracing::warn!("redelivery stopped, redis failed again: {e}");
                    return;
                }
            }
        }
    }
}
