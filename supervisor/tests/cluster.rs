//! `chatctl` end to end: real embedded Redis, real workers, real HAProxy, the official
//! socket.io-client through HAProxy, and the Rust client over WebSocket.
//!
//! up 3 → status → clients on different workers message each other (polling through the
//! stickiness cookie, and WebSocket) → scale 5 → scale 2 while clients of the surviving
//! workers stay connected → SIGKILL a worker → reload → down, nothing left running.

use chat_testkit::cluster::chatctl_at;
use chat_testkit::*;
use serde_json::{json, Value};
use std::path::Path;

async fn roundtrip(from: &Client, to: &mut Client, to_name: &str, text: &str) {
    send_ok(from, to_name, text).await;
    let ev = to
        .wait_for(text, CLUSTER_WAIT, |e| {
            e.name == "new message" && e.data()["message"] == text
        })
        .await
        .unwrap_or_else(|e| panic!("{to_name} did not get {text:?}: {e}"));
    if let Some(id) = ev.ack_id {
        to.ack(id, json!({}));
    }
}

#[tokio::test]
async fn up_status_clients_scale_crash_reload_down() {
    let c = Cluster::up(3);

    // status: 3 up on successive ports, 3 servers in HAProxy.
    let s = c
        .wait_status("3 workers up in haproxy", |s| all_up(s, 3))
        .await;
    let ports: Vec<u64> = s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports[1], ports[0] + 1);
    assert_eq!(ports[2], ports[0] + 2);
    assert_eq!(s["haproxy"]["port"], c.port);
    assert_eq!(s["redis"]["embedded"], true);
    assert_eq!(s["redis"]["up"], true);
    for w in s["workers"].as_array().unwrap() {
        for field in [
            "pid",
            "core",
            "restarts",
            "connections",
            "users",
            "cpu_percent",
            "rss_bytes",
        ] {
            assert!(!w[field].is_null(), "worker field {field} is null: {w}");
        }
    }
    let table = c.ok(&["status"]);
    assert!(table.contains("worker-2") && table.contains("haproxy") && table.contains("redis"));

    // The official client through HAProxy: polling only (needs the stickiness cookie), and
    // WebSocket.
    node_e2e(&c.url(), &c.url(), "polling", &[]).await;
    node_e2e(&c.url(), &c.url(), "websocket", &[]).await;

    // Rust clients over WebSocket land on different workers (leastconn) and message each
    // other across them.
    let mut a = login(&c.url(), "alice").await.0;
    let mut b = login(&c.url(), "bob").await.0;
    let (wa, wb) = (c.worker_of("alice").unwrap(), c.worker_of("bob").unwrap());
    assert_ne!(wa, wb, "leastconn spreads two clients over two workers");
    roundtrip(&a, &mut b, "bob", "a to b").await;
    roundtrip(&b, &mut a, "alice", "b to a").await;

    // scale 5.
    let out = c.ok(&["scale", "5"]);
    assert!(out.contains("5 workers"), "{out}");
    let s = c
        .wait_status("5 workers up in haproxy", |s| all_up(s, 5))
        .await;
    assert_eq!(s["haproxy"]["generation"], 2);

    // Clients spread over all five; those on workers 0 and 1 must survive scale 2.
    let mut clients = Vec::new();
    for i in 0..8 {
        let name = format!("u{i}");
        let client = login(&c.url(), &name).await.0;
        let w = c.worker_of(&name).unwrap();
        clients.push((name, w, client));
    }
    let survivors: Vec<usize> = (0..clients.len()).filter(|i| clients[*i].1 < 2).collect();
    assert!(
        survivors.len() >= 2,
        "some clients on workers 0 and 1: {:?}",
        clients.iter().map(|c| c.1).collect::<Vec<_>>()
    );
    let out = c.ok(&["scale", "2"]);
    assert!(out.contains("2 workers"), "{out}");
    c.wait_status("2 workers up in haproxy", |s| all_up(s, 2))
        .await;
    let (first, second) = (survivors[0], survivors[1]);
    let (n1, n2) = (clients[first].0.clone(), clients[second].0.clone());
    {
        // Split the borrow: two distinct survivors.
        let (lo, hi) = clients.split_at_mut(second);
        let c1 = &mut lo[first].2;
        let c2 = &mut hi[0].2;
        roundtrip(c1, c2, &n2, "still here after scale 2").await;
        roundtrip(c2, c1, &n1, "and back").await;
    }
    // Clients of drained workers were closed so they can reconnect elsewhere.
    for (name, w, client) in clients.iter_mut() {
        if *w >= 2 {
            let reason = client.wait_closed(CLUSTER_WAIT).await.unwrap_or_default();
            assert_eq!(reason, "transport close", "{name} on worker {w}");
        }
    }

    // SIGKILL worker 1: it comes back on its port, restarts >= 1.
    let before = c.status();
    let victim = before["workers"][1]["pid"].as_u64().unwrap();
    signal(victim as u32, libc::SIGKILL);
    let s = c
        .wait_status("worker-1 restarted", |s| {
            let w = &s["workers"][1];
            w["state"] == "up"
                && w["restarts"].as_u64().unwrap_or(0) >= 1
                && w["pid"].as_u64() != Some(victim)
        })
        .await;
    assert_eq!(s["workers"][1]["port"], before["workers"][1]["port"]);

    // reload: every worker pid changes, clients keep working.
    let old: Vec<u64> = s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    c.ok(&["reload"]);
    let s = c
        .wait_status("2 workers up after reload", |s| all_up(s, 2))
        .await;
    for (i, w) in s["workers"].as_array().unwrap().iter().enumerate() {
        assert_ne!(w["pid"].as_u64().unwrap(), old[i], "worker-{i} pid changed");
    }
    node_e2e(&c.url(), &c.url(), "polling", &[]).await;
    let mut x = login(&c.url(), "xavier").await.0;
    let y = login(&c.url(), "yolanda").await.0;
    roundtrip(&y, &mut x, "xavier", "after reload").await;

    // down: nothing of ours keeps running.
    let pids = Cluster::our_pids(&c.status());
    assert!(pids.len() >= 5, "{pids:?}");
    c.ok(&["down"]);
    wait_pids_gone("after down", &pids, CLUSTER_WAIT).await;
    assert!(
        !c.dir.path().join("chatctl.sock").exists(),
        "control socket removed"
    );
}

