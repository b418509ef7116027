//! What `chatctl` says and does, checked against a real cluster (embedded Redis, workers,
//! HAProxy): `down` waits for everything, `--config` names the state dir for every
//! subcommand, `scale +N/-N` answers in a sentence, `restart` one child, `logs -n`, `check`.

use chat_testkit::cluster::chatctl_at;
use chat_testkit::*;
use serde_json::Value;

fn worker_pid(s: &Value, id: u64) -> u64 {
    s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id)
        .and_then(|w| w["pid"].as_u64())
        .unwrap_or_else(|| panic!("no pid for worker-{id}: {s:#}"))
}

fn worker_port(s: &Value, id: u64) -> u64 {
    s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id)
        .and_then(|w| w["port"].as_u64())
        .unwrap_or_else(|| panic!("no worker-{id}: {s:#}"))
}

#[tokio::test]
async fn down_returns_after_every_process_exited() {
    let c = Cluster::up(2);
    let s = c.wait_status("2 workers up", |s| all_up(s, 2)).await;
    let pids = Cluster::our_pids(&s);
    assert!(
        pids.len() >= 5,
        "supervisor, 2 workers, haproxy, redis: {pids:?}"
    );
    let out = c.ok(&["down"]);
    assert!(out.contains("stopped"), "{out}");
    let alive: Vec<u32> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
    assert!(
        alive.is_empty(),
        "still running right after `down`: {alive:?}"
    );
}

#[tokio::test]
async fn config_state_dir_applies_to_every_subcommand() {
    let (c, config) = Cluster::up_from_config(1);
    let cfg = config.to_str().unwrap();
    let out = c.run_no_state_dir(&["--config", cfg, "status", "--json"]);
    assert!(out.success(), "{}", out.describe("status --config"));
    let s: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(s["workers"].as_array().unwrap().len(), 1);
    assert_eq!(
        s["supervisor"]["state_dir"]
            .as_str()
            .map(std::path::PathBuf::from),
        Some(c.path().to_path_buf())
    );
    let pids = Cluster::our_pids(&s);
    let out = c.run_no_state_dir(&["--config", cfg, "logs", "-n", "1"]);
    assert!(out.success(), "{}", out.describe("logs --config"));
    let out = c.run_no_state_dir(&["--config", cfg, "down"]);
    assert!(out.success(), "{}", out.describe("down --config"));
    let alive: Vec<u32> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
    assert!(
        alive.is_empty(),
        "still running after `down --config`: {alive:?}"
    );
    let _ = std::fs::remove_file(&config);
}

#[tokio::test]
async fn scale_by_steps_answers_in_sentences() {
    let c = Cluster::up(2);
    c.wait_status("2 workers up", |s| all_up(s, 2)).await;
    let out = c.ok(&["scale", "+1"]);
    assert_eq!(out.trim(), "scaled to 3 workers: started worker-2");
    c.wait_status("3 workers up", |s| all_up(s, 3)).await;
    let out = c.ok(&["scale", "-1"]);
    assert_eq!(out.trim(), "scaled to 2 workers: drained worker-2");
    let out = c.ok(&["scale", "2"]);
    assert_eq!(out.trim(), "already at 2 workers");
    let out = c.ok(&["scale", "+0", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["message"], "already at 2 workers");
    let bad = c.chatctl(&["scale", "-5"]);
    assert_eq!(
        bad.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        bad.describe("scale -5")
    );
}

#[tokio::test]
async fn restart_replaces_one_worker_on_its_port() {
    let c = Cluster::up(2);
    let before = c.wait_status("2 workers up", |s| all_up(s, 2)).await;
    let out = c.ok(&["restart", "worker-0"]);
    assert!(out.starts_with("restarted worker-0"), "{out}");
    let after = c.wait_status("2 workers up again", |s| all_up(s, 2)).await;
    assert_ne!(worker_pid(&before, 0), worker_pid(&after, 0));
    assert_eq!(worker_port(&before, 0), worker_port(&after, 0));
    assert_eq!(
        worker_pid(&before, 1),
        worker_pid(&after, 1),
        "worker-1 untouched"
    );

    let out = c.ok(&["restart", "haproxy", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true, "{out}");

    let out = c.ok(&["restart", "redis"]);
    assert_eq!(out.trim(), "restarted redis");
    let redis_pid = before["redis"]["pid"].as_u64();
    c.wait_status("redis back with a new pid, workers up", |s| {
        s["redis"]["up"] == true && s["redis"]["pid"].as_u64() != redis_pid && all_up(s, 2)
    })
    .await;

    let bad = c.chatctl(&["restart", "worker-9"]);
    assert_eq!(
        bad.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        bad.describe("restart worker-9")
    );
    assert!(
        bad.stderr.contains("no child named \"worker-9\"") && bad.stderr.contains("worker-0"),
        "{}",
        bad.stderr
    );
}

#[tokio::test]
async fn logs_last_lines_carry_timestamps() {
    let c = Cluster::up(1);
    c.wait_status("1 worker up", |s| all_up(s, 1)).await;
    // Each start logs a line: three restarts make more than three.
    for _ in 0..3 {
        c.ok(&["restart", "worker-0"]);
    }
    let out = c.ok(&["logs", "worker-0", "-n", "3"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines.is_empty() && lines.len() <= 3, "{out}");
    for l in lines {
        let stamp = l.split(' ').next().unwrap_or("");
        assert!(
            stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "no RFC 3339 timestamp: {l:?}"
        );
    }
    let all = c.ok(&["logs", "worker-0"]);
    assert!(all.lines().count() > 3, "{all}");
    let json = c.ok(&["logs", "worker-0", "-n", "2", "--json"]);
    assert_eq!(json.lines().count(), 2, "{json}");
    for l in json.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["child"], "worker-0", "{l}");
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{l}"
        );
    }
}

