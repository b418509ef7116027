//! The chat protocol of SPEC §3: request payloads, their validation, error codes and the
//! shapes of acks and server events. Pure code, no I/O: handlers call it, tests cover it.

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;

/// Event names, fixed by the SPEC; clients outside this repo depend on them.
pub mod events {
    pub const LOG_IN: &str = "log in";
    pub const SEND_MESSAGE: &str = "send message";
    pub const JOIN_ROOM: &str = "join room";
    pub const LEAVE_ROOM: &str = "leave room";
    pub const ROOM_MESSAGE: &str = "room message";
    pub const LIST_USERS: &str = "list users";
    pub const NEW_MESSAGE: &str = "new message";
    pub const DELIVERED: &str = "delivered";
    pub const CHAT_ERROR: &str = "chat error";
}

/// Most users `list users` returns (SPEC §3).
pub const LIST_USERS_MAX: usize = 1000;
/// Messages a room keeps as history and returns on `join room` (SPEC §3).
pub const ROOM_HISTORY_LEN: usize = 50;
const USERNAME_MAX: usize = 32;
const ROOM_MAX: usize = 64;

/// The error codes of SPEC §3, serialized as their snake_case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    InvalidUsername,
    InvalidRoom,
    NotLoggedIn,
    MessageTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    /// A cap on this user or socket (sockets per user, rooms per socket).
    LimitReached,
}

/// A protocol failure: what the ack (or `chat error`) reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatError {
    pub code: ErrorCode,
    pub message: String,
}

impl ChatError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "the message store is unreachable; nothing was accepted, retry later",
        )
    }

    pub fn not_logged_in() -> Self {
        Self::new(ErrorCode::NotLoggedIn, "log in first")
    }

    /// `{"ok":false,"error":{"code","message"}}`, the ack form.
    pub fn to_ack(&self) -> Value {
        serde_json::json!({"ok": false, "error": {"code": self.code, "message": self.message}})
    }

    /// `{"code","message","event"}`, the `chat error` form for senders without an ack callback.
    pub fn to_event(&self, event: &str) -> Value {
        serde_json::json!({"code": self.code, "message": self.message, "event": event})
    }
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// `log in` `{"username":U,"token"?:T}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogIn {
    pub username: String,
    #[serde(default)]
    pub token: Option<String>,
}

/// `send message` `{"username":TO,"message":TEXT}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SendMessage {
    pub username: String,
    pub message: String,
}

/// `join room` / `leave room` `{"room":R}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomRef {
    pub room: String,
}

/// `room message` `{"room":R,"message":TEXT}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomMessage {
    pub room: String,
    pub message: String,
}

/// `new message`, as emitted to clients and as kept in room history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub id: String,
    pub from: String,
    pub message: String,
    #[serde(rename = "sentAt")]
    pub sent_at: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub room: Option<String>,
}

/// `delivered` `{"id","to"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivered<'a> {
    pub id: &'a str,
    pub to: &'a str,
}

