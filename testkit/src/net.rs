//! Loopback networking for tests: free ports, a minimal HTTP GET, Prometheus text parsing.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A port whose `n - 1` successors are free too, probed by binding, and below the kernel's
/// ephemeral range: ports from that range get taken by outgoing connections (HAProxy to the
/// workers, the load driver to HAProxy) while a test runs, so a scale-up could find its port
/// busy.
pub fn free_port_range(n: u16) -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (lo, hi) = (
        10_000u32,
        ephemeral_low.saturating_sub(n as u32 + 1).max(10_100),
    );
    // Spread concurrent test binaries over the range: seed from the pid and the clock.
    let mut rng = crate::XorShift::new(
        std::process::id() as u64
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
    );
    for _ in 0..500 {
        let base = (lo + rng.below((hi - lo) as u64) as u32) as u16;
        if (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range of {n}");
}

/// The status code of an HTTP response's text (0 when there is none).
pub fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A minimal HTTP/1.0 GET on 127.0.0.1: (status, body); status 0 when nothing answers.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new());
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    if tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .is_err()
    {
        return (0, String::new());
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status_of(&text), body)
}

/// A sample's value from a Prometheus text exposition (`name value` lines, no labels).
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
