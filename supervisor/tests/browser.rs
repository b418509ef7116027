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

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHATCTL: &str = env!("CARGO_BIN_EXE_chatctl");
const CHROMIUM: &str = "/usr/bin/chromium";
const WORKERS: u16 = 2;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("supervisor/ has a parent")
        .to_path_buf()
}

/// What a bounded child run produced.
struct Finished {
    /// `None` when it ran past its time limit (it was then killed).
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Finished {
    fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    fn describe(&self, what: &str, limit: Duration) -> String {
        let how = match self.status {
            Some(s) => format!("exited with {s}"),
            None => format!("timed out after {} s and was killed", limit.as_secs()),
        };
        format!(
            "{what} {how} after {:.1} s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Runs `cmd` with piped output, bounded by `limit`: past it the child gets SIGTERM (so node
/// can close its browser), then SIGKILL 5 s later.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Finished {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let deadline = start + limit;
    let mut status = None;
    let mut term_sent: Option<Instant> = None;
    loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            if term_sent.is_none() {
                status = Some(s);
            }
            break;
        }
        let now = Instant::now();
        match term_sent {
            None if now >= deadline => {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                term_sent = Some(now);
            }
            Some(t) if now >= t + Duration::from_secs(5) => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // A grandchild still holding the pipes must not hang the test: wait a little, no more.
    let collect = |rx: mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| "(output not collected: the pipe stayed open)".to_owned())
    };
    Finished {
        status,
        stdout: collect(out),
        stderr: collect(err),
        elapsed: start.elapsed(),
    }
}

/// A loopback port nobody listens on right now (the kernel picks it).
fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A base port P such that P..P+WORKERS can all be bound on 127.0.0.1 and `avoid` is not
/// among them.
fn free_base_port(avoid: u16) -> u16 {
    for _ in 0..500 {
        let p = free_port();
        if u32::from(p) + u32::from(WORKERS) > 65_535 {
            continue;
        }
        let range = p..p + WORKERS;
        if range.contains(&avoid) {
            continue;
        }
        let probes: Result<Vec<TcpListener>, _> =
            range.map(|q| TcpListener::bind(("127.0.0.1", q))).collect();
        if probes.is_ok() {
            return p;
        }
    }
    panic!("found no {WORKERS} consecutive free loopback ports");
}

fn chatctl(state_dir: &Path) -> Command {
    let mut cmd = Command::new(CHATCTL);
    cmd.arg("--state-dir")
        .arg(state_dir)
        // Run from the state dir so no ./chat.toml of the caller's is picked up, and make
        // chatctl use the chat-worker built beside it.
        .current_dir(state_dir)
        .env_remove("CHATCTL_STATE_DIR")
        .env_remove("CHATCTL_WORKER_BIN");
    cmd
}

/// The supervisor pid from STATE/chatctl.pid, if that process still runs chatctl.
fn live_supervisor(state_dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(state_dir.join("chatctl.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains("chatctl")
        .then_some(pid)
}

/// Owns the cluster's state dir; dropping it stops the cluster (`chatctl down`, then SIGKILL
/// to the supervisor as a fallback; its children die with it through PR_SET_PDEATHSIG).
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of every log in STATE/logs, for failure messages.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        let Ok(entries) = std::fs::read_dir(self.path().join("logs")) else {
            return "(no logs directory)".to_owned();
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            out.push_str(&format!("--- {} ---\n{}\n", p.display(), tail.join("\n")));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let limit = Duration::from_secs(30);
        let down = run_bounded(chatctl(self.path()).arg("down"), limit);
        if !down.success() {
            eprintln!("{}", down.describe("chatctl down", limit));
        }
        // `down` returns once the supervisor stopped; give it a moment to be gone for good.
        let deadline = Instant::now() + Duration::from_secs(10);
        while live_supervisor(self.path()).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(pid) = live_supervisor(self.path()) {
            eprintln!("supervisor {pid} still running after `chatctl down`: SIGKILL");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[test]
fn two_browsers_chat_through_haproxy() {
    let root = workspace_root();
    let worker = Path::new(CHATCTL).with_file_name("chat-worker");
    assert!(
        worker.is_file(),
        "{} is missing: chatctl starts the chat-worker beside it; run `cargo build --workspace` first",
        worker.display()
    );
    let js = root.join("tests/js");
    assert!(
        js.join("node_modules/playwright-core").is_dir(),
        "{} is missing: run scripts/setup.sh (it installs the node packages of tests/js)",
        js.join("node_modules/playwright-core").display()
    );
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run scripts/setup.sh (it installs the Debian chromium package)"
    );

    // Short path: the Unix sockets in the state dir must fit in 107 bytes.
    let dir = tempfile::Builder::new()
        .prefix("chatbr")
        .tempdir_in("/tmp")
        .expect("create a temp state dir");
    let cluster = Cluster { dir };
    let state = cluster.path().to_path_buf();

    let port = free_port();
    let base = free_base_port(port);
    eprintln!(
        "state dir {}, public port {port}, worker ports {base}..={}",
        state.display(),
        base + WORKERS - 1
    );

    let up_limit = Duration::from_secs(120);
    let up = run_bounded(
        chatctl(&state).args([
            "up",
            "--workers",
            &WORKERS.to_string(),
            "--port",
            &port.to_string(),
            "--base-port",
            &base.to_string(),
            "--bind",
            "127.0.0.1",
            "--detach",
        ]),
        up_limit,
    );
    assert!(
        up.success(),
        "{}\n{}",
        up.describe("chatctl up", up_limit),
        cluster.log_tails()
    );
    eprintln!("cluster up in {:.1} s", up.elapsed.as_secs_f64());

    let shot = state.join("browser.png");
    let url = format!("http://127.0.0.1:{port}/");
    let node_limit = Duration::from_secs(60);
    let node = run_bounded(
        Command::new("node")
            .arg("tests/js/browser.mjs")
            .arg(&url)
            .current_dir(&root)
            .env("BROWSER_SCREENSHOT", &shot),
        node_limit,
    );
    assert!(
        node.success(),
        "{}\n{}",
        node.describe("node tests/js/browser.mjs", node_limit),
        cluster.log_tails()
    );
    assert!(
        node.stdout.lines().any(|l| l.trim() == r#"{"ok":true}"#),
        "browser.mjs exited 0 without printing {{\"ok\":true}}:\n{}",
        node.describe("node tests/js/browser.mjs", node_limit)
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
