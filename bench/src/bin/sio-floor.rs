//! `sio-floor`: the memory floor we inherit from socketioxide. A bare Socket.IO server on the
//! worker's runtime (one thread), the worker's hyper settings and the worker's socketioxide
//! settings (`chat::worker::socketio_builder`, the same request-head copy), with no
//! application code: `log in` is acknowledged `{"ok":true,"pending":0}` and nothing is kept
//! per socket. `bench/floor.sh` holds the same idle logged-in connections on it and on
//! `chat-worker` and reports RSS per connection side by side.
//!
//! Usage: `sio-floor PORT` (127.0.0.1); prints `listening on ADDR`; stops on SIGINT/SIGTERM.

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
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(p)) => p,
        _ => anyhow::bail!("usage: sio-floor PORT (0 picks one)"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let defaults = WorkerConfig::new(0, "");
        let (svc, io) = socketio_builder(
            &defaults.limits,
            defaults.ws_read_buffer,
            defaults.ack_timeout,
        )
        .build_svc();
        io.ns("/", on_connect);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on {}", listener.local_addr()?);
        let stop = async {
            use tokio::signal::unix::{signal, SignalKind};
            match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(mut i), Ok(mut t)) => tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} },
                _ => std::future::pending().await,
            }
        };
        tokio::pin!(stop);
        loop {
            let (tcp, _) = tokio::select! {
                _ = &mut stop => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(c) => c,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let svc = svc.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    hyper::service::Service::call(&svc, chat::http::detach_from_read_buffer(req))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .max_buf_size(8192)
                    .timer(TokioTimer::new())
                    .header_read_timeout(HALF_OPEN_TIMEOUT)
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    })
}
