//! SPEC §3 across two real workers on one real Redis, with the Rust client.

use chat_testkit::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn direct_message_crosses_workers_and_the_sender_gets_a_receipt() {
    let cluster = Workers::start(2).await;
    let (alice, _) = cluster.w(0).login("alice").await;
    let (mut bob, _) = cluster.w(1).login("bob").await;
    let mut alice = alice;

    let id = send_ok(&alice, "bob", "hello across workers").await;
    let ev = bob
        .wait_for("new message", WAIT, is_new_message)
        .await
        .unwrap();
    assert_eq!(ev.data()["id"], id);
    assert_eq!(ev.data()["from"], "alice");
    assert_eq!(ev.data()["message"], "hello across workers");
    assert!(ev.data()["sentAt"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(ev.data().get("room").is_none());
    let ack_id = ev.ack_id.expect("direct messages ask for an ack");

    bob.ack(ack_id, json!({}));
    let receipt = alice.wait_event("delivered", WAIT).await.unwrap();
    assert_eq!(receipt.data(), &json!({"id": id, "to": "bob"}));

    // Acked means gone from the inbox: a new login has nothing pending.
    wait_until("inbox to empty", WAIT, || async {
        cluster.redis.cli(&["XLEN", "chat:{u:bob}:inbox"]) == "0"
    })
    .await;
    let (_bob2, ack) = cluster.w(0).login("bob").await;
    assert_eq!(ack["pending"], 0);
}

#[tokio::test]
async fn a_direct_message_is_published_only_to_the_recipients_workers() {
    let cluster = Workers::start(3).await;
    let (alice, _) = cluster.w(0).login("alice").await;
    let (mut bob, _) = cluster.w(1).login("bob").await;
    // The user map names only worker 1 for bob.
    let members = cluster.redis.cli(&["SMEMBERS", "chat:{u:bob}:workers"]);
    assert_eq!(members.lines().count(), 1, "{members}");
    assert!(members.starts_with("1-"), "{members}");

    let before: Vec<f64> = futures_metric(&cluster, "chat_messages_delivered_total").await;
    send_ok(&alice, "bob", "only to worker 1").await;
    bob.wait_for("new message", WAIT, is_new_message)
        .await
        .unwrap();
    let after: Vec<f64> = futures_metric(&cluster, "chat_messages_delivered_total").await;
    assert_eq!(after[1] - before[1], 1.0);
    assert_eq!(after[0], before[0]);
    assert_eq!(after[2], before[2]);
    // And PUBSUB NUMSUB shows one channel per worker, not a broadcast channel.
    let channels = cluster.redis.cli(&["PUBSUB", "CHANNELS", "chat:*"]);
    assert_eq!(channels.lines().count(), 3, "{channels}");
}

async fn futures_metric(cluster: &Workers, name: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for w in &cluster.workers {
        out.push(w.metric(name).await);
    }
    out
}

#[tokio::test]
async fn offline_inbox_is_delivered_at_log_in_oldest_first() {
    let cluster = Workers::start(2).await;
    let (alice, _) = cluster.w(0).login("alice").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(send_ok(&alice, "carol", &format!("m{i}")).await);
    }
    let mut carol = cluster.w(1).connect().await;
    let ack = carol
        .emit_ack("log in", json!({"username": "carol"}))
        .await
        .unwrap();
    assert_eq!(ack, json!({"ok": true, "username": "carol", "pending": 5}));
    let mut got = Vec::new();
    for _ in 0..5 {
        let ev = carol
            .wait_for("pending", WAIT, is_new_message)
            .await
            .unwrap();
        got.push(ev.data()["id"].as_str().unwrap().to_owned());
        assert_eq!(ev.data()["from"], "alice");
    }
    assert_eq!(got, ids, "pending messages arrive oldest first, same ids");
}

#[tokio::test]
async fn unacknowledged_messages_come_again_with_the_same_ids_until_acked() {
    let cluster = Workers::start(2).await;
    let (alice, _) = cluster.w(0).login("alice").await;
    let (mut dave, _) = cluster.w(1).login("dave").await;
    let id1 = send_ok(&alice, "dave", "one").await;
    let id2 = send_ok(&alice, "dave", "two").await;
    for id in [&id1, &id2] {
        let ev = dave.wait_for("live", WAIT, is_new_message).await.unwrap();
        assert_eq!(&ev.data()["id"], id);
    }
    drop(dave); // never acked

    let (mut dave, ack) = cluster.w(0).login("dave").await;
    assert_eq!(ack["pending"], 2);
    let first = dave.wait_for("again", WAIT, is_new_message).await.unwrap();
    let second = dave.wait_for("again", WAIT, is_new_message).await.unwrap();
    assert_eq!(first.data()["id"], id1);
    assert_eq!(second.data()["id"], id2);
    dave.ack(first.ack_id.unwrap(), json!(null));
    wait_until("first ack to land", WAIT, || async {
        cluster.redis.cli(&["XLEN", "chat:{u:dave}:inbox"]) == "1"
    })
    .await;
    drop(dave);

    let (mut dave, ack) = cluster.w(1).login("dave").await;
    assert_eq!(ack["pending"], 1);
    let only = dave.wait_for("again", WAIT, is_new_message).await.unwrap();
    assert_eq!(only.data()["id"], id2);
}

#[tokio::test]
async fn every_socket_of_a_user_on_any_worker_receives() {
    let cluster = Workers::start(2).await;
    let (alice, _) = cluster.w(0).login("alice").await;
    let (mut e1, _) = cluster.w(0).login("erin").await;
    let (mut e2, _) = cluster.w(1).login("erin").await;
    let (mut e3, _) = cluster.w(1).login("erin").await;
    let id = send_ok(&alice, "erin", "to all of you").await;
    for c in [&mut e1, &mut e2, &mut e3] {
        let ev = c.wait_for("fan-out", WAIT, is_new_message).await.unwrap();
        assert_eq!(ev.data()["id"], id);
    }
    // One worker's sockets closing keeps the user online through the other.
    drop(e2);
    drop(e3);
    wait_until("worker 1 to leave erin's entry", WAIT, || async {
        let members = cluster.redis.cli(&["SMEMBERS", "chat:{u:erin}:workers"]);
        members.lines().count() == 1
    })
    .await;
    let users = alice.emit_ack("list users", json!({})).await.unwrap();
    assert!(users["users"].as_array().unwrap().contains(&json!("erin")));
}

#[tokio::test]
async fn rooms_span_workers_with_history_and_leave() {
    let cluster = Workers::start(2).await;
    let (mut a, _) = cluster.w(0).login("alice").await;
    let (mut b, _) = cluster.w(1).login("bob").await;

    let ack = a
        .emit_ack("join room", json!({"room": "lobby"}))
        .await
        .unwrap();
    assert_eq!(ack, json!({"ok": true, "history": []}));
    let ack = b
        .emit_ack("join room", json!({"room": "lobby"}))
        .await
        .unwrap();
    assert_eq!(ack["ok"], true);

    let sent = a
        .emit_ack(
            "room message",
            json!({"room": "lobby", "message": "hi room"}),
        )
        .await
        .unwrap();
    assert_eq!(sent["ok"], true);
    let ev = b
        .wait_for("room message", WAIT, is_new_message)
        .await
        .unwrap();
    assert_eq!(ev.data()["room"], "lobby");
    assert_eq!(ev.data()["from"], "alice");
    assert_eq!(ev.data()["id"], sent["id"]);
    assert!(ev.ack_id.is_none(), "room messages need no ack");
    // The sending socket does not get its own message back.
    assert!(a
        .collect_events("new message", Duration::from_millis(300))
        .await
        .is_empty());

    // History: a later joiner sees the last 50, oldest first.
    for i in 0..55 {
        let r = a
            .emit_ack(
                "room message",
                json!({"room": "lobby", "message": format!("h{i}")}),
            )
            .await
            .unwrap();
        assert_eq!(r["ok"], true, "{r}");
    }
    let (c, _) = cluster.w(1).login("carl").await;
    let ack = c
        .emit_ack("join room", json!({"room": "lobby"}))
        .await
        .unwrap();
    let history = ack["history"].as_array().unwrap();
    assert_eq!(history.len(), 50);
    assert_eq!(history[0]["message"], "h5");
    assert_eq!(history[49]["message"], "h54");
    assert_eq!(history[49]["room"], "lobby");

    // After leaving, b gets nothing more; sending to a room not joined is a bad request.
    let _ = b
        .collect_events("new message", Duration::from_millis(300))
        .await;
    let ack = b
        .emit_ack("leave room", json!({"room": "lobby"}))
        .await
        .unwrap();
    assert_eq!(ack, json!({"ok": true}));
    a.emit_ack(
        "room message",
        json!({"room": "lobby", "message": "after leave"}),
    )
    .await
    .unwrap();
    let late = b
        .collect_events("new message", Duration::from_millis(500))
        .await;
    assert!(late.is_empty(), "{late:?}");
    let ack = b
        .emit_ack("room message", json!({"room": "lobby", "message": "x"}))
        .await
        .unwrap();
    assert_eq!(ack["error"]["code"], "bad_request");
}

#[tokio::test]
async fn list_users_is_sorted_and_follows_disconnects() {
    let cluster = Workers::start(2).await;
    let (z, _) = cluster.w(0).login("zed").await;
    let (_a, _) = cluster.w(1).login("amy").await;
    let (m, _) = cluster.w(1).login("mo").await;
    let ack = z.emit_ack("list users", json!({})).await.unwrap();
    assert_eq!(ack, json!({"ok": true, "users": ["amy", "mo", "zed"]}));
    drop(m);
    wait_until("mo to go offline", WAIT, || async {
        let ack = z.emit_ack("list users", json!({})).await.unwrap();
        ack["users"] == json!(["amy", "zed"])
    })
    .await;
}

#[tokio::test]
async fn each_error_code_is_answered() {
    let cluster = Workers::start_with(1, &["--max-message-bytes", "10"]).await;
    let c = cluster.w(0).connect().await;
    assert_eq!(
        ack_code(&c, "send message", json!({"username":"b","message":"m"})).await,
        "not_logged_in"
    );
    assert_eq!(
        ack_code(&c, "join room", json!({"room":"r"})).await,
        "not_logged_in"
    );
    assert_eq!(ack_code(&c, "list users", json!({})).await, "not_logged_in");
    assert_eq!(
        ack_code(&c, "log in", json!({"username":"bad name"})).await,
        "invalid_username"
    );
    assert_eq!(
        ack_code(&c, "log in", json!({"username": "x".repeat(33)})).await,
        "invalid_username"
    );
    assert_eq!(
        ack_code(&c, "log in", json!({"user":"a"})).await,
        "bad_request"
    );
    assert_eq!(ack_code(&c, "log in", json!("alice")).await, "bad_request");
    assert_eq!(ack_code(&c, "log in", json!(null)).await, "bad_request");
    let ack = c
        .emit_ack("log in", json!({"username":"alice"}))
        .await
        .unwrap();
    assert_eq!(ack["ok"], true);
    assert_eq!(
        ack_code(&c, "send message", json!({"username":"b","message":""})).await,
        "bad_request"
    );
    assert_eq!(
        ack_code(&c, "send message", json!({"username":"b","message":7})).await,
        "bad_request"
    );
    assert_eq!(
        ack_code(&c, "send message", json!({"username":"b c","message":"m"})).await,
        "invalid_username"
    );
    assert_eq!(
        ack_code(
            &c,
            "send message",
            json!({"username":"b","message":"12345678901"})
        )
        .await,
        "message_too_large"
    );
    // 10 bytes exactly is fine; bytes, not characters, are counted ("é" is 2 bytes).
    assert!(!send_ok(&c, "b", "1234567890").await.is_empty());
    assert_eq!(
        ack_code(
            &c,
            "send message",
            json!({"username":"b","message":"éééééé"})
        )
        .await,
        "message_too_large"
    );
    assert_eq!(
        ack_code(&c, "join room", json!({"room":"no spaces"})).await,
        "invalid_room"
    );
    assert_eq!(
        ack_code(&c, "join room", json!({"room": "r".repeat(65)})).await,
        "invalid_room"
    );
    assert_eq!(
        ack_code(&c, "leave room", json!({"room":"a/b"})).await,
        "invalid_room"
    );
    assert_eq!(
        ack_code(&c, "room message", json!({"room":"r"})).await,
        "bad_request"
    );
    assert_eq!(
        ack_code(&c, "no such event", json!({})).await,
        "bad_request"
    );
}

#[tokio::test]
async fn rate_limit_answers_rate_limited() {
    let cluster = Workers::start_with(1, &["--messages-per-second", "3"]).await;
    let (c, _) = cluster.w(0).login("alice").await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        let ack = c
            .emit_ack("send message", json!({"username":"bob","message":"m"}))
            .await
            .unwrap();
        codes.push(if ack["ok"] == true {
            "ok".to_owned()
        } else {
            ack["error"]["code"].as_str().unwrap().to_owned()
        });
    }
    assert_eq!(&codes[..3], ["ok", "ok", "ok"]);
    assert!(codes[3..].iter().any(|c| c == "rate_limited"), "{codes:?}");
}

