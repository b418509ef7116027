//! The control socket: HTTP/1.1 + JSON over a Unix socket (mode 0600) in the state dir,
//! served and called with hyper. One endpoint takes a [`Request`] and answers a [`Response`].

use anyhow::{bail, Context};
use bytes::Bytes;
use chat::control::{Request, Response, ENDPOINT, MAX_BODY};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};

/// What is at the control socket path.
#[derive(Debug, PartialEq, Eq)]
pub enum SocketProbe {
    Absent,
    /// A supervisor answers, with this pid.
    Live(u32),
    /// A socket nobody serves: left by a supervisor that died.
    Stale,
    /// Something that is not a socket.
    Foreign,
}

pub async fn probe(path: &Path) -> SocketProbe {
    match std::fs::symlink_metadata(path) {
        Err(_) => SocketProbe::Absent,
        Ok(m) if !m.file_type().is_socket() => SocketProbe::Foreign,
        Ok(_) => match call_timeout(path, &Request::Ping, Duration::from_secs(3)).await {
            Ok(Response::Pong { pid }) => SocketProbe::Live(pid),
            Ok(_) => SocketProbe::Foreign,
            Err(_) => SocketProbe::Stale,
        },
    }
}

/// Binds the control socket with mode 0600, replacing a stale one.
pub async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    match probe(path).await {
        SocketProbe::Absent => {}
        SocketProbe::Stale => {
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
        }
        SocketProbe::Live(pid) => bail!(
            "a supervisor (pid {pid}) already runs on this state dir: use `chatctl status`, or `chatctl down` first"
        ),
        SocketProbe::Foreign => bail!(
            "{} exists and is not a chatctl socket: remove it or choose another --state-dir",
            path.display()
        ),
    }
    // The socket is created under umask 077, so it never exists with looser permissions, even
    // between bind and chmod. umask is process-wide: this runs before any child is spawned.
    use nix::sys::stat::{umask, Mode};
    let old = umask(Mode::from_bits_truncate(0o077));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener =
        bound.with_context(|| format!("cannot create the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot chmod 600 {}", path.display()))?;
    Ok(listener)
}

/// Serves requests with `handler` until `stop` resolves.
pub async fn serve<H, F>(listener: UnixListener, handler: H, stop: impl Future<Output = ()>)
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let handler = Arc::new(handler);
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("control accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let response = match decode(req).await {
                        Ok(request) => handler(request).await,
                        Err(message) => Response::Error { message },
                    };
                    let body = serde_json::to_vec(&response).unwrap_or_default();
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                        body,
                    ))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn decode(req: hyper::Request<Incoming>) -> Result<Request, String> {
    if req.uri().path() != ENDPOINT || req.method() != hyper::Method::POST {
        return Err(format!("POST {ENDPOINT} is the only endpoint"));
    }
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("cannot read the request: {e}"))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("bad request: {e}"))
}

/// Sends one request to the supervisor at `path`.
pub async fn call(path: &Path, request: &Request) -> anyhow::Result<Response> {
    // Scale and reload wait for workers to start and drain; give them room.
    call_timeout(path, request, Duration::from_secs(600)).await
}

pub async fn call_timeout(
    path: &Path,
    request: &Request,
    limit: Duration,
) -> anyhow::Result<Response> {
    let exchange = async {
        let stream = UnixStream::connect(path).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::post(ENDPOINT)
            .header(hyper::header::HOST, "chatctl")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(request)?)))?;
        let res = sender.send_request(req).await?;
        let body = Limited::new(res.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_bytes();
        Ok::<_, anyhow::Error>(serde_json::from_slice(&body)?)
    };
    tokio::time::timeout(limit, exchange)
        .await
        .context("the supervisor did not answer in time")?
}
