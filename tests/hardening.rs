//! Issue 10, "bounded per socket and per user": what one client can make a worker hold.

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A hand-rolled WebSocket connection (masked client frames, unmasked server frames) so a test
/// can stop reading at will, which the client crate's reader task never does.
struct RawWs {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Connects with a small receive buffer, so the kernel absorbs little of what the worker
    /// writes once the test stops reading.
    async fn connect(port: u16) -> RawWs {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let mut tcp = sock
            .connect(([127, 0, 0, 1], port).into())
            .await
            .expect("connect");
        tcp.write_all(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n\
              Upgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .expect("upgrade request");
        let mut ws = RawWs {
            tcp,
            buf: Vec::new(),
        };
        let head_end = loop {
            if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            ws.fill().await;
        };
        let head = String::from_utf8_lossy(&ws.buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        ws.buf.drain(..head_end);
        ws
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, self.tcp.read(&mut chunk))
            .await
            .expect("read timed out")
            .expect("read");
        assert!(n > 0, "closed by the worker");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next text frame's payload.
    async fn next_text(&mut self) -> String {
        loop {
            if self.buf.len() >= 2 {
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(b) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return String::from_utf8(payload).expect("text frame");
                }
            }
            self.fill().await;
        }
    }

    async fn send_text(&mut self, text: &str) {
        let mask = [0x11u8, 0x22, 0x33, 0x44];
        let len = text.len();
        let mut frame = vec![0x81u8];
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&frame).await.expect("write frame");
    }

    /// Waits for a text frame that starts with `prefix`, answering pings on the way.
    async fn expect(&mut self, prefix: &str) -> String {
        loop {
            let t = self.next_text().await;
            if t.starts_with(prefix) {
                return t;
            }
            if t == "2" {
                self.send_text("3").await;
            }
        }
    }

    /// Engine.IO open, Socket.IO connect, `log in` as `user`; returns once the ack is read.
    async fn log_in(port: u16, user: &str) -> RawWs {
        let mut ws = RawWs::connect(port).await;
        ws.expect("0{").await;
        ws.send_text("40").await;
        ws.expect("40").await;
        ws.send_text(&format!("420{}", json!(["log in", {"username": user}])))
            .await;
        let ack = ws.expect("430").await;
        assert!(ack.contains("\"ok\":true"), "{ack}");
        ws
    }
}

/// A `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`).
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing"))
}

/// The attack of issue 10: sockets of one user that stop reading, senders of 16 KB messages.
/// The slow sockets are cut, the worker's memory stays bounded, and every acked message is
/// still in the victim's inbox.
#[tokio::test]
async fn slow_readers_are_disconnected_and_lose_nothing() {
    const SLOW: usize = 12;
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 200;
    let cluster =
        Cluster::start_with(1, &["--messages-per-second", "1000", "--inbox-max", "5000"]).await;
    let w = cluster.w(0);
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        slow.push(RawWs::log_in(w.port, "victim").await);
    }
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(w.login(&format!("sender{i}")).await.0);
    }
    let rss_before = proc_kb(w.pid, "VmRSS");
    let text = "x".repeat(16_000);
    let sends = senders.iter().map(|c| async {
        for _ in 0..PER_SENDER {
            send_ok(c, "victim", &text).await;
        }
    });
    futures_util::future::join_all(sends).await;

    wait_until("every slow socket to be cut", WAIT, || async {
        w.metric("chat_slow_disconnects_total").await >= SLOW as f64
    })
    .await;
    wait_until("only the senders to stay connected", WAIT, || async {
        w.metric("chat_connections").await == SENDERS as f64
    })
    .await;
    let growth_mb = proc_kb(w.pid, "VmHWM").saturating_sub(rss_before) / 1024;
    eprintln!("worker grew by {growth_mb} MB under the attack");
    assert!(growth_mb < 100, "worker grew by {growth_mb} MB");
    assert!(
        w.log_text().contains("slow"),
        "a log line names the slow disconnect"
    );

    // Every acked message is still in the inbox.
    let inbox = cluster.redis.cli(&["XLEN", "chat:u:victim:inbox"]).await;
    assert_eq!(inbox, (SENDERS * PER_SENDER).to_string());
    drop(slow);
}

/// `max_sockets_per_user` (default 16): one more socket of that user gets `limit_reached` and
/// stays logged out; other users are not affected.
#[tokio::test]
async fn sockets_per_user_are_capped() {
    let cluster = Cluster::start(1).await;
    let w = cluster.w(0);
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(w.login("many").await.0);
    }
    // Logging in again on a socket that already is `many` does not count twice.
    assert_eq!(
        ack_code(&held[0], "log in", json!({"username": "many"})).await,
        "ok"
    );
    let extra = w.connect().await;
    assert_eq!(
        ack_code(&extra, "log in", json!({"username": "many"})).await,
        "limit_reached"
    );
    assert_eq!(
        ack_code(
            &extra,
            "send message",
            json!({"username": "x", "message": "m"})
        )
        .await,
        "not_logged_in"
    );
    assert_eq!(
        ack_code(&extra, "log in", json!({"username": "other"})).await,
        "ok"
    );
    // A slot frees when one of them leaves.
    drop(held.pop());
    wait_until("a slot of `many` to free up", WAIT, || async {
        let c = w.connect().await;
        ack_code(&c, "log in", json!({"username": "many"})).await == "ok"
    })
    .await;
}

/// `max_rooms_per_socket` (default 100): one more room gets `limit_reached`; rejoining a room
/// or leaving one to join another works.
#[tokio::test]
async fn rooms_per_socket_are_capped() {
    let cluster = Cluster::start(1).await;
    let (c, _) = cluster.w(0).login("joiner").await;
    for i in 0..100 {
        assert_eq!(
            ack_code(&c, "join room", json!({"room": format!("r{i}")})).await,
            "ok"
        );
    }
    assert_eq!(
        ack_code(&c, "join room", json!({"room": "r100"})).await,
        "limit_reached"
    );
    // The refused room was not joined.
    assert_eq!(
        ack_code(&c, "room message", json!({"room": "r100", "message": "m"})).await,
        "bad_request"
    );
    assert_eq!(ack_code(&c, "join room", json!({"room": "r5"})).await, "ok");
    assert_eq!(
        ack_code(&c, "leave room", json!({"room": "r5"})).await,
        "ok"
    );
    assert_eq!(
        ack_code(&c, "join room", json!({"room": "r100"})).await,
        "ok"
    );
}