#[tokio::test]
async fn failures_without_an_ack_callback_arrive_as_chat_error() {
    let cluster = Workers::start(1).await;
    let mut c = cluster.w(0).connect().await;
    c.emit("send message", json!({"username":"b","message":"m"}));
    let ev = c.wait_event("chat error", WAIT).await.unwrap();
    assert_eq!(ev.data()["code"], "not_logged_in");
    assert_eq!(ev.data()["event"], "send message");
    assert!(ev.data()["message"].is_string());
    c.emit("log in", json!({"username": "?"}));
    let ev = c.wait_event("chat error", WAIT).await.unwrap();
    assert_eq!(ev.data()["code"], "invalid_username");
    assert_eq!(ev.data()["event"], "log in");
    // Success without a callback is silent; the socket is then logged in. (Events of one
    // socket are handled concurrently, so `list users` may overtake the log in: poll.)
    c.emit("log in", json!({"username": "fine"}));
    wait_until("the silent log in to take effect", WAIT, || async {
        let ack = c.emit_ack("list users", json!({})).await.unwrap();
        ack["users"] == json!(["fine"])
    })
    .await;
    assert!(c
        .collect_events("chat error", std::time::Duration::from_millis(200))
        .await
        .is_empty());
}

#[tokio::test]
async fn oversized_engine_frames_close_only_that_socket() {
    let cluster = Workers::start_with(1, &["--max-message-bytes", "100"]).await;
    let (bystander, _) = cluster.w(0).login("calm").await;
    let mut big = cluster.w(0).connect().await;
    // Far beyond the transport's max payload: the worker must drop this socket.
    let text = "x".repeat(200_000);
    big.send_raw(&format!(
        "42[\"send message\",{{\"username\":\"calm\",\"message\":\"{text}\"}}]"
    ));
    big.wait_closed(WAIT)
        .await
        .expect("oversized frame closes the socket");
    let ack = bystander.emit_ack("list users", json!({})).await.unwrap();
    assert_eq!(ack["ok"], true);
    assert_eq!(cluster.w(0).health().await, 200);
}

