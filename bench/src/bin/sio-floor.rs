//! `sio-floor`: the memory floor we inherit from socketioxide. A bare Socket.IO server on the
//! worker's runtime (one thread), the worker's hyper settings and the worker's socketioxide
//! settings (`chat::worker::socketio_builder`, the same request-head copy), with no
//! application code: `log in` is acknowledged `{"ok":true,"pending":0}` and nothing is kept
//! per socket. `bench/floor.sh` holds the same idle logged-in connections on it and on
//! `chat-worker` and reports RSS per connection side by side.
//!
//! Usage: `sio-floor PORT` (127.0.0.1); prints `listening on ADDR`; stops on SIGINT/SIGTERM.

#[path = "../loopback_server.rs"]
mod loopback_server;
#[path = "../sio_serve.rs"]
mod sio_serve;

use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Data, SocketRef};

async fn on_connect(socket: SocketRef) {
    socket.on("log in", on_log_in);
}

async fn on_log_in(Data(_): Data<Value>, ack: AckSender) {
    let _ = ack.send(&json!({"ok": true, "pending": 0}));
}

fn main() -> anyhow::Result<()> {
    loopback_server::run(
        tokio::runtime::Builder::new_current_thread(),
        "sio-floor",
        || {
            let (svc, io) = sio_serve::worker_service();
            io.ns("/", on_connect);
            move |tcp| sio_serve::serve(svc.clone(), tcp)
        },
    )
}
