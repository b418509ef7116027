//! Issue 11, "one endpoint to scrape": chatctl's `--metrics ADDR` serves every worker's series
//! labelled `worker="N"`, chatctl's own `chatctl_…` series and HAProxy's `haproxy_…`, as one
//! exposition promtool accepts; the public port does not serve it.

use chat_testkit::*;
use serde_json::json;

#[tokio::test]
async fn one_endpoint_has_every_worker_chatctl_and_haproxy_and_passes_promtool() {
    let metrics_port = free_port_range(1);
    let addr = format!("127.0.0.1:{metrics_port}");
    let c = Cluster::up_with(2, &["--metrics", &addr]);
    // Some traffic, so counters and histograms have samples.
    let (alice, _) = login(&c.url(), "alice").await;
    let (mut bob, _) = login(&c.url(), "bob").await;
    send_ok(&alice, "bob", "hi").await;
    bob.wait_for("new message", WAIT, is_new_message)
        .await
        .expect("bob gets the message");
    assert_eq!(
        ack_code(&alice, "join room", json!({})).await,
        "bad_request"
    );

    let (status, body) = http_get(metrics_port, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    for series in [
        "chat_connections{worker=\"0\"}",
        "chat_connections{worker=\"1\"}",
        "chat_messages_received_total{worker=",
        "chat_errors_total{worker=",
        "chatctl_workers{state=\"up\"} 2",
        "chatctl_child_restarts_total{child=\"worker-0\"} 0",
        "chatctl_redis_up 1",
        "haproxy_",
    ] {
        assert!(body.contains(series), "no {series} in:\n{body}");
    }
    // One TYPE line per family, however many workers.
    assert_eq!(
        body.matches("# TYPE chat_connections ").count(),
        1,
        "{body}"
    );
    // promtool parses the whole page (a parse error is reported without a metric name) and
    // lints names: ours must be clean; HAProxy's exporter has a few names of its own that
    // its lint dislikes (`haproxy_process_failed_resolutions` is a counter without `_total`).
    if let Some((_, printed)) = promtool(&body).await {
        let ours: Vec<&str> = printed
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("haproxy_"))
            .collect();
        assert!(ours.is_empty(), "promtool check metrics:\n{printed}");
    }
    // Anything else there is 404; the public port has no /metrics.
    assert_eq!(http_get(metrics_port, "/").await.0, 404);
    assert_eq!(http_get(c.port, "/metrics").await.0, 404);
}
