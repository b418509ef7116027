//! SPEC §4: login tokens, and every `[limits]` knob enforced by a real worker.

use chat_testkit::*;
use serde_json::json;
use std::time::Duration;

/// At least `chat::auth::MIN_SECRET_BYTES` long, as the worker requires.
const SECRET: &str = "a-test-secret-of-at-least-32-bytes!";

#[tokio::test]
async fn log_in_needs_a_valid_token_for_that_user_when_auth_is_on() {
    let redis = Redis::start().await;
    let w = Worker::start_env(&redis.url(), 0, &[], &[(chat::auth::SECRET_ENV, SECRET)]).await;
    let c = w.connect().await;
    let good = chat::auth::issue(SECRET, "alice", 60).unwrap();
    let other_user = chat::auth::issue(SECRET, "bob", 60).unwrap();
    let wrong_key = chat::auth::issue("not-the-secret", "alice", 60).unwrap();
    for token in [
        None,
        Some(other_user.as_str()),
        Some(wrong_key.as_str()),
        Some("garbage"),
    ] {
        let mut payload = json!({"username": "alice"});
        if let Some(t) = token {
            payload["token"] = json!(t);
        }
        assert_eq!(
            ack_code(&c, "log in", payload).await,
            "unauthorized",
            "{token:?}"
        );
        // The socket stays logged out.
        assert_eq!(
            ack_code(&c, "send message", json!({"username":"x","message":"m"})).await,
            "not_logged_in"
        );
    }
    assert_eq!(
        ack_code(&c, "log in", json!({"username": "alice", "token": good})).await,
        "ok"
    );
    assert_eq!(
        ack_code(&c, "send message", json!({"username":"x","message":"m"})).await,
        "ok"
    );
}

#[tokio::test]
async fn auth_is_off_without_a_secret() {
    let cluster = Workers::start(1).await;
    let c = cluster.w(0).connect().await;
    assert_eq!(
        ack_code(&c, "log in", json!({"username": "free"})).await,
        "ok"
    );
}

#[tokio::test]
async fn max_connections_per_worker_refuses_new_handshakes_only() {
    let cluster = Workers::start_with(1, &["--max-connections", "2"]).await;
    let w = cluster.w(0);
    let (a, _) = w.login("a").await;
    let (_b, _) = w.login("b").await;
    let refused = Client::connect(&w.url()).await;
    assert!(refused.is_err(), "third connection must be refused");
    // Connected clients are untouched.
    assert_eq!(ack_code(&a, "list users", json!({})).await, "ok");
    drop(a);
    wait_until("a slot to free up", WAIT, || async {
        match Client::connect(&w.url()).await {
            Ok(c) => {
                drop(c);
                true
            }
            Err(_) => false,
        }
    })
    .await;
}

#[tokio::test]
async fn inbox_max_keeps_the_newest_messages() {
    let cluster = Workers::start_with(1, &["--inbox-max", "3"]).await;
    let (a, _) = cluster.w(0).login("a").await;
    for i in 0..5 {
        assert_eq!(
            ack_code(
                &a,
                "send message",
                json!({"username":"off","message":format!("m{i}")})
            )
            .await,
            "ok"
        );
    }
    let (mut off, ack) = cluster.w(0).login("off").await;
    assert_eq!(ack["pending"], 3);
    for i in 2..5 {
        let ev = off.wait_event("new message", WAIT).await.unwrap();
        assert_eq!(ev.data()["message"], format!("m{i}"));
    }
}

#[tokio::test]
async fn inbox_ttl_expires_old_messages() {
    let cluster = Workers::start_with(1, &["--inbox-ttl", "1"]).await;
    let (a, _) = cluster.w(0).login("a").await;
    assert_eq!(
        ack_code(
            &a,
            "send message",
            json!({"username":"late","message":"old"})
        )
        .await,
        "ok"
    );
    let w = cluster.w(0);
    wait_until("the message to expire", Duration::from_secs(10), || async {
        let c = w.connect().await;
        let ack = c
            .emit_ack("log in", json!({"username":"late"}))
            .await
            .unwrap();
        ack["pending"] == 0
    })
    .await;
}

#[tokio::test]
async fn a_worker_refuses_a_coalescing_window_over_10_ms() {
    let redis = Redis::start().await;
    let out = chat_testkit::proc::run_bounded(
        std::process::Command::new(chat_testkit::proc::bin("chat-worker")).args([
            "--port",
            "0",
            "--id",
            "0",
            "--redis",
            &redis.url(),
            "--coalesce-us",
            "10001",
        ]),
        Duration::from_secs(20),
    );
    let told = out.describe("chat-worker");
    assert_eq!(out.code(), Some(1), "{told}");
    assert!(
        told.contains("--coalesce-us") && told.contains("at most 10000"),
        "{told}"
    );
}

#[tokio::test]
async fn a_worker_refuses_an_auth_secret_shorter_than_32_bytes() {
    let redis = Redis::start().await;
    let out = chat_testkit::proc::run_bounded(
        std::process::Command::new(chat_testkit::proc::bin("chat-worker"))
            .args(["--port", "0", "--id", "0", "--redis", &redis.url()])
            .env(chat::auth::SECRET_ENV, "short"),
        Duration::from_secs(20),
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe("chat-worker"));
    assert!(
        out.describe("chat-worker").contains("at least 32"),
        "{}",
        out.describe("chat-worker")
    );
}
