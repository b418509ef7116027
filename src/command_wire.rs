//! The command connection to one Redis (direct, or the primary Sentinel names), RESP2
//! written and read here: one socket, one writer task, one reader task, and the callers'
//! replies handed back in the order their commands were written.
//!
//! redis-rs's `ConnectionManager` does the same job through a `MultiplexedConnection`: each
//! call packs its command into a fresh buffer, crosses a channel to the driver task with a
//! response timer of its own, and its reply is parsed by the `combine` parser behind a
//! `Framed` codec. Under load that was about 15 % of a worker's instructions (callgrind,
//! BENCHMARKS.md "A command connection of our own"). Here a call appends its packed command
//! to the shared write buffer under a lock nobody contends (one thread), the writer sends
//! whatever accumulated in one write, and the reader parses replies in place.
//!
//! Failure is simple and loud: an I/O error, the end of the stream, a reply nobody asked for,
//! a frame that is not RESP, or a silence longer than the timeout while a reply is awaited
//! breaks the connection. Every call waiting on it fails at once with an I/O error (clients
//! hear `unavailable`), [`CommandWire::is_broken`] says so, and the [`Link`](crate::link::Link)
//! makes a new connection for the next call. TLS and RESP3 URLs keep redis-rs's connection
//! ([`CommandWire::connect`] returns `None` for them).

use crate::subscription::{bad, line, number};
use bytes::{Buf, BytesMut};
use redis::{Cmd, ConnectionAddr, ConnectionInfo, Pipeline, ProtocolVersion, RedisResult, Value};
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, Notify};

/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 << 10;
/// Redis's own limit for one bulk string (`proto-max-bulk-len`).
const MAX_BULK: usize = 512 << 20;
/// Elements of one array reply; an inbox read is bounded far below this.
const MAX_ELEMENTS: usize = 1 << 24;
/// Nesting of arrays in a reply (a stream read is three deep).
const MAX_DEPTH: usize = 8;

/// A multiplexed RESP2 command connection; clones share it.
#[derive(Clone)]
pub struct CommandWire {
    shared: Arc<Shared>,
    /// Stops both tasks when the last clone is dropped.
    _tasks: Arc<Tasks>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: bytes were appended to an empty buffer, or the connection broke.
    to_write: Notify,
    /// Wakes the reader: a reply is awaited again after none was (its silence clock starts).
    awaited: Notify,
}

#[derive(Default)]
struct State {
    /// Packed commands not handed to the socket yet.
    out: Vec<u8>,
    /// One entry per command (or pipeline) written, oldest first.
    waiting: VecDeque<Waiter>,
    /// Why the connection is unusable; once set, it stays.
    broken: Option<(io::ErrorKind, String)>,
}

/// Who receives the next reply(ies).
enum Waiter {
    One(oneshot::Sender<RedisResult<Value>>),
    /// A pipeline: `skip` replies dropped (a transaction's `QUEUED`s), then `want` kept.
    Many {
        skip: usize,
        want: usize,
        got: Vec<Value>,
        failed: Option<redis::RedisError>,
        reply: oneshot::Sender<RedisResult<Vec<Value>>>,
    },
}

struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn io_error(kind: io::ErrorKind, why: &str) -> redis::RedisError {
    io::Error::new(kind, why.to_owned()).into()
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing is left half-done under this lock by a panic that matters more than the
        // connection breaking would.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Breaks the connection (once) and fails every call waiting on it.
    fn break_with(&self, kind: io::ErrorKind, why: String) {
        let waiting = {
            let mut s = self.lock();
            if s.broken.is_none() {
                tracing::warn!("Redis command connection broken: {why}");
                s.broken = Some((kind, why.clone()));
            }
            s.out.clear();
            std::mem::take(&mut s.waiting)
        };
        for w in waiting {
            match w {
                Waiter::One(tx) => {
                    let _ = tx.send(Err(io_error(kind, &why)));
                }
                Waiter::Many { reply, .. } => {
                    let _ = reply.send(Err(io_error(kind, &why)));
                }
            }
        }
        self.to_write.notify_one();
    }

    /// Queues a packed command and who waits for its reply(ies).
    fn submit(&self, write: impl FnOnce(&mut Vec<u8>), waiter: Waiter) -> RedisResult<()> {
        let (wake_writer, wake_reader) = {
            let mut s = self.lock();
            if let Some((kind, why)) = &s.broken {
                return Err(io_error(*kind, why));
            }
            let first_bytes = s.out.is_empty();
            let first_waiter = s.waiting.is_empty();
            write(&mut s.out);
            s.waiting.push_back(waiter);
            (first_bytes, first_waiter)
        };
        if wake_writer {
            self.to_write.notify_one();
        }
        if wake_reader {
            self.awaited.notify_one();
        }
        Ok(())
    }

    /// Hands one reply to the oldest waiter; `false` when nobody was waiting for it.
    fn deliver(&self, value: Value) -> bool {
        let mut s = self.lock();
        let mut value = Some(value);
        let done = match s.waiting.front_mut() {
            None => return false,
            Some(Waiter::One(_)) => true,
            Some(Waiter::Many {
                skip,
                want,
                got,
                failed,
                ..
            }) => {
                let value = value.take();
                if *skip > 0 {
                    *skip -= 1;
                    // An error among a transaction's queued commands aborts it.
                    if let (Some(Value::ServerError(e)), None) = (value, &failed) {
                        *failed = Some(e.into());
                    }
                } else {
                    got.extend(value);
                }
                *skip == 0 && got.len() >= *want
            }
        };
        if done {
            match s.waiting.pop_front() {
                Some(Waiter::One(tx)) => {
                    let _ = tx.send(value.ok_or_else(|| {
                        io_error(io::ErrorKind::InvalidData, "a reply handed out twice")
                    }));
                }
                Some(Waiter::Many {
                    got, failed, reply, ..
                }) => {
                    let _ = reply.send(match failed {
                        Some(e) => Err(e),
                        None => Ok(got),
                    });
                }
                None => {}
            }
        }
        true
    }
}

impl CommandWire {
    /// Connects to `info`'s server, authenticates and selects its database, all within
    /// `timeout`. `None` when the URL needs what this connection does not speak (TLS, RESP3).
    pub async fn connect(info: &ConnectionInfo, timeout: Duration) -> RedisResult<Option<Self>> {
        let settings = info.redis_settings();
        if settings.protocol() != ProtocolVersion::RESP2 {
            return Ok(None);
        }
        let setup = async {
            let wire = match info.addr() {
                ConnectionAddr::Tcp(host, port) => {
                    let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    tcp.set_nodelay(true)?;
                    let (r, w) = tcp.into_split();
                    Self::start(r, w, timeout)
                }
                ConnectionAddr::Unix(path) => {
                    let (r, w) = tokio::net::UnixStream::connect(path).await?.into_split();
                    Self::start(r, w, timeout)
                }
                _ => return Ok(None),
            };
            if let Some(password) = settings.password() {
                let mut auth = redis::cmd("AUTH");
                if let Some(user) = settings.username() {
                    auth.arg(user);
                }
                auth.arg(password);
                wire.expect_ok(&auth).await?;
            }
            if settings.db() != 0 {
                wire.expect_ok(redis::cmd("SELECT").arg(settings.db()))
                    .await?;
            }
            Ok(Some(wire))
        };
        match tokio::time::timeout(timeout, setup).await {
            Ok(r) => r,
            Err(_) => Err(io_error(
                io::ErrorKind::TimedOut,
                "Redis did not accept the connection in time",
            )),
        }
    }

