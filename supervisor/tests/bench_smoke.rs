//! A short smoke of the load generator against a real cluster (benchmarks themselves are not
//! tests: see BENCHMARKS.md). Proves the bench tool still speaks the protocol end to end.

use chat_testkit::*;

/// Runs chat-bench against `c` for 3 s at 50 msg/s and returns its JSON summary.
async fn run_bench(c: &Cluster, extra: &[&str]) -> serde_json::Value {
    let bench = chat_testkit::proc::bin("chat-bench");
    assert!(
        bench.exists(),
        "build the workspace first: cargo build --workspace"
    );
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(&bench)
            .args(["--url", &c.url(), "--connections", "20", "--duration", "3"])
            .args(["--rate", "50", "--json"])
            .args(extra)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chat-bench finished in time")
    .expect("run chat-bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON summary on stdout")
}

#[tokio::test]
async fn chat_bench_smoke_through_haproxy() {
    let c = Cluster::up(2);
    c.wait_status("2 workers up", |s| all_up(s, 2)).await;
    let summary = run_bench(&c, &[]).await;
    assert_eq!(summary["connect"]["logged_in"], 20, "{summary:#}");
    assert!(
        summary["messages"]["acked_ok"].as_u64().unwrap_or(0) > 0,
        "{summary:#}"
    );
    assert_eq!(summary["messages"]["lost"], 0, "{summary:#}");
    assert_eq!(summary["messages"]["ack_errors"], 0, "{summary:#}");

    // Fan-out: 20 connections as 5 users of 4 sockets each; every message reaches all 4.
    let summary = run_bench(&c, &["--sockets-per-user", "4"]).await;
    assert_eq!(summary["connect"]["logged_in"], 20, "{summary:#}");
    let acked = summary["messages"]["acked_ok"].as_u64().unwrap_or(0);
    let received = summary["messages"]["received"].as_u64().unwrap_or(0);
    assert!(acked > 0 && received >= 4 * acked, "{summary:#}");
    assert_eq!(summary["messages"]["lost"], 0, "{summary:#}");
}
