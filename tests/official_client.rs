//! The official npm `socket.io-client` against two real workers, over WebSocket and over
//! long-polling (node_modules come from `scripts/setup.sh`).

mod support;

use std::path::Path;
use support::*;

pub async fn run_node_e2e(url_a: &str, url_b: &str, transport: &str) {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/socket.io-client").exists(),
        "tests/js/node_modules is missing: run scripts/setup.sh"
    );
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::process::Command::new("node")
            .arg(js.join("e2e.mjs"))
            .args([url_a, url_b, transport])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("node e2e did not finish in 30 s")
    .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{transport}: node e2e failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
}

#[tokio::test]
async fn official_client_over_websocket_across_two_workers() {
    let cluster = Cluster::start(2).await;
    run_node_e2e(&cluster.w(0).url(), &cluster.w(1).url(), "websocket").await;
}

#[tokio::test]
async fn official_client_over_polling_across_two_workers() {
    let cluster = Cluster::start(2).await;
    run_node_e2e(&cluster.w(0).url(), &cluster.w(1).url(), "polling").await;
}
