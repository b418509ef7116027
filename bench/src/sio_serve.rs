//! What `sio-floor` and `sio-chat-floor` take from the worker: its socketioxide settings, and
//! how it serves one connection (its hyper settings: buffer bound and request-head timeout;
//! its copy of the request head). Included by both with `#[path]`.

use chat::worker::{socketio_builder, WorkerConfig, HALF_OPEN_TIMEOUT};
use engineioxide::service::NotFoundService;
use hyper_util::rt::{TokioIo, TokioTimer};
use socketioxide::service::SocketIoService;
use socketioxide::SocketIo;

/// A socketioxide service built as the worker builds its own, with the worker's defaults.
pub fn worker_service() -> (SocketIoService<NotFoundService>, SocketIo) {
    let defaults = WorkerConfig::new(0, "");
    socketio_builder(
        &defaults.limits,
        defaults.ws_read_buffer,
        defaults.ack_timeout,
    )
    .build_svc()
}

/// Serves `tcp` until it closes.
pub async fn serve(svc: SocketIoService<NotFoundService>, tcp: tokio::net::TcpStream) {
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
}
