//! A tiny HTTP/1.0 GET client for the workers' `/health` and `/metrics`.

use std::time::Duration;

/// A worker's `/health` status, 0 when it does not answer.
pub async fn health(host: &str, port: u16) -> u16 {
    get(host, port, "/health").await.map(|r| r.0).unwrap_or(0)
}

/// (connections, users) from a worker's `/metrics`.
pub async fn worker_metrics(host: &str, port: u16) -> Option<(u64, u64)> {
    let (_, body) = get(host, port, "/metrics").await?;
    let value = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .map(|v| v as u64)
    };
    Some((value("chat_connections")?, value("chat_users")?))
}

/// GET `path` from a local worker, within a second: (status, body).
pub async fn get(host: &str, port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
}

/// GET `path` over a Unix socket (HAProxy's private exporter), within a second: the body of a
/// 200 answer.
pub async fn get_unix(socket: &std::path::Path, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::UnixStream::connect(socket).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        (status == 200).then_some(body)
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
}
