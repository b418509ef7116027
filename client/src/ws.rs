//! The WebSocket transport: one Engine.IO packet per text frame, a writer task and a reader
//! task per client.

use crate::codec::{self, Packet};
use crate::session::{self, dispatch, Outgoing};
use crate::{Client, Error};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// `ws://host:port/socket.io/?EIO=4&transport=websocket` from `http://host:port` or
/// `ws://host:port` (`https://`/`wss://` give `wss://`); a path prefix is kept.
pub fn socket_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = base
        .strip_prefix("http://")
        .map(|rest| format!("ws://{rest}"))
        .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .unwrap_or_else(|| base.to_owned());
    format!("{base}/socket.io/?EIO=4&transport=websocket")
}

/// Opens the WebSocket, waits for the Engine.IO open, joins namespace `/`, then hands the
/// socket to a writer task and a reader task. Unbounded: the caller bounds it.
pub(crate) async fn connect(base: &str) -> Result<Client, Error> {
    // Nagle off, as browsers and socket.io-client (Node's `ws`) have it: without that, small
    // frames written a fraction of a millisecond apart wait for the server's ACK and arrive
    // together, which no real client does.
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(socket_url(base), None, true).await?;
    let (mut sink, mut stream) = ws.split();
    // Engine.IO open, then Socket.IO connect to `/`.
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => match codec::parse(&t)? {
                Packet::Open(_) => break,
                other => return Err(Error::Protocol(format!("expected open, got {other:?}"))),
            },
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(Error::Closed("before open".into())),
        }
    }
    sink.send(Message::text(codec::CONNECT)).await?;
    let sid = loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => match codec::parse(&t)? {
                Packet::Connect(v) => {
                    break v["sid"].as_str().unwrap_or_default().to_owned();
                }
                Packet::ConnectError(v) => {
                    return Err(Error::Protocol(format!("connect refused: {v}")))
                }
                Packet::Ping => sink.send(Message::text(codec::PONG)).await?,
                _ => {}
            },
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(Error::Closed("before connect".into())),
        }
    };

    let (client, ends) = session::attach(sid);
    let session::Ends {
        mut out_rx,
        out_tx: pong,
        in_tx,
        acks,
    } = ends;
    tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let (frame, close) = match m {
                Outgoing::Packet(p) => (Message::text(p), false),
                Outgoing::Close => (Message::Close(None), true),
            };
            if sink.send(frame).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        let reason = loop {
            let text = match stream.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) | None => break "transport close".to_owned(),
                Some(Ok(_)) => continue,
                Some(Err(e)) => break format!("transport error: {e}"),
            };
            if let Some(reason) = dispatch(&text, &in_tx, &acks, &pong) {
                break reason;
            }
        };
        session::end(&in_tx, &acks, reason);
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_socket_urls() {
        assert_eq!(
            socket_url("http://127.0.0.1:5/"),
            "ws://127.0.0.1:5/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            socket_url("ws://h:1/chat"),
            "ws://h:1/chat/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            socket_url("https://h"),
            "wss://h/socket.io/?EIO=4&transport=websocket"
        );
    }
}
