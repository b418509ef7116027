//! The worker's HTTP face: `/socket.io/` (handed to socketioxide after admission control),
//! `/` (the chat page), `/health` and `/metrics`.

use crate::app::App;
use crate::metrics::Gauges;
use bytes::Bytes;
use engineioxide::service::NotFoundService;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use socketioxide::service::SocketIoService;
use std::convert::Infallible;
use std::sync::atomic::Ordering;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The chat page, with its own small Socket.IO client (no CDN, no third-party code).
pub const INDEX_HTML: &str = include_str!("../web/index.html");

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(Full::new(body.into()).boxed_unsync());
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    res.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    res
}

/// A new Engine.IO session is a request without `sid`; requests of existing sessions (polls,
/// upgrades) always pass so that connected clients are never cut off by admission control.
fn is_new_session(req: &Request<Incoming>) -> bool {
    !req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|kv| kv.starts_with("sid="))
}

/// socketioxide keeps the request head of every session for its whole life. hyper parses
/// header values and the URI as slices of the connection's read buffer (8–16 KiB), so keeping
/// them would keep that whole buffer alive per socket. Copying the few bytes that matter lets
/// the buffer go: measured here, about 16 KB less per idle WebSocket connection.
fn detach_from_read_buffer(req: Request<Incoming>) -> Request<Incoming> {
    use hyper::header::{HeaderMap, HeaderName, HeaderValue};
    let (mut parts, body) = req.into_parts();
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    parts.headers = headers;
    if let Ok(uri) = parts.uri.to_string().parse() {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

pub async fn handle(
    app: App,
    sio: SocketIoService<NotFoundService>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    if path.starts_with("/socket.io/") {
        if is_new_session(&req) {
            if app.draining.load(Ordering::Relaxed) {
                return Ok(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "draining\n",
                ));
            }
            if app.registry.connections() >= app.limits.max_connections_per_worker {
                return Ok(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "worker at max_connections_per_worker\n",
                ));
            }
        }
        let req = if is_new_session(&req)
            || req
                .uri()
                .query()
                .unwrap_or("")
                .contains("transport=websocket")
        {
            detach_from_read_buffer(req)
        } else {
            req
        };
        let res = hyper::service::Service::call(&sio, req).await?;
        return Ok(res.map(|b| b.boxed_unsync()));
    }
    Ok(match path {
        "/" | "/index.html" => text(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML),
        "/health" => {
            let (status, body) = if app.draining.load(Ordering::Relaxed) {
                (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else if !app.redis_up() {
                (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable\n")
            } else {
                (StatusCode::OK, "ok\n")
            };
            text(status, "text/plain", body)
        }
        "/metrics" => {
            let gauges = Gauges {
                connections: app.registry.connections(),
                users: app.registry.user_count(),
                redis_up: app.redis_up(),
                draining: app.draining.load(Ordering::Relaxed),
            };
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                app.metrics.render(&gauges),
            )
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    })
}
