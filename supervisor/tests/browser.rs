//! Real-browser end-to-end test: `chatctl up --detach` starts a two-worker cluster behind
//! HAProxy on free loopback ports, then `tests/js/browser.mjs` drives headless Chromium
//! (Debian's /usr/bin/chromium through playwright-core) on the chat page: two users in two
//! browser contexts exchange a direct message and a room message.
//!
//! Needs `cargo build --workspace` (for `chat-worker` beside `chatctl`) and
//! `scripts/setup.sh` (for Chromium, HAProxy, Redis and the node packages).
//!
//! Run: `cargo test -p chatctl --test browser -- --nocapture`. With `BROWSER_SCREENSHOT=PATH`
//! in the environment, the receiver's page screenshot is also copied to PATH.

use chat_testkit::node::{js_dir_with, run_node};
use chat_testkit::Cluster;
use std::path::Path;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const WORKERS: u32 = 2;

#[test]
fn two_browsers_chat_through_haproxy() {
    js_dir_with("playwright-core");
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run scripts/setup.sh (it installs the Debian chromium package)"
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

    let shot = state.join("browser.png");
    let url = format!("{}/", cluster.url());
    let node = run_node(
        "browser.mjs",
        &[&url],
        &[("BROWSER_SCREENSHOT", shot.as_os_str())],
        Duration::from_secs(60),
    );
    assert!(
        node.success(),
        "{}\n{}",
        node.describe("node tests/js/browser.mjs"),
        cluster.log_tails()
    );
    assert!(
        node.stdout.lines().any(|l| l.trim() == r#"{"ok":true}"#),
        "browser.mjs exited 0 without printing {{\"ok\":true}}:\n{}",
        node.describe("node tests/js/browser.mjs")
    );
    eprintln!(
        "browser round trip passed in {:.1} s",
        node.elapsed.as_secs_f64()
    );

    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "no screenshot at {}", shot.display());
    if let Some(copy) = std::env::var_os("BROWSER_SCREENSHOT") {
        std::fs::copy(&shot, &copy).expect("copy the screenshot to $BROWSER_SCREENSHOT");
        eprintln!(
            "screenshot ({size} bytes) copied to {}",
            Path::new(&copy).display()
        );
    }

    drop(cluster);
}
