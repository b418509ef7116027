//! Hostile input harms nobody but its sender (SPEC §4): malformed Engine.IO / Socket.IO packets
//! over raw WebSocket frames and over long-polling each close at most their own socket; the
//! worker keeps serving a bystander and its memory stays bounded.

use chat_testkit::*;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw WebSocket speaking Engine.IO by hand, so frames can be anything at all.
struct RawWs {
    tcp: TcpStream,
}

impl RawWs {
    async fn open(port: u16) -> RawWs {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let req = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n\
                   Upgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tcp.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let mut ws = RawWs { tcp };
        // The open packet may have come with the 101 or comes next; then join namespace `/`.
        if !head.contains("\"sid\"") {
            let _ = ws.read_frame().await;
        }
        ws.frame(0x1, b"40").await;
        let _ = ws.read_frame().await;
        ws
    }

    /// Writes one masked frame (mask key zero keeps the payload readable).
    async fn frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut f = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len < 65_536 {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(payload);
        let _ = self.tcp.write_all(&f).await;
    }

    /// Reads one frame's payload, or None when the connection closed (or sent Close).
    async fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut h = [0u8; 2];
        self.tcp.read_exact(&mut h).await.ok()?;
        if h[0] & 0x0f == 0x8 {
            return None;
        }
        let mut len = (h[1] & 0x7f) as u64;
        if len == 126 {
            let mut b = [0u8; 2];
            self.tcp.read_exact(&mut b).await.ok()?;
            len = u16::from_be_bytes(b) as u64;
        } else if len == 127 {
            let mut b = [0u8; 8];
            self.tcp.read_exact(&mut b).await.ok()?;
            len = u64::from_be_bytes(b);
        }
        let mut p = vec![0u8; len as usize];
        self.tcp.read_exact(&mut p).await.ok()?;
        Some(p)
    }

    /// Waits until the server closes this connection (pings are answered meanwhile).
    async fn closed_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            while let Some(p) = self.read_frame().await {
                if p == b"2" {
                    self.frame(0x1, b"3").await;
                }
            }
        })
        .await
        .is_ok()
    }
}

/// Asserts the worker still serves a logged-in bystander.
async fn still_serving(w: &Worker, bystander: &Client) {
    let ack = bystander
        .emit_ack("list users", json!({}))
        .await
        .expect("bystander still answered");
    assert_eq!(ack["ok"], true);
    assert_eq!(w.health().await, 200);
}

#[tokio::test]
async fn malformed_websocket_packets_close_only_their_socket() {
    let cluster = Workers::start_with(1, &["--max-message-bytes", "1000"]).await;
    let w = cluster.w(0);
    let (bystander, _) = w.login("calm").await;

    let deep = format!(
        "42[\"send message\",{}1{}]",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("invalid JSON", b"42[\"send message\",{".to_vec(), 0x1),
        ("deep nesting", deep.into_bytes(), 0x1),
        ("event name not a string", b"42[5,{}]".to_vec(), 0x1),
        (
            "binary placeholder pointing nowhere",
            b"451-[\"send message\",{\"_placeholder\":true,\"num\":7}]".to_vec(),
            0x1,
        ),
        (
            "invalid UTF-8 text",
            vec![b'4', b'2', 0xff, 0xfe, 0xfd],
            0x1,
        ),
        ("frame beyond maxPayload", vec![b'x'; 200_000], 0x1),
        ("unknown Socket.IO type", b"49[]".to_vec(), 0x1),
    ];
    for (what, payload, opcode) in cases {
        let mut ws = RawWs::open(w.port).await;
        ws.frame(opcode, &payload).await;
        assert!(
            ws.closed_within(WAIT).await,
            "{what}: the socket must be closed"
        );
        still_serving(w, &bystander).await;
    }
}

