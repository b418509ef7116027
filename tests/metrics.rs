//! Issue 11, the worker's side of "one endpoint to scrape" and `--log-format json`: a live
//! worker's `/metrics` passes `promtool check metrics` and carries the latency histograms and
//! error counts; JSON logs are one object per line.

use chat_testkit::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_live_workers_metrics_pass_promtool_and_carry_histograms() {
    let cluster = Workers::start(2).await;
    let (mut alice, _) = cluster.w(0).login("alice").await;
    let (mut bob, _) = cluster.w(1).login("bob").await;

    // Two direct messages, one acknowledged; one error (a `send message` without text).
    let id = send_ok(&alice, "bob", "one").await;
    send_ok(&alice, "bob", "two").await;
    let ev = bob
        .wait_for("new message", WAIT, |e| e.data()["id"] == id)
        .await
        .expect("new message");
    bob.ack(
        ev.ack_id.expect("direct messages ask for an ack"),
        json!({}),
    );
    // The receipt comes after the recipient's worker recorded the ack.
    alice
        .wait_event("delivered", WAIT)
        .await
        .expect("delivered");
    assert_eq!(
        ack_code(&alice, "send message", json!({"username": "bob"})).await,
        "bad_request"
    );

    let (status, sender) = cluster.w(0).get("/metrics").await;
    assert_eq!(status, 200);
    let (_, recipient) = cluster.w(1).get("/metrics").await;
    for body in [&sender, &recipient] {
        match promtool(body).await {
            Some((code, printed)) => {
                assert_eq!(code, Some(0), "promtool check metrics:\n{printed}\n{body}");
                assert!(
                    printed.trim().is_empty(),
                    "promtool lint:\n{printed}\n{body}"
                );
            }
            None => println!("skipped promtool check: promtool not installed (CI unset)"),
        }
        // The counters' old name made them members of the `chat_connections` gauge family.
        assert!(!body.contains("chat_connections_total"), "{body}");
        for name in ["chat_connections", "chat_users", "chat_redis_up"] {
            assert!(metric(body, name).is_some(), "{name} missing in\n{body}");
        }
    }

    let value = |body: &str, name: &str| {
        metric(body, name).unwrap_or_else(|| panic!("{name} missing in\n{body}"))
    };
    // The recipient's worker timed the acknowledged message, once.
    assert_eq!(
        value(&recipient, "chat_delivery_latency_seconds_count"),
        1.0
    );
    let latency = value(&recipient, "chat_delivery_latency_seconds_sum");
    assert!((0.0..WAIT.as_secs_f64()).contains(&latency), "{latency}");
    // Redis calls by operation: the sender stored two messages, everyone logged in.
    assert_eq!(
        value(&sender, "chat_redis_call_seconds_count{op=\"send\"}"),
        2.0
    );
    assert!(value(&sender, "chat_redis_call_seconds_count{op=\"login\"}") >= 1.0);
    assert!(value(&recipient, "chat_redis_call_seconds_count{op=\"ack\"}") >= 1.0);
    // The error, by code, on the worker that answered it.
    assert_eq!(
        value(&sender, "chat_errors_total{code=\"bad_request\"}"),
        1.0
    );
    assert_eq!(
        value(&recipient, "chat_errors_total{code=\"bad_request\"}"),
        0.0
    );
    assert_eq!(value(&sender, "chat_connects_total"), 1.0);
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    let redis = Redis::start().await;
    let w = Worker::start_with(&redis.url(), 0, &["--log-format", "json"]).await;
    wait_until("a `subscribed` log line", WAIT, || async {
        w.log_text().contains("subscribed")
    })
    .await;
    let text = w.log_text();
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n--- log ---\n{text}"));
        for key in ["timestamp", "level", "target"] {
            assert!(v[key].is_string(), "{key} missing: {line}");
        }
        assert!(v["fields"]["message"].is_string(), "no message: {line}");
        lines += 1;
    }
    assert!(lines >= 1, "no log lines:\n{text}");
}

#[tokio::test]
async fn log_format_text_is_the_default_and_a_bad_one_is_a_usage_error() {
    let redis = Redis::start().await;
    let w = Worker::start(&redis.url(), 0).await;
    wait_until("a `subscribed` log line", WAIT, || async {
        w.log_text().contains("subscribed")
    })
    .await;
    let text = w.log_text();
    assert!(
        text.lines().all(|l| !l.starts_with('{')),
        "text logs by default:\n{text}"
    );
    let run = run_bounded_bin(&["--port", "0", "--redis", &redis.url(), "--id", "1"]);
    assert_eq!(run.code(), Some(2), "{}", run.describe("chat-worker"));
    assert!(run.stderr.contains("--log-format"), "{}", run.stderr);
}

/// `chat-worker --log-format yaml …`: clap refuses it before anything starts.
fn run_bounded_bin(args: &[&str]) -> chat_testkit::proc::Finished {
    let mut cmd = std::process::Command::new(chat_testkit::proc::bin("chat-worker"));
    cmd.args(["--log-format", "yaml"]).args(args);
    chat_testkit::proc::run_bounded(&mut cmd, WAIT)
}
