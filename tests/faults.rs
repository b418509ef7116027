//! Faults a worker must survive: a peer SIGKILLed with unacked messages, Redis vanishing and
//! coming back empty, and a SIGTERM drain.

use chat_testkit::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn messages_of_a_sigkilled_workers_user_arrive_at_the_next_log_in_elsewhere() {
    let mut cluster = Workers::start(2).await;
    let (alice, _) = cluster.w(0).login("alice").await;
    let (mut bob, _) = cluster.w(1).login("bob").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(send_ok(&alice, "bob", &format!("m{i}")).await);
    }
    for _ in 0..3 {
        // Received, never acknowledged.
        bob.wait_for("live delivery", WAIT, is_new_message)
            .await
            .unwrap();
    }
    cluster.workers[1].sigkill();
    assert_eq!(cluster.workers[1].wait_exit(WAIT).await, None);

    // The dead worker's entry leaves the user map by itself (liveness expiry + reaper).
    wait_until(
        "dead worker reaped from the user map",
        Duration::from_secs(15),
        || async { cluster.redis.cli(&["SCARD", "chat:{u:bob}:workers"]) == "0" },
    )
    .await;
    let users = alice.emit_ack("list users", json!({})).await.unwrap();
    assert_eq!(users["users"], json!(["alice"]));

    let (mut bob, ack) = cluster.w(0).login("bob").await;
    assert_eq!(ack["pending"], 3);
    let mut got = Vec::new();
    for _ in 0..3 {
        let ev = bob
            .wait_for("redelivery", WAIT, is_new_message)
            .await
            .unwrap();
        got.push(ev.data()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, ids);
}

#[tokio::test]
async fn redis_outage_answers_unavailable_then_heals_by_itself_even_when_empty() {
    let mut cluster = Workers::start(2).await;
    let (alice, _) = cluster.w(0).login("alice").await;
    let (mut bob, _) = cluster.w(1).login("bob").await;
    let a = alice
        .emit_ack("join room", json!({"room":"ops"}))
        .await
        .unwrap();
    assert_eq!(a["ok"], true);
    let b = bob
        .emit_ack("join room", json!({"room":"ops"}))
        .await
        .unwrap();
    assert_eq!(b["ok"], true);

    cluster.redis.kill();
    for w in &cluster.workers {
        w.wait_health("/health 503 while redis is gone", |s| s == 503)
            .await;
        assert_eq!(w.metric("chat_redis_up").await, 0.0);
    }
    let ack = alice
        .emit_ack("send message", json!({"username":"bob","message":"lost?"}))
        .await
        .unwrap();
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["error"]["code"], "unavailable");

    // Back, and empty: no user map, no inboxes. Workers must re-register by themselves.
    cluster.redis.restart().await;
    for w in &cluster.workers {
        w.wait_healthy().await;
    }
    wait_until("users re-registered", WAIT, || async {
        let ack = alice.emit_ack("list users", json!({})).await.unwrap();
        ack["users"] == json!(["alice", "bob"])
    })
    .await;

    // Without logging in again, bob receives direct and room messages.
    for (what, event, payload, text) in [
        (
            "direct after heal",
            "send message",
            json!({"username":"bob","message":"after"}),
            "after",
        ),
        (
            "room after heal",
            "room message",
            json!({"room":"ops","message":"room after"}),
            "room after",
        ),
    ] {
        let ack = alice.emit_ack(event, payload).await.unwrap();
        assert_eq!(ack["ok"], true, "{ack}");
        let ev = bob.wait_for(what, WAIT, is_new_message).await.unwrap();
        assert_eq!(ev.data()["message"], text);
    }
}

#[tokio::test]
async fn messages_published_while_the_subscriber_was_down_are_redelivered() {
    let cluster = Workers::start(2).await;
    let (_alice, _) = cluster.w(0).login("alice").await;
    let (mut bob, _) = cluster.w(1).login("bob").await;
    // A message whose publish bob's worker missed: in the inbox, never on the channel.
    let id = cluster.redis.cli(&[
        "XADD",
        "chat:{u:bob}:inbox",
        "*",
        "from",
        "alice",
        "message",
        "missed",
        "sentAt",
        "1",
    ]);
    let nothing = bob
        .collect_events("new message", Duration::from_millis(300))
        .await;
    assert!(nothing.is_empty(), "{nothing:?}");
    // Cut the workers' subscriptions; on resubscribing they resend their users' inboxes.
    let killed = cluster.redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(killed.parse::<u32>().unwrap_or(0) >= 2, "{killed}");
    let ev = bob
        .wait_for("redelivery after resubscribe", WAIT, is_new_message)
        .await
        .unwrap();
    assert_eq!(ev.data()["id"], id.as_str());
    assert_eq!(ev.data()["message"], "missed");
}