    /// Starts the reader and writer on a connected stream's halves.
    fn start<R, W>(reader: R, writer: W, silence: Duration) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            to_write: Notify::new(),
            awaited: Notify::new(),
        });
        let tasks = Tasks(vec![
            tokio::spawn(write_loop(shared.clone(), writer)),
            tokio::spawn(read_loop(shared.clone(), reader, silence)),
        ]);
        CommandWire {
            shared,
            _tasks: Arc::new(tasks),
        }
    }

    async fn expect_ok(&self, cmd: &Cmd) -> RedisResult<()> {
        match self.query(cmd).await? {
            Value::Okay => Ok(()),
            Value::ServerError(e) => Err(e.into()),
            other => Err(io_error(
                io::ErrorKind::InvalidData,
                &format!("unexpected reply to the connection's set-up: {other:?}"),
            )),
        }
    }

    /// Whether the connection broke (the [`Link`](crate::link::Link) then makes a new one).
    pub fn is_broken(&self) -> bool {
        self.shared.lock().broken.is_some()
    }

    /// Sends `cmd`; its reply, a server error as [`Value::ServerError`] (as redis-rs's
    /// connections answer).
    pub async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        let (tx, rx) = oneshot::channel();
        self.shared.submit(|out| pack(cmd, out), Waiter::One(tx))?;
        rx.await
            .unwrap_or_else(|_| Err(io_error(io::ErrorKind::BrokenPipe, "connection closed")))
    }

    /// Sends `pipeline`; of its replies, the `count` after the first `offset` (redis-rs's
    /// `req_packed_commands` contract).
    pub async fn query_pipeline(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter::Many {
            skip: offset,
            want: count,
            got: Vec::with_capacity(count),
            failed: None,
            reply: tx,
        };
        self.shared.submit(
            |out| out.extend_from_slice(&pipeline.get_packed_pipeline()),
            waiter,
        )?;
        rx.await
            .unwrap_or_else(|_| Err(io_error(io::ErrorKind::BrokenPipe, "connection closed")))
    }
}

