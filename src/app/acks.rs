//! Waiting for clients' acknowledgements of direct messages, and recording them in batches.
//!
//! Every direct message emitted waits for its client's ack. One task per worker waits for all
//! of them ([`record_acks`]), instead of one task per message; the acks that came in during
//! the same tick are recorded in one Redis call ([`Store::ack_many`](crate::store::Store::ack_many)),
//! which also sends their `delivered` receipts as one `PUBLISH` per worker instance. Only then
//! does each message leave its socket's flight, as before.

use super::App;
use crate::store::Ack;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use socketioxide::ack::AckStream;
use socketioxide::socket::Sid;
use socketioxide::AckError;
use tokio::sync::mpsc;

/// Acks recorded in one Redis call at most: bounds how long the script runs in Redis.
const MAX_BATCH: usize = 128;

/// A direct message emitted to a socket, waiting for the client's ack.
pub struct Awaited {
    pub ack: AckStream<serde::de::IgnoredAny>,
    pub sid: Sid,
    /// Its size in the socket's flight.
    pub bytes: u64,
    /// When it was sent, for the delivery latency.
    pub sent_at: u64,
    pub record: Ack,
}

/// Where [`App::emit_direct`] hands what it emitted. Unbounded, yet bounded by the flights:
/// each socket has at most `MAX_IN_FLIGHT` messages waiting here.
pub type AckQueue = mpsc::UnboundedSender<Awaited>;

/// The queue and its receiving end, for [`record_acks`].
pub fn ack_queue() -> (AckQueue, mpsc::UnboundedReceiver<Awaited>) {
    mpsc::unbounded_channel()
}

struct Answered {
    sid: Sid,
    bytes: u64,
    sent_at: u64,
    record: Ack,
    /// The client answered (with anything); `false` when the ack timed out or the socket closed.
    acked: bool,
}

impl Awaited {
    async fn answered(self) -> Answered {
        // Any answer counts as an acknowledgement, whatever its arguments.
        let acked = matches!(self.ack.await, Ok(_) | Err(AckError::Decode(_)));
        Answered {
            sid: self.sid,
            bytes: self.bytes,
            sent_at: self.sent_at,
            record: self.record,
            acked,
        }
    }
}

/// Waits for every ack handed to `queue` and records them in batches, for as long as the
/// worker runs.
pub async fn record_acks(app: App, mut queue: mpsc::UnboundedReceiver<Awaited>) {
    let mut waiting = FuturesUnordered::new();
    let mut recording = FuturesUnordered::new();
    loop {
        tokio::select! {
            awaited = queue.recv() => {
                let Some(awaited) = awaited else { return };
                waiting.push(awaited.answered());
                while let Ok(more) = queue.try_recv() {
                    waiting.push(more.answered());
                }
            }
            Some(first) = waiting.next(), if !waiting.is_empty() => {
                // Everything else answered by now joins the batch.
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match waiting.next().now_or_never() {
                        Some(Some(more)) => batch.push(more),
                        _ => break,
                    }
                }
                recording.push(record(app.clone(), batch));
            }
            Some(()) = recording.next(), if !recording.is_empty() => {}
        }
    }
}

/// Records a batch of answers, then releases each message from its socket's flight (a
/// timed-out one stays pending and goes out again at the next `log in`).
async fn record(app: App, batch: Vec<Answered>) {
    let acked: Vec<&Ack> = batch
        .iter()
        .filter(|a| a.acked)
        .map(|a| {
            app.metrics.acked(a.sent_at);
            &a.record
        })
        .collect();
    if let Err(e) = app.store.ack_many(&acked).await {
        tracing::warn!(
            acks = acked.len(),
            "acks not recorded, the messages stay pending: {e}"
        );
    }
    let caps = app.flight_caps();
    for a in &batch {
        if app.registry.release(a.sid, a.bytes, caps) {
            let app = app.clone();
            let (sid, user) = (a.sid, a.record.to.clone());
            tokio::spawn(async move { app.refill(sid, user).await });
        }
    }
}
