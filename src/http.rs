//! The worker's HTTP face: `/socket.io/` (handed to socketioxide after admission control),
//! `/` (the chat page, with its Content-Security-Policy), `/health` and `/metrics`.

use crate::app::App;
use crate::metrics::Gauges;
use bytes::Bytes;
use engineioxide::service::NotFoundService;
use futures_util::task::AtomicWaker;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use socketioxide::service::SocketIoService;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// One accepted TCP connection as the worker meters it: the bytes the kernel accepted from
/// us (`poll_write` results), and a switch that fails every further read and write. Cutting
/// is how a slow reader is closed: its WebSocket writer task is parked in a write that never
/// completes, so only the stream itself can wake and fail it (the transport then closes the
/// session and socketioxide runs the disconnect handler).
#[derive(Default)]
pub struct Wire {
    written: AtomicU64,
    cut: AtomicBool,
    read_waker: AtomicWaker,
    write_waker: AtomicWaker,
}

impl Wire {
    /// Bytes written to the kernel so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Fails the connection's pending and future reads and writes.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
        self.read_waker.wake();
        self.write_waker.wake();
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }
}

fn cut_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "cut: more than max_queued_bytes_per_socket unsent",
    )
}

/// The accepted stream, counted by its [`Wire`]. It stays under the WebSocket after the
/// upgrade (hyper hands the same IO to engineioxide), so the count covers both; and it
/// lives exactly as long as the connection, so it also holds the connection's place in
/// [`crate::app::AppInner::open_connections`].
pub struct Metered<T> {
    io: T,
    wire: Arc<Wire>,
    _open: OpenConnection,
}

impl<T> Metered<T> {
    pub fn new(io: T, wire: Arc<Wire>, app: &App) -> Self {
        app.open_connections.fetch_add(1, Ordering::Relaxed);
        Self {
            io,
            wire,
            _open: OpenConnection(app.clone()),
        }
    }
}