/// Appends `cmd` as RESP. redis-rs's `write_packed_command` makes the same bytes in two
/// passes (it sizes the whole command first, to reserve); the shared buffer here keeps its
/// capacity from write to write, so one pass does.
fn pack(cmd: &Cmd, out: &mut Vec<u8>) {
    if cmd.in_scan_mode() {
        return cmd.write_packed_command(out);
    }
    let args = cmd.args_iter();
    header(out, b'*', args.len());
    for arg in args {
        if let redis::Arg::Simple(bytes) = arg {
            header(out, b'$', bytes.len());
            out.extend_from_slice(bytes);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// `*N\r\n` or `$N\r\n`. Most arguments are shorter than 1,000 bytes: their headers are
/// written as one fixed-size array each (a store, not a copy loop or a `memcpy` call).
fn header(out: &mut Vec<u8>, kind: u8, n: usize) {
    let digit = |d: usize| b'0' + (d % 10) as u8;
    match n {
        0..=9 => out.extend_from_slice(&[kind, digit(n), b'\r', b'\n']),
        10..=99 => out.extend_from_slice(&[kind, digit(n / 10), digit(n), b'\r', b'\n']),
        100..=999 => {
            out.extend_from_slice(&[kind, digit(n / 100), digit(n / 10), digit(n), b'\r', b'\n'])
        }
        _ => {
            out.push(kind);
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Writes what the callers packed, everything accumulated since the last write at once.
async fn write_loop<W: AsyncWrite + Unpin>(shared: Arc<Shared>, mut writer: W) {
    let mut chunk = Vec::new();
    loop {
        {
            let mut s = shared.lock();
            if s.broken.is_some() {
                return;
            }
            std::mem::swap(&mut s.out, &mut chunk);
        }
        if chunk.is_empty() {
            shared.to_write.notified().await;
            continue;
        }
        if let Err(e) = writer.write_all(&chunk).await {
            shared.break_with(e.kind(), format!("writing to Redis: {e}"));
            return;
        }
        chunk.clear();
    }
}

/// Reads replies and hands each to its waiter; breaks the connection on an error, the end
/// of the stream, or `silence` without a byte while a reply is awaited.
async fn read_loop<R: AsyncRead + Unpin>(shared: Arc<Shared>, mut reader: R, silence: Duration) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let overdue = tokio::time::sleep(silence);
    tokio::pin!(overdue);
    loop {
        loop {
            match frame_len(&buf, 0, 0) {
                Ok(Some(len)) => {
                    let value = match build(&buf[..len]) {
                        Ok((value, _)) => value,
                        Err(e) => return shared.break_with(e.kind(), e.to_string()),
                    };
                    buf.advance(len);
                    if !shared.deliver(value) {
                        return shared.break_with(
                            io::ErrorKind::InvalidData,
                            "Redis sent a reply nobody asked for".into(),
                        );
                    }
                }
                Ok(None) => break,
                Err(e) => return shared.break_with(e.kind(), e.to_string()),
            }
        }
        let awaiting = !shared.lock().waiting.is_empty();
        buf.reserve(READ_CHUNK);
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => {
                    return shared.break_with(
                        io::ErrorKind::UnexpectedEof,
                        "Redis closed the connection".into(),
                    )
                }
                Ok(_) => overdue.as_mut().reset(tokio::time::Instant::now() + silence),
                Err(e) => return shared.break_with(e.kind(), format!("reading from Redis: {e}")),
            },
            () = shared.awaited.notified(), if !awaiting => {
                overdue.as_mut().reset(tokio::time::Instant::now() + silence);
            }
            () = &mut overdue, if awaiting => {
                return shared.break_with(
                    io::ErrorKind::TimedOut,
                    format!("Redis sent nothing for {silence:?} while a reply was awaited"),
                );
            }
        }
    }
}

/// The length of the reply starting at `at`, or `None` when it is not all in `buf` yet.
/// Allocates nothing: a large reply arriving in many reads is only built once complete.
fn frame_len(buf: &[u8], at: usize, depth: usize) -> io::Result<Option<usize>> {
    let Some((head, next)) = line(buf, at)? else {
        return Ok(None);
    };
    let Some(&kind) = buf.get(head.start) else {
        return Err(bad("an empty line"));
    };
    let text = &buf[head.start + 1..head.end];
    match kind {
        b'+' | b'-' | b':' => Ok(Some(next - at)),
        b'$' => match bulk_len(text)? {
            None => Ok(Some(next - at)),
            Some(len) => match buf.get(next + len..next + len + 2) {
                None => Ok(None),
                Some(b"\r\n") => Ok(Some(next + len + 2 - at)),
                Some(_) => Err(bad("a bulk string not ended by CRLF")),
            },
        },
        b'*' => {
            if depth >= MAX_DEPTH {
                return Err(bad("arrays nested too deep"));
            }
            let mut end = next;
            for _ in 0..array_len(text)?.unwrap_or(0) {
                let Some(len) = frame_len(buf, end, depth + 1)? else {
                    return Ok(None);
                };
                end += len;
            }
            Ok(Some(end - at))
        }
        _ => Err(bad("an unknown type byte")),
    }
}

/// A bulk string's length; `None` for the nil bulk (`$-1`).
fn bulk_len(text: &[u8]) -> io::Result<Option<usize>> {
    length(text, MAX_BULK, "a bulk string over 512 MiB")
}

/// An array's element count; `None` for the nil array (`*-1`).
fn array_len(text: &[u8]) -> io::Result<Option<usize>> {
    length(text, MAX_ELEMENTS, "too many elements")
}

/// A length header's number, at most `max`; `None` when negative (nil).
fn length(text: &[u8], max: usize, too_long: &str) -> io::Result<Option<usize>> {
    let n = number(text)?;
    if n < 0 {
        return Ok(None);
    }
    match usize::try_from(n) {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(bad(too_long)),
    }
}

/// The value of the complete reply at the head of `buf` (checked by [`frame_len`]) and its
/// length. Values are redis-rs's, as its RESP2 parser makes them: `+OK` is
/// [`Value::Okay`], nil bulks and arrays are [`Value::Nil`], and an error line goes through
/// redis-rs's own parser so that its [`redis::ServerErrorKind`] is the one redis-rs gives.
fn build(buf: &[u8]) -> io::Result<(Value, usize)> {
    let incomplete = || bad("a reply cut short");
    let (head, next) = line(buf, 0)?.ok_or_else(incomplete)?;
    let text = &buf[head.start + 1..head.end];
    let value = match buf[head.start] {
        b'+' if text == b"OK" => Value::Okay,
        b'+' => Value::SimpleString(String::from_utf8_lossy(text).into_owned()),
        b':' => Value::Int(number(text)?),
        b'-' => redis::parse_redis_value(&buf[..next]).map_err(|e| bad(&e.to_string()))?,
        b'$' => match bulk_len(text)? {
            None => Value::Nil,
            Some(len) => {
                let bytes = buf.get(next..next + len).ok_or_else(incomplete)?;
                return Ok((Value::BulkString(bytes.to_vec()), next + len + 2));
            }
        },
        b'*' => match array_len(text)? {
            None => Value::Nil,
            Some(n) => {
                let mut items = Vec::with_capacity(n.min(1024));
                let mut at = next;
                for _ in 0..n {
                    let (item, len) = build(buf.get(at..).ok_or_else(incomplete)?)?;
                    items.push(item);
                    at += len;
                }
                return Ok((Value::Array(items), at));
            }
        },
        _ => return Err(bad("an unknown type byte")),
    };
    Ok((value, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What redis-rs's parser makes of `bytes`, and ours.
    fn both(bytes: &[u8]) -> (Value, Value) {
        let theirs = redis::parse_redis_value(bytes).unwrap();
        assert_eq!(frame_len(bytes, 0, 0).unwrap(), Some(bytes.len()));
        let (ours, len) = build(bytes).unwrap();
        assert_eq!(len, bytes.len());
        (theirs, ours)
    }

    #[test]
    fn replies_read_as_redis_rs_reads_them() {
        for reply in [
            &b"+OK\r\n"[..],
            b"+PONG\r\n",
            b":-42\r\n",
            b"$5\r\nhello\r\n",
            b"$0\r\n\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"$7\r\na\r\nb\r\nc\r\n",
            b"*2\r\n$15\r\n1700000000000-0\r\n*4\r\n$4\r\nfrom\r\n$5\r\nalice\r\n$4\r\ntext\r\n$-1\r\n",
            b"-NOSCRIPT No matching script. Please use EVAL.\r\n",
            b"-READONLY You can't write against a read only replica.\r\n",
            b"-ERR user_script:1: oops\r\n",
        ] {
            let (theirs, ours) = both(reply);
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(reply));
        }
    }

    #[test]
    fn commands_are_packed_as_redis_rs_packs_them() {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg("abc")
            .arg(2)
            .arg("k1")
            .arg(b"")
            .arg(1_700_000_000_000u64);
        for len in [9, 10, 99, 100, 999, 1000, 12_345] {
            cmd.arg("x".repeat(len));
        }
        cmd.arg("line\r\nbreak");
        let mut ours = b"+before".to_vec();
        pack(&cmd, &mut ours);
        assert_eq!(ours, [&b"+before"[..], &cmd.get_packed_command()].concat());
    }

    #[test]
    fn a_server_error_keeps_its_kind() {
        let (ours, _) = build(b"-NOSCRIPT No matching script.\r\n").unwrap();
        let Value::ServerError(e) = ours else {
            panic!("not an error: {ours:?}")
        };
        let e: redis::RedisError = e.into();
        assert_eq!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
        );
    }

    #[test]
    fn a_reply_cut_anywhere_is_incomplete_not_wrong() {
        let reply = b"*3\r\n$2\r\nid\r\n:7\r\n*2\r\n+OK\r\n$-1\r\n";
        for cut in 0..reply.len() {
            assert_eq!(
                frame_len(&reply[..cut], 0, 0).unwrap(),
                None,
                "cut at {cut}"
            );
        }
        assert_eq!(frame_len(reply, 0, 0).unwrap(), Some(reply.len()));
    }

    #[test]
    fn garbage_breaks_instead_of_waiting() {
        for garbage in [
            &b"?what\r\n"[..],
            b"$abc\r\n",
            b"$3\r\nabcXY",
            b"+no crlf\n",
            b"*99999999999\r\n",
            b"$999999999999\r\n",
        ] {
            assert!(
                frame_len(garbage, 0, 0).is_err(),
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert!(frame_len(deep.as_bytes(), 0, 0).is_err());
    }

    /// A fake server on an in-memory pipe: replies arrive in order, split anywhere, and
    /// pipelines get theirs.
    #[tokio::test]
    async fn replies_reach_their_callers_in_order() {
        let (client, mut server) = tokio::io::duplex(64);
        let (r, w) = tokio::io::split(client);
        let wire = CommandWire::start(r, w, Duration::from_secs(5));
        let ping = redis::cmd("PING");
        let mut get = redis::cmd("GET");
        get.arg("k");
        let mut pipe = redis::pipe();
        pipe.cmd("INCR").arg("n").cmd("GET").arg("n");
        let serve = async {
            let mut seen = Vec::new();
            let want = [
                ping.get_packed_command(),
                get.get_packed_command(),
                pipe.get_packed_pipeline(),
            ]
            .concat();
            while seen.len() < want.len() {
                let mut b = [0u8; 7];
                let n = tokio::io::AsyncReadExt::read(&mut server, &mut b)
                    .await
                    .unwrap();
                seen.extend_from_slice(&b[..n]);
            }
            assert_eq!(seen, want);
            for piece in [&b"+PO"[..], b"NG\r\n$3\r\nv", b"al\r\n:1\r\n$1\r\n1\r\n"] {
                server.write_all(piece).await.unwrap();
            }
        };
        let (a, b, c, ()) = tokio::join!(
            wire.query(&ping),
            wire.query(&get),
            wire.query_pipeline(&pipe, 0, 2),
            serve
        );
        assert_eq!(a.unwrap(), Value::SimpleString("PONG".into()));
        assert_eq!(b.unwrap(), Value::BulkString(b"val".to_vec()));
        assert_eq!(
            c.unwrap(),
            vec![Value::Int(1), Value::BulkString(b"1".to_vec())]
        );
        assert!(!wire.is_broken());
    }

    #[tokio::test]
    async fn a_closed_connection_fails_every_waiting_call_and_the_next() {
        let (client, server) = tokio::io::duplex(1024);
        let (r, w) = tokio::io::split(client);
        let wire = CommandWire::start(r, w, Duration::from_secs(5));
        let ping = redis::cmd("PING");
        let (a, ()) = tokio::join!(wire.query(&ping), async { drop(server) });
        assert!(a.unwrap_err().is_connection_dropped());
        assert!(wire.is_broken());
        assert!(wire.query(&ping).await.unwrap_err().is_io_error());
    }

    #[tokio::test]
    async fn silence_while_a_reply_is_awaited_breaks_the_connection() {
        let (client, _server) = tokio::io::duplex(1024);
        let (r, w) = tokio::io::split(client);
        let wire = CommandWire::start(r, w, Duration::from_millis(100));
        let started = std::time::Instant::now();
        let e = wire.query(&redis::cmd("PING")).await.unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(wire.is_broken());
    }

    #[tokio::test]
    async fn a_reply_nobody_asked_for_breaks_the_connection() {
        let (client, mut server) = tokio::io::duplex(1024);
        let (r, w) = tokio::io::split(client);
        let wire = CommandWire::start(r, w, Duration::from_secs(5));
        server.write_all(b"+OK\r\n").await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !wire.is_broken() {
            assert!(std::time::Instant::now() < deadline, "not broken");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
