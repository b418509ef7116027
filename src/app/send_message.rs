//! `send message`: a direct message to a user, stored in its inbox and delivered by Redis.
//!
//! On one Redis the messages sent during the same tick are stored together: each handler
//! queues its message and waits, and one task ([`store_sends`]) takes everything queued and
//! stores it with one [`Store::send_many`](crate::store::Store::send_many) call, which
//! publishes one payload per worker instance. Each sender still hears `ok` only once its
//! message is in Redis. On a cluster each message is its own call (they live in many slots).

use super::{logged_in, payload, rate_check, App, Reply};
use crate::protocol::{self, events, ChatError, SendMessage};
use crate::store::{now_ms, Outgoing, StoreError};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use socketioxide::extract::{SocketRef, State, TryData};
use tokio::sync::{mpsc, oneshot};

/// Messages stored in one Redis call at most: bounds how long the script runs in Redis.
const MAX_BATCH: usize = 128;

/// A message waiting to be stored with its batch, and where its id goes.
pub struct Queued {
    message: Outgoing,
    stored: oneshot::Sender<Result<String, StoreError>>,
}

/// Where the `send message` handlers queue their messages. Unbounded, yet bounded by the
/// handlers: each waits for its message, and each socket's rate limit bounds its handlers.
pub type SendQueue = mpsc::UnboundedSender<Queued>;

/// The queue and its receiving end, for [`store_sends`].
pub fn send_queue() -> (SendQueue, mpsc::UnboundedReceiver<Queued>) {
    mpsc::unbounded_channel()
}

/// Stores what the handlers queue, everything queued by then in one call, for as long as
/// the worker runs. Batches overlap: the next is sent while the last waits for Redis (the
/// connection pipelines them, in order).
pub async fn store_sends(app: App, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let mut storing = FuturesUnordered::new();
    loop {
        tokio::select! {
            queued = queue.recv() => {
                let Some(first) = queued else { return };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                storing.push(store_batch(app.clone(), batch));
            }
            Some(()) = storing.next(), if !storing.is_empty() => {}
        }
    }
}

async fn store_batch(app: App, batch: Vec<Queued>) {
    let (messages, replies): (Vec<Outgoing>, Vec<_>) =
        batch.into_iter().map(|q| (q.message, q.stored)).unzip();
    match app.store.send_many(&messages).await {
        Ok(ids) => {
            for (reply, id) in replies.into_iter().zip(ids) {
                let _ = reply.send(Ok(id));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

impl App {
    /// Stores a direct message: with its batch on one Redis, on its own on a cluster.
    async fn store_direct(&self, message: Outgoing) -> Result<String, StoreError> {
        if self.store.is_cluster() {
            let m = &message;
            return self.store.send(&m.from, &m.to, &m.text, m.sent_at).await;
        }
        let (stored, id) = oneshot::channel();
        if self.sends.send(Queued { message, stored }).is_err() {
            return Err(StoreError::Stopped);
        }
        id.await.unwrap_or(Err(StoreError::Stopped))
    }
}

pub(super) async fn on_send_message(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    reply: Reply,
    State(app): State<App>,
) {
    let result = send_message(&app, &socket, payload(events::SEND_MESSAGE, data)).await;
    reply.send(&app, events::SEND_MESSAGE, result);
}

async fn send_message(
    app: &App,
    socket: &SocketRef,
    data: Result<Value, ChatError>,
) -> Result<Value, ChatError> {
    let req: SendMessage = protocol::parse(events::SEND_MESSAGE, data?)?;
    let from = logged_in(app, socket)?;
    protocol::validate_username(&req.username)?;
    protocol::validate_text(&req.message, app.limits.max_message_bytes)?;
    rate_check(app, socket)?;
    let id = app
        .store_direct(Outgoing {
            from,
            to: req.username,
            text: req.message,
            sent_at: now_ms(),
        })
        .await?;
    app.metrics.received();
    Ok(json!({"ok": true, "id": id}))
}