#[tokio::test]
async fn http_face_serves_page_health_and_metrics() {
    let cluster = Workers::start(1).await;
    let w = cluster.w(0);
    let (status, page) = w.get("/").await;
    assert_eq!(status, 200);
    for needle in [
        "Username",
        "Log in",
        ">To<",
        "Message",
        ">Send<",
        "Room",
        ">Join<",
        "Send to room",
        "role=\"log\"",
    ] {
        assert!(page.contains(needle), "page lacks {needle}");
    }
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external links"
    );
    assert_eq!(w.health().await, 200);
    let (_c, _) = w.login("m").await;
    for name in [
        "chat_connections",
        "chat_users",
        "chat_messages_received_total",
        "chat_messages_delivered_total",
        "chat_redis_up",
    ] {
        let v = w.metric(name).await;
        assert!(v >= 0.0);
    }
    assert_eq!(w.metric("chat_connections").await, 1.0);
    assert_eq!(w.metric("chat_users").await, 1.0);
    assert_eq!(w.metric("chat_redis_up").await, 1.0);
    assert_eq!(w.get("/nope").await.0, 404);
}

#[tokio::test]
async fn a_message_of_exactly_max_message_bytes_is_delivered_intact() {
    // 16384 bytes by default, read through a 1 KiB WebSocket read buffer in several chunks.
    let cluster = Workers::start(2).await;
    let (alice, _) = cluster.w(0).login("alice").await;
    let (mut bob, _) = cluster.w(1).login("bob").await;
    let text: String = "é".repeat(8192);
    assert_eq!(text.len(), 16384);
    send_ok(&alice, "bob", &text).await;
    let ev = bob
        .wait_for("big message", WAIT, is_new_message)
        .await
        .unwrap();
    assert_eq!(ev.data()["message"].as_str().unwrap(), text);
    let ack = alice
        .emit_ack(
            "send message",
            json!({"username":"bob","message": format!("{text}x")}),
        )
        .await
        .unwrap();
    assert_eq!(ack["error"]["code"], "message_too_large");
}

