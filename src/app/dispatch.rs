//! One handler for every event of a socket, instead of one per event.
//!
//! socketioxide keeps a socket's handlers registered with `socket.on` in a `HashMap` per
//! socket: six events grew it to eight buckets, about 340 bytes per connection, identical on
//! every socket. Its fallback handler is a single slot, and a zero-sized handler in it
//! allocates nothing; so [`OnEvent`] sits there and routes by event name. An event name that
//! is not a string never reaches it: socketioxide closes that socket as a malformed packet
//! (`InvalidEventName`, disconnect reason `PacketParsingError`).

use super::{list_users, log_in, on_unknown_event, rooms, send_message};
use crate::protocol::events;
use socketioxide::adapter::LocalAdapter;
use socketioxide::handler::MessageHandler;
use socketioxide::socket::Socket;
use socketioxide_core::parser::Parse;
use socketioxide_core::Value;
use socketioxide_parser_common::CommonParser;
use std::sync::Arc;

/// The socket's one message handler (registered with `on_fallback`).
pub(super) struct OnEvent;

/// The events of SPEC §3 a client sends, and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Incoming {
    LogIn,
    SendMessage,
    JoinRoom,
    LeaveRoom,
    RoomMessage,
    ListUsers,
    Unknown,
}

impl Incoming {
    fn of(name: &str) -> Self {
        match name {
            events::LOG_IN => Self::LogIn,
            events::SEND_MESSAGE => Self::SendMessage,
            events::JOIN_ROOM => Self::JoinRoom,
            events::LEAVE_ROOM => Self::LeaveRoom,
            events::ROOM_MESSAGE => Self::RoomMessage,
            events::LIST_USERS => Self::ListUsers,
            _ => Self::Unknown,
        }
    }

    /// The event a packet's data carries; socketioxide read it the same way before calling
    /// us (the worker speaks the common parser's format, the default). The name of every
    /// event we know is plain ASCII, so a name without escapes is read by hand: the common
    /// parser's `read_event` builds (and drops) a `serde_json::Error` even when it succeeds.
    fn of_packet(data: &Value) -> Self {
        match data.as_str().and_then(|s| plain_event_name(s.as_str())) {
            Some(name) => Self::of(name),
            None => CommonParser
                .read_event(data)
                .map_or(Self::Unknown, Self::of),
        }
    }
}

/// `NAME` of `["NAME", …]` when it has no escape sequence, and so reads the same as JSON.
/// socketioxide has parsed the whole array before calling a handler, so the string is closed
/// and well formed; anything else (spaces, escapes) is left to the JSON parser. (A name with
/// an escape never gets here: socketioxide reads names borrowed, fails on it and closes the
/// socket as a malformed packet.)
fn plain_event_name(data: &str) -> Option<&str> {
    let rest = data.strip_prefix("[\"")?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes()[end] == b'"').then(|| &rest[..end])
}

/// Calls `handler` as socketioxide would have (an async one in a task of its own).
fn run<H, T>(handler: &H, s: Arc<Socket>, v: Value, ack_id: Option<i64>)
where
    H: MessageHandler<LocalAdapter, T>,
    T: Send + Sync + 'static,
{
    handler.call(s, v, ack_id);
}

impl MessageHandler<LocalAdapter, ()> for OnEvent {
    fn call(&self, s: Arc<Socket>, v: Value, ack_id: Option<i64>) {
        match Incoming::of_packet(&v) {
            Incoming::SendMessage => run(&send_message::OnSendMessage, s, v, ack_id),
            Incoming::LogIn => run(&log_in::on_log_in, s, v, ack_id),
            Incoming::JoinRoom => run(&rooms::on_join_room, s, v, ack_id),
            Incoming::LeaveRoom => run(&rooms::on_leave_room, s, v, ack_id),
            Incoming::RoomMessage => run(&rooms::on_room_message, s, v, ack_id),
            Incoming::ListUsers => run(&list_users::on_list_users, s, v, ack_id),
            Incoming::Unknown => run(&on_unknown_event, s, v, ack_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(json: &str) -> Value {
        Value::Str(json.to_owned().into(), None)
    }

    #[test]
    fn only_a_name_without_escapes_is_read_by_hand() {
        assert_eq!(plain_event_name(r#"["log in",{}]"#), Some("log in"));
        assert_eq!(plain_event_name(r#"[""]"#), Some(""));
        for json in [
            r#"["lo\"g in"]"#,
            r#"["log\\"]"#,
            r#"[ "log in"]"#,
            r#"["log in"#,
            "[]",
            "[42]",
        ] {
            assert_eq!(plain_event_name(json), None, "{json}");
        }
    }

    #[test]
    fn each_protocol_event_is_routed_by_its_name_and_the_rest_is_unknown() {
        for (name, kind) in [
            (events::LOG_IN, Incoming::LogIn),
            (events::SEND_MESSAGE, Incoming::SendMessage),
            (events::JOIN_ROOM, Incoming::JoinRoom),
            (events::LEAVE_ROOM, Incoming::LeaveRoom),
            (events::ROOM_MESSAGE, Incoming::RoomMessage),
            (events::LIST_USERS, Incoming::ListUsers),
        ] {
            let json = format!(r#"["{name}",{{"username":"bob"}}]"#);
            assert_eq!(Incoming::of_packet(&packet(&json)), kind, "{json}");
            // The JSON parser's path: the same name after a space.
            let json = format!(r#"[ "{name}",{{"username":"bob"}}]"#);
            assert_eq!(Incoming::of_packet(&packet(&json)), kind, "{json}");
        }
        for json in [
            r#"["new message",{}]"#,
            r#"["log in "]"#,
            r#"["LOG IN"]"#,
            r#"["log\u0020in!"]"#,
            r#"[]"#,
            r#"[42]"#,
        ] {
            assert_eq!(
                Incoming::of_packet(&packet(json)),
                Incoming::Unknown,
                "{json}"
            );
        }
    }
}
