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

use chat::worker::{socketio_builder, WorkerConfig, HALF_OPEN_TIMEOUT};
use hyper_util::rt::{TokioIo, TokioTimer};
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
            let defaults = WorkerConfig::new(0, "");
            let (svc, io) = socketio_builder(
                &defaults.limits,
                defaults.ws_read_buffer,
                defaults.ack_timeout,
            )
            .build_svc();
            io.ns("/", on_connect);
            move |tcp| {
                let svc = svc.clone();
                async move {
                    let svc = hyper::service::service_fn(move |req| {
                        hyper::service::Service::call(
                            &svc,
                            chat::http::detach_from_read_buffer(req),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .max_buf_size(8192)
                        .timer(TokioTimer::new())
                        .header_read_timeout(HALF_OPEN_TIMEOUT)
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                }
            }
        },
    )
}
