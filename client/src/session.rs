//! What both transports share: the channels between a [`Client`] and its transport's reader
//! and writer tasks, and the handling of one incoming packet.

use crate::codec::{self, Packet};
use crate::{Client, ServerEvent};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// What a transport's reader hands the client.
pub(crate) enum Incoming {
    Event(ServerEvent),
    /// The session ended, with the reason; nothing follows.
    Closed(String),
}

/// Waiters for the acks of the client's emits, by ack id.
pub(crate) type AckMap = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<Value>>>>>;

/// The transport ended: no pending ack can arrive any more, so every waiter fails now (with
/// `Closed`) instead of at its timeout; then the client hears why.
pub(crate) fn end(in_tx: &mpsc::UnboundedSender<Incoming>, acks: &AckMap, reason: String) {
    if let Ok(mut waiting) = acks.lock() {
        waiting.clear();
    }
    let _ = in_tx.send(Incoming::Closed(reason));
}

/// What the client hands its transport's writer task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outgoing {
    /// One Engine.IO packet (`42…`, `3`, …): a text frame, or one record of a POST body.
    Packet(String),
    /// Close the transport: a WebSocket close frame, or a `1` packet over polling.
    Close,
}

/// The transport's ends of a new client's channels.
pub(crate) struct Ends {
    /// What the client sends; the writer drains it.
    pub(crate) out_rx: mpsc::UnboundedReceiver<Outgoing>,
    /// Where the reader queues pongs (the writer sends them in order with the rest).
    pub(crate) out_tx: mpsc::UnboundedSender<Outgoing>,
    /// Where the reader delivers events and the close reason.
    pub(crate) in_tx: mpsc::UnboundedSender<Incoming>,
    /// Where the reader resolves the client's ack waiters.
    pub(crate) acks: AckMap,
}

/// A connected client with Socket.IO session id `sid`, and the ends its transport's tasks use.
pub(crate) fn attach(sid: String) -> (Client, Ends) {
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let acks = AckMap::default();
    let client = Client {
        out: out_tx.clone(),
        incoming: in_rx,
        backlog: VecDeque::new(),
        acks: acks.clone(),
        next_ack: AtomicU64::new(0),
        closed: None,
        sid,
    };
    let ends = Ends {
        out_rx,
        out_tx,
        in_tx,
        acks,
    };
    (client, ends)
}

/// Handles one incoming packet on a connected session: events go to the client, acks to their
/// waiters, pings get a pong. Returns the close reason when the packet ends the session.
pub(crate) fn dispatch(
    text: &str,
    in_tx: &mpsc::UnboundedSender<Incoming>,
    acks: &AckMap,
    out: &mpsc::UnboundedSender<Outgoing>,
) -> Option<String> {
    match codec::parse(text) {
        Ok(Packet::Ping) => {
            let _ = out.send(Outgoing::Packet(codec::PONG.into()));
        }
        Ok(Packet::Event(ev)) => {
            let _ = in_tx.send(Incoming::Event(ev));
        }
        Ok(Packet::Ack(id, args)) => {
            let waiter = acks.lock().ok().and_then(|mut m| m.remove(&id));
            if let Some(tx) = waiter {
                let _ = tx.send(args);
            }
        }
        Ok(Packet::Disconnect) => return Some("io server disconnect".to_owned()),
        Ok(Packet::Close) => return Some("transport close".to_owned()),
        Ok(_) => {}
        Err(e) => return Some(e.to_string()),
    }
    None
}
