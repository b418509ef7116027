//! Child processes: spawned in their own process group (Ctrl-C on the terminal reaches only
//! the supervisor, which then stops them in order), with PR_SET_PDEATHSIG so that nothing is
//! orphaned if the supervisor itself dies, optionally pinned to one core, and with their
//! output pumped line by line into capped log files (and the terminal in foreground mode).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// A log file is rotated to `NAME.log.1` past this size, so logs never fill the disk.
pub const LOG_CAP_BYTES: u64 = 16 * 1024 * 1024;

/// Whether (and how) a child's lines are copied to chatctl's stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// Detached: the log file only.
    Off,
    /// `NAME | line`, as PM2 and docker compose print.
    Text,
    /// One JSON object per line with a `child` field (`--log-format json`), so a collector
    /// reading the journal parses every line.
    Json,
}

/// One child's log: a size-capped file plus, in foreground mode, the terminal.
pub struct LogSink {
    name: String,
    path: PathBuf,
    file: Mutex<Option<(std::fs::File, u64)>>,
    echo: Echo,
}

/// `line` of child `name` as one JSON object: a worker's JSON line gains `"child"`; any
/// other line (HAProxy, Redis) is wrapped with a timestamp.
pub fn json_echo(name: &str, line: &str) -> String {
    let child = serde_json::Value::from(name).to_string();
    let trimmed = line.trim();
    if trimmed.starts_with('{')
        && trimmed.ends_with('}')
        && serde_json::from_str::<serde_json::Value>(trimmed).is_ok()
    {
        let rest = trimmed[1..].trim_start();
        let sep = if rest.starts_with('}') { "" } else { "," };
        return format!("{{\"child\":{child}{sep}{rest}");
    }
    serde_json::json!({
        "timestamp": crate::logs::timestamp(),
        "child": name,
        "message": line,
    })
    .to_string()
}

impl LogSink {
    pub fn new(name: &str, path: PathBuf, echo: Echo) -> Arc<LogSink> {
        Arc::new(LogSink {
            name: name.to_owned(),
            path,
            file: Mutex::new(None),
            echo,
        })
    }

    pub fn line(&self, line: &str) {
        match self.echo {
            Echo::Off => {}
            Echo::Text => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{:>10} | {line}", self.name);
            }
            Echo::Json => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", json_echo(&self.name, line));
            }
        }
        let Ok(mut guard) = self.file.lock() else {
            return;
        };
        if guard.is_none() {
            let f = open_private_append(&self.path);
            if let Ok(f) = f {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                *guard = Some((f, len));
            }
        }
        if let Some((f, len)) = guard.as_mut() {
            let stamped = format!("{} {line}", crate::logs::timestamp());
            if writeln!(f, "{stamped}").is_ok() {
                *len += stamped.len() as u64 + 1;
            }
            if *len > LOG_CAP_BYTES {
                let mut rotated = self.path.clone().into_os_string();
                rotated.push(".1");
                let _ = std::fs::rename(&self.path, rotated);
                *guard = None;
            }
        }
    }
}

/// Copies `reader` line by line into `sink` until EOF.
pub fn pump(reader: impl AsyncRead + Unpin + Send + 'static, sink: Arc<LogSink>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink.line(&line);
        }
    });
}

/// Prepares `cmd` to run in its own process group, die with the supervisor, and (when
/// `core` is given) run only on that core.
pub fn harden(cmd: &mut Command, core: Option<u32>) {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::{getppid, setpgid, Pid};
    let supervisor = Pid::this();
    // The set is built here, before fork: the closure then only makes syscalls.
    let mut pinned = None;
    if let Some(core) = core {
        let mut set = CpuSet::new();
        if set.set(core as usize).is_ok() {
            pinned = Some(set);
        }
    }
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe syscalls (setpgid, prctl, getppid, sched_setaffinity).
    unsafe {
        cmd.pre_exec(move || {
            // Failures fail the spawn (not ignored): an unhardened worker could outlive us.
            setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)?;
            // The supervisor may have died between fork and prctl: then nobody would stop us.
            if getppid() != supervisor {
                return Err(std::io::Error::other(
                    "the supervisor exited during the spawn",
                ));
            }
            if let Some(set) = &pinned {
                sched_setaffinity(Pid::from_raw(0), set)?;
            }
            Ok(())
        });
    }
}

/// The CPUs this process may run on (its `sched_getaffinity` set); empty if unreadable.
pub fn allowed_cpus() -> Vec<u32> {
    use nix::sched::{sched_getaffinity, CpuSet};
    let Ok(set) = sched_getaffinity(nix::unistd::Pid::from_raw(0)) else {
        return Vec::new();
    };
    (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .map(|c| c as u32)
        .collect()
}

/// The core worker `index` is pinned to: the (index mod n)-th CPU of the `allowed` set
/// (from `sched_getaffinity`), so clusters in a cpuset never pile onto core 0.
pub fn core_for(allowed: &[u32], index: usize) -> Option<u32> {
    if allowed.is_empty() {
        return None;
    }
    allowed.get(index % allowed.len()).copied()
}

/// Spawns `cmd` with its stdout and stderr pumped into `sink`.
pub fn spawn_logged(cmd: &mut Command, sink: Arc<LogSink>) -> std::io::Result<Child> {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn()?;
    if let Some(out) = child.stdout.take() {
        pump(out, sink.clone());
    }
    if let Some(err) = child.stderr.take() {
        pump(err, sink);
    }
    Ok(child)
}

/// Sends `sig` to `pid`, a child this supervisor spawned and has not reaped yet (so the pid
/// cannot have been reused). A child that is already gone is not an error here.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Finds `name` on PATH (or takes it as a path when it has a slash).
pub fn find_binary(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The `chat-worker` binary: `CHATCTL_WORKER_BIN`, else beside `chatctl`, else on PATH.
pub fn worker_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHATCTL_WORKER_BIN") {
        return Some(PathBuf::from(p));
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("chat-worker")));
    sibling
        .filter(|p| p.is_file())
        .or_else(|| find_binary(Path::new("chat-worker")))
}

