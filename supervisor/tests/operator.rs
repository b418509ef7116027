//! What an operator relies on beyond the subcommands themselves, against a real cluster:
//! pinning inside the CPU set chatctl may use (and `--pin off`), `--log-format json`, the
//! machine line and `status --watch`, colours only on a terminal and never with `NO_COLOR`,
//! HAProxy's access log, and chatctl exiting 1 when Redis has failed for good.

use chat_testkit::cluster::{chatctl_at, chatctl_command};
use chat_testkit::*;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn cpus_of(pid: u32) -> Vec<usize> {
    let set = sched_getaffinity(Pid::from_raw(pid as i32)).expect("sched_getaffinity");
    (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect()
}

fn workers(s: &Value) -> Vec<Value> {
    s["workers"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn workers_are_pinned_inside_the_allowed_cpu_set_or_left_free() {
    let allowed = cpus_of(0);
    let only = *allowed.last().expect("at least one allowed CPU");
    // What `taskset -c ONLY chatctl up` does: the affinity of the spawning thread is
    // inherited through fork and exec, so chatctl (and the supervisor it detaches) may only
    // use CPU `only`. On two or more CPUs that is not core 0, where raw `core = id` pinning
    // would have put worker 0.
    let mut restricted = CpuSet::new();
    restricted.set(only).unwrap();
    sched_setaffinity(Pid::from_raw(0), &restricted).unwrap();
    let pinned = Cluster::up(2);
    let mut original = CpuSet::new();
    for c in &allowed {
        original.set(*c).unwrap();
    }
    sched_setaffinity(Pid::from_raw(0), &original).unwrap();
    let s = pinned.wait_status("2 workers up", |s| all_up(s, 2)).await;
    for w in workers(&s) {
        let pid = w["pid"].as_u64().unwrap() as u32;
        assert_eq!(cpus_of(pid), vec![only], "{w}");
        assert_eq!(w["core"].as_u64(), Some(only as u64), "{w}");
    }
    drop(pinned);

    // With another chatctl flag for the workers on the way: `--coalesce-us` reaches each.
    let free = Cluster::up_with(2, &["--pin", "off", "--coalesce-us", "250"]);
    let s = free.wait_status("2 workers up", |s| all_up(s, 2)).await;
    for w in workers(&s) {
        let pid = w["pid"].as_u64().unwrap() as u32;
        assert_eq!(
            cpus_of(pid),
            allowed,
            "--pin off: the kernel places it: {w}"
        );
        assert!(w["core"].is_null(), "{w}");
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        let args: Vec<&str> = cmdline.split('\0').collect();
        assert!(
            args.windows(2).any(|w| w == ["--coalesce-us", "250"]),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn json_logs_from_chatctl_and_its_workers() {
    let c = Cluster::up_logging_info(1, &["--log-format", "json"]);
    c.wait_status("1 worker up", |s| all_up(s, 1)).await;
    let read = |name: &str| {
        std::fs::read_to_string(c.path().join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    };
    // The worker's lines: chatctl's timestamp, then the worker's own JSON object.
    wait_sync("a worker log line", CLUSTER_WAIT, || {
        !read("worker-0").trim().is_empty()
    });
    let mut events = 0;
    for line in read("worker-0").lines().filter(|l| !l.trim().is_empty()) {
        let (_, object) = line.split_once(' ').unwrap_or(("", line));
        let v: Value = serde_json::from_str(object)
            .unwrap_or_else(|e| panic!("worker line is not JSON ({e}): {line:?}"));
        // Log events, and the one `{"listening":ADDR}` line on its stdout.
        assert!(
            v["level"].is_string() || v["listening"].is_string(),
            "{line}"
        );
        events += usize::from(v["level"].is_string());
    }
    assert!(events >= 1, "no log event from the worker");
    // The detached supervisor's own output (its stdout and stderr) is JSON, line by line.
    let own = read("chatctl");
    assert!(own.lines().any(|l| l.contains("cluster up")), "{own}");
    for line in own.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("chatctl line is not JSON ({e}): {line:?}"));
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
}

#[tokio::test]
async fn status_has_a_machine_line_and_watch_redraws_until_interrupted() {
    let c = Cluster::up(1);
    c.wait_status("1 worker up", |s| all_up(s, 1)).await;
    let s = c.status();
    let m = &s["machine"];
    assert!(m["cpus"].as_u64().unwrap_or(0) >= 1, "{s:#}");
    assert!(
        m["memory_total_bytes"].as_u64().unwrap_or(0)
            >= m["memory_available_bytes"].as_u64().unwrap_or(u64::MAX),
        "{s:#}"
    );
    assert_eq!(m["load"].as_array().map(Vec::len), Some(3), "{s:#}");
    let text = c.ok(&["status"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("machine ") && l.contains("CPUs") && l.contains("load")),
        "{text}"
    );

    let mut watch = chatctl_command(c.path(), None)
        .args(["status", "--watch"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = watch.stdout.take().unwrap();
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let redraws = || seen.lock().unwrap().matches("\nchatctl  pid").count();
    wait_sync(
        "two redraws of status --watch",
        Duration::from_secs(20),
        || redraws() >= 2,
    );
    // Ctrl-C ends the watch cleanly.
    signal(watch.id(), libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = watch.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = watch.kill();
            let _ = watch.wait();
            panic!("status --watch did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = reader.join();
    assert!(status.success(), "{status}");
    // Not a terminal: redraws are appended, no screen-clearing escapes.
    assert!(!seen.lock().unwrap().contains('\x1b'));
}

/// `chatctl status` on a pseudo-terminal (through util-linux `script`), with `env` set.
fn status_on_a_terminal(c: &Cluster, env: &str) -> String {
    let chatctl = chat_testkit::proc::bin("chatctl");
    let line = format!(
        "env -u CHATCTL_STATE_DIR {env} {} --state-dir {} status",
        chatctl.display(),
        c.path().display()
    );
    let out = chat_testkit::proc::run_bounded(
        Command::new("script").args(["-qec", &line, "/dev/null"]),
        Duration::from_secs(30),
    );
    assert!(out.success(), "{}", out.describe("script status"));
    out.stdout
}

#[tokio::test]
async fn colours_on_a_terminal_unless_no_color() {
    let c = Cluster::up(1);
    c.wait_status("1 worker up", |s| all_up(s, 1)).await;
    let coloured = status_on_a_terminal(&c, "");
    assert!(coloured.contains("\x1b[32mup\x1b[0m"), "{coloured:?}");
    let plain = status_on_a_terminal(&c, "NO_COLOR=1");
    assert!(
        plain.contains("  up") && !plain.contains('\x1b'),
        "{plain:?}"
    );
    // Piped (not a terminal): plain as well.
    assert!(!c.ok(&["status"]).contains('\x1b'));
}

#[tokio::test]
async fn haproxy_writes_an_access_log_line_per_request() {
    let c = Cluster::up(1);
    c.wait_status("1 worker up", |s| all_up(s, 1)).await;
    let marker = "/socket.io/?EIO=4&transport=polling&probe=access-log";
    let (code, _) = http_get(c.port, marker).await;
    assert_eq!(code, 200);
    let log = c.path().join("logs").join("haproxy.log");
    wait_sync("the request in haproxy.log", CLUSTER_WAIT, || {
        std::fs::read_to_string(&log)
            .map(|t| t.contains("probe=access-log"))
            .unwrap_or(false)
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("probe=access-log"))
        .unwrap();
    // httplog: frontend, backend/server, status and the request line.
    assert!(line.contains(" 200 ") && line.contains("GET "), "{line}");
    // Health checks are not logged: they would drown the requests.
    assert!(!text.contains("GET /health"), "{text}");
}

#[tokio::test]
async fn chatctl_exits_1_when_redis_fails_for_good() {
    let dir = chat_testkit::redis::short_tempdir("fail");
    let (port, base) = (free_port_range(1), free_port_range(2));
    let stderr_path = dir.path().with_extension("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let (port_s, base_s) = (port.to_string(), base.to_string());
    let up = chatctl_command(dir.path(), None)
        .args([
            "up",
            "--workers",
            "1",
            "--port",
            &port_s,
            "--base-port",
            &base_s,
        ])
        .args(["--bind", "127.0.0.1", "--max-restarts", "2"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    // Killed (and with it, through PR_SET_PDEATHSIG, everything it started) if we fail.
    let mut up = Reaped(up);
    let status = || -> Option<Value> {
        serde_json::from_str(&chatctl_at(dir.path(), &["status", "--json"]).stdout).ok()
    };
    let redis_pid = |s: &Value| s["redis"]["pid"].as_u64().map(|p| p as u32);
    let mut first: Option<Value> = None;
    wait_sync("the cluster up", Duration::from_secs(60), || {
        first = status().filter(|s| all_up(s, 1) && redis_pid(s).is_some());
        first.is_some()
    });
    let first = first.unwrap();
    let started = Cluster::our_pids(&first);
    let redis = redis_pid(&first).unwrap();
    signal(redis, libc::SIGKILL);
    // First crash: restarted after 100 ms. Second crash: failed for good.
    let mut second = None;
    wait_sync(
        "the embedded Redis restarted",
        Duration::from_secs(30),
        || {
            second = status().and_then(|s| redis_pid(&s)).filter(|p| *p != redis);
            second.is_some()
        },
    );
    signal(second.unwrap(), libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(st) = up.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "chatctl still runs with Redis failed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let said = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(exit.code(), Some(1), "{said}");
    assert!(said.contains("failed for good"), "{said}");
    wait_pids_gone("everything up started", &started, Duration::from_secs(10)).await;
    let _ = std::fs::remove_file(&stderr_path);
}
