//! Issue 10, "nothing late either": the clean-up of a failed `log in` never unregisters the
//! user after the client's retry succeeded.

use chat_testkit::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_retried_log_in_stays_registered_after_the_failed_ones_clean_up() {
    let cluster = Workers::start(1).await;
    let w = cluster.w(0);
    let (alice, _) = w.login("alice").await;
    let mut bob = w.connect().await;

    // Redis stops answering: the first `log in` reaches it (LOGIN runs once Redis resumes)
    // but the worker gives up first, answers `unavailable` and queues a logout.
    let paused = cluster.redis.cli(&["CLIENT", "PAUSE", "3000", "ALL"]);
    assert_eq!(paused, "OK");
    let ack = bob
        .emit_ack_timeout(
            "log in",
            json!({"username": "bob"}),
            Duration::from_secs(10),
        )
        .await
        .expect("log in ack");
    assert_eq!(ack["error"]["code"], "unavailable", "{ack}");

    // The client retries, as an app does, until it is in.
    let mut tries = 0;
    loop {
        let ack = bob
            .emit_ack_timeout(
                "log in",
                json!({"username": "bob"}),
                Duration::from_secs(10),
            )
            .await
            .expect("log in ack");
        if ack["ok"] == true {
            break;
        }
        tries += 1;
        assert!(tries < 20, "log in kept failing: {ack}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The clean-up has run by now (it was queued first); bob must stay reachable.
    wait_until("bob in list users", WAIT, || async {
        let users = alice.emit_ack("list users", json!({})).await.expect("list");
        users["users"]
            .as_array()
            .is_some_and(|u| u.iter().any(|n| n == "bob"))
    })
    .await;
    let id = send_ok(&alice, "bob", "still there?").await;
    let ev = bob
        .wait_for("bob's message", Duration::from_secs(5), |e| {
            is_new_message(e) && e.data()["id"] == id.as_str()
        })
        .await
        .expect("message to bob within 5 s");
    assert_eq!(ev.data()["message"], "still there?");
    assert_eq!(
        cluster.redis.cli(&["SCARD", "chat:{u:bob}:workers"]),
        "1",
        "bob's worker is in the user map"
    );
}
