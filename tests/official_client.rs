//! The official npm `socket.io-client` against two real workers, over WebSocket and over
//! long-polling (node_modules come from `scripts/setup.sh`).

use chat_testkit::*;

#[tokio::test]
async fn official_client_over_websocket_across_two_workers() {
    let cluster = Workers::start(2).await;
    node_e2e(&cluster.w(0).url(), &cluster.w(1).url(), "websocket", &[]).await;
}

#[tokio::test]
async fn official_client_over_polling_across_two_workers() {
    let cluster = Workers::start(2).await;
    node_e2e(&cluster.w(0).url(), &cluster.w(1).url(), "polling", &[]).await;
}