fn name_chars_ok(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `^[A-Za-z0-9_.-]{1,32}$`
pub fn validate_username(name: &str) -> Result<(), ChatError> {
    if !name.is_empty() && name.len() <= USERNAME_MAX && name_chars_ok(name) {
        Ok(())
    } else {
        Err(ChatError::new(
            ErrorCode::InvalidUsername,
            "a username is 1 to 32 characters of A-Z a-z 0-9 _ . -",
        ))
    }
}

/// `^[A-Za-z0-9_.-]{1,64}$`
pub fn validate_room(room: &str) -> Result<(), ChatError> {
    if !room.is_empty() && room.len() <= ROOM_MAX && name_chars_ok(room) {
        Ok(())
    } else {
        Err(ChatError::new(
            ErrorCode::InvalidRoom,
            "a room name is 1 to 64 characters of A-Z a-z 0-9 _ . -",
        ))
    }
}

/// A non-empty text of at most `max_bytes` bytes (UTF-8 length, as the SPEC counts bytes).
pub fn validate_text(text: &str, max_bytes: usize) -> Result<(), ChatError> {
    if text.is_empty() {
        return Err(ChatError::bad_request("message must be a non-empty string"));
    }
    if text.len() > max_bytes {
        return Err(ChatError::new(
            ErrorCode::MessageTooLarge,
            format!("message is {} bytes; the limit is {max_bytes}", text.len()),
        ));
    }
    Ok(())
}

/// Why a packet carries no usable request.
#[derive(Debug)]
pub enum PayloadError {
    /// `["event"]`, or a binary packet: nothing to decode.
    Missing(&'static str),
    /// Not JSON of the request's shape: serde's words for it.
    Shape(serde_json::Error),
}

impl PayloadError {
    /// The `bad_request` answer to `event`, naming what is wrong so a client developer sees
    /// which field to fix.
    pub fn for_event(self, event: &str) -> ChatError {
        match self {
            Self::Missing(why) => {
                ChatError::bad_request(format!("`{event}` needs a JSON object payload: {why}"))
            }
            Self::Shape(e) => ChatError::bad_request(format!("bad `{event}` payload: {e}")),
        }
    }
}

/// The request in a Socket.IO packet's data, `["event", PAYLOAD, …]`: the first argument
/// after the event name, decoded straight into `T` in one pass (no JSON tree in between).
/// Later arguments are ignored, as socketioxide ignores them for a non-tuple type.
pub fn request<T: serde::de::DeserializeOwned>(data: &str) -> Result<T, PayloadError> {
    let mut de = serde_json::Deserializer::from_str(data);
    let arg = serde::Deserializer::deserialize_seq(&mut de, SecondElement(PhantomData))
        .and_then(|arg| de.end().map(|()| arg))
        .map_err(PayloadError::Shape)?;
    arg.ok_or(PayloadError::Missing("no payload after the event name"))
}

/// [`request`], with its error as the answer to `event`.
pub fn parse<T: serde::de::DeserializeOwned>(event: &str, data: &str) -> Result<T, ChatError> {
    request(data).map_err(|e| e.for_event(event))
}

/// Visits `[event, arg, …]` and keeps `arg`.
struct SecondElement<T>(PhantomData<T>);

impl<'de, T: serde::de::DeserializeOwned> Visitor<'de> for SecondElement<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array [event, payload]")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Option<T>, S::Error> {
        if seq.next_element::<IgnoredAny>()?.is_none() {
            return Ok(None);
        }
        let arg = seq.next_element::<T>()?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(arg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usernames_follow_the_spec_pattern() {
        for ok in ["a", "Alice_1", "x.y-z", &"a".repeat(32)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "é", "a:b", &"a".repeat(33), "a/b"] {
            let err = validate_username(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidUsername, "{bad}");
        }
    }

    #[test]
    fn rooms_follow_the_spec_pattern() {
        assert!(validate_room(&"r".repeat(64)).is_ok());
        assert_eq!(
            validate_room(&"r".repeat(65)).unwrap_err().code,
            ErrorCode::InvalidRoom
        );
        assert_eq!(validate_room("").unwrap_err().code, ErrorCode::InvalidRoom);
        assert_eq!(
            validate_room("a b").unwrap_err().code,
            ErrorCode::InvalidRoom
        );
    }

    #[test]
    fn text_is_counted_in_bytes() {
        assert!(validate_text("hi", 2).is_ok());
        assert_eq!(
            validate_text("é", 1).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
        assert_eq!(
            validate_text("", 10).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn wrong_payload_types_are_bad_requests() {
        for payload in [
            json!(null),
            json!("alice"),
            json!({"username": 5}),
            json!({"username": "a"}),
            json!({"message": "hi"}),
            json!([1, 2]),
        ] {
            let data = json!(["send message", payload]).to_string();
            let err = parse::<SendMessage>("send message", &data).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest);
        }
        let data = json!(["send message", {"username":"b","message":"m"}]).to_string();
        let ok: SendMessage = parse("send message", &data).unwrap();
        assert_eq!(ok.username, "b");
    }

    #[test]
    fn error_shapes_match_the_spec() {
        let e = ChatError::new(ErrorCode::RateLimited, "slow down");
        assert_eq!(
            e.to_ack(),
            json!({"ok":false,"error":{"code":"rate_limited","message":"slow down"}})
        );
        assert_eq!(
            e.to_event("send message"),
            json!({"code":"rate_limited","message":"slow down","event":"send message"})
        );
    }

    #[test]
    fn new_message_serializes_sent_at_and_optional_room() {
        let m = NewMessage {
            id: "1-0".into(),
            from: "a".into(),
            message: "m".into(),
            sent_at: 5,
            room: None,
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"id":"1-0","from":"a","message":"m","sentAt":5})
        );
    }
}
