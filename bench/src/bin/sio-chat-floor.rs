//! `sio-chat-floor`: the CPU floor we inherit from socketioxide for SPEC §3's direct messages.
//! The chat protocol held in memory, with none of the worker's guarantees: no Redis, no inbox,
//! no rate or byte limits, one process. `log in` keeps the socket under its name; `send
//! message` is acked `{"ok":true,"id":N}` at once and emitted as `new message` (with an ack
//! request) to the recipient's sockets here; the recipient's ack sends the sender's sockets
//! `delivered`. Same frames as the worker, the worker's runtime (its 1 ms wake-up window),
//! hyper and socketioxide settings, and the worker's way of waiting for acks (one task for
//! all of them, no task per message). `bench/cpu-floor.sh` drives it and `chat-worker`
//! with the same load and puts their CPU per message side by side.
//!
//! Usage: `sio-chat-floor PORT` (127.0.0.1); prints `listening on ADDR`; stops on
//! SIGINT/SIGTERM.

#[path = "../loopback_server.rs"]
mod loopback_server;
#[path = "../sio_serve.rs"]
mod sio_serve;

use chat::app::AnyAck;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Deserialize;
use socketioxide::ack::AckStream;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::{FromMessageParts, MessageHandler};
use socketioxide::socket::{Sid, Socket};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

#[derive(Deserialize)]
struct LogIn {
    username: String,
}

#[derive(Deserialize)]
struct Send {
    username: String,
    message: String,
}

#[derive(serde::Serialize)]
struct NewMessage<'a> {
    id: &'a str,
    from: &'a str,
    message: &'a str,
    #[serde(rename = "sentAt")]
    sent_at: u64,
}

#[derive(serde::Serialize)]
struct LoggedIn<'a> {
    ok: bool,
    username: &'a str,
    pending: u32,
}

#[derive(serde::Serialize)]
struct Sent<'a> {
    ok: bool,
    id: &'a str,
}

#[derive(serde::Serialize)]
struct Delivered<'a> {
    id: &'a str,
    to: &'a str,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A `new message` waiting for its recipient's ack, and whom to tell.
struct Awaited {
    ack: AckStream<AnyAck>,
    sender: String,
    id: String,
    to: String,
}

#[derive(Default)]
struct Users {
    by_name: HashMap<String, Vec<SocketRef>>,
    name_of: HashMap<Sid, String>,
}

struct Floor {
    users: Mutex<Users>,
    next_id: AtomicU64,
    acks: mpsc::UnboundedSender<Awaited>,
}

impl Floor {
    fn sockets_of(&self, name: &str) -> Vec<SocketRef> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.by_name.get(name).cloned().unwrap_or_default()
    }
    fn name_of(&self, sid: Sid) -> Option<String> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.name_of.get(&sid).cloned()
    }
}

fn on_connect(floor: Arc<Floor>, socket: SocketRef) {
    let f = floor.clone();
    socket.on(
        "log in",
        move |s: SocketRef, Data(req): Data<LogIn>, ack: AckSender| {
            let f = f.clone();
            async move {
                let mut users = f.users.lock().unwrap_or_else(|e| e.into_inner());
                users
                    .by_name
                    .entry(req.username.clone())
                    .or_default()
                    .push(s.clone());
                users.name_of.insert(s.id, req.username.clone());
                drop(users);
                let _ = ack.send(&LoggedIn {
                    ok: true,
                    username: &req.username,
                    pending: 0,
                });
            }
        },
    );
    socket.on("send message", OnSend(floor.clone()));
    socket.on_disconnect(move |s: SocketRef| {
        let floor = floor.clone();
        async move {
            let mut users = floor.users.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(name) = users.name_of.remove(&s.id) {
                if let Some(list) = users.by_name.get_mut(&name) {
                    list.retain(|x| x.id != s.id);
                    if list.is_empty() {
                        users.by_name.remove(&name);
                    }
                }
            }
        }
    });
}

/// `send message`, called in place (socketioxide spawns a task for every call of an async
/// handler; the worker's `OnSendMessage` avoids that the same way).
#[derive(Clone)]
struct OnSend(Arc<Floor>);

impl MessageHandler<LocalAdapter, ()> for OnSend {
    fn call(&self, s: Arc<Socket>, mut v: socketioxide_core::Value, ack_id: Option<i64>) {
        let f = &self.0;
        let Ok(Data(req)) = Data::<Send>::from_message_parts(&s, &mut v, &ack_id) else {
            return;
        };
        let Ok(ack) = AckSender::from_message_parts(&s, &mut v, &ack_id);
        let Some(from) = f.name_of(s.id) else { return };
        let id = f.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let _ = ack.send(&Sent { ok: true, id: &id });
        let message = NewMessage {
            id: &id,
            from: &from,
            message: &req.message,
            sent_at: now_ms(),
        };
        for target in f.sockets_of(&req.username) {
            if let Ok(ack) = target.emit_with_ack::<_, AnyAck>("new message", &message) {
                let _ = f.acks.send(Awaited {
                    ack,
                    sender: from.clone(),
                    id: id.clone(),
                    to: req.username.clone(),
                });
            }
        }
    }
}

/// One task waits for every ack, as the worker's `record_acks` does (without its gathering,
/// which exists for Redis).
async fn deliver_receipts(floor: Arc<Floor>, mut queue: mpsc::UnboundedReceiver<Awaited>) {
    let mut waiting = FuturesUnordered::new();
    loop {
        tokio::select! {
            awaited = queue.recv() => {
                let Some(a) = awaited else { return };
                waiting.push(async move {
                    let acked = matches!(a.ack.await, Ok(_) | Err(socketioxide::AckError::Decode(_)));
                    (acked, a.sender, a.id, a.to)
                });
            }
            Some((acked, sender, id, to)) = waiting.next(), if !waiting.is_empty() => {
                if acked {
                    let receipt = Delivered { id: &id, to: &to };
                    for s in floor.sockets_of(&sender) {
                        let _ = s.emit("delivered", &receipt);
                    }
                }
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let window = chat::coalesce::DEFAULT_WINDOW;
    loopback_server::run(
        chat::coalesce::runtime_builder(window),
        "sio-chat-floor",
        || {
            let (svc, io) = sio_serve::worker_service();
            let (tx, rx) = mpsc::unbounded_channel();
            let floor = Arc::new(Floor {
                users: Mutex::default(),
                next_id: AtomicU64::new(1),
                acks: tx,
            });
            tokio::spawn(deliver_receipts(floor.clone(), rx));
            io.ns("/", move |s: SocketRef| {
                on_connect(floor.clone(), s);
                async {}
            });
            move |tcp| sio_serve::serve(svc.clone(), tcp)
        },
    )
}
