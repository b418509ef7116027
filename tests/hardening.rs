//! Issue 10, "bounded per socket and per user": what one client can make a worker hold.

use chat_testkit::*;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Engine.IO open, Socket.IO connect, `log in` as `user`, `join room` `hall`; returns
/// once the acks are read.
async fn raw_log_in(port: u16, user: &str) -> RawWs {
    let mut ws = RawWs::connect(port).await;
    ws.expect("0{").await;
    ws.send_text("40").await;
    ws.expect("40").await;
    ws.send_text(&format!("420{}", json!(["log in", {"username": user}])))
        .await;
    let ack = ws.expect("430").await;
    assert!(ack.contains("\"ok\":true"), "{ack}");
    ws.send_text(&format!("421{}", json!(["join room", {"room": "hall"}])))
        .await;
    let ack = ws.expect("431").await;
    assert!(ack.contains("\"ok\":true"), "{ack}");
    ws
}

/// A `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`).
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing"))
}

/// The attack of issue 10: sockets of one user that stop reading, senders of 16 KB messages,
/// direct and to a room the slow sockets are in. Direct messages alone stop at each socket's
/// in-flight bound; the room traffic passes `max_queued_bytes_per_socket`, so the slow sockets
/// are cut. The worker's memory stays bounded and every acked direct message is still in the
/// victim's inbox.
#[tokio::test]
async fn slow_readers_are_disconnected_and_lose_nothing() {
    const SLOW: usize = 12;
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 200;
    let cluster =
        Workers::start_with(1, &["--messages-per-second", "1000", "--inbox-max", "5000"]).await;
    let w = cluster.w(0);
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        slow.push(raw_log_in(w.port, "victim").await);
    }
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let (c, _) = w.login(&format!("sender{i}")).await;
        assert_eq!(
            ack_code(&c, "join room", json!({"room": "hall"})).await,
            "ok"
        );
        senders.push(c);
    }
    let rss_before = proc_kb(w.pid, "VmRSS");
    let text = "x".repeat(16_000);
    let sends = senders.iter().map(|c| async {
        for _ in 0..PER_SENDER {
            send_ok(c, "victim", &text).await;
            let room = json!({"room": "hall", "message": text});
            assert_eq!(ack_code(c, "room message", room).await, "ok");
        }
    });
    futures_util::future::join_all(sends).await;

    wait_until("every slow socket to be cut", WAIT, || async {
        w.metric("chat_slow_disconnects_total").await >= SLOW as f64
    })
    .await;
    wait_until("only the senders to stay connected", WAIT, || async {
        w.metric("chat_connections").await == SENDERS as f64
    })
    .await;
    let growth_mb = proc_kb(w.pid, "VmHWM").saturating_sub(rss_before) / 1024;
    eprintln!("worker grew by {growth_mb} MB under the attack");
    assert!(growth_mb < 100, "worker grew by {growth_mb} MB");
    assert!(
        w.log_text().contains("slow"),
        "a log line names the slow disconnect"
    );

    // Every acked message is still in the inbox: a fresh log in finds them pending, and
    // gets the first page of them without being cut itself.
    let (mut c, ack) = w.login("victim").await;
    assert_eq!(ack["pending"], SENDERS * PER_SENDER, "{ack}");
    c.wait_event("new message", WAIT).await.expect("backlog");
    let cuts = w.metric("chat_slow_disconnects_total").await;
    assert_eq!(cuts, SLOW as f64);
    drop(slow);
}

/// `max_sockets_per_user` (default 16): one more socket of that user gets `limit_reached` and
/// stays logged out; other users are not affected.
#[tokio::test]
async fn sockets_per_user_are_capped() {
    let cluster = Workers::start(1).await;
    let w = cluster.w(0);
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(w.login("many").await.0);
    }
    // Logging in again on a socket that already is `many` does not count twice.
    assert_eq!(
        ack_code(&held[0], "log in", json!({"username": "many"})).await,
        "ok"
    );
    let extra = w.connect().await;
    assert_eq!(
        ack_code(&extra, "log in", json!({"username": "many"})).await,
        "limit_reached"
    );
    assert_eq!(
        ack_code(
            &extra,
            "send message",
            json!({"username": "x", "message": "m"})
        )
        .await,
        "not_logged_in"
    );
    assert_eq!(
        ack_code(&extra, "log in", json!({"username": "other"})).await,
        "ok"
    );
    // A slot frees when one of them leaves.
    drop(held.pop());
    wait_until("a slot of `many` to free up", WAIT, || async {
        let c = w.connect().await;
        ack_code(&c, "log in", json!({"username": "many"})).await == "ok"
    })
    .await;
}

