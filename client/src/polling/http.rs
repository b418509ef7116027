//! A minimal HTTP/1.1 client for the polling transport (hyper 1 over plain TCP, one
//! connection per request) with a per-client cookie jar.
//!
//! Behind HAProxy polling is sticky only through the `SERVERID` cookie it inserts: every
//! response's `Set-Cookie` goes into the client's jar and the jar goes back as `Cookie` on every
//! later request of the session.

use crate::Error;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, ACCEPT, CONTENT_TYPE, COOKIE, HOST, SET_COOKIE};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;

/// `name=value` of a `Set-Cookie` header value; attributes (`Path`, `Max-Age`, …) ignored.
pub(crate) fn parse_set_cookie(value: &str) -> Option<(String, String)> {
    let pair = value.split(';').next()?;
    let (name, value) = pair.split_once('=')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    Some((name.to_owned(), value.trim().to_owned()))
}

/// A minimal cookie jar: name=value pairs in first-set order, a later `Set-Cookie` of the same
/// name replacing the value. Domains, paths and expiry are not modelled: one jar serves one
/// client talking to one origin.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct CookieJar {
    cookies: Vec<(String, String)>,
}

impl CookieJar {
    pub(crate) fn store(&mut self, set_cookie: &str) {
        let Some((name, value)) = parse_set_cookie(set_cookie) else {
            return;
        };
        match self.cookies.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.cookies.push((name, value)),
        }
    }

    /// The `Cookie` request header, if there is anything to send.
    pub(crate) fn header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        Some(pairs.join("; "))
    }
}

/// Percent-encodes a query value (Engine.IO sids are URL-safe already; this is a guard).
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn http_err(e: hyper::Error) -> Error {
    Error::Http(e.to_string())
}

/// Where a polling client sends its requests, and its cookie jar.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    /// `host:port` to connect to (port 80 when the base names none).
    addr: String,
    /// The `Host` header: the base's authority as written.
    host: String,
    /// The base's path prefix followed by `/socket.io/`.
    path: String,
    jar: Arc<Mutex<CookieJar>>,
}

