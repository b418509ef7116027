//! Processes by pid: liveness, signals, a guard that kills on drop, bounded runs with
//! captured output, and where the workspace's binaries are.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Is `pid` running (present and not a zombie)?
pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Sends `sig` (`libc::SIGKILL`, …) to `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid the test took from a process it started; no memory is touched.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Waits until none of `pids` runs any more; names the survivors when it gives up.
pub async fn wait_pids_gone(what: &str, pids: &[u32], limit: Duration) {
    crate::poll(what, limit, Duration::from_millis(100), || {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
        let r = if alive.is_empty() {
            Ok(())
        } else {
            Err(format!("still running: {alive:?}"))
        };
        std::future::ready(r)
    })
    .await
}

/// Kills a child we spawned (by its handle, so by pid) when dropped, so a failing test leaves
/// nothing running.
pub struct Reaped(pub Child);

impl Reaped {
    /// Spawns `cmd` with its output discarded, guarded.
    pub fn spawn(cmd: &mut Command) -> Reaped {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e} (scripts/setup.sh installs it)"));
        Reaped(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A binary of this workspace (`chat-worker`, `chatctl`, `chat-bench`), beside the running
/// test binary's `deps/` folder, where cargo puts it.
pub fn bin(name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().expect("deps/");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("target/<profile>")
    } else {
        dir
    };
    dir.join(name)
}

/// What a bounded child run produced.
pub struct Finished {
    /// `None` when it ran past its time limit (it was then killed).
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    limit: Duration,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The exit code (None if killed by a signal or past its limit).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// A failure message: how it ended, and both outputs.
    pub fn describe(&self, what: &str) -> String {
        let how = match self.status {
            Some(s) => format!("exited with {s}"),
            None => format!("timed out after {} s and was killed", self.limit.as_secs()),
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
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Finished {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    // A waiter thread reaps the child; this thread signals it by pid if it overstays.
    let pid = child.id();
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait().ok());
    });
    let status = match done.recv_timeout(limit) {
        Ok(s) => s,
        Err(_) => {
            signal(pid, libc::SIGTERM);
            if done.recv_timeout(Duration::from_secs(5)).is_err() {
                signal(pid, libc::SIGKILL);
                let _ = done.recv_timeout(Duration::from_secs(5));
            }
            None
        }
    };
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
        limit,
    }
}