/// Soft RLIMIT_NOFILE raised to the hard limit; returns the limit now in force. Children
/// inherit it, and HAProxy's maxconn is sized from it.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// CPU % and RSS of some processes, and the machine line, sampled through sysinfo.
#[derive(Default)]
pub struct UsageSample {
    /// pid → (CPU % of one core over the sample, RSS bytes).
    pub processes: std::collections::HashMap<u32, (f64, u64)>,
    pub machine: Option<chat::control::MachineStatus>,
}

/// Samples `pids` and the machine twice, `interval` apart: CPU figures are what was used in
/// between (a single read would only give totals since start).
pub async fn sample_usage(pids: &[u32], interval: std::time::Duration) -> UsageSample {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
    let Ok(mut sys) = System::new() else {
        return UsageSample::default();
    };
    let wanted: Vec<Pid> = pids.iter().map(|&p| Pid::from_u32(p)).collect();
    let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
    sys.refresh_processes_specifics(ProcessesToUpdate::Some(&wanted), true, kind);
    sys.refresh_cpu_usage();
    let cpu_ms = |sys: &System, pid: u32| {
        sys.process(Pid::from_u32(pid))
            .map(|p| p.accumulated_cpu_time())
    };
    let before: Vec<Option<u64>> = pids.iter().map(|&p| cpu_ms(&sys, p)).collect();
    tokio::time::sleep(interval).await;
    sys.refresh_processes_specifics(ProcessesToUpdate::Some(&wanted), true, kind);
    sys.refresh_cpu_usage();
    sys.refresh_memory();
    let span_ms = interval.as_secs_f64() * 1000.0;
    let mut sample = UsageSample::default();
    for (&pid, before) in pids.iter().zip(before) {
        let Some(p) = sys.process(Pid::from_u32(pid)) else {
            continue;
        };
        let used = before.map_or(0, |b| p.accumulated_cpu_time().saturating_sub(b));
        sample
            .processes
            .insert(pid, (used as f64 / span_ms * 100.0, p.memory()));
    }
    let load = System::load_average().ok();
    sample.machine = load.map(|l| chat::control::MachineStatus {
        cpus: sys.cpus().len() as u32,
        cpu_percent: (f64::from(sys.global_cpu_usage()) * 10.0).round() / 10.0,
        load: [l.one, l.five, l.fifteen],
        memory_total_bytes: sys.total_memory(),
        memory_available_bytes: sys.available_memory(),
    });
    sample
}

/// Opens a log for appending: created 0600 (mode at open), never through a symlink.
pub fn open_private_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn samples_our_own_usage_and_the_machine() {
        let me = std::process::id();
        let sample = sample_usage(&[me], std::time::Duration::from_millis(50)).await;
        let (cpu, rss) = sample.processes[&me];
        assert!(rss > 1024 * 1024 && cpu >= 0.0, "{cpu} {rss}");
        let m = sample.machine.unwrap();
        assert!(m.cpus >= 1 && m.memory_total_bytes >= m.memory_available_bytes);
    }

    #[test]
    fn log_sink_rotates_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.log");
        let sink = LogSink::new("w", path.clone(), Echo::Off);
        let line = "x".repeat(1024 * 1024);
        for _ in 0..20 {
            sink.line(&line);
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size <= LOG_CAP_BYTES + line.len() as u64 + 1, "{size}");
        assert!(dir.path().join("w.log.1").exists());
    }

    #[test]
    fn echoed_json_lines_name_their_child() {
        let worker = json_echo("worker-0", r#"{"timestamp":"t","level":"INFO"}"#);
        let v: serde_json::Value = serde_json::from_str(&worker).unwrap();
        assert_eq!(
            (v["child"].as_str(), v["level"].as_str()),
            (Some("worker-0"), Some("INFO"))
        );
        let empty: serde_json::Value = serde_json::from_str(&json_echo("w", "{}")).unwrap();
        assert_eq!(empty["child"], "w");
        let text: serde_json::Value =
            serde_json::from_str(&json_echo("haproxy", "[NOTICE] \"quoted\" {x")).unwrap();
        assert_eq!(text["message"], "[NOTICE] \"quoted\" {x");
        assert_eq!(text["child"], "haproxy");
    }

    #[test]
    fn finds_binaries_on_path() {
        assert!(find_binary(Path::new("sh")).is_some());
        assert!(find_binary(Path::new("no-such-binary-here")).is_none());
    }
}

#[cfg(test)]
mod core_tests {
    use super::core_for;

    #[test]
    fn wraps_within_the_allowed_set() {
        let allowed = [1, 3];
        assert_eq!(core_for(&allowed, 0), Some(1));
        assert_eq!(core_for(&allowed, 1), Some(3));
        assert_eq!(core_for(&allowed, 2), Some(1));
        assert_eq!(core_for(&[], 0), None);
    }
}