/// `max_rooms_per_socket` (default 100): one more room gets `limit_reached`; rejoining a room
/// or leaving one to join another works.
#[tokio::test]
async fn rooms_per_socket_are_capped() {
    // 100 joins in a row is a flood for `events_per_second`; this test is about rooms.
    let cluster = Workers::start_with(1, &["--events-per-second", "1000"]).await;
    let (c, _) = cluster.w(0).login("joiner").await;
    for i in 0..100 {
        assert_eq!(
            ack_code(&c, "join room", json!({"room": format!("r{i}")})).await,
            "ok"
        );
    }
    assert_eq!(
        ack_code(&c, "join room", json!({"room": "r100"})).await,
        "limit_reached"
    );
    // The refused room was not joined.
    assert_eq!(
        ack_code(&c, "room message", json!({"room": "r100", "message": "m"})).await,
        "bad_request"
    );
    assert_eq!(ack_code(&c, "join room", json!({"room": "r5"})).await, "ok");
    assert_eq!(
        ack_code(&c, "leave room", json!({"room": "r5"})).await,
        "ok"
    );
    assert_eq!(
        ack_code(&c, "join room", json!({"room": "r100"})).await,
        "ok"
    );
}

/// Sends `n` messages of `size` bytes from `from` to `to`; returns their ids in order.
async fn send_many(from: &Client, to: &str, n: usize, size: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut text = format!("{i}:");
        text.push_str(&"y".repeat(size.saturating_sub(text.len()).max(1)));
        ids.push(send_ok(from, to, &text).await);
    }
    ids
}

/// Unacked `new message`s in flight per socket are bounded (64): a client that reads but does
/// not acknowledge gets no more than that; the rest waits in the inbox.
#[tokio::test]
async fn unacked_messages_in_flight_are_bounded() {
    let cluster = Workers::start_with(1, &["--messages-per-second", "1000"]).await;
    let w = cluster.w(0);
    let (sender, _) = w.login("sender").await;
    let (mut lazy, _) = w.login("lazy").await;
    send_many(&sender, "lazy", 150, 10).await;
    let got = lazy
        .collect_events("new message", Duration::from_millis(1500))
        .await;
    assert!(
        !got.is_empty() && got.len() <= 64,
        "{} unacked messages in flight",
        got.len()
    );
    // Nothing was lost: a fresh log in finds all of them pending.
    let c = w.connect().await;
    let ack = c
        .emit_ack("log in", json!({"username": "lazy"}))
        .await
        .unwrap();
    assert_eq!(ack["pending"], 150, "{ack}");
}