#[tokio::test]
async fn truncated_frames_and_unknown_events_harm_nobody_else() {
    let cluster = Workers::start(1).await;
    let w = cluster.w(0);
    let (bystander, _) = w.login("calm").await;

    // A frame header announcing 1000 bytes followed by 10, then the TCP connection drops.
    let mut ws = RawWs::open(w.port).await;
    let _ = ws
        .tcp
        .write_all(&[0x81, 0x80 | 126, 0x03, 0xe8, 0, 0, 0, 0])
        .await;
    let _ = ws.tcp.write_all(b"42[\"send m").await;
    drop(ws);
    still_serving(w, &bystander).await;

    // An unknown event is answered (bad_request), not a reason to close the socket.
    let mut c = w.connect().await;
    c.emit("no such event", json!({"x": 1}));
    let ev = c.wait_event("chat error", WAIT).await.unwrap();
    assert_eq!(ev.data()["code"], "bad_request");
    // Wrong payload types: answered, never a panic.
    for payload in [
        json!(null),
        json!(5),
        json!("x"),
        json!([1]),
        json!({"username": []}),
    ] {
        for event in [
            "log in",
            "send message",
            "join room",
            "leave room",
            "room message",
        ] {
            let ack = c.emit_ack(event, payload.clone()).await.unwrap();
            assert_eq!(ack["ok"], false, "{event} {payload}");
        }
    }
    assert!(
        c.wait_closed(Duration::from_millis(200)).await.is_err(),
        "still open"
    );
    still_serving(w, &bystander).await;
}

/// Long-polling with raw HTTP: open a session, then POST `body`.
async fn polling_post(port: u16, body: &[u8]) -> (u16, String) {
    let (status, text) = http_get(port, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(status, 200, "{text}");
    let sid = text
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("sid")
        .to_owned();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let _ = tcp.write_all(body).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    (chat_testkit::net::status_of(&text), text)
}

#[tokio::test]
async fn malformed_polling_bodies_are_refused_without_harm() {
    let cluster = Workers::start_with(1, &["--max-message-bytes", "1000"]).await;
    let w = cluster.w(0);
    let (bystander, _) = w.login("calm").await;
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("invalid JSON", b"40\x1e42[\"send message\",{".to_vec()),
        (
            "invalid UTF-8",
            vec![b'4', b'0', 0x1e, b'4', b'2', 0xff, 0xfe],
        ),
        ("unknown engine packet", b"9zzz".to_vec()),
        ("body beyond maxPayload", vec![b'x'; 300_000]),
        ("empty body", Vec::new()),
    ];
    for (what, body) in bodies {
        let (status, _) = polling_post(w.port, &body).await;
        // Whatever the status, the worker must answer (or close) and serve others.
        assert!(
            status == 0 || (200..600).contains(&status),
            "{what}: {status}"
        );
        still_serving(w, &bystander).await;
    }
}

fn rss_kib(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap();
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 4
}

#[tokio::test]
async fn memory_stays_bounded_under_repeated_garbage() {
    let cluster = Workers::start_with(1, &["--max-message-bytes", "1000"]).await;
    let w = cluster.w(0);
    let round = || async {
        for _ in 0..50 {
            let mut ws = RawWs::open(w.port).await;
            ws.frame(0x1, &[b'x'; 100_000]).await;
            assert!(ws.closed_within(WAIT).await);
            let mut ws = RawWs::open(w.port).await;
            ws.frame(0x1, b"42[\"send message\",{").await;
            assert!(ws.closed_within(WAIT).await);
        }
    };
    round().await; // warm-up: allocator pools and buffers reach their steady size
    let before = rss_kib(w.pid);
    for _ in 0..4 {
        round().await;
    }
    let after = rss_kib(w.pid);
    assert!(
        after < before + 8 * 1024,
        "RSS grew from {before} KiB to {after} KiB over 400 hostile connections"
    );
    wait_until("connections to be released", WAIT, || async {
        w.metric("chat_connections").await == 0.0
    })
    .await;
}
