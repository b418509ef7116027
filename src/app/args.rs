//! The request of an event, decoded straight from the packet into its type.
//!
//! socketioxide's `TryData<serde_json::Value>` built a JSON tree that was then converted, and
//! its first-element reader builds a `serde_json::Error` on every call, even when it succeeds
//! (`ok_or(Error::custom(..))` in socketioxide-core 0.20: an allocation and a scan of the
//! message per event). [`Arg`] reads the same argument with [`protocol::request`]: one pass
//! of serde_json, no error unless there is one.

use crate::protocol::{self, ChatError, PayloadError};
use serde::de::DeserializeOwned;
use socketioxide::adapter::Adapter;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide_core::Value;
use std::convert::Infallible;
use std::sync::Arc;

/// Extractor: the event's first argument as a `T`, or why it is not one.
pub(super) struct Arg<T>(pub Result<T, PayloadError>);

impl<T: DeserializeOwned> Arg<T> {
    /// Reads a packet's data.
    pub(super) fn of_packet(v: &Value) -> Self {
        Arg(match v.as_str() {
            Some(data) => protocol::request(data.as_str()),
            None => Err(PayloadError::Missing("binary data where JSON was expected")),
        })
    }
}

impl<T> Arg<T> {
    /// The request, or `bad_request` saying what is wrong with `event`'s payload.
    pub(super) fn of(self, event: &str) -> Result<T, ChatError> {
        self.0.map_err(|e| e.for_event(event))
    }
}

impl<A: Adapter, T: DeserializeOwned> FromMessageParts<A> for Arg<T> {
    type Error = Infallible;

    fn from_message_parts(
        _: &Arc<Socket<A>>,
        v: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Self::of_packet(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ErrorCode, SendMessage};

    fn packet(json: &str) -> Value {
        Value::Str(json.to_owned().into(), None)
    }

    #[test]
    fn the_first_argument_after_the_event_is_the_request_and_later_ones_are_ignored() {
        let req: SendMessage = Arg::of_packet(&packet(
            r#"["send message",{"username":"bob","message":"hi \"x\""},7]"#,
        ))
        .of("send message")
        .unwrap();
        assert_eq!(req.username, "bob");
        assert_eq!(req.message, r#"hi "x""#);
    }

    #[test]
    fn a_missing_or_misshapen_payload_is_a_bad_request_naming_the_event() {
        for (json, says) in [
            (r#"["send message"]"#, "needs a JSON object payload"),
            (
                r#"["send message",{"username":"bob"}]"#,
                "bad `send message` payload",
            ),
            (r#"["send message","bob"]"#, "bad `send message` payload"),
            (
                r#"["send message",{"username":"bob","message":"hi"}"#,
                "bad",
            ),
            (r#"{"username":"bob"}"#, "bad"),
        ] {
            let err = Arg::<SendMessage>::of_packet(&packet(json))
                .of("send message")
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{json}");
            assert!(err.message.contains(says), "{json}: {}", err.message);
        }
        let binary = Value::Bytes(bytes::Bytes::from_static(b"\x01"));
        let err = Arg::<SendMessage>::of_packet(&binary)
            .of("send message")
            .unwrap_err();
        assert!(err.message.contains("binary"), "{}", err.message);
    }
}
