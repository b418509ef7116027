//! The public port through chatctl's HAProxy (issue 10): only `/`, `/socket.io/` and the
//! front door's own `/health` are served; `/metrics` and everything else answer 404.

use chat_testkit::*;
use std::time::Duration;

#[tokio::test]
async fn the_public_port_serves_the_page_socketio_and_its_own_health_only() {
    let c = Cluster::up(1);
    c.wait_status("the worker UP in HAProxy", |s| {
        s["haproxy"]["servers"].as_array().is_some_and(|v| {
            v.iter()
                .any(|w| w["state"].as_str().unwrap_or("").starts_with("UP"))
        })
    })
    .await;
    let worker_port = c.status()["workers"][0]["port"].as_u64().unwrap() as u16;
    let (_, worker_health) = http_get(worker_port, "/health").await;

    let (status, body) = http_get(c.port, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body, worker_health, "a worker's page, not HAProxy's");
    assert!(body.contains("front door"), "{body}");

    for path in [
        "/metrics",
        "/metrics?x",
        "/index.html",
        "/admin",
        "/healthz",
        "/socket.io",
    ] {
        let (status, body) = http_get(c.port, path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, body) = http_get(c.port, "/").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<html") || body.contains("<!doctype"),
        "{body}"
    );
    let (status, _) = http_get(c.port, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(status, 200);

    // No live worker (the only one stopped, so its checks time out): the front door says so.
    let pid = c.status()["workers"][0]["pid"].as_u64().unwrap() as u32;
    signal(pid, libc::SIGSTOP);
    wait_until(
        "front-door /health 503",
        Duration::from_secs(15),
        || async { http_get(c.port, "/health").await.0 == 503 },
    )
    .await;
    signal(pid, libc::SIGCONT);
}