#[tokio::test]
async fn second_up_on_a_live_state_dir_fails_clearly() {
    let c = Cluster::up(1);
    let out = c.chatctl(&["up", "--workers", "1", "--port", "1", "--base-port", "2"]);
    assert_eq!(out.code(), Some(1));
    let err = out.stderr;
    assert!(err.contains("already up"), "{err}");
    // Logs: one child's file, or all of them prefixed by name; unknown names list the known.
    let one = c.ok(&["logs", "worker-0"]);
    assert!(one.contains("listening on 127.0.0.1:"), "{one}");
    let all = c.ok(&["logs"]);
    for name in ["worker-0 |", "haproxy |", "redis |"] {
        assert!(all.contains(name), "{name} missing in all logs");
    }
    let out = c.chatctl(&["logs", "worker-9"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("available: chatctl"));
    // Tokens need `[auth] secret`: say so.
    let out = c.chatctl(&["token", "alice"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("auth is off"));
    // The control socket is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(c.dir.path().join("chatctl.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(c.dir.path().join("haproxy.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn usage_and_input_errors_exit_with_the_right_codes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| chatctl_at(dir.path(), args);
    let out = run(&["up", "--workers", "lots"]);
    assert_eq!(out.code(), Some(2), "usage error");
    assert!(out.stderr.contains("auto"));
    let out = run(&["scale", "0"]);
    assert_eq!(out.code(), Some(2));
    let out = run(&["frobnicate"]);
    assert_eq!(out.code(), Some(2));

    let out = run(&["status"]);
    assert_eq!(out.code(), Some(1));
    let err = out.stderr;
    assert!(
        err.contains("no cluster is up") && err.contains("chatctl up"),
        "{err}"
    );

    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[cluster]\nwokers = 2\n").unwrap();
    let out = run(&["up", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1));
    let err = out.stderr;
    assert!(err.contains("wokers"), "names the unknown key: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    // A foreign file where the control socket goes.
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("chatctl.sock"), "not a socket").unwrap();
    let out = chatctl_at(foreign.path(), &["up", "--workers", "1"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("not a chatctl socket"));
}

#[test]
fn busy_port_and_unwritable_state_dir_fail_before_starting_anything() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_range(2).to_string();
    let port_s = port.to_string();
    let out = chatctl_at(
        dir.path(),
        &[
            "up",
            "--workers",
            "1",
            "--bind",
            "127.0.0.1",
            "--base-port",
            &base,
            "--port",
            &port_s,
        ],
    );
    assert_eq!(out.code(), Some(1));
    let err = out.stderr;
    assert!(
        err.contains(&format!("port {port}")) && err.contains("--port"),
        "{err}"
    );
    assert!(!dir.path().join("chatctl.sock").exists());

    let out = chatctl_at(
        Path::new("/proc/forbidden/state"),
        &["up", "--workers", "1", "--base-port", &base],
    );
    assert_eq!(out.code(), Some(1));
    let err = out.stderr;
    assert!(err.contains("--state-dir"), "{err}");
}

#[tokio::test]
async fn chatctl_token_logs_in_when_auth_is_on() {
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        "[auth]\nsecret = \"cluster-secret-of-at-least-32-bytes\"\n",
    )
    .unwrap();
    let c = Cluster::up_with(1, &["--config", cfg.path().to_str().unwrap()]);
    let token = c.ok(&["token", "alice", "--ttl", "60"]).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let as_json: Value =
        serde_json::from_str(&c.ok(&["token", "alice", "--ttl", "60", "--json"])).unwrap();
    assert_eq!(
        (as_json["username"].as_str(), as_json["ttl_secs"].as_u64()),
        (Some("alice"), Some(60))
    );
    assert_eq!(
        as_json["token"].as_str().map(|t| t.split('.').count()),
        Some(3)
    );
    let client = Client::connect(&c.url()).await.unwrap();
    let denied = client
        .emit_ack("log in", json!({"username": "alice"}))
        .await
        .unwrap();
    assert_eq!(denied["error"]["code"], "unauthorized");
    let wrong_user = client
        .emit_ack("log in", json!({"username": "mallory", "token": token}))
        .await
        .unwrap();
    assert_eq!(wrong_user["error"]["code"], "unauthorized");
    let ok = client
        .emit_ack("log in", json!({"username": "alice", "token": token}))
        .await
        .unwrap();
    assert_eq!(ok["ok"], true, "{ok}");
    // The secret never appears on a worker's command line.
    let pid = c.status()["workers"][0]["pid"].as_u64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("cluster-secret-of-at-least-32-bytes"));
}

