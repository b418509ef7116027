//! Issue 10, "nothing late either": a drain never strands a client in the middle of a
//! polling→WebSocket upgrade (engine.io-client does not resume polling after a failed one).

use chat_testkit::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// One HTTP/1.0 request on a fresh connection: `Ok((status, body))`, or `Err` when the
/// connection fails (refused, reset, closed without an answer).
async fn request(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = net::status_of(&text);
    if status == 0 {
        return Err(format!("no HTTP answer: {text:?}"));
    }
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// One keep-alive HTTP/1.1 connection for polls, as a browser (or HAProxy in front of the
/// worker) keeps: a draining worker no longer accepts connections but still serves these.
struct KeepAlive {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl KeepAlive {
    async fn connect(port: u16) -> KeepAlive {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        KeepAlive {
            tcp,
            buf: Vec::new(),
        }
    }

    /// A GET on the connection: `Ok((status, body))`, `Err` when the connection fails.
    async fn get(&mut self, path: &str) -> Result<(u16, String), String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        self.tcp
            .write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no content-length in {head:?}"))?;
        while self.buf.len() < head_end + len {
            self.fill().await?;
        }
        let body = String::from_utf8_lossy(&self.buf[head_end..head_end + len]).into_owned();
        self.buf.drain(..head_end + len);
        Ok((net::status_of(&head), body))
    }

    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(WAIT, self.tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Ok(Ok(_)) => Err("closed".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer".into()),
        }
    }
}

#[tokio::test]
async fn a_drain_answers_a_half_upgraded_clients_poll_with_close_before_its_websocket_closes() {
    let mut cluster = Workers::start_with(1, &["--drain-timeout", "5"]).await;
    let port = cluster.w(0).port;
    let base = "/socket.io/?EIO=4&transport=polling";

    // Polling handshake and Socket.IO connect, as engine.io-client does by default.
    let (status, open) = request(port, "GET", base, "").await.expect("handshake");
    assert_eq!(status, 200, "{open}");
    let sid = open
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("sid in the open packet")
        .to_owned();
    let poll = format!("{base}&sid={sid}");
    let (status, body) = request(port, "POST", &poll, "40").await.expect("connect");
    assert_eq!((status, body.as_str()), (200, "ok"));
    let mut polls = KeepAlive::connect(port).await;
    let (status, body) = polls.get(&poll).await.expect("poll");
    // A payload may carry several packets (a ping can come first on a busy machine).
    assert!(
        status == 200 && body.split('\u{1e}').any(|p| p.starts_with("40")),
        "{status} {body:?}"
    );

    // Half an upgrade: the probe is answered, the `5` (upgrade) never sent.
    let mut ws = RawWs::upgrade(port, &sid).await;
    ws.send_text("2probe").await;
    let (op, probe) = ws.next_frame().await.expect("3probe");
    assert_eq!((op, probe.as_slice()), (1, b"3probe".as_slice()));
    // While upgrading, polls get NOOP at once (engineioxide).
    let (status, body) = polls.get(&poll).await.expect("poll");
    assert_eq!((status, body.as_str()), (200, "6"));

    // The websocket's close is timed by a reader of its own.
    let ws_closed = tokio::spawn(async move {
        while let Some((op, _)) = ws.next_frame().await {
            if op == 8 {
                break;
            }
        }
        Instant::now()
    });

    cluster.workers[0].sigterm();
    // The client keeps polling as engine.io-client would (one GET open at a time): the
    // first answer that is not NOOP must be the close packet, or a failed connection once
    // the worker is gone, and it must come before the websocket closes.
    let deadline = Instant::now() + WAIT;
    let (answer, at) = loop {
        assert!(Instant::now() < deadline, "polls kept getting NOOP");
        match polls.get(&poll).await {
            Ok((200, body)) if body == "6" => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => break (other, Instant::now()),
        }
    };
    assert_eq!(answer, Ok((200, "1".to_owned())), "answer to the poll");
    let closed_at = tokio::time::timeout(WAIT * 2, ws_closed)
        .await
        .expect("websocket never closed")
        .expect("reader task");
    assert!(
        at < closed_at,
        "the poll was answered after the websocket closed"
    );

    // New probes of the session are refused while draining (if the worker is
    // still there to answer; else the connection fails, which clients treat alike).
    if let Ok((status, _)) = polls.get(&format!("{poll}&transport=websocket")).await {
        assert_eq!(status, 400);
    }
    assert_eq!(cluster.workers[0].wait_exit(WAIT * 2).await, Some(0));
}