#[tokio::test]
async fn sigterm_drains_clients_leave_the_user_map_and_the_worker_exits() {
    let mut cluster = Workers::start(2).await;
    let (alice, _) = cluster.w(0).login("alice").await;
    let (mut bob, _) = cluster.w(1).login("bob").await;
    cluster.workers[1].sigterm();
    let reason = bob.wait_closed(WAIT).await.unwrap();
    // A transport close (not a Socket.IO disconnect) makes real clients reconnect.
    assert_eq!(reason, "transport close");
    let code = cluster.workers[1].wait_exit(Duration::from_secs(12)).await;
    assert_eq!(code, Some(0));
    assert_eq!(cluster.redis.cli(&["SCARD", "chat:{u:bob}:workers"]), "0");
    let users = alice.emit_ack("list users", json!({})).await.unwrap();
    assert_eq!(users["users"], json!(["alice"]));
    let log = cluster.workers[1].log_text();
    assert!(log.contains("draining"), "{log}");
}

#[tokio::test]
async fn health_is_503_while_draining() {
    let cluster = Workers::start_with(1, &["--drain-timeout", "5"]).await;
    let w = cluster.w(0);
    // A client that never closes keeps the drain busy only until its transport is closed;
    // poll /health right after SIGTERM: it must not be 200 at any point afterwards.
    let (_c, _) = w.login("x").await;
    w.sigterm();
    w.wait_health("/health to stop answering 200", |s| s != 200)
        .await;
}

/// The delivery subscription reads Redis's frames itself (`chat::subscription`): over TCP and
/// a Unix socket, behind a password, every payload arrives whole and in order (one with CRLF
/// inside, an empty one, one far larger than a read), a wrong password is refused by name,
/// and a Redis that dies ends the stream instead of hanging it.
#[tokio::test]
async fn the_subscription_reads_every_payload_in_order_and_ends_when_redis_dies() {
    use chat::subscription::Subscription;
    let unix = chat_testkit::redis::Redis::start().await;
    let tcp = chat_testkit::redis::Redis::start_tcp(free_port_range(1), &[]).await;
    for mut server in [unix, tcp] {
        let url = server.url();
        server.cli(&["CONFIG", "SET", "requirepass", "s3cret"]);

        let wrong = chat::link::redis_client(&url, Some("wrong")).unwrap();
        let refused = Subscription::open(&wrong, "chan").await.err();
        assert!(
            refused
                .as_ref()
                .is_some_and(|e| e.to_string().contains("AUTH")),
            "{url}: {refused:?}"
        );

        let client = chat::link::redis_client(&url, Some("s3cret")).unwrap();
        let mut sub = Subscription::open(&client, "chan").await.unwrap();
        assert!(matches!(sub, Subscription::Wire(_)), "{url}: read here");
        let mut publisher = client.get_multiplexed_async_connection().await.unwrap();
        let mut sent: Vec<Vec<u8>> = vec![
            b"first".to_vec(),
            b"a\r\nb\r\n".to_vec(),
            Vec::new(),
            vec![b'x'; 200_000],
        ];
        sent.extend((0..200).map(|i| format!("m\nbob\n{i}-0\nalice\n1\ntext {i}").into_bytes()));
        let mut pipe = ::redis::pipe();
        for p in &sent {
            pipe.publish("other", "not ours").ignore();
            pipe.publish("chan", p.as_slice()).ignore();
        }
        let () = pipe.query_async(&mut publisher).await.unwrap();
        for (i, want) in sent.iter().enumerate() {
            let got = tokio::time::timeout(WAIT, sub.next())
                .await
                .unwrap_or_else(|_| panic!("{url}: payload {i} never came"));
            assert_eq!(got, Some(want.as_slice()), "{url}: payload {i}");
        }

        server.kill();
        let end = tokio::time::timeout(WAIT, sub.next()).await;
        assert!(matches!(end, Ok(None)), "{url}: the stream ends with Redis");
    }
}