#[test]
fn check_accepts_a_good_config_and_lists_every_problem() {
    let dir = chat_testkit::redis::short_tempdir("chk");
    let port = free_port_range(1).to_string();
    let ok = chatctl_at(dir.path(), &["check", "--workers", "2", "--port", &port]);
    assert!(ok.success(), "{}", ok.describe("check"));
    assert!(
        ok.stdout.starts_with("OK") && ok.stdout.lines().count() == 1,
        "{}",
        ok.stdout
    );
    assert!(
        !dir.path().join("logs").exists(),
        "check started nothing, wrote nothing"
    );

    let bad_cfg = dir.path().join("bad.toml");
    std::fs::write(&bad_cfg, "[cluster]\nworkers = 2\nbogus = 1\n").unwrap();
    let bad = chatctl_at(
        dir.path(),
        &["check", "--config", bad_cfg.to_str().unwrap()],
    );
    assert_eq!(
        bad.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        bad.describe("check bad")
    );
    assert!(bad.stderr.contains("bogus"), "{}", bad.stderr);

    // `[haproxy] threads` reaches haproxy.cfg as `nbthread`, which `haproxy -c` accepts.
    let threads_cfg = dir.path().join("threads.toml");
    let check_with = |toml: &str| {
        std::fs::write(&threads_cfg, toml).unwrap();
        let cfg = threads_cfg.to_str().unwrap();
        chatctl_at(dir.path(), &["check", "--port", &port, "--config", cfg])
    };
    let threads = check_with("[haproxy]\nthreads = 1\n");
    assert!(threads.success(), "{}", threads.describe("check threads"));
    let no_threads = check_with("[haproxy]\nthreads = 0\n");
    assert_eq!(no_threads.status.and_then(|s| s.code()), Some(1));
    assert!(
        no_threads.stderr.contains("[haproxy] threads = 0"),
        "{}",
        no_threads.stderr
    );

    let long_window = chatctl_at(dir.path(), &["check", "--coalesce-us", "20000"]);
    assert_eq!(long_window.status.and_then(|s| s.code()), Some(1));
    assert!(
        long_window.stderr.contains("[cluster] coalesce_us")
            && long_window.stderr.contains("at most 10000"),
        "{}",
        long_window.stderr
    );

    let tls = chatctl_at(
        dir.path(),
        &["check", "--tls-cert", "/nonexistent.pem", "--json"],
    );
    assert_eq!(
        tls.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        tls.describe("check tls")
    );
    let v: Value = serde_json::from_str(&tls.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(!v["problems"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn completions_and_man_page() {
    let dir = chat_testkit::redis::short_tempdir("cmp");
    for shell in ["bash", "zsh", "fish"] {
        let out = chatctl_at(dir.path(), &["completions", shell]);
        assert!(
            out.success() && out.stdout.contains("chatctl"),
            "{}",
            out.describe(shell)
        );
    }
    let man = chatctl_at(dir.path(), &["man"]);
    assert!(
        man.success() && man.stdout.contains(".TH"),
        "{}",
        man.describe("man")
    );
}

/// As after `cargo install`: chatctl finds chat-worker beside itself, else on PATH, and
/// `check` says what to do when it is in neither place.
#[test]
fn an_installed_chatctl_finds_chat_worker_beside_it_or_on_path() {
    use chat_testkit::proc::{bin, run_bounded};
    let dir = chat_testkit::redis::short_tempdir("inst");
    let alone = dir.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(bin("chatctl"), alone.join("chatctl")).unwrap();
    let worker_dir = bin("chatctl").parent().unwrap().to_path_buf();
    let port = free_port_range(1).to_string();
    let check = |path: &str| {
        run_bounded(
            std::process::Command::new(alone.join("chatctl"))
                .args(["--state-dir", dir.path().to_str().unwrap()])
                .args(["check", "--workers", "1", "--port", &port])
                .current_dir(dir.path())
                .env_remove("CHATCTL_WORKER_BIN")
                .env_remove("CHATCTL_STATE_DIR")
                .env("PATH", path),
            std::time::Duration::from_secs(60),
        )
    };
    let system = std::env::var("PATH").unwrap_or_default();
    let without: Vec<_> = std::env::split_paths(&system)
        .filter(|p| !p.join("chat-worker").exists())
        .collect();
    let without = std::env::join_paths(without).unwrap();
    let missing = check(without.to_str().unwrap());
    assert_eq!(missing.code(), Some(1), "{}", missing.describe("check"));
    assert!(
        missing.stderr.contains("chat-worker not found"),
        "{}",
        missing.stderr
    );
    let with =
        std::env::join_paths(std::iter::once(worker_dir).chain(std::env::split_paths(&without)))
            .unwrap();
    let found = check(with.to_str().unwrap());
    assert!(found.success(), "{}", found.describe("check with PATH"));
    std::fs::copy(
        bin("chatctl").with_file_name("chat-worker"),
        alone.join("chat-worker"),
    )
    .unwrap();
    let beside = check(without.to_str().unwrap());
    assert!(beside.success(), "{}", beside.describe("check beside"));
}
