//! A hand-rolled WebSocket client (masked client text frames, unmasked server frames) for tests
//! that must control the wire: stop reading at will (slow readers), or upgrade an existing
//! polling session half-way (drains). The client crate's reader task never stops reading.

use crate::WAIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One raw WebSocket connection to a worker's `/socket.io/`.
pub struct RawWs {
    tcp: TcpStream,
    /// Bytes read and not yet taken as frames.
    buf: Vec<u8>,
}

impl RawWs {
    /// A new Engine.IO session straight over WebSocket, with a small receive buffer so the
    /// kernel absorbs little of what the worker writes once the test stops reading.
    pub async fn connect(port: u16) -> RawWs {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = sock
            .connect(([127, 0, 0, 1], port).into())
            .await
            .expect("connect");
        Self::handshake(tcp, "").await
    }

    /// The WebSocket upgrade of the existing polling session `sid`.
    pub async fn upgrade(port: u16, sid: &str) -> RawWs {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        Self::handshake(tcp, &format!("&sid={sid}")).await
    }

    async fn handshake(mut tcp: TcpStream, query: &str) -> RawWs {
        let head = format!(
            "GET /socket.io/?EIO=4&transport=websocket{query} HTTP/1.1\r\nHost: localhost\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(head.as_bytes())
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
            assert!(ws.fill().await, "closed before the 101");
        };
        let head = String::from_utf8_lossy(&ws.buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        ws.buf.drain(..head_end);
        ws
    }

    /// The TCP stream, for a test that watches the connection itself (when it closes).
    pub fn into_tcp(self) -> TcpStream {
        self.tcp
    }

    /// Reads more; false when the worker closed the connection (or it failed).
    pub async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(WAIT, self.tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(_) => false,
            Err(_) => panic!("websocket read timed out"),
        }
    }

    /// The next frame's opcode and payload; `None` once the connection is closed.
    pub async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
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
                    let op = self.buf[0] & 0x0f;
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((op, payload));
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next frame's payload as text; panics if the worker closed the connection.
    pub async fn next_text(&mut self) -> String {
        let (_, payload) = self.next_frame().await.expect("closed by the worker");
        String::from_utf8(payload).expect("text frame")
    }

    /// Sends one masked text frame.
    pub async fn send_text(&mut self, text: &str) {
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

    /// Waits for a text frame that starts with `prefix`, answering Engine.IO pings on the way.
    pub async fn expect(&mut self, prefix: &str) -> String {
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
}
