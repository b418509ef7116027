//! One pub/sub subscription whose `message` frames are read straight from the socket: the
//! RESP2 frames are found in one read buffer and their payloads handed out in place.
//!
//! redis-rs's pub/sub connection parses every frame with its `combine` parser in a task of
//! its own and forwards each message through a channel to the subscriber: about 9 % of a
//! worker's instructions under load (callgrind, BENCHMARKS.md "Reading deliveries off the
//! socket"). A RESP2 connection that has subscribed receives nothing but `message` frames
//! (and the confirmations of its own commands), so reading them is a small parser.
//! TLS and RESP3 connections keep redis-rs's ([`Subscription::Client`]).

use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use redis::{ConnectionAddr, ProtocolVersion, RedisResult};
use std::io;
use std::ops::Range;
use std::pin::Pin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest frame accepted. A worker publishes at most a batch of deliveries, each bounded
/// by `max_message_bytes`; anything near this is not ours, and the connection is dropped
/// instead of buffering it.
const MAX_FRAME: usize = 64 << 20;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 << 10;
/// A header line (`*3`, `$1024`, `+OK`, an error text) is short; a longer one is garbage.
const MAX_LINE: usize = 4096;
/// Elements of one array frame; a `message` has 3.
const MAX_ELEMENTS: usize = 64;

/// A subscribed connection to one channel.
pub enum Subscription {
    /// Read here, frame by frame.
    Wire(WireSubscription),
    /// redis-rs's connection, for what [`WireSubscription`] does not speak (TLS, RESP3).
    Client {
        messages: Pin<Box<redis::aio::PubSubStream>>,
        /// The message whose payload [`Subscription::next`] last lent out.
        last: Option<redis::Msg>,
    },
}

impl Subscription {
    /// Connects to `client`'s server and subscribes to `channel`.
    pub async fn open(client: &redis::Client, channel: &str) -> RedisResult<Subscription> {
        let info = client.get_connection_info();
        let settings = info.redis_settings();
        let stream = match (info.addr(), settings.protocol()) {
            (ConnectionAddr::Tcp(host, port), ProtocolVersion::RESP2) => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                tcp.set_nodelay(true)?;
                Wire::Tcp(tcp)
            }
            (ConnectionAddr::Unix(path), ProtocolVersion::RESP2) => {
                Wire::Unix(tokio::net::UnixStream::connect(path).await?)
            }
            _ => {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(channel).await?;
                return Ok(Subscription::Client {
                    messages: Box::pin(pubsub.into_on_message()),
                    last: None,
                });
            }
        };
        let mut wire = WireSubscription {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            consumed: 0,
        };
        if let Some(password) = settings.password() {
            let mut auth = vec!["AUTH"];
            auth.extend(settings.username());
            auth.push(password);
            wire.command(&auth).await?;
            match wire.reply().await? {
                Frame::Status(ok) if ok == "OK" => {}
                Frame::Error(e) => return Err(refused("AUTH", &e)),
                other => return Err(unexpected("AUTH", &other)),
            }
        }
        wire.command(&["SUBSCRIBE", channel]).await?;
        match wire.reply().await? {
            Frame::Subscribed => Ok(Subscription::Wire(wire)),
            Frame::Error(e) => Err(refused("SUBSCRIBE", &e)),
            other => Err(unexpected("SUBSCRIBE", &other)),
        }
    }

    /// The payload of the next message, or `None` when the connection is gone. Cancel-safe:
    /// what was read stays buffered.
    pub async fn next(&mut self) -> Option<&[u8]> {
        match self {
            Subscription::Wire(wire) => match wire.next_message().await {
                Ok(payload) => payload,
                Err(e) => {
                    tracing::warn!("subscription dropped: {e}");
                    None
                }
            },
            Subscription::Client { messages, last } => {
                *last = Some(messages.next().await?);
                last.as_ref().map(|m| m.get_payload_bytes())
            }
        }
    }
}

fn refused(command: &str, error: &str) -> redis::RedisError {
    io::Error::other(format!("Redis refused {command}: {error}")).into()
}

fn unexpected(command: &str, frame: &Frame) -> redis::RedisError {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply to {command}: {frame:?}"),
    )
    .into()
}

