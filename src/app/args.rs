//! A request's payload, decoded straight from the packet into its request type.
//!
//! socketioxide's `TryData<serde_json::Value>` built a JSON tree that `protocol::parse` then
//! converted, and its first-element reader builds a `serde_json::Error` on every call, even
//! when it succeeds (`ok_or(Error::custom(..))` in socketioxide-core 0.20: an allocation and
//! a message scan per event). [`Arg`] reads the same argument, the first after the event name,
//! with one pass of serde_json and no error unless there is one.

use crate::protocol::ChatError;
use serde::de::{DeserializeOwned, IgnoredAny, SeqAccess, Visitor};
use socketioxide::adapter::Adapter;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide_core::Value;
use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

/// Extractor: the event's first argument as a `T`, or why it is not one.
pub(super) struct Arg<T>(pub Result<T, ArgError>);

/// Why a packet carries no usable request.
#[derive(Debug)]
pub(super) enum ArgError {
    /// `["event"]`, or a binary packet: nothing to decode.
    Missing(&'static str),
    /// Not JSON of the request's shape: serde's words for it.
    Shape(serde_json::Error),
}

impl<T> Arg<T> {
    /// The request, or `bad_request` saying what is wrong with `event`'s payload.
    pub(super) fn of(self, event: &str) -> Result<T, ChatError> {
        self.0.map_err(|e| match e {
            ArgError::Missing(why) => {
                ChatError::bad_request(format!("`{event}` needs a JSON object payload: {why}"))
            }
            ArgError::Shape(e) => ChatError::bad_request(format!("bad `{event}` payload: {e}")),
        })
    }
}

impl<A: Adapter, T: DeserializeOwned> FromMessageParts<A> for Arg<T> {
    type Error = Infallible;

    fn from_message_parts(
        _: &Arc<Socket<A>>,
        v: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Arg(first_arg(v)))
    }
}

/// The first argument after the event name of `["event", ARG, …]`; later ones are ignored,
/// as socketioxide ignores them for a non-tuple type.
pub(super) fn first_arg<T: DeserializeOwned>(v: &Value) -> Result<T, ArgError> {
    let data = v
        .as_str()
        .ok_or(ArgError::Missing("binary data where JSON was expected"))?;
    let mut de = serde_json::Deserializer::from_str(data.as_str());
    let arg = serde::Deserializer::deserialize_seq(&mut de, SecondElement(PhantomData))
        .and_then(|arg| de.end().map(|()| arg))
        .map_err(ArgError::Shape)?;
    arg.ok_or(ArgError::Missing("no payload after the event name"))
}

/// Visits `[event, arg, …]` and keeps `arg`.
struct SecondElement<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for SecondElement<T> {
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
    use crate::protocol::{ErrorCode, SendMessage};

    fn packet(json: &str) -> Value {
        Value::Str(json.to_owned().into(), None)
    }

    #[test]
    fn the_first_argument_after_the_event_is_the_request_and_later_ones_are_ignored() {
        let req: SendMessage = first_arg(&packet(
            r#"["send message",{"username":"bob","message":"hi \"x\""},7]"#,
        ))
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
            let err = Arg(first_arg::<SendMessage>(&packet(json)))
                .of("send message")
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{json}");
            assert!(err.message.contains(says), "{json}: {}", err.message);
        }
        let binary = Value::Bytes(bytes::Bytes::from_static(b"\x01"));
        let err = Arg(first_arg::<SendMessage>(&binary))
            .of("send message")
            .unwrap_err();
        assert!(err.message.contains("binary"), "{}", err.message);
    }

    proptest::proptest! {
        /// Whatever a client puts after the event name, decoding answers and never panics.
        #[test]
        fn any_text_decodes_or_is_refused(tail in ".{0,64}") {
            let _ = first_arg::<SendMessage>(&packet(&format!(r#"["send message",{tail}"#)));
            let _ = first_arg::<SendMessage>(&packet(&tail));
        }
    }
}