impl Http {
    /// From `http://host:port[/prefix]` (or `ws://…`, or a bare `host:port`).
    pub(crate) fn new(base: &str) -> Result<Http, Error> {
        let base = base.trim();
        if base.starts_with("https://") || base.starts_with("wss://") {
            return Err(Error::Protocol(format!(
                "polling over TLS is not supported: {base}"
            )));
        }
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("ws://"))
            .unwrap_or(base);
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(Error::Protocol(format!("no host in {base:?}")));
        }
        let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
        });
        let addr = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Http {
            addr,
            host: authority.to_owned(),
            path: format!("{prefix}/socket.io/"),
            jar: Arc::default(),
        })
    }

    /// The request target of a polling request, with the session id once there is one.
    pub(crate) fn target(&self, sid: Option<&str>) -> String {
        match sid {
            Some(sid) => format!(
                "{}?EIO=4&transport=polling&sid={}",
                self.path,
                encode_query(sid)
            ),
            None => format!("{}?EIO=4&transport=polling", self.path),
        }
    }

    fn cookie_header(&self) -> Option<String> {
        self.jar.lock().ok().and_then(|j| j.header())
    }

    fn store_cookies(&self, headers: &HeaderMap) {
        if let Ok(mut jar) = self.jar.lock() {
            for v in headers.get_all(SET_COOKIE) {
                if let Ok(v) = v.to_str() {
                    jar.store(v);
                }
            }
        }
    }

    /// One request on a fresh connection, bounded by `limit`: a GET when `post` is `None`,
    /// else a POST of that body. Returns the status and the body.
    pub(crate) async fn request(
        &self,
        target: &str,
        post: Option<String>,
        limit: Duration,
    ) -> Result<(u16, String), Error> {
        let method = if post.is_some() { "POST" } else { "GET" };
        tokio::time::timeout(limit, self.exchange(target, post))
            .await
            .map_err(|_| Error::Timeout(format!("HTTP {method} {target}")))?
    }

    async fn exchange(&self, target: &str, post: Option<String>) -> Result<(u16, String), Error> {
        let stream = TcpStream::connect(self.addr.as_str())
            .await
            .map_err(|e| Error::Http(format!("connect to {}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_err)?;

        let mut req = Request::builder()
            .method(if post.is_some() {
                Method::POST
            } else {
                Method::GET
            })
            .uri(target)
            .header(HOST, self.host.as_str())
            .header(ACCEPT, "*/*");
        if let Some(cookie) = self.cookie_header() {
            req = req.header(COOKIE, cookie);
        }
        if post.is_some() {
            req = req.header(CONTENT_TYPE, "text/plain;charset=UTF-8");
        }
        let req = req
            .body(Full::new(Bytes::from(post.unwrap_or_default())))
            .map_err(|e| Error::Http(format!("building the request: {e}")))?;

        let exchange = async {
            let resp = sender.send_request(req).await?;
            self.store_cookies(resp.headers());
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::pin!(exchange);
        tokio::pin!(conn);
        // Drive the connection and the exchange together, on this task: nothing outlives the
        // call (a timeout or a cancelled long-poll drops the socket).
        let mut conn_done = false;
        let mut conn_error = None;
        loop {
            tokio::select! {
                r = &mut exchange => {
                    return r.map_err(|e| match conn_error.take() {
                        Some(c) => Error::Http(format!("{c} ({e})")),
                        None => http_err(e),
                    });
                }
                c = &mut conn, if !conn_done => {
                    // Finishing early is normal once the response is read (the exchange
                    // completes next); an error also fails the exchange, reported above.
                    conn_done = true;
                    conn_error = c.err().map(|e| e.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn parses_set_cookie_ignoring_attributes() {
        assert_eq!(
            parse_set_cookie("SERVERID=w1; path=/"),
            Some(("SERVERID".into(), "w1".into()))
        );
        assert_eq!(
            parse_set_cookie(" io = abc=def ;HttpOnly; Max-Age=0"),
            Some(("io".into(), "abc=def".into()))
        );
        assert_eq!(
            parse_set_cookie("empty="),
            Some(("empty".into(), "".into()))
        );
        assert_eq!(parse_set_cookie("novalue"), None);
        assert_eq!(parse_set_cookie("=v; path=/"), None);
    }

    #[test]
    fn the_jar_replaces_by_name_and_builds_the_cookie_header() {
        let mut jar = CookieJar::default();
        assert_eq!(jar.header(), None);
        jar.store("SERVERID=w0; path=/");
        jar.store("garbage");
        jar.store("lang=en");
        assert_eq!(jar.header().as_deref(), Some("SERVERID=w0; lang=en"));
        jar.store("SERVERID=w1; path=/; HttpOnly");
        assert_eq!(jar.header().as_deref(), Some("SERVERID=w1; lang=en"));
    }

    #[test]
    fn builds_polling_targets_from_bases() {
        let h = Http::new("http://127.0.0.1:5/").unwrap();
        assert_eq!(h.addr, "127.0.0.1:5");
        assert_eq!(h.host, "127.0.0.1:5");
        assert_eq!(h.target(None), "/socket.io/?EIO=4&transport=polling");
        assert_eq!(
            h.target(Some("a-b_c/d")),
            "/socket.io/?EIO=4&transport=polling&sid=a-b_c%2Fd"
        );
        let h = Http::new("ws://example.test/chat/").unwrap();
        assert_eq!(h.addr, "example.test:80");
        assert_eq!(h.host, "example.test");
        assert_eq!(h.target(None), "/chat/socket.io/?EIO=4&transport=polling");
        let h = Http::new("[::1]:8080").unwrap();
        assert_eq!(h.addr, "[::1]:8080");
        let h = Http::new("http://[::1]").unwrap();
        assert_eq!(h.addr, "[::1]:80");
        assert!(Http::new("https://x:1").is_err());
        assert!(Http::new("http:///x").is_err());
    }

    /// Reads one HTTP/1.1 request (head and `Content-Length` body) from `sock`.
    async fn read_request(sock: &mut TcpStream) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed early");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return text;
                }
            }
        }
    }

    #[tokio::test]
    async fn set_cookie_is_sent_back_on_later_requests() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            let replies = [
                "HTTP/1.1 200 OK\r\nSet-Cookie: SERVERID=w1; path=/\r\nContent-Length: 4\r\n\r\nopen",
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            ];
            for reply in replies {
                let (mut sock, _) = listener.accept().await.unwrap();
                seen.push(read_request(&mut sock).await);
                sock.write_all(reply.as_bytes()).await.unwrap();
                sock.shutdown().await.unwrap();
            }
            seen
        });
        let http = Http::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(
            http.request(&http.target(None), None, t).await.unwrap(),
            (200, "open".into())
        );
        assert_eq!(
            http.request(&http.target(Some("S")), Some("40\x1e3".into()), t)
                .await
                .unwrap(),
            (200, "ok".into())
        );
        assert_eq!(
            http.request(&http.target(Some("S")), None, t)
                .await
                .unwrap()
                .0,
            400
        );
        let seen = server.await.unwrap();
        let has_cookie = |r: &str| {
            r.lines()
                .any(|l| l.eq_ignore_ascii_case("cookie: serverid=w1"))
        };
        assert!(seen[0].starts_with("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"));
        assert!(!has_cookie(&seen[0]), "{}", seen[0]);
        assert!(seen[1].starts_with("POST /socket.io/?EIO=4&transport=polling&sid=S HTTP/1.1"));
        assert!(has_cookie(&seen[1]), "{}", seen[1]);
        assert!(seen[1].ends_with("\r\n\r\n40\x1e3"), "{:?}", seen[1]);
        assert!(has_cookie(&seen[2]), "{}", seen[2]);
        assert!(seen[2]
            .to_ascii_lowercase()
            .contains(&format!("host: 127.0.0.1:{port}")));
    }

    #[tokio::test]
    async fn requests_time_out_and_refused_connections_are_errors() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts (the backlog does) but never answers.
        let http = Http::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let r = http
            .request(&http.target(None), None, Duration::from_millis(200))
            .await;
        assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
        drop(listener);
        let r = http
            .request(&http.target(None), None, Duration::from_secs(5))
            .await;
        assert!(matches!(r, Err(Error::Http(_))), "{r:?}");
    }
}