enum Wire {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// A subscribed RESP2 connection and its read buffer.
pub struct WireSubscription {
    stream: Wire,
    buf: BytesMut,
    /// Bytes at the head of `buf` that belong to the frame last handed out.
    consumed: usize,
}

impl WireSubscription {
    async fn command(&mut self, args: &[&str]) -> io::Result<()> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        match &mut self.stream {
            Wire::Tcp(s) => s.write_all(out.as_bytes()).await,
            Wire::Unix(s) => s.write_all(out.as_bytes()).await,
        }
    }

    /// Reads more into the buffer; `false` at the end of the stream.
    async fn fill(&mut self) -> io::Result<bool> {
        self.buf.reserve(READ_CHUNK);
        let n = match &mut self.stream {
            Wire::Tcp(s) => s.read_buf(&mut self.buf).await?,
            Wire::Unix(s) => s.read_buf(&mut self.buf).await?,
        };
        Ok(n > 0)
    }

    /// Forgets the frame handed out last.
    fn release(&mut self) {
        self.buf.advance(std::mem::take(&mut self.consumed));
    }

    /// The next whole frame (the handshake's replies).
    async fn reply(&mut self) -> io::Result<Frame> {
        self.release();
        loop {
            if let Some((frame, len)) = parse(&self.buf)? {
                self.buf.advance(len);
                return Ok(frame);
            }
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The next `message` frame's payload, skipping anything else; `None` at the end of the
    /// stream.
    async fn next_message(&mut self) -> io::Result<Option<&[u8]>> {
        self.release();
        loop {
            match parse(&self.buf)? {
                Some((Frame::Message(payload), len)) => {
                    self.consumed = len;
                    return Ok(Some(&self.buf[payload]));
                }
                Some((Frame::Error(e), _)) => return Err(io::Error::other(e)),
                Some((_, len)) => self.buf.advance(len),
                None => {
                    if !self.fill().await? {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// What a frame at the head of the buffer is, as far as a subscriber cares.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// `message`: where its payload is in the buffer.
    Message(Range<usize>),
    /// The confirmation of a `SUBSCRIBE`.
    Subscribed,
    /// A simple string (`+OK`).
    Status(String),
    Error(String),
    /// Anything else, skipped.
    Other,
}

/// One element of a frame: its type byte and where its text or bulk bytes are.
enum Element {
    Bulk(Range<usize>),
    Line(u8, Range<usize>),
    Array,
}

pub(crate) fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad RESP frame: {what}"),
    )
}

/// The line starting at `at` without its `\r\n`, and where the next starts; `None` when it
/// is not all in `buf` yet.
pub(crate) fn line(buf: &[u8], at: usize) -> io::Result<Option<(Range<usize>, usize)>> {
    let rest = &buf[at.min(buf.len())..];
    match rest.iter().take(MAX_LINE + 2).position(|&b| b == b'\n') {
        Some(i) if i > 0 && rest[i - 1] == b'\r' => Ok(Some((at..at + i - 1, at + i + 1))),
        Some(_) => Err(bad("a line not ended by CRLF")),
        None if rest.len() > MAX_LINE + 1 => Err(bad("a header line too long")),
        None => Ok(None),
    }
}

pub(crate) fn number(digits: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("a length that is not a number"))
}

/// The element starting at `at` and where the next starts. An array is reported as
/// [`Element::Array`] after its own elements were skipped (`depth` bounds the nesting).
fn element(buf: &[u8], at: usize, depth: usize) -> io::Result<Option<(Element, usize)>> {
    let Some((head, next)) = line(buf, at)? else {
        return Ok(None);
    };
    if head.is_empty() {
        return Err(bad("an empty line"));
    }
    let kind = buf[head.start];
    let text = head.start + 1..head.end;
    match kind {
        b'$' => {
            let len = number(&buf[text])?;
            if len < 0 {
                return Ok(Some((Element::Line(b'_', next..next), next)));
            }
            let len = usize::try_from(len).map_err(|_| bad("a bulk length"))?;
            if len > MAX_FRAME {
                return Err(bad("a bulk string over 64 MiB"));
            }
            let end = next + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(bad("a bulk string not ended by CRLF"));
            }
            Ok(Some((Element::Bulk(next..end), end + 2)))
        }
        b'*' => {
            if depth > 2 {
                return Err(bad("arrays nested too deep"));
            }
            let n = number(&buf[text])?.max(0) as usize;
            if n > MAX_ELEMENTS {
                return Err(bad("too many elements"));
            }
            let mut at = next;
            for _ in 0..n {
                let Some((_, after)) = element(buf, at, depth + 1)? else {
                    return Ok(None);
                };
                at = after;
            }
            Ok(Some((Element::Array, at)))
        }
        b'+' | b'-' | b':' => Ok(Some((Element::Line(kind, text), next))),
        _ => Err(bad("an unknown type byte")),
    }
}

/// The frame at the head of `buf` and its length, or `None` when it is not complete yet.
fn parse(buf: &[u8]) -> io::Result<Option<(Frame, usize)>> {
    let Some((head, next)) = line(buf, 0)? else {
        return Ok(None);
    };
    if buf.first() != Some(&b'*') {
        return Ok(element(buf, 0, 0)?.map(|(e, len)| {
            let frame = match e {
                Element::Line(b'+', t) => Frame::Status(lossy(&buf[t])),
                Element::Line(b'-', t) => Frame::Error(lossy(&buf[t])),
                _ => Frame::Other,
            };
            (frame, len)
        }));
    }
    let n = number(&buf[head.start + 1..head.end])?.max(0) as usize;
    if n > MAX_ELEMENTS {
        return Err(bad("too many elements"));
    }
    // Only the first and third elements decide the frame: no allocation per message.
    let (mut kind, mut payload) = (None, None);
    let mut at = next;
    for i in 0..n {
        let Some((e, after)) = element(buf, at, 1)? else {
            return Ok(None);
        };
        match (i, e) {
            (0, Element::Bulk(r)) => kind = Some(r),
            (2, Element::Bulk(r)) => payload = Some(r),
            _ => {}
        }
        at = after;
    }
    let kind = kind.map(|r| &buf[r]);
    let frame = match (kind, payload) {
        (Some(b"message"), Some(payload)) if n == 3 => Frame::Message(payload),
        (Some(b"subscribe"), _) => Frame::Subscribed,
        _ => Frame::Other,
    };
    Ok(Some((frame, at)))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(channel: &str, payload: &[u8]) -> Vec<u8> {
        let mut f = format!(
            "*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${}\r\n",
            channel.len(),
            payload.len()
        )
        .into_bytes();
        f.extend_from_slice(payload);
        f.extend_from_slice(b"\r\n");
        f
    }

    #[test]
    fn a_message_frame_yields_its_payload_in_place() {
        let payload = b"m\nbob\n1-1\nalice\n5\nline one\r\nline two";
        let frame = message("chat:w:{1}", payload);
        let (parsed, len) = parse(&frame).unwrap().unwrap();
        assert_eq!(len, frame.len());
        let Frame::Message(range) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(&frame[range], payload);
    }

    #[test]
    fn a_frame_cut_anywhere_is_incomplete_not_wrong() {
        let frame = message("c", b"payload with \r\n inside");
        for cut in 0..frame.len() {
            assert_eq!(parse(&frame[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn frames_follow_each_other_in_one_buffer() {
        let mut buf = b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n".to_vec();
        buf.extend(message("c", b"first"));
        buf.extend(message("c", b""));
        buf.extend(b"+OK\r\n-ERR no\r\n");
        let mut at = 0;
        let mut frames = Vec::new();
        while let Some((f, len)) = parse(&buf[at..]).unwrap() {
            frames.push(match f {
                Frame::Message(r) => Frame::Status(lossy(&buf[at..][r])),
                f => f,
            });
            at += len;
        }
        assert_eq!(at, buf.len());
        assert_eq!(
            frames,
            vec![
                Frame::Subscribed,
                Frame::Status("first".into()),
                Frame::Status("".into()),
                Frame::Status("OK".into()),
                Frame::Error("ERR no".into()),
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_wait() {
        for junk in [
            &b"?what\r\n"[..],
            b"*3\r\n$7\r\nmessage\r\n$x\r\n",
            b"$5\r\nabcdefg\r\n",
            b"+no carriage return\n",
            b"*999999\r\n",
            b"$99999999999\r\n",
        ] {
            assert!(parse(junk).is_err(), "{:?}", lossy(junk));
        }
        let long = vec![b'+'; MAX_LINE + 8];
        assert!(parse(&long).is_err(), "an endless header line");
    }
}
