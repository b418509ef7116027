//! The chat events the load generator sends and recognises, framed with the client's codec
//! (`chat_client::codec`).
//!
//! The codec's [`codec::frame`] splits a packet without parsing JSON; on top of it the hot
//! paths (acks of `send message`, `new message` deliveries) are recognised by scanning, and the
//! events are written straight into one `String`, no `serde_json::Value` built: the same work
//! per frame as the generator's former private copy of the framing. A micro-benchmark of
//! `parse` (release, four typical frames) measured about 14 ns a frame against 8 ns for the old
//! copy; a WebSocket read costs microseconds, so that is under 0.1% of the generator's CPU at
//! 100k frames/s, and no task or buffer per socket was added.

use chat_client::codec::{self, Frame};
use std::fmt::Write;

/// What an incoming frame means to the generator.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    Open,
    Ping,
    Connected,
    ConnectError(&'a str),
    Disconnect,
    /// `43<id>[…]`: the ack id and the JSON array.
    Ack(u64, &'a str),
    /// `42<id>["new message",{…}]`: the ack id the server asked for (if any) and the JSON array.
    NewMessage(Option<u64>, &'a str),
    /// `42["delivered",{…}]`.
    Delivered,
    /// `42[…]` any other event: its ack id and the JSON array.
    OtherEvent(Option<u64>, &'a str),
    Close,
    Other,
}

pub fn parse(text: &str) -> Incoming<'_> {
    match codec::frame(text) {
        Frame::Open(_) => Incoming::Open,
        Frame::Close => Incoming::Close,
        Frame::Ping => Incoming::Ping,
        Frame::Connect(_) => Incoming::Connected,
        Frame::Disconnect => Incoming::Disconnect,
        Frame::ConnectError(e) => Incoming::ConnectError(e),
        Frame::Ack(Some(id), array) => Incoming::Ack(id, array),
        Frame::Ack(None, _) | Frame::Other => Incoming::Other,
        Frame::Event(id, array) => {
            if array.starts_with("[\"new message\"") {
                Incoming::NewMessage(id, array)
            } else if array.starts_with("[\"delivered\"") {
                Incoming::Delivered
            } else {
                Incoming::OtherEvent(id, array)
            }
        }
    }
}

/// `42<id>["log in",{"username":U}]`
pub fn login(ack_id: u64, username: &str) -> String {
    let mut s = String::with_capacity(40 + username.len());
    codec::push_event_head(&mut s, Some(ack_id));
    let _ = write!(s, "[\"log in\",{{\"username\":\"{username}\"}}]");
    s
}

/// `42<id>["send message",{"username":TO,"message":"T<micros>|<padding>"}]`. Usernames are
/// generated (`[A-Za-z0-9_.-]`) and the text is digits and `x`, so no JSON escaping is needed.
pub fn send_message(ack_id: u64, to: &str, sent_micros: u64, pad: usize) -> String {
    let mut s = String::with_capacity(64 + to.len() + pad);
    codec::push_event_head(&mut s, Some(ack_id));
    let _ = write!(
        s,
        "[\"send message\",{{\"username\":\"{to}\",\"message\":\"T{sent_micros}|"
    );
    for _ in 0..pad {
        s.push('x');
    }
    s.push_str("\"}]");
    s
}

/// `43<id>[{}]`: the acknowledgement of a server's emit-with-ack.
pub fn ack(id: u64) -> String {
    codec::ack_raw(id, "[{}]")
}

/// The send timestamp (micros since the run's epoch) carried in a `new message` text.
pub fn sent_micros(array: &str) -> Option<u64> {
    const KEY: &str = "\"message\":\"T";
    let at = array.find(KEY)? + KEY.len();
    let digits = array[at..].bytes().take_while(u8::is_ascii_digit).count();
    array[at..at + digits].parse().ok()
}

/// Whether an ack array says `{"ok":true…}`.
pub fn ack_ok(array: &str) -> bool {
    array.starts_with("[{") && array.contains("\"ok\":true")
}

/// The error code of a failed ack (`{"ok":false,"error":{"code":C}}`), for the summary.
pub fn ack_error_code(array: &str) -> String {
    serde_json::from_str::<serde_json::Value>(array)
        .ok()
        .and_then(|v| {
            v.get(0)?
                .get("error")?
                .get("code")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unparsable_ack".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_packets() {
        assert_eq!(parse("0{\"sid\":\"a\"}"), Incoming::Open);
        assert_eq!(parse("2"), Incoming::Ping);
        assert_eq!(parse("40{\"sid\":\"x\"}"), Incoming::Connected);
        assert_eq!(parse("43"), Incoming::Other);
        assert_eq!(
            parse("4312[{\"ok\":true,\"id\":\"1-0\"}]"),
            Incoming::Ack(12, "[{\"ok\":true,\"id\":\"1-0\"}]")
        );
        let nm = "427[\"new message\",{\"id\":\"1-0\",\"from\":\"a\",\"message\":\"T123|xx\",\"sentAt\":1}]";
        match parse(nm) {
            Incoming::NewMessage(Some(7), arr) => assert_eq!(sent_micros(arr), Some(123)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse("42[\"delivered\",{\"id\":\"1\",\"to\":\"b\"}]"),
            Incoming::Delivered
        );
        assert!(matches!(
            parse("42[\"chat error\",{}]"),
            Incoming::OtherEvent(None, _)
        ));
    }

    #[test]
    fn builds_packets() {
        assert_eq!(login(1, "u1"), "421[\"log in\",{\"username\":\"u1\"}]");
        let s = send_message(3, "u2", 99, 2);
        assert_eq!(
            s,
            "423[\"send message\",{\"username\":\"u2\",\"message\":\"T99|xx\"}]"
        );
        assert_eq!(ack(5), "435[{}]");
        assert!(ack_ok("[{\"ok\":true,\"id\":\"1\"}]"));
        assert!(!ack_ok("[{\"ok\":false}]"));
        assert_eq!(
            ack_error_code(
                "[{\"ok\":false,\"error\":{\"code\":\"rate_limited\",\"message\":\"m\"}}]"
            ),
            "rate_limited"
        );
    }
}
