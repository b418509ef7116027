//! `send message`: a direct message to a user, stored in its inbox and delivered by Redis.
//!
//! No task per message: socketioxide spawns a task for every call of an async handler, so
//! this event has its own [`MessageHandler`], [`OnSendMessage`], which validates at once and
//! queues the message. One task ([`store_sends`]) takes everything queued during a tick and
//! stores it with one [`Store::send_many`](crate::store::Store::send_many) (on one Redis one
//! script call, which publishes one payload per worker instance; on a cluster one call per
//! message, all at once, since the inboxes live in many slots); then it answers each sender.
//! A sender hears `ok` only once its own message is in Redis.

use super::args::Arg;
use super::{batch_of, logged_in, rate_check, App, Reply};
use crate::protocol::{self, events, ChatError, SendMessage};
use crate::store::{now_ms, Outgoing, StoreError};
use futures_util::stream::{FuturesUnordered, StreamExt};
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{SocketRef, State};
use socketioxide::handler::{FromMessageParts, MessageHandler};
use socketioxide::socket::Socket;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A message waiting to be stored with its batch, and its sender's answer.
pub struct Queued {
    message: Outgoing,
    reply: Reply,
}

/// Where [`OnSendMessage`] queues messages. Unbounded, yet bounded: each socket's rate limit
/// bounds what it adds, and a batch leaves the queue within one tick.
pub type SendQueue = mpsc::UnboundedSender<Queued>;

/// The queue and its receiving end, for [`store_sends`].
pub fn send_queue() -> (SendQueue, mpsc::UnboundedReceiver<Queued>) {
    mpsc::unbounded_channel()
}

/// The answer to a stored `send message`: `{"ok": true, "id": ID}` (SPEC §3), without
/// building a JSON map for it.
#[derive(serde::Serialize)]
struct Sent {
    ok: bool,
    id: String,
}

/// The `send message` handler: synchronous, so socketioxide calls it in place instead of
/// spawning a task for it.
pub(super) struct OnSendMessage;

impl MessageHandler<LocalAdapter, ()> for OnSendMessage {
    fn call(&self, s: Arc<Socket>, mut v: socketioxide_core::Value, ack_id: Option<i64>) {
        let Ok(State(app)) = State::<App>::from_message_parts(&s, &mut v, &ack_id) else {
            tracing::error!("the worker's state is missing");
            return;
        };
        let req = Arg::<SendMessage>::of_packet(&v).of(events::SEND_MESSAGE);
        let Ok(socket) = SocketRef::from_message_parts(&s, &mut v, &ack_id);
        let Ok(reply) = Reply::from_message_parts(&s, &mut v, &ack_id);
        match outgoing(&app, &socket, req) {
            Ok(message) => app.store_direct(message, reply),
            Err(e) => reply.fail(&app, events::SEND_MESSAGE, e),
        }
    }
}

/// The message a valid `send message` asks to store.
fn outgoing(
    app: &App,
    socket: &SocketRef,
    req: Result<SendMessage, ChatError>,
) -> Result<Outgoing, ChatError> {
    let req = req?;
    let from = logged_in(app, socket)?;
    protocol::validate_username(&req.username)?;
    protocol::validate_text(&req.message, app.limits.max_message_bytes)?;
    rate_check(app, socket)?;
    Ok(Outgoing {
        from,
        to: req.username,
        text: req.message,
        sent_at: now_ms(),
    })
}

/// Stores what [`OnSendMessage`] queues, everything queued by then in one call, for as long
/// as the worker runs. Batches overlap: the next is sent while the last waits for Redis (the
/// connection pipelines them, in order).
pub async fn store_sends(app: App, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let mut storing = FuturesUnordered::new();
    loop {
        tokio::select! {
            queued = queue.recv() => {
                let Some(first) = queued else { return };
                let batch = batch_of(first, || queue.try_recv().ok());
                storing.push(store_batch(app.clone(), batch));
            }
            Some(()) = storing.next(), if !storing.is_empty() => {}
        }
    }
}

async fn store_batch(app: App, batch: Vec<Queued>) {
    let (messages, replies): (Vec<Outgoing>, Vec<Reply>) =
        batch.into_iter().map(|q| (q.message, q.reply)).unzip();
    let stored = app.store.send_many(&messages).await;
    for (reply, outcome) in replies.into_iter().zip(stored) {
        app.answer_send(reply, outcome);
    }
}

impl App {
    /// Queues a direct message for [`store_sends`], which answers its sender.
    fn store_direct(&self, message: Outgoing, reply: Reply) {
        if let Err(mpsc::error::SendError(q)) = self.sends.send(Queued { message, reply }) {
            // The worker is stopping: nothing was accepted.
            q.reply
                .fail(self, events::SEND_MESSAGE, ChatError::unavailable());
        }
    }

    fn answer_send(&self, reply: Reply, stored: Result<String, StoreError>) {
        let result = stored.map_err(ChatError::from).map(|id| {
            self.metrics.received();
            Sent { ok: true, id }
        });
        reply.send(self, events::SEND_MESSAGE, result);
    }
}