#[test]
fn missing_binaries_say_which_package_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("chat.toml");
    std::fs::write(&cfg, "[haproxy]\nbinary = \"/nonexistent/haproxy\"\n").unwrap();
    let out = chatctl_at(
        &dir.path().join("s"),
        &["up", "--workers", "1", "--config", cfg.to_str().unwrap()],
    );
    assert_eq!(out.code(), Some(1));
    let err = out.stderr;
    assert!(err.contains("install the `haproxy` package"), "{err}");
    assert!(
        !dir.path().join("s/chatctl.sock").exists(),
        "nothing started"
    );
}

#[tokio::test]
async fn a_killed_supervisor_orphans_nothing_and_its_stale_socket_is_replaced() {
    let c = Cluster::up(2);
    let s = c.wait_status("2 workers up", |s| all_up(s, 2)).await;
    let pids = Cluster::our_pids(&s);
    let supervisor = s["supervisor"]["pid"].as_u64().unwrap();
    signal(supervisor as u32, libc::SIGKILL);
    // PR_SET_PDEATHSIG: every child goes with it (workers drain, Redis and HAProxy stop).
    wait_pids_gone("orphans of the killed supervisor", &pids, CLUSTER_WAIT).await;
    assert!(
        c.dir.path().join("chatctl.sock").exists(),
        "the socket is left behind, stale"
    );
    let out = c.chatctl(&["status"]);
    assert_eq!(out.code(), Some(1), "a stale socket is not a live cluster");
    // A new `up` on the same state dir detects the stale socket and starts.
    let port = free_port_range(1).to_string();
    let base = free_port_range(2).to_string();
    let out = c.chatctl(&[
        "up",
        "--workers",
        "1",
        "--port",
        &port,
        "--base-port",
        &base,
        "--bind",
        "127.0.0.1",
        "--detach",
    ]);
    assert!(out.success(), "{}", out.stderr);
    let s = c.wait_status("1 worker up again", |s| all_up(s, 1)).await;
    assert_eq!(
        s["redis"]["up"], true,
        "the embedded Redis restarts on its data"
    );
}
