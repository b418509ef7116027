//! Just enough Engine.IO v4 / Socket.IO v5 over WebSocket for the load generator.
//!
//! Every WebSocket text frame is one Engine.IO packet: `0{…}` open, `2` ping (we answer `3`),
//! `4…` a Socket.IO packet: `40` connect (answered `40{"sid":…}`), `42[id][…]` event,
//! `43id[…]` ack, `44{…}` connect error, `41` disconnect. The hot paths (acks of
//! `send message`, `new message` deliveries) are recognised by scanning, not by a JSON parse.

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

fn split_id(body: &str) -> (Option<u64>, &str) {
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        (None, body)
    } else {
        (body[..digits].parse().ok(), &body[digits..])
    }
}

pub fn parse(text: &str) -> Incoming<'_> {
    let b = text.as_bytes();
    match b.first() {
        Some(b'0') => Incoming::Open,
        Some(b'1') => Incoming::Close,
        Some(b'2') => Incoming::Ping,
        Some(b'4') => match b.get(1) {
            Some(b'0') => Incoming::Connected,
            Some(b'1') => Incoming::Disconnect,
            Some(b'4') => Incoming::ConnectError(&text[2..]),
            Some(b'3') => match split_id(&text[2..]) {
                (Some(id), rest) => Incoming::Ack(id, rest),
                (None, _) => Incoming::Other,
            },
            Some(b'2') => {
                let (id, rest) = split_id(&text[2..]);
                if rest.starts_with("[\"new message\"") {
                    Incoming::NewMessage(id, rest)
                } else if rest.starts_with("[\"delivered\"") {
                    Incoming::Delivered
                } else {
                    Incoming::OtherEvent(id, rest)
                }
            }
            _ => Incoming::Other,
        },
        _ => Incoming::Other,
    }
}

/// `42<id>["log in",{"username":U}]`
pub fn login(ack_id: u64, username: &str) -> String {
    format!("42{ack_id}[\"log in\",{{\"username\":\"{username}\"}}]")
}

/// `42<id>["send message",{"username":TO,"message":"T<micros>|<padding>"}]`. Usernames are
/// generated (`[A-Za-z0-9_.-]`) and the text is digits and `x`, so no JSON escaping is needed.
pub fn send_message(ack_id: u64, to: &str, sent_micros: u64, pad: usize) -> String {
    let mut s = String::with_capacity(64 + to.len() + pad);
    use std::fmt::Write;
    let _ = write!(
        s,
        "42{ack_id}[\"send message\",{{\"username\":\"{to}\",\"message\":\"T{sent_micros}|"
    );
    for _ in 0..pad {
        s.push('x');
    }
    s.push_str("\"}]");
    s
}

/// `43<id>[{}]`: the acknowledgement of a server's emit-with-ack.
pub fn ack(id: u64) -> String {
    format!("43{id}[{{}}]")
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