/// Receives every `new message` on `c`, acknowledging each, until `n` distinct ids arrived;
/// returns them in arrival order.
async fn receive_acking(c: &mut Client, n: usize) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    while ids.len() < n {
        let ev = c
            .wait_event("new message", WAIT)
            .await
            .unwrap_or_else(|e| panic!("after {} of {n}: {e}", ids.len()));
        if let Some(a) = ev.ack_id {
            c.ack(a, json!(null));
        }
        let id = ev.data()["id"].as_str().unwrap().to_owned();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The `log in` backlog goes out in pages: 300 messages of 16 KB (4.8 MB) are not written at
/// once; a client that acknowledges gets all of them, in order, without being cut.
#[tokio::test]
async fn log_in_backlog_is_paged() {
    let cluster = Workers::start_with(1, &["--messages-per-second", "1000"]).await;
    let w = cluster.w(0);
    let (sender, _) = w.login("sender").await;
    let sent = send_many(&sender, "bulk", 300, 16_000).await;

    // Without acks only the first page arrives.
    let (mut lazy, ack) = w.login("bulk").await;
    assert_eq!(ack["pending"], 300);
    let first = lazy
        .collect_events("new message", Duration::from_millis(1500))
        .await;
    assert!(
        !first.is_empty() && first.len() < 100,
        "first page: {}",
        first.len()
    );
    drop(lazy);

    let (mut c, ack) = w.login("bulk").await;
    assert_eq!(ack["pending"], 300);
    let got = receive_acking(&mut c, 300).await;
    assert_eq!(got, sent, "in order, none missing");
    assert_eq!(w.metric("chat_slow_disconnects_total").await, 0.0);
}

/// `join room` history is bounded in total size (256 KiB): 50 messages of 16 KB do not go out
/// as one 800 KB reply; the newest ones are kept.
#[tokio::test]
async fn join_room_history_is_bounded_in_size() {
    let cluster = Workers::start_with(1, &["--messages-per-second", "1000"]).await;
    let w = cluster.w(0);
    let (talker, _) = w.login("talker").await;
    assert_eq!(
        ack_code(&talker, "join room", json!({"room": "big"})).await,
        "ok"
    );
    let mut last = String::new();
    for i in 0..50 {
        last = format!("{i}:{}", "z".repeat(16_000));
        assert_eq!(
            ack_code(
                &talker,
                "room message",
                json!({"room": "big", "message": last})
            )
            .await,
            "ok"
        );
    }
    let (joiner, _) = w.login("joiner").await;
    let ack = joiner
        .emit_ack("join room", json!({"room": "big"}))
        .await
        .unwrap();
    assert_eq!(ack["ok"], true);
    let history = ack["history"].as_array().unwrap();
    let size = serde_json::to_string(history).unwrap().len();
    assert!(size <= 256 * 1024, "history is {size} bytes");
    assert!(!history.is_empty());
    assert_eq!(
        history.last().unwrap()["message"],
        last,
        "the newest is kept"
    );
}

/// Fires `n` events at once and counts the answers by code.
async fn burst(c: &Client, event: &str, data: serde_json::Value, n: usize) -> Vec<String> {
    let all = (0..n).map(|_| ack_code(c, event, data.clone()));
    futures_util::future::join_all(all).await
}

/// Every event counts against a rate: `events_per_second` (default 50, same depth) for all
/// but `send message`/`room message`, unknown events included.
#[tokio::test]
async fn every_event_is_rate_limited() {
    let cluster = Workers::start(1).await;
    let w = cluster.w(0);
    for (event, data) in [
        ("list users", json!({})),
        ("join room", json!({"room": "r"})),
        ("leave room", json!({"room": "r"})),
        ("log in", json!({"username": "flood"})),
        ("no such event", json!({})),
    ] {
        let (c, _) = w.login("flood").await;
        let codes = burst(&c, event, data, 120).await;
        let limited = codes.iter().filter(|c| *c == "rate_limited").count();
        // The bucket's depth (50, less the `log in` above) always passes; a burst of 120
        // cannot all pass.
        assert!(
            limited > 0 && limited <= 71,
            "{event}: {limited} of 120 rate_limited: {codes:?}"
        );
    }
    // Messages have their own bucket: an exhausted event bucket does not block them.
    let (c, _) = w.login("flood").await;
    burst(&c, "list users", json!({}), 120).await;
    send_ok(&c, "someone", "still fine").await;
}

/// Waits until the worker closes `tcp` (EOF or reset), answering nothing; returns how long
/// that took.
async fn closed_within(mut tcp: TcpStream, limit: Duration) -> Duration {
    let start = tokio::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(start + limit, tcp.read(&mut buf)).await {
            Err(_) => panic!("still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// The worker closes a connection whose request head is incomplete after 10 s, and one that
/// has not joined the namespace 10 s after its handshake; until then both count against
/// `max_connections_per_worker`.
#[tokio::test]
async fn half_open_connections_time_out_and_count() {
    let cluster = Workers::start_with(1, &["--max-connections", "2"]).await;
    let w = cluster.w(0);
    let mut slow_head = TcpStream::connect(("127.0.0.1", w.port)).await.unwrap();
    slow_head
        .write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut no_join = RawWs::connect(w.port).await;
    no_join.expect("0{").await;
    // Two half-open connections fill a worker of two.
    let refused = Client::connect(&w.url()).await;
    assert!(refused.is_err(), "a third connection must be refused");

    let limit = Duration::from_secs(14);
    let (head, join) = tokio::join!(
        closed_within(slow_head, limit),
        closed_within(no_join.into_tcp(), limit)
    );
    for (what, took) in [("incomplete head", head), ("no namespace join", join)] {
        assert!(
            took >= Duration::from_secs(8),
            "{what} closed after {took:?}"
        );
    }
    wait_until("a slot to free up", WAIT, || async {
        Client::connect(&w.url()).await.is_ok()
    })
    .await;
}

/// Clients that read are never taken for slow ones, whatever they receive in total: 3.2 MB of
/// direct messages reach a WebSocket and a polling client each, and neither is cut (the byte
/// count follows what each transport writes).
#[tokio::test]
async fn readers_are_not_cut_over_websocket_or_polling() {
    let cluster = Workers::start_with(1, &["--messages-per-second", "1000"]).await;
    let w = cluster.w(0);
    let (sender, _) = w.login("sender").await;
    let mut ws = w.connect().await;
    let mut poll = Client::connect_polling(&w.url()).await.expect("polling");
    for (c, user) in [(&ws, "reader-ws"), (&poll, "reader-poll")] {
        assert_eq!(ack_code(c, "log in", json!({"username": user})).await, "ok");
    }
    let (a, b) = tokio::join!(
        async {
            let sent = send_many(&sender, "reader-ws", 200, 16_000).await;
            let sent2 = send_many(&sender, "reader-poll", 200, 16_000).await;
            (sent, sent2)
        },
        async { tokio::join!(receive_acking(&mut ws, 200), receive_acking(&mut poll, 200)) }
    );
    assert_eq!(b.0, a.0);
    assert_eq!(b.1, a.1);
    assert_eq!(w.metric("chat_slow_disconnects_total").await, 0.0);
}

/// One HTTP/1.0 request: (status, body).
async fn http_raw(port: u16, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let req = format!(
        "{method} {target} HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

/// A polling client that logs in, joins `hall`, then never polls again is cut like a
/// WebSocket one once the room traffic queued for it passes the bound.
#[tokio::test]
async fn a_polling_client_that_stops_polling_is_cut() {
    let cluster = Workers::start_with(1, &["--messages-per-second", "1000"]).await;
    let w = cluster.w(0);
    let (_, open) = http_raw(w.port, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    let open: serde_json::Value =
        serde_json::from_str(open.trim_start_matches('0')).expect("open packet");
    let target = format!(
        "/socket.io/?EIO=4&transport=polling&sid={}",
        open["sid"].as_str().unwrap()
    );
    let post = |body: String| {
        let target = target.clone();
        async move { assert_eq!(http_raw(w.port, "POST", &target, &body).await.0, 200) }
    };
    post("40".into()).await;
    let mut seen = String::new();
    post(format!("420{}", json!(["log in", {"username": "poller"}]))).await;
    post(format!("421{}", json!(["join room", {"room": "hall"}]))).await;
    while !(seen.contains("430") && seen.contains("431")) {
        seen.push_str(&http_raw(w.port, "GET", &target, "").await.1);
    }
    assert!(seen.contains("\"ok\":true"), "{seen}");

    let (talker, _) = w.login("talker").await;
    assert_eq!(
        ack_code(&talker, "join room", json!({"room": "hall"})).await,
        "ok"
    );
    let text = "p".repeat(16_000);
    for _ in 0..100 {
        let room = json!({"room": "hall", "message": text});
        assert_eq!(ack_code(&talker, "room message", room).await, "ok");
    }
    wait_until("the poller to be cut", WAIT, || async {
        w.metric("chat_slow_disconnects_total").await == 1.0
    })
    .await;
    wait_until("only the talker to stay", WAIT, || async {
        w.metric("chat_connections").await == 1.0
    })
    .await;
}

/// The page `/` of a worker forbids sniffing and framing and carries a Content-Security-Policy
/// without `unsafe-inline` (its inline script and style go by hash); `tests/browser.rs` checks
/// that the page still works under it.
#[tokio::test]
async fn the_page_sends_security_headers() {
    let cluster = Workers::start(1).await;
    let w = cluster.w(0);
    let mut s = TcpStream::connect(("127.0.0.1", w.port)).await.unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).to_lowercase();
    let (head, _) = text.split_once("\r\n\r\n").expect("a response head");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {head}"))
    };
    assert!(
        head.starts_with("http/1.0 200") || head.starts_with("http/1.1 200"),
        "{head}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("x-frame-options"), "deny");
    let csp = header("content-security-policy");
    for part in ["default-src 'self'", "frame-ancestors 'none'", "'sha256-"] {
        assert!(csp.contains(part), "{part} missing in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
}

/// `room_history_ttl`: a room's history expires after its last message (renewed by each one),
/// so Redis does not keep every room that ever spoke.
#[tokio::test]
async fn room_history_expires_after_room_history_ttl() {
    let cluster = Workers::start_with(1, &["--room-history-ttl", "1"]).await;
    let w = cluster.w(0);
    let (talker, _) = w.login("talker").await;
    assert_eq!(
        ack_code(&talker, "join room", json!({"room": "brief"})).await,
        "ok"
    );
    assert_eq!(
        ack_code(
            &talker,
            "room message",
            json!({"room": "brief", "message": "soon gone"})
        )
        .await,
        "ok"
    );
    let (joiner, _) = w.login("joiner").await;
    let first = joiner
        .emit_ack("join room", json!({"room": "brief"}))
        .await
        .unwrap();
    assert_eq!(
        first["history"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    wait_until("the room's history to expire", WAIT, || async {
        let ack = joiner
            .emit_ack("join room", json!({"room": "brief"}))
            .await
            .unwrap();
        ack["history"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
}
