//! Waiting for clients' acknowledgements of direct messages, and recording them in batches.
//!
//! Every direct message emitted waits for its client's ack. One task per worker waits for all
//! of them ([`record_acks`]), instead of one task per message. Acks are gathered for up to
//! [`ACK_GATHER`] after the first one of a batch, like TCP's delayed ACK, then recorded in
//! one Redis call ([`Store::ack_many`](crate::store::Store::ack_many)), which also sends their
//! `delivered` receipts as one `PUBLISH` per worker instance. Only then does each message
//! leave its socket's flight, as before.

use super::{App, MAX_BATCH};
use crate::store::Ack;
use futures_util::stream::{FuturesUnordered, StreamExt};
use socketioxide::ack::AckStream;
use socketioxide::socket::Sid;
use socketioxide::AckError;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// Whatever a client acknowledges with, no arguments included.
///
/// It asks to be deserialized as a tuple: socketioxide then hands it the whole argument
/// array, where for any other type it takes the array's first element, and fails (building
/// a serde_json error, with its allocations) when a client acks with no arguments at all,
/// as most do. The visitor skips any number of elements.
pub struct AnyAck;

impl<'de> serde::Deserialize<'de> for AnyAck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Skip;
        impl<'de> serde::de::Visitor<'de> for Skip {
            type Value = AnyAck;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("ack arguments")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<AnyAck, S::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(AnyAck)
            }
        }
        // The length is a hint serde_json ignores; any count of arguments is read.
        d.deserialize_tuple(usize::MAX, Skip)
    }
}

/// A direct message emitted to a socket, waiting for the client's ack.
pub struct Awaited {
    pub ack: AckStream<AnyAck>,
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

/// How long the first answered ack of a batch waits for others before the batch is recorded.
///
/// Most of a script call's cost in Redis is the call, not the acks inside it (BENCHMARKS.md,
/// "Where Redis's time goes"); without a wait, acks arriving a few per millisecond went one
/// per call (at 1,000 msg/s: 1.45 script calls per message, 0.87 with the wait, and Redis's
/// CPU per message −19 %, "Acks gathered"). The wait delays only what follows the
/// ack (the sender's `delivered` receipt, the message leaving the inbox and its socket's
/// flight), never a delivery; and a message whose ack is not recorded yet when its worker
/// dies is delivered again, which clients already drop by id.
pub const ACK_GATHER: Duration = Duration::from_millis(5);

struct Answered {
    sid: Sid,
    bytes: u64,
    record: Ack,
    /// The client answered (with anything); `false` when the ack timed out or the socket closed.
    acked: bool,
}

impl Awaited {
    async fn answered(self) -> Answered {
        // Any answer counts as an acknowledgement, whatever its arguments (a decode error
        // too: a client's ack that is not an array still answered).
        let acked = matches!(self.ack.await, Ok(_) | Err(AckError::Decode(_)));
        Answered {
            sid: self.sid,
            bytes: self.bytes,
            record: self.record,
            acked,
        }
    }
}

/// Waits for every ack handed to `queue` and records them in batches, gathered for up to
/// [`ACK_GATHER`] (none while the worker drains), for as long as the worker runs.
pub async fn record_acks(app: App, mut queue: mpsc::UnboundedReceiver<Awaited>) {
    let mut waiting = FuturesUnordered::new();
    let mut recording = FuturesUnordered::new();
    let mut gathered: Vec<Answered> = Vec::new();
    let gather_ends = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(gather_ends);
    loop {
        tokio::select! {
            awaited = queue.recv() => {
                let Some(awaited) = awaited else { break };
                waiting.push(answered(&app, awaited));
                while let Ok(more) = queue.try_recv() {
                    waiting.push(answered(&app, more));
                }
            }
            Some(answer) = waiting.next(), if !waiting.is_empty() => {
                if gathered.is_empty() {
                    gather_ends.as_mut().reset(tokio::time::Instant::now() + ACK_GATHER);
                }
                gathered.push(answer);
                if gathered.len() >= MAX_BATCH || app.draining.load(Ordering::Relaxed) {
                    recording.push(record(app.clone(), std::mem::take(&mut gathered)));
                }
            }
            () = &mut gather_ends, if !gathered.is_empty() => {
                recording.push(record(app.clone(), std::mem::take(&mut gathered)));
            }
            Some(()) = recording.next(), if !recording.is_empty() => {}
        }
    }
    // The worker is stopping: what was answered is recorded, not left to be delivered again.
    if !gathered.is_empty() {
        recording.push(record(app.clone(), gathered));
    }
    while recording.next().await.is_some() {}
}

/// The client's answer to `awaited`; the delivery latency is observed when it comes, not
/// when it is recorded.
async fn answered(app: &App, awaited: Awaited) -> Answered {
    let sent_at = awaited.sent_at;
    let answer = awaited.answered().await;
    if answer.acked {
        app.metrics.acked(sent_at);
    }
    answer
}

/// Records a batch of answers, then releases each message from its socket's flight (a
/// timed-out one stays pending and goes out again at the next `log in`).
async fn record(app: App, batch: Vec<Answered>) {
    let acked: Vec<&Ack> = batch
        .iter()
        .filter(|a| a.acked)
        .map(|a| &a.record)
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

#[cfg(test)]
mod tests {
    use super::AnyAck;

    #[test]
    fn any_ack_reads_any_number_of_arguments() {
        for args in ["[]", "[null]", "[{\"ok\":true}, 2, \"x\"]"] {
            assert!(serde_json::from_str::<AnyAck>(args).is_ok(), "{args}");
        }
        assert!(
            socketioxide_core::parser::is_de_tuple::<AnyAck>(),
            "socketioxide must hand it the whole argument array"
        );
    }
}
