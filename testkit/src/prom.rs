//! `promtool check metrics`, the Prometheus project's own linter for an exposition.

use std::process::Stdio;
use std::time::Duration;

/// `promtool check metrics` on `body`: `None` when promtool is not installed (allowed only
/// outside CI), else its exit code and everything it printed.
pub async fn promtool(body: &str) -> Option<(Option<i32>, String)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, body).expect("write metrics");
    let spawned = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).expect("open metrics"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is missing under CI: run scripts/setup.sh (Debian package prometheus)"
            );
            return None;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("promtool did not finish in 30 s")
        .expect("promtool output");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.code(), printed))
}
