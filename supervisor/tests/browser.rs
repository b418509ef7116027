//! Real-browser end-to-end test: `chatctl up --detach` starts a two-worker cluster behind
//! HAProxy on free loopback ports, then `tests/js/browser.mjs` drives headless Chromium
//! (Debian's /usr/bin/chromium through playwright-core) on the chat page, in three runs:
//! `main` (presence, conversations, receipts, errors, a phone-sized layout) through chatctl's
//! HAProxy; `fallback` through a second HAProxy in front of it that refuses every WebSocket
//! upgrade (the page must chat over long-polling); `reconnect`, where this test SIGKILLs the
//! worker that holds one page's user and the page must log in again by itself and receive.
//!
//! Needs `cargo build --workspace` (for `chat-worker` beside `chatctl`) and
//! `scripts/setup.sh` (for Chromium, HAProxy, Redis, and the node packages of tests/js and
//! web/ — the page's Socket.IO client is built into the worker from web/node_modules).
//!
//! Run: `cargo test -p chatctl --test browser -- --nocapture`. With `BROWSER_SCREENSHOT=PATH`
//! in the environment, the main run's screenshot is also copied to PATH (docs/page.png).

use chat_testkit::node::{js_dir_with, run_node, workspace_root};
use chat_testkit::proc::Finished;
use chat_testkit::{free_port_range, signal, wait_sync, Cluster, Reaped};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const WORKERS: u32 = 2;
const NODE_LIMIT: Duration = Duration::from_secs(90);

fn assert_ok(node: &Finished, what: &str, cluster: &Cluster) {
    assert!(
        node.success(),
        "{}\n{}",
        node.describe(what),
        cluster.log_tails()
    );
    assert!(
        node.stdout.lines().any(|l| l.trim() == r#"{"ok":true}"#),
        "{what} exited 0 without printing {{\"ok\":true}}:\n{}",
        node.describe(what)
    );
    eprintln!("{what} passed in {:.1} s", node.elapsed.as_secs_f64());
}

/// A plain HAProxy on a free port in front of `upstream` that answers 403 to every WebSocket
/// upgrade, as some office proxies do; killed on drop.
fn no_websocket_proxy(dir: &Path, upstream: u16) -> (Reaped, u16) {
    let port = free_port_range(1);
    let cfg = dir.join("no-websocket.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    maxconn 200\n\
             defaults\n    mode http\n    timeout connect 5s\n    timeout client 60s\n    \
             timeout server 60s\n\
             frontend public\n    bind 127.0.0.1:{port}\n    \
             http-request deny deny_status 403 if {{ hdr(upgrade) -i websocket }}\n    \
             default_backend chat\n\
             backend chat\n    server front 127.0.0.1:{upstream}\n"
        ),
    )
    .expect("write the no-WebSocket HAProxy config");
    let proxy = Reaped::spawn(Command::new("haproxy").arg("-db").arg("-f").arg(&cfg));
    wait_sync(
        "the no-WebSocket HAProxy accepts connections",
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    (proxy, port)
}

#[test]
fn the_page_chats_through_haproxy_falls_back_to_polling_and_reconnects() {
    js_dir_with("playwright-core");
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run scripts/setup.sh (it installs the Debian chromium package)"
    );
    assert!(
        workspace_root()
            .join("web/node_modules/socket.io-client/dist/socket.io.min.js")
            .is_file(),
        "web/node_modules is missing: run scripts/setup.sh, then rebuild (the worker embeds the page's Socket.IO client)"
    );

    // `Cluster::up` asserts that chat-worker is built beside chatctl, and on failure shows
    // chatctl's output and the tail of every log.
    let up = std::time::Instant::now();
    let cluster = Cluster::up(WORKERS);
    let state = cluster.path().to_path_buf();
    eprintln!(
        "state dir {}, public port {}: cluster up in {:.1} s",
        state.display(),
        cluster.port,
        up.elapsed().as_secs_f64()
    );
    let url = format!("{}/", cluster.url());

    // 1. Everything a user does, through chatctl's HAProxy.
    let shot = state.join("browser.png");
    let node = run_node(
        "browser.mjs",
        &[&url, "main"],
        &[("BROWSER_SCREENSHOT", shot.as_os_str())],
        NODE_LIMIT,
    );
    assert_ok(&node, "node tests/js/browser.mjs main", &cluster);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "no screenshot at {}", shot.display());
    if let Some(copy) = std::env::var_os("BROWSER_SCREENSHOT") {
        std::fs::copy(&shot, &copy).expect("copy the screenshot to $BROWSER_SCREENSHOT");
        eprintln!(
            "screenshot ({size} bytes) copied to {}",
            Path::new(&copy).display()
        );
    }

    // 2. Behind a proxy that refuses WebSocket: long-polling only.
    {
        let (_proxy, port) = no_websocket_proxy(&state, cluster.port);
        let url = format!("http://127.0.0.1:{port}/");
        let node = run_node("browser.mjs", &[&url, "fallback"], &[], NODE_LIMIT);
        assert_ok(&node, "node tests/js/browser.mjs fallback", &cluster);
    }

    // 3. The worker behind a page dies: the page reconnects, logs in again and receives.
    let handshake = state.join("handshake");
    std::fs::create_dir_all(&handshake).expect("create the handshake dir");
    let node = {
        let (url, handshake) = (url.clone(), handshake.clone());
        std::thread::spawn(move || {
            run_node(
                "browser.mjs",
                &[&url, "reconnect"],
                &[("HANDSHAKE_DIR", handshake.as_os_str())],
                NODE_LIMIT,
            )
        })
    };
    let ready = handshake.join("ready");
    wait_sync("browser.mjs reconnect is ready", NODE_LIMIT, || {
        ready.is_file() || node.is_finished()
    });
    if let Ok(user) = std::fs::read_to_string(&ready) {
        let id = cluster
            .worker_of(user.trim())
            .unwrap_or_else(|| panic!("no worker holds {user} in the user map"));
        let status = cluster.status();
        let pid = status["workers"]
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w["id"].as_u64() == Some(u64::from(id))))
            .and_then(|w| w["pid"].as_u64())
            .unwrap_or_else(|| panic!("no pid for worker {id} in {status:#}"));
        eprintln!("{} is on worker {id}: SIGKILL {pid}", user.trim());
        signal(pid as u32, libc::SIGKILL);
        std::fs::write(handshake.join("killed"), "").expect("write the handshake");
    }
    let node = node.join().expect("the node runner thread");
    assert_ok(&node, "node tests/js/browser.mjs reconnect", &cluster);

    drop(cluster);
}
