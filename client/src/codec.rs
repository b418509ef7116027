//! Engine.IO v4 / Socket.IO v5 text packets and polling payloads: pure encode and parse.
//!
//! Two layers. [`frame`] splits one packet into its type and its JSON text without parsing
//! any JSON (what the load generator of `bench/` runs per message); [`parse`] builds on it
//! and parses the JSON into what [`crate::Client`] needs. A packet is `0{…}` open, `1` close,
//! `2`/`3` ping/pong, `4x` a Socket.IO packet: `40{…}` connect, `41` disconnect, `42[id][…]`
//! event, `43id[…]` ack, `44{…}` connect error. Only namespace `/` and text packets exist here.
//!
//! Over WebSocket every text frame is one packet; over HTTP long-polling a payload holds
//! packets joined by [`SEPARATOR`].

use crate::{Error, ServerEvent};
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt::Write;

/// The pong that answers a server's ping (`2`).
pub const PONG: &str = "3";
/// Joins namespace `/` (Socket.IO connect, no auth payload).
pub const CONNECT: &str = "40";
/// Closes the Engine.IO session (what a polling client POSTs to leave).
pub const CLOSE: &str = "1";

/// One Engine.IO text packet split into its type and its JSON text, nothing parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `0{…}`: the handshake object.
    Open(&'a str),
    /// `1`.
    Close,
    /// `2`: answer [`PONG`].
    Ping,
    /// `40{…}`: the connect object (empty text if none).
    Connect(&'a str),
    /// `41`.
    Disconnect,
    /// `42[id][…]`: the ack id the sender asked for, and the JSON array `[name, args…]`.
    Event(Option<u64>, &'a str),
    /// `43id[…]`: the ack id (a well-formed ack always has one) and the JSON array of args.
    Ack(Option<u64>, &'a str),
    /// `44{…}`: the error object.
    ConnectError(&'a str),
    /// Anything else (pong, upgrade, noop, binary, other namespaces' types).
    Other,
}

/// Splits a Socket.IO packet body after its type digit: `[ack id digits][json]`.
fn split_ack_id(body: &str) -> (Option<u64>, &str) {
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        (None, body)
    } else {
        (body[..digits].parse().ok(), &body[digits..])
    }
}

/// Splits one text packet; never fails and never parses JSON.
#[inline] // Per frame in the load generator, across the crate boundary.
pub fn frame(text: &str) -> Frame<'_> {
    let b = text.as_bytes();
    match b.first() {
        Some(b'0') => Frame::Open(&text[1..]),
        Some(b'1') => Frame::Close,
        Some(b'2') => Frame::Ping,
        // Byte 1 is ASCII when matched, so `text[2..]` is on a char boundary.
        Some(b'4') => match b.get(1) {
            Some(b'0') => Frame::Connect(&text[2..]),
            Some(b'1') => Frame::Disconnect,
            Some(b'2') => {
                let (id, array) = split_ack_id(&text[2..]);
                Frame::Event(id, array)
            }
            Some(b'3') => {
                let (id, array) = split_ack_id(&text[2..]);
                Frame::Ack(id, array)
            }
            Some(b'4') => Frame::ConnectError(&text[2..]),
            _ => Frame::Other,
        },
        _ => Frame::Other,
    }
}

/// One Engine.IO text packet with its JSON parsed: what the client must do with it.
#[derive(Debug, PartialEq)]
pub enum Packet {
    /// The handshake object (`sid`, `pingInterval`, `pingTimeout`, `maxPayload`, …).
    Open(Value),
    Ping,
    /// The connect object (`{"sid":…}`), `null` if absent or unparsable.
    Connect(Value),
    /// The error object, `null` if absent or unparsable.
    ConnectError(Value),
    Disconnect,
    Event(ServerEvent),
    Ack(u64, Vec<Value>),
    Close,
    Other,
}

/// Parses one text packet. An open, event or ack whose JSON does not parse (or an event
/// without a name, an ack without an id) is an [`Error::Protocol`].
pub fn parse(text: &str) -> Result<Packet, Error> {
    let bad = || Error::Protocol(format!("unparsable packet {text:?}"));
    Ok(match frame(text) {
        Frame::Open(json) => Packet::Open(serde_json::from_str(json).map_err(|_| bad())?),
        Frame::Close => Packet::Close,
        Frame::Ping => Packet::Ping,
        Frame::Connect(json) => Packet::Connect(serde_json::from_str(json).unwrap_or(Value::Null)),
        Frame::Disconnect => Packet::Disconnect,
        Frame::Event(ack_id, json) => {
            let mut arr: Vec<Value> = serde_json::from_str(json).map_err(|_| bad())?;
            if arr.is_empty() {
                return Err(bad());
            }
            let name = match arr.remove(0) {
                Value::String(s) => s,
                _ => return Err(bad()),
            };
            Packet::Event(ServerEvent {
                name,
                args: arr,
                ack_id,
            })
        }
        Frame::Ack(ack_id, json) => {
            let args = serde_json::from_str(json).map_err(|_| bad())?;
            Packet::Ack(ack_id.ok_or_else(bad)?, args)
        }
        Frame::ConnectError(json) => {
            Packet::ConnectError(serde_json::from_str(json).unwrap_or(Value::Null))
        }
        Frame::Other => Packet::Other,
    })
}

/// Appends the head of an event packet, `42` and the ack id if one is asked for; the JSON
/// array `[name, args…]` follows. Lets a caller write the array its own way (the load
/// generator formats it without building a `Value`).
pub fn push_event_head(out: &mut String, ack_id: Option<u64>) {
    out.push_str("42");
    if let Some(id) = ack_id {
        let _ = write!(out, "{id}");
    }
}

/// `42[id]["event",data]`: an event with one argument.
pub fn event(name: &str, data: &Value, ack_id: Option<u64>) -> String {
    let body =
        serde_json::to_string(&[Value::String(name.to_owned()), data.clone()]).unwrap_or_default();
    let mut out = String::with_capacity(body.len() + 24);
    push_event_head(&mut out, ack_id);
    out.push_str(&body);
    out
}

/// `43id[…]`: acknowledges the server's event `ack_id` with `args_json`, a JSON array.
pub fn ack_raw(ack_id: u64, args_json: &str) -> String {
    format!("43{ack_id}{args_json}")
}

/// `43id[data]`: acknowledges the server's event `ack_id` with one argument.
pub fn ack(ack_id: u64, data: &Value) -> String {
    ack_raw(
        ack_id,
        &serde_json::to_string(std::slice::from_ref(data)).unwrap_or_default(),
    )
}

/// Separates packets inside one polling payload.
pub const SEPARATOR: char = '\x1e';

/// The packets of one polling payload, empty ones skipped.
pub fn split_payload(body: &str) -> impl Iterator<Item = &str> {
    body.split(SEPARATOR).filter(|p| !p.is_empty())
}

/// Joins packets into one polling payload.
pub fn join_payload<S: AsRef<str>>(packets: &[S]) -> String {
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.push_str(p.as_ref());
    }
    out
}

/// Takes from the front of `queue` as many packets as fit in `max_payload` bytes once joined
/// (always at least one, even an oversized one: the server then refuses it, as it would the
/// same frame over WebSocket) and joins them.
pub fn take_batch(queue: &mut VecDeque<String>, max_payload: usize) -> String {
    let mut out = String::new();
    while let Some(p) = queue.front() {
        let extra = if out.is_empty() { 0 } else { 1 } + p.len();
        if !out.is_empty() && out.len() + extra > max_payload {
            break;
        }
        if let Some(p) = queue.pop_front() {
            if !out.is_empty() {
                out.push(SEPARATOR);
            }
            out.push_str(&p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_split_without_parsing_json() {
        assert_eq!(frame("0{\"sid\":\"a\"}"), Frame::Open("{\"sid\":\"a\"}"));
        assert_eq!(frame("1"), Frame::Close);
        assert_eq!(frame("2"), Frame::Ping);
        assert_eq!(frame("3"), Frame::Other);
        assert_eq!(frame("40"), Frame::Connect(""));
        assert_eq!(
            frame("40{\"sid\":\"x\"}"),
            Frame::Connect("{\"sid\":\"x\"}")
        );
        assert_eq!(frame("41"), Frame::Disconnect);
        assert_eq!(frame("42[\"a\"]"), Frame::Event(None, "[\"a\"]"));
        assert_eq!(frame("4217[\"a\"]"), Frame::Event(Some(17), "[\"a\"]"));
        assert_eq!(frame("4312[{}]"), Frame::Ack(Some(12), "[{}]"));
        assert_eq!(frame("43"), Frame::Ack(None, ""));
        assert_eq!(frame("44{\"m\":1}"), Frame::ConnectError("{\"m\":1}"));
        assert_eq!(frame("4"), Frame::Other);
        assert_eq!(frame("46"), Frame::Other);
        assert_eq!(frame(""), Frame::Other);
        // Multi-byte text right after the type digit must not split a character.
        assert_eq!(frame("4é"), Frame::Other);
        assert_eq!(frame("42é"), Frame::Event(None, "é"));
    }

    #[test]
    fn parses_events_acks_and_control_packets() {
        assert_eq!(parse("2").unwrap(), Packet::Ping);
        assert_eq!(parse("41").unwrap(), Packet::Disconnect);
        assert_eq!(
            parse("40{\"sid\":\"s\"}").unwrap(),
            Packet::Connect(json!({"sid":"s"}))
        );
        assert_eq!(parse("40").unwrap(), Packet::Connect(Value::Null));
        assert_eq!(
            parse("0{\"sid\":\"e\"}").unwrap(),
            Packet::Open(json!({"sid":"e"}))
        );
        assert_eq!(
            parse("42[\"new message\",{\"id\":\"1-0\"}]").unwrap(),
            Packet::Event(ServerEvent {
                name: "new message".into(),
                args: vec![json!({"id":"1-0"})],
                ack_id: None
            })
        );
        assert_eq!(
            parse("4217[\"x\"]").unwrap(),
            Packet::Event(ServerEvent {
                name: "x".into(),
                args: vec![],
                ack_id: Some(17)
            })
        );
        assert_eq!(
            parse("433[{\"ok\":true}]").unwrap(),
            Packet::Ack(3, vec![json!({"ok":true})])
        );
        assert!(parse("42{").is_err());
        assert!(parse("42[]").is_err());
        assert!(parse("42[1]").is_err());
        assert!(parse("43[{}]").is_err());
        assert!(parse("0nope").is_err());
        assert_eq!(parse("4é").unwrap(), Packet::Other);
    }

    #[test]
    fn encodes_events_and_acks() {
        assert_eq!(
            event("log in", &json!({"username":"a"}), Some(4)),
            "424[\"log in\",{\"username\":\"a\"}]"
        );
        assert_eq!(event("e", &json!(1), None), "42[\"e\",1]");
        assert_eq!(ack(5, &json!({})), "435[{}]");
        assert_eq!(ack_raw(5, "[{}]"), "435[{}]");
        let mut s = String::new();
        push_event_head(&mut s, Some(9));
        assert_eq!(s, "429");
        // What is encoded parses back.
        let text = event("x", &json!({"k":[1,2]}), Some(3));
        assert_eq!(
            parse(&text).unwrap(),
            Packet::Event(ServerEvent {
                name: "x".into(),
                args: vec![json!({"k":[1,2]})],
                ack_id: Some(3)
            })
        );
    }

    #[test]
    fn splits_and_joins_payloads_on_the_record_separator() {
        let body = "2\x1e42[\"a\",1]\x1e433[{\"ok\":true}]";
        let packets: Vec<&str> = split_payload(body).collect();
        assert_eq!(packets, ["2", "42[\"a\",1]", "433[{\"ok\":true}]"]);
        assert_eq!(join_payload(&packets), body);
        assert_eq!(split_payload("40").collect::<Vec<_>>(), ["40"]);
        assert_eq!(split_payload("").count(), 0);
        assert_eq!(split_payload("3\x1e\x1e6").collect::<Vec<_>>(), ["3", "6"]);
        assert_eq!(join_payload::<&str>(&[]), "");
    }

    #[test]
    fn batches_respect_max_payload_but_always_take_one() {
        let mut q: VecDeque<String> = ["40", "3", "42[\"x\"]", "12345678901"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // "40\x1e3" is 4 bytes; adding "\x1e42[\"x\"]" would make 12.
        assert_eq!(take_batch(&mut q, 10), "40\x1e3");
        assert_eq!(take_batch(&mut q, 10), "42[\"x\"]");
        // Oversized alone: sent anyway, the server decides.
        assert_eq!(take_batch(&mut q, 10), "12345678901");
        assert!(q.is_empty());
        assert_eq!(take_batch(&mut q, 10), "");

        let mut q: VecDeque<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(take_batch(&mut q, 100), "a\x1eb\x1ec");
    }
}
