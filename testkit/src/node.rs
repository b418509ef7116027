//! The node scripts in tests/js: the official npm `socket.io-client` end to end (`e2e.mjs`)
//! and headless Chromium on the chat page (`browser.mjs`). node_modules come from
//! `scripts/setup.sh`.

use crate::proc::{run_bounded, Finished};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The workspace root (this crate lives in `testkit/` below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ has a parent")
        .to_path_buf()
}

/// tests/js, asserting that its npm package `module` is installed.
pub fn js_dir_with(module: &str) -> PathBuf {
    let js = workspace_root().join("tests/js");
    let m = js.join("node_modules").join(module);
    assert!(
        m.exists(),
        "{} is missing: run scripts/setup.sh (it installs the node packages of tests/js)",
        m.display()
    );
    js
}

/// `node tests/js/SCRIPT ARGS` from the workspace root, bounded by `limit` (SIGTERM, then
/// SIGKILL), with extra environment.
pub fn run_node(script: &str, args: &[&str], env: &[(&str, &OsStr)], limit: Duration) -> Finished {
    let root = workspace_root();
    run_bounded(
        Command::new("node")
            .arg(root.join("tests/js").join(script))
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&root),
        limit,
    )
}

/// The official client's end-to-end script: a user on `url_a` and one on `url_b` message each
/// other over `transport` (`websocket` or `polling`); it must exit 0 printing `"ok":true`.
pub async fn node_e2e(url_a: &str, url_b: &str, transport: &str, env: &[(&str, &OsStr)]) {
    js_dir_with("socket.io-client");
    let args = [url_a, url_b, transport].map(str::to_owned);
    let env: Vec<(String, std::ffi::OsString)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_os_string()))
        .collect();
    // Blocking run on the pool, so the test's own clients keep being served meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &OsStr)> = env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_os_str()))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_node("e2e.mjs", &args, &env, Duration::from_secs(40))
    })
    .await
    .expect("node e2e runner");
    let what = format!("node e2e.mjs over {transport} ({url_a}, {url_b})");
    assert!(out.success(), "{}", out.describe(&what));
    assert!(
        out.stdout.contains("\"ok\":true"),
        "{}",
        out.describe(&what)
    );
}
