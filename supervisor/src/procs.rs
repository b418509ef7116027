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

/// One child's log: a size-capped file plus, in foreground mode, the terminal.
pub struct LogSink {
    name: String,
    path: PathBuf,
    file: Mutex<Option<(std::fs::File, u64)>>,
    echo: bool,
}

impl LogSink {
    pub fn new(name: &str, path: PathBuf, echo: bool) -> Arc<LogSink> {
        Arc::new(LogSink {
            name: name.to_owned(),
            path,
            file: Mutex::new(None),
            echo,
        })
    }

    pub fn line(&self, line: &str) {
        if self.echo {
            // Prefixed by name, as PM2 and docker compose do.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{:>10} | {line}", self.name);
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
    let supervisor = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (setpgid, prctl, getppid, sched_setaffinity, _exit).
    unsafe {
        cmd.pre_exec(move || {
            // Failures are returned (not ignored): an unhardened worker could outlive us.
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor may have died between fork and prctl.
            if libc::getppid() != supervisor {
                libc::_exit(1);
            }
            if let Some(core) = core {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(core as usize, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// The CPUs this process may run on (its `sched_getaffinity` set); empty if unreadable.
pub fn allowed_cpus() -> Vec<u32> {
    // SAFETY: a zeroed cpu_set_t is valid, and the kernel writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as u32)
            .filter(|&c| libc::CPU_ISSET(c as usize, &set))
            .collect()
    }
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

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this supervisor spawned and has not reaped yet.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
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
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// CPU time (user + system, clock ticks) and RSS (bytes) of `pid` from /proc.
pub fn proc_usage(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some((ticks, pages * page))
}

/// Clock ticks per second for [`proc_usage`].
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}

/// Opens a log for appending: created 0600 (mode at open), never through a symlink.
pub fn open_private_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_usage() {
        let (_, rss) = proc_usage(std::process::id()).unwrap();
        assert!(rss > 1024 * 1024);
    }

    #[test]
    fn log_sink_rotates_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.log");
        let sink = LogSink::new("w", path.clone(), false);
        let line = "x".repeat(1024 * 1024);
        for _ in 0..20 {
            sink.line(&line);
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size <= LOG_CAP_BYTES + line.len() as u64 + 1, "{size}");
        assert!(dir.path().join("w.log.1").exists());
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
