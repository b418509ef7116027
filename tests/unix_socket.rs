//! Issue 13: HAProxy reaches the workers on its own host through their Unix sockets
//! (`chat-worker --unix-socket PATH`). The socket serves the same HTTP and Socket.IO as the TCP
//! port; a stale file a killed worker left is replaced, a live socket or any other file is
//! refused, and the worker removes its file when it stops.

use chat_testkit::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// One HTTP/1.0 request over the Unix socket at `path`: `(status, body)`.
async fn request(path: &Path, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(path)
        .await
        .expect("connect unix socket");
    let req = format!(
        "{method} {target} HTTP/1.0\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write request");
    let mut buf = Vec::new();
    if tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .is_err()
    {
        return (0, "no answer in time".into());
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (net::status_of(&text), body)
}

/// Polls the Engine.IO session `sid`, answering its pings, until a payload contains `needle`.
async fn poll_until(path: &Path, sid: &str, needle: &str) -> String {
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let mut seen = String::new();
    for _ in 0..20 {
        let (status, body) = request(path, "GET", &target, "").await;
        assert_eq!(status, 200, "poll: {body}");
        // Engine.IO pings ride the polls; an unanswered one ends the session.
        if body.split('\x1e').any(|packet| packet == "2") {
            assert_eq!(request(path, "POST", &target, "3").await.0, 200, "pong");
        }
        seen.push_str(&body);
        if seen.contains(needle) {
            return seen;
        }
    }
    panic!("{needle:?} never arrived; polls returned {seen:?}");
}

fn worker_cmd(redis: &Redis, socket: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(proc::bin("chat-worker"));
    cmd.args(["--port", "0", "--id", "9", "--redis", &redis.url()])
        .arg("--unix-socket")
        .arg(socket);
    cmd
}

#[tokio::test]
async fn a_worker_serves_http_and_socket_io_on_its_unix_socket() {
    let redis = Redis::start().await;
    let dir = redis::short_tempdir("uds");
    let sock = dir.path().join("w.sock");
    let w = Worker::start_with(&redis.url(), 1, &["--unix-socket", sock.to_str().unwrap()]).await;
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o600,
        "only the owner (the proxy) may connect"
    );

    let (status, body) = request(&sock, "GET", "/health", "").await;
    assert_eq!(status, 200, "{body}");

    // A polling session over the socket: handshake, namespace, log in.
    let (status, open) = request(&sock, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    assert_eq!(status, 200, "{open}");
    let open: serde_json::Value =
        serde_json::from_str(open.strip_prefix('0').expect("open packet")).unwrap();
    let sid = open["sid"].as_str().expect("sid").to_owned();
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    assert_eq!(request(&sock, "POST", &target, "40").await.0, 200);
    poll_until(&sock, &sid, "40{").await;
    let login = r#"421["log in",{"username":"over_unix"}]"#;
    assert_eq!(request(&sock, "POST", &target, login).await.0, 200);
    let ack = poll_until(&sock, &sid, "431[").await;
    assert!(ack.contains(r#"431[{"ok":true,"#), "{ack}");
    assert!(ack.contains(r#""username":"over_unix""#), "{ack}");

    // The same worker's TCP side reaches that user.
    let (tcp_client, _) = w.login("over_tcp").await;
    let ack = tcp_client
        .emit_ack(
            "send message",
            json!({"username":"over_unix","message":"hi through the socket"}),
        )
        .await
        .unwrap();
    assert_eq!(ack["ok"], true, "{ack}");
    poll_until(&sock, &sid, "hi through the socket").await;
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_and_the_worker_removes_its_own_on_stop() {
    let redis = Redis::start().await;
    let dir = redis::short_tempdir("uds");
    let sock = dir.path().join("w.sock");
    // What a SIGKILLed worker leaves: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());

    let mut w =
        Worker::start_with(&redis.url(), 1, &["--unix-socket", sock.to_str().unwrap()]).await;
    assert_eq!(request(&sock, "GET", "/health", "").await.0, 200);

    w.sigterm();
    assert_eq!(w.wait_exit(Duration::from_secs(20)).await, Some(0));
    assert!(!sock.exists(), "the socket file outlived its worker");
}

#[tokio::test]
async fn a_live_socket_or_another_file_at_the_path_is_refused() {
    let redis = Redis::start().await;
    let dir = redis::short_tempdir("uds");
    let sock = dir.path().join("w.sock");
    let _live =
        Worker::start_with(&redis.url(), 1, &["--unix-socket", sock.to_str().unwrap()]).await;

    let out = proc::run_bounded(&mut worker_cmd(&redis, &sock), Duration::from_secs(20));
    let told = out.describe("chat-worker");
    assert_eq!(out.code(), Some(1), "{told}");
    assert!(told.contains("another process is serving on it"), "{told}");
    // The first worker keeps its socket.
    assert_eq!(request(&sock, "GET", "/health", "").await.0, 200);

    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let out = proc::run_bounded(&mut worker_cmd(&redis, &file), Duration::from_secs(20));
    let told = out.describe("chat-worker");
    assert_eq!(out.code(), Some(1), "{told}");
    assert!(told.contains("is not a socket"), "{told}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}