/// One place in the count of open TCP connections, given back on drop.
struct OpenConnection(App);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.wire.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if r.is_pending() {
            self.wire.read_waker.register(cx.waker());
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> Metered<T> {
    fn count(
        &self,
        r: Poll<std::io::Result<usize>>,
        cx: &Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        match &r {
            Poll::Ready(Ok(n)) => {
                self.wire.written.fetch_add(*n as u64, Ordering::Relaxed);
            }
            Poll::Pending => self.wire.write_waker.register(cx.waker()),
            Poll::Ready(Err(_)) => {}
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.wire.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.count(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.wire.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.count(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.wire.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A polling response body that adds what it hands to hyper to its socket's count: for a
/// polling session that is the transport's "written" (hyper's own buffer per connection is
/// small and bounded).
struct CountedBody<B> {
    inner: B,
    count: Arc<AtomicU64>,
}

impl<B: hyper::body::Body<Data = Bytes> + Unpin> hyper::body::Body for CountedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &r {
            if let Some(data) = frame.data_ref() {
                self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The `sid` and `transport` of a `/socket.io/` query.
fn session_query(req: &Request<Incoming>) -> (Option<socketioxide::socket::Sid>, bool) {
    let mut sid = None;
    let mut websocket = false;
    for kv in req.uri().query().unwrap_or("").split('&') {
        if let Some(v) = kv.strip_prefix("sid=") {
            sid = v.parse().ok();
        } else if kv == "transport=websocket" {
            websocket = true;
        }
    }
    (sid, websocket)
}

/// The chat page (no CDN: its one script beside it is [`SOCKET_IO_JS`]).
pub const INDEX_HTML: &str = include_str!("../web/index.html");

/// The official Socket.IO browser client, embedded by build.rs from web/node_modules (or a
/// stub that makes the page say "run scripts/setup.sh").
pub const SOCKET_IO_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/socket.io.min.js"));

/// The SHA-256 sources (`'sha256-…'`) of every inline `<tag>…</tag>` of `html`: what CSP
/// needs to run the page's own inline script and style and nothing else.
fn inline_hashes(html: &str, tag: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut sources = String::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(&close) else { break };
        let digest = sha2::Sha256::digest(&body.as_bytes()[..end]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        sources.push_str(&format!(" 'sha256-{b64}'"));
        rest = &body[end + close.len()..];
    }
    sources
}

/// The page's Content-Security-Policy: its own inline script and style by hash (computed from
/// the page itself, so editing the page cannot silently break it), WebSocket to the same host,
/// no framing, no plugins, no `<base>` tricks. CSP3 browsers count same-host `ws:`/`wss:` as
/// `'self'`; the explicit host is for older ones, and is added only when `host` is a plain
/// `name[:port]` or `[v6]:port` (the header never carries arbitrary request bytes).
fn csp(host: Option<&str>) -> String {
    static BASE: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let (scripts, styles) = BASE.get_or_init(|| {
        (
            inline_hashes(INDEX_HTML, "script"),
            inline_hashes(INDEX_HTML, "style"),
        )
    });
    let same_host = host
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{scripts}; style-src 'self'{styles}; \
         connect-src 'self'{same_host}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The chat page with its security headers: CSP, and no framing (`X-Frame-Options` for
/// browsers without `frame-ancestors`).
fn page(host: Option<&str>) -> Response<Body> {
    use hyper::header::{HeaderValue, CONTENT_SECURITY_POLICY, X_FRAME_OPTIONS};
    let mut res = text(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML);
    let policy = HeaderValue::from_str(&csp(host)).or_else(|_| HeaderValue::from_str(&csp(None)));
    if let Ok(policy) = policy {
        res.headers_mut().insert(CONTENT_SECURITY_POLICY, policy);
    }
    res.headers_mut()
        .insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

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
    // Every answer is exactly the type it says (a page, plain text, metrics).
    res.headers_mut().insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        hyper::header::HeaderValue::from_static("nosniff"),
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

/// A request of an existing session while the worker drains, answered before socketioxide
/// sees it. engine.io-client never resumes polling after a failed upgrade: if the worker
/// closed a half-done polling→WebSocket upgrade, the client would sit paused until its ping
/// timeout (45 s). So a poll gets the Engine.IO close packet (`1`), which makes the client
/// reconnect even while it pauses polling, and posts and new WebSocket probes are refused.
fn draining_session_answer(req: &Request<Incoming>) -> Response<Body> {
    let (_, websocket) = session_query(req);
    if !websocket && req.method() == hyper::Method::GET {
        text(StatusCode::OK, "text/plain; charset=UTF-8", "1")
    } else {
        text(StatusCode::BAD_REQUEST, "text/plain", "draining\n")
    }
}

/// socketioxide keeps the request head of every session for its whole life. hyper parses
/// header values and the URI as slices of the connection's read buffer (8–16 KiB), so keeping
/// them would keep that whole buffer alive per socket. Copying the few bytes that matter lets
/// the buffer go: measured here, about 16 KB less per idle WebSocket connection.
///
/// Only the headers a handshake still reads afterwards are copied: engineioxide answers an
/// upgrade from `Sec-WebSocket-Key`, and nothing of ours reads the kept head's headers (the
/// connection's meter travels in the extensions). A browser's dozen other headers (cookies,
/// user agent, languages…) would otherwise stay allocated for as long as the socket lives.
pub fn detach_from_read_buffer<B>(req: Request<B>) -> Request<B> {
    use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, SEC_WEBSOCKET_KEY};
    // `Content-Type` too: engineioxide decodes a polling body by it.
    const KEPT_HEADERS: [hyper::header::HeaderName; 2] = [SEC_WEBSOCKET_KEY, CONTENT_TYPE];
    let (mut parts, body) = req.into_parts();
    let mut headers = HeaderMap::with_capacity(KEPT_HEADERS.len());
    for name in KEPT_HEADERS {
        if let Some(v) = parts
            .headers
            .get(&name)
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            headers.insert(name, v);
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
            // Half-open connections count too: a request head still arriving, a session not
            // yet in the namespace (both closed after 10 s) hold a place like a socket does.
            // The open TCP connections include this one, hence `>`.
            let max = app.limits.max_connections_per_worker;
            if app.registry.connections() >= max
                || app.open_connections.load(Ordering::Relaxed) > max
            {
                return Ok(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "worker at max_connections_per_worker\n",
                ));
            }
        }
        if app.draining.load(Ordering::Relaxed) && !is_new_session(&req) {
            return Ok(draining_session_answer(&req));
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
        // Byte metering (see `Registry::charge`): an upgrade brings the socket its TCP
        // connection; a poll's response body counts as written for its socket.
        let (sid, websocket) = session_query(&req);
        let mut poll_meter = None;
        if let Some(sid) = sid {
            if websocket {
                if let Some(wire) = req.extensions().get::<Arc<Wire>>() {
                    app.registry.attach_wire(sid, wire.clone());
                }
            } else if req.method() == hyper::Method::GET {
                poll_meter = app.registry.poll_meter(sid);
            }
        }
        let res = hyper::service::Service::call(&sio, req).await?;
        return Ok(match poll_meter {
            Some(count) => res.map(|b| {
                CountedBody {
                    inner: b.boxed_unsync(),
                    count,
                }
                .boxed_unsync()
            }),
            None => res.map(|b| b.boxed_unsync()),
        });
    }
    Ok(match path {
        "/" | "/index.html" => page(
            req.headers()
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok()),
        ),
        "/socket.io.min.js" => text(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            SOCKET_IO_JS,
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_allows_each_inline_block_of_the_page_by_hash() {
        let policy = csp(Some("chat.example:8080"));
        for (tag, directive) in [("script", "script-src"), ("style", "style-src")] {
            let blocks = INDEX_HTML.matches(&format!("<{tag}>")).count();
            let part = policy
                .split("; ")
                .find(|d| d.starts_with(directive))
                .unwrap_or_default();
            assert_eq!(part.matches("'sha256-").count(), blocks, "{policy}");
        }
        assert!(
            policy.contains("connect-src 'self' ws://chat.example:8080 wss://chat.example:8080;")
        );
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(!policy.contains("unsafe-inline"));
    }

    #[test]
    fn csp_hashes_the_exact_block_text() {
        // `echo -n 'a' | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            inline_hashes("<p><script>a</script>", "script"),
            " 'sha256-ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs='"
        );
    }

    #[test]
    fn csp_never_reflects_an_odd_host() {
        for host in ["evil.example; script-src *", "a b", "x\"y", ""] {
            assert!(csp(Some(host)).contains("connect-src 'self'; "), "{host}");
        }
    }
}
