//! What the front of the cluster holds to (issue 10): the public port through chatctl's
//! HAProxy serves only `/`, `/socket.io/` and the front door's own `/health`; the embedded
//! Redis has a `maxmemory` with `noeviction`, so past it sends answer `unavailable` and
//! nothing acked is lost.

use chat_testkit::*;
use serde_json::json;
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

#[tokio::test]
async fn a_full_embedded_redis_refuses_sends_and_loses_nothing() {
    let conf = tempfile::tempdir().unwrap();
    let toml = conf.path().join("chat.toml");
    // 4 MiB of Redis; sends as fast as the test can go.
    std::fs::write(
        &toml,
        "[redis]\nmaxmemory = 4194304\n[limits]\nmessages_per_second = 10000\n",
    )
    .unwrap();
    let c = Cluster::up_with(1, &["--config", toml.to_str().unwrap()]);
    assert!(c.redis(&["CONFIG", "GET", "maxmemory"]).contains("4194304"));
    assert!(c
        .redis(&["CONFIG", "GET", "maxmemory-policy"])
        .contains("noeviction"));

    let (sender, _) = login(&c.url(), "filler").await;
    let text = "x".repeat(12 * 1024);
    let mut acked = 0u64;
    let code = loop {
        let code = ack_code(
            &sender,
            "send message",
            json!({"username": "sink", "message": text}),
        )
        .await;
        if code != "ok" {
            break code;
        }
        acked += 1;
        // 4 MiB of 12 KiB messages: a bound far past where it must fill.
        assert!(acked < 2000, "redis never filled up");
    };
    assert_eq!(code, "unavailable");
    assert!(acked > 10, "only {acked} sends before it filled");
    assert!(c.redis(&["INFO", "stats"]).contains("evicted_keys:0"));

    // The operator makes room; every acked message is still waiting for its recipient.
    c.redis(&["CONFIG", "SET", "maxmemory", "0"]);
    let (_sink, ack) = login(&c.url(), "sink").await;
    assert_eq!(ack["pending"].as_u64(), Some(acked), "{ack}");
}