/// Alice (on worker 0) sends bob (on worker 1) `n` messages tagged `tag`; bob receives
/// them all and holds their acks. Returns both clients, the ids in order and the ack ids.
async fn delivered_unacked(
    cluster: &Workers,
    n: usize,
    tag: &str,
) -> (Client, Client, Vec<String>, Vec<u64>) {
    let (alice, _) = cluster.w(0).login("alice").await;
    let (mut bob, _) = cluster.w(1).login("bob").await;
    let mut sent = Vec::new();
    for i in 0..n {
        sent.push(send_ok(&alice, "bob", &format!("{tag} {i}")).await);
    }
    let mut ack_ids = Vec::new();
    for id in &sent {
        let ev = bob.wait_for(tag, WAIT, is_new_message).await.unwrap();
        assert_eq!(&ev.data()["id"], id);
        ack_ids.push(ev.ack_id.expect("direct messages ask for an ack"));
    }
    (alice, bob, sent, ack_ids)
}

/// Waits for `sent.len()` `delivered` receipts to `sender` for messages to `to`, and checks
/// they are `sent`, once each, in order.
async fn receipts_arrive_in_order(sender: &mut Client, sent: &[String], to: &str) {
    let mut receipts = Vec::new();
    while receipts.len() < sent.len() {
        let r = sender.wait_event("delivered", WAIT).await.unwrap();
        assert_eq!(r.data()["to"], to);
        receipts.push(r.data()["id"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(receipts, sent, "every receipt, once, in order");
}

/// Acks that arrive together are recorded together: one script call removes them all from
/// the inbox and sends their receipts as one `PUBLISH` per worker (`app::acks`). Every
/// receipt still arrives, each with its own id.
#[tokio::test]
async fn a_burst_of_acks_is_recorded_in_batches_and_every_receipt_arrives() {
    const N: usize = 40;
    let cluster = Workers::start(2).await;
    let (mut alice, bob, sent, ack_ids) = delivered_unacked(&cluster, N, "burst").await;
    let publishes_before = publish_calls(&cluster);
    // All at once: they reach the worker in the same read.
    for ack_id in ack_ids {
        bob.ack(ack_id, json!({}));
    }
    receipts_arrive_in_order(&mut alice, &sent, "bob").await;
    wait_until("inbox to empty", WAIT, || async {
        cluster.redis.cli(&["XLEN", "chat:{u:bob}:inbox"]) == "0"
    })
    .await;
    let publishes = publish_calls(&cluster) - publishes_before;
    assert!(
        publishes <= N as u64 / 2,
        "{N} receipts took {publishes} PUBLISHes: acks were not batched"
    );
}

/// One script call records at most 128 acks (`MAX_BATCH`), however many were gathered: 180
/// first acks answered together (three recipients, 60 each, within their flights) are
/// recorded by at least two calls, each with its own receipts `PUBLISH`, and every receipt
/// still arrives once, in order.
#[tokio::test]
async fn more_acks_than_one_call_holds_are_split_and_every_receipt_arrives() {
    const PAIRS: usize = 3;
    const N: usize = 60;
    let cluster = Workers::start(2).await;
    let (mut senders, mut recipients) = (Vec::new(), Vec::new());
    for p in 0..PAIRS {
        senders.push(cluster.w(0).login(&format!("alice{p}")).await.0);
        recipients.push(cluster.w(1).login(&format!("bob{p}")).await.0);
    }
    let mut sent = vec![Vec::new(); PAIRS];
    for i in 0..N {
        for (p, sender) in senders.iter().enumerate() {
            let to = format!("bob{p}");
            sent[p].push(send_ok(sender, &to, &format!("split {i}")).await);
        }
    }
    let mut ack_ids = vec![Vec::new(); PAIRS];
    for (p, recipient) in recipients.iter_mut().enumerate() {
        for id in &sent[p] {
            let ev = recipient
                .wait_for("split", WAIT, is_new_message)
                .await
                .unwrap();
            assert_eq!(&ev.data()["id"], id);
            ack_ids[p].push(ev.ack_id.expect("direct messages ask for an ack"));
        }
    }
    let publishes_before = publish_calls(&cluster);
    for (recipient, ids) in recipients.iter().zip(&ack_ids) {
        for ack_id in ids {
            recipient.ack(*ack_id, json!({}));
        }
    }
    for (p, sender) in senders.iter_mut().enumerate() {
        receipts_arrive_in_order(sender, &sent[p], &format!("bob{p}")).await;
    }
    let publishes = publish_calls(&cluster) - publishes_before;
    assert!(
        publishes >= 2,
        "{} first acks were recorded by one call ({publishes} PUBLISH): no cap",
        PAIRS * N
    );
}

/// Acks that trickle in, one per write a fraction of a millisecond apart, are still recorded
/// in batches: the worker gathers them for `ACK_GATHER` before one script call records them
/// all and sends their receipts in one `PUBLISH`. Every receipt still arrives, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_trickling_in_are_gathered_into_batches() {
    const N: usize = 30;
    let cluster = Workers::start(2).await;
    let (mut alice, bob, sent, ack_ids) = delivered_unacked(&cluster, N, "trickle").await;
    let publishes_before = publish_calls(&cluster);
    let started = std::time::Instant::now();
    // The pacing under test, not a wait for a condition: this thread hands its runtime to
    // another and blocks between acks, so the client's writer task writes each one alone.
    tokio::task::block_in_place(|| {
        for ack_id in ack_ids {
            bob.ack(ack_id, json!({}));
            std::thread::sleep(Duration::from_micros(250));
        }
    });
    let pacing = started.elapsed();
    receipts_arrive_in_order(&mut alice, &sent, "bob").await;
    let publishes = publish_calls(&cluster) - publishes_before;
    // A batch spans ACK_GATHER of arrivals, so their spread bounds the batches; slack for
    // the acks' own jitter on the way.
    let bound = (pacing.as_millis() / chat::app::ACK_GATHER.as_millis()) as u64 + 3;
    assert!(
        publishes <= bound,
        "{N} acks over {pacing:?} took {publishes} PUBLISHes (at most {bound}): not gathered"
    );
}

/// A Redis that lost its script cache (restarted, `SCRIPT FLUSH`, a promoted replica) answers
/// the next script calls `NOSCRIPT`; each is sent again as an `EVAL` of its source
/// (`store::call`), so every send, ack and receipt still goes through, and a burst of sends
/// caught by it is still stored in order.
#[tokio::test]
async fn sends_and_acks_go_through_after_redis_forgets_its_scripts() {
    const N: usize = 40;
    let cluster = Workers::start(2).await;
    let (mut alice, _) = cluster.w(0).login("alice").await;
    let (mut bob, _) = cluster.w(1).login("bob").await;
    assert_eq!(cluster.redis.cli(&["SCRIPT", "FLUSH"]), "OK");
    let evals_before = command_calls(&cluster, "eval");
    let acks = futures_util::future::join_all((0..N).map(|i| {
        alice.emit_ack(
            "send message",
            json!({"username": "bob", "message": format!("after flush {i}")}),
        )
    }))
    .await;
    let mut sent = Vec::new();
    for a in acks {
        let a = a.expect("send ack");
        assert_eq!(a["ok"], true, "{a}");
        sent.push(a["id"].as_str().expect("id").to_owned());
    }
    assert!(
        command_calls(&cluster, "eval") > evals_before,
        "the sends took the NOSCRIPT fallback"
    );
    assert_eq!(cluster.redis.cli(&["SCRIPT", "FLUSH"]), "OK");
    let mut got = Vec::new();
    for _ in 0..N {
        let ev = bob.wait_for("message", WAIT, is_new_message).await.unwrap();
        got.push(ev.data()["id"].as_str().unwrap_or_default().to_owned());
        bob.ack(
            ev.ack_id.expect("direct messages ask for an ack"),
            json!({}),
        );
    }
    assert_eq!(got, sent, "every message arrives, in the order it was sent");
    let sent: std::collections::HashSet<String> = sent.into_iter().collect();
    assert_eq!(sent.len(), N, "each message its own id");
    let mut receipts = std::collections::HashSet::new();
    while receipts.len() < N {
        let r = alice.wait_event("delivered", WAIT).await.unwrap();
        receipts.insert(r.data()["id"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(receipts, sent, "every receipt arrives");
    wait_until("inbox to empty", WAIT, || async {
        cluster.redis.cli(&["XLEN", "chat:{u:bob}:inbox"]) == "0"
    })
    .await;
}

/// How many PUBLISH commands Redis ran (scripts' included).
fn publish_calls(cluster: &Workers) -> u64 {
    command_calls(cluster, "publish")
}

/// How many times Redis ran `command` (lower case).
fn command_calls(cluster: &Workers, command: &str) -> u64 {
    let stats = cluster.redis.cli(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Sends that arrive together are stored together: one script call stores them all and
/// publishes one payload per worker (`app::send_message`). Each sender still gets its own
/// id, and each message arrives once, in order, intact, whatever its text (the batch frames
/// texts by length: newlines, digits and multi-byte characters included).
#[tokio::test]
async fn a_burst_of_sends_is_stored_in_batches_and_arrives_intact_in_order() {
    const N: usize = 40;
    let cluster = Workers::start(2).await;
    let (alice, _) = cluster.w(0).login("alice").await;
    let (mut bob, _) = cluster.w(1).login("bob").await;
    let texts: Vec<String> = (0..N)
        .map(|i| format!("{i}\nb\n12\nm\nbob\n✓ é {}", "x".repeat(i)))
        .collect();
    let publishes_before = publish_calls(&cluster);
    let evals_before = command_calls(&cluster, "eval");
    // All at once: they reach the worker in the same read.
    let acks = futures_util::future::join_all(
        texts
            .iter()
            .map(|t| alice.emit_ack("send message", json!({"username": "bob", "message": t}))),
    )
    .await;
    let ids: Vec<String> = acks
        .into_iter()
        .map(|a| {
            let a = a.expect("send ack");
            assert_eq!(a["ok"], true, "{a}");
            a["id"].as_str().expect("id").to_owned()
        })
        .collect();
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), N, "each message its own id");
    for (id, text) in ids.iter().zip(&texts) {
        let ev = bob.wait_for("burst", WAIT, is_new_message).await.unwrap();
        assert_eq!(&ev.data()["id"], id);
        assert_eq!(&ev.data()["message"], text);
        assert_eq!(ev.data()["from"], "alice");
    }
    let publishes = publish_calls(&cluster) - publishes_before;
    assert!(
        publishes <= N as u64 / 2,
        "{N} messages took {publishes} PUBLISHes: sends were not batched"
    );
    // The workers loaded their scripts before they came up: the first sends needed no
    // NOSCRIPT fallback, which is where overlapping batches could be reordered.
    assert_eq!(command_calls(&cluster, "eval"), evals_before);
}
