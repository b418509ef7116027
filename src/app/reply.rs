//! What goes out to one socket: the [`Reply`] extractor (an ack, or a `chat error`) and the
//! byte accounting that keeps each socket's unsent data within `max_queued_bytes_per_socket`.

use super::App;
use crate::protocol::{events, ChatError};
use crate::registry::Charge;
use serde::Serialize;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide::TransportType;
use std::convert::Infallible;
use std::sync::Arc;

/// Answers an event: through its ack callback when the client sent one, otherwise failures
/// go out as `chat error` (SPEC §3) and successes need no answer.
pub struct Reply {
    ack: AckSender,
    wants_ack: bool,
    socket: SocketRef,
}

impl FromMessageParts<LocalAdapter> for Reply {
    type Error = Infallible;
    fn from_message_parts(
        s: &Arc<Socket>,
        v: &mut socketioxide_core::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Reply {
            ack: AckSender::from_message_parts(s, v, ack_id)?,
            wants_ack: ack_id.is_some(),
            socket: SocketRef::from_message_parts(s, v, ack_id)?,
        })
    }
}

impl Reply {
    /// Answers with `result`: `T` is any serializable answer, so a hot handler can answer
    /// with a plain struct instead of building a JSON map.
    pub(super) fn send<T: Serialize>(self, app: &App, event: &str, result: Result<T, ChatError>) {
        match result {
            Ok(answer) => self.ack_with(app, &answer),
            Err(e) => {
                app.metrics.error(e.code);
                if self.wants_ack {
                    self.ack_with(app, &e.to_ack());
                } else {
                    app.emit_to(&self.socket, events::CHAT_ERROR, &e.to_event(event));
                }
            }
        }
    }

    /// Answers with a failure.
    pub(super) fn fail(self, app: &App, event: &str, e: ChatError) {
        self.send::<()>(app, event, Err(e));
    }

    fn ack_with<T: Serialize>(self, app: &App, answer: &T) {
        // An ack is `43<id>[json]`: the JSON and its brackets.
        if self.wants_ack && app.admit(&self.socket, json_len(answer) + 2) {
            let _ = self.ack.send(answer);
        }
    }
}

/// Data serialized once, for every socket it goes to: socketioxide then copies the JSON into
/// each packet instead of serializing the value again (escaping every string), and its size
/// needs no counting pass.
pub(super) struct Json(Box<serde_json::value::RawValue>);

impl Json {
    /// `None` only for data that cannot be JSON, which no message of ours is; the caller
    /// then sends nothing (a direct message stays in its inbox).
    pub(super) fn of<T: Serialize>(data: &T) -> Option<Json> {
        match serde_json::value::to_raw_value(data) {
            Ok(raw) => Some(Json(raw)),
            Err(e) => {
                tracing::error!("not sent, not serializable: {e}");
                None
            }
        }
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Counts serialized bytes without keeping them.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes of `data` serialized as JSON.
pub(super) fn json_len<T: Serialize>(data: &T) -> usize {
    let mut n = ByteCount(0);
    let _ = serde_json::to_writer(&mut n, data);
    n.0
}

/// `["event",JSON]`: the JSON part of an event packet (event names need no escaping).
pub(super) fn event_json_len<T: Serialize>(event: &str, data: &T) -> usize {
    event.len() + 4 + json_len(data)
}

/// Bytes a Socket.IO packet whose JSON part is `json_len` bytes takes on the wire, never more
/// than it really does (see `Registry::charge`): the `42`/`43` type prefix without ack-id
/// digits, plus the WebSocket frame header (polling separators are left out).
pub fn wire_size(json_len: usize, websocket: bool) -> u64 {
    let packet = json_len as u64 + 2;
    let header = match (websocket, packet) {
        (false, _) => 0,
        (true, 0..=125) => 2,
        (true, 126..=65535) => 4,
        (true, _) => 10,
    };
    packet + header
}

impl App {
    /// Accounts for a packet whose Socket.IO JSON part is `json_len` bytes; `false` when it
    /// must not go out because the socket's unsent bytes would pass
    /// `max_queued_bytes_per_socket` (the socket is then cut, once).
    pub(super) fn admit(&self, socket: &SocketRef, json_len: usize) -> bool {
        let websocket = socket.transport_type() == TransportType::Websocket;
        self.admit_bytes(socket, wire_size(json_len, websocket), websocket)
    }

    /// [`App::admit`] for a packet already sized in wire bytes.
    pub(super) fn admit_bytes(&self, socket: &SocketRef, bytes: u64, websocket: bool) -> bool {
        let limit = self.limits.max_queued_bytes_per_socket;
        match self.registry.charge(socket.id, bytes, limit, websocket) {
            Charge::Emit => true,
            Charge::Drop => false,
            Charge::Over { queued, user, wire } => {
                self.metrics.slow_disconnect();
                tracing::warn!(
                    sid = %socket.id,
                    user = user.as_deref().unwrap_or("-"),
                    queued,
                    limit,
                    "slow reader disconnected: its unsent data would pass \
                     max_queued_bytes_per_socket; its direct messages wait in the inbox"
                );
                match wire {
                    // The transport closes the session and the disconnect handler runs.
                    Some(wire) => wire.cut(),
                    // Polling: the disconnect packet goes first if the packet channel has
                    // room; otherwise the full channel fails the next ping and engineioxide
                    // closes the session within a ping interval.
                    None => {
                        if let Err(e) = socket.clone().disconnect() {
                            tracing::debug!(sid = %socket.id, "disconnect deferred: {e}");
                        }
                    }
                }
                false
            }
        }
    }

    /// Emits `event` to one socket within its byte bound.
    pub(super) fn emit_to<T: Serialize>(&self, socket: &SocketRef, event: &str, data: &T) -> bool {
        self.admit(socket, event_json_len(event, data)) && socket.emit(event, data).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NewMessage;
    use socketioxide_core::parser::Parse;
    use socketioxide_parser_common::CommonParser;

    #[test]
    fn a_message_serialized_once_goes_out_byte_for_byte_as_before() {
        let message = NewMessage {
            id: "1700000000000-3".into(),
            from: "alice".into(),
            message: "quotes \" backslash \\ newline \n tab \t emoji 🎉 \u{1}".into(),
            sent_at: 1_700_000_000_000,
            room: Some("lobby".into()),
        };
        let json = Json::of(&message).unwrap();
        let event = Some(events::NEW_MESSAGE);
        // What socketioxide's emit does with the data (its parser is the common one).
        let direct = CommonParser.encode_value(&message, event).unwrap();
        let once = CommonParser.encode_value(&json, event).unwrap();
        assert_eq!(once.as_str(), direct.as_str());
        assert_eq!(
            event_json_len(events::NEW_MESSAGE, &json),
            event_json_len(events::NEW_MESSAGE, &message)
        );
        // The accounting is a lower bound of what goes out, never more (`wire_size`).
        assert!(
            event_json_len(events::NEW_MESSAGE, &json)
                <= direct.as_str().map(|s| s.len()).unwrap_or_default()
        );
    }
}
