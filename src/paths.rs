//! Where everything lives in a state dir (SPEC §2). Built in one place so the supervisor,
//! `chatctl` subcommands and tests agree.

use std::path::{Path, PathBuf};

/// Unix socket paths are limited to 107 bytes by the kernel (`sun_path`).
pub const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// `root` is made absolute against the current directory, so children and later
    /// `chatctl` calls from elsewhere agree on it.
    pub fn new(root: impl AsRef<Path>) -> StateDir {
        let root = root.as_ref();
        let root = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(root))
                .unwrap_or_else(|_| root.to_path_buf())
        };
        StateDir { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The control socket (mode 0600).
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("chatctl.sock")
    }
    pub fn haproxy_cfg(&self) -> PathBuf {
        self.root.join("haproxy.cfg")
    }
    /// HAProxy's admin (stats) socket, runtime API of the current HAProxy worker.
    pub fn haproxy_admin_socket(&self) -> PathBuf {
        self.root.join("haproxy.sock")
    }
    /// HAProxy's master CLI (`show proc`, `reload`).
    pub fn haproxy_master_socket(&self) -> PathBuf {
        self.root.join("haproxy-master.sock")
    }
    pub fn redis_dir(&self) -> PathBuf {
        self.root.join("redis")
    }
    pub fn redis_socket(&self) -> PathBuf {
        self.root.join("redis.sock")
    }
    /// The embedded Redis's generated password (mode 0600).
    pub fn redis_password(&self) -> PathBuf {
        self.root.join("redis.pass")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// `logs/NAME.log` for `worker-N`, `haproxy`, `redis`, `chatctl`.
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs_dir().join(format!("{name}.log"))
    }
    /// The supervisor's pid.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("chatctl.pid")
    }

    /// The longest socket path must fit `sun_path`; say so up front rather than fail later.
    pub fn check_socket_paths(&self) -> Result<(), String> {
        for p in [
            self.control_socket(),
            self.haproxy_admin_socket(),
            self.haproxy_master_socket(),
            self.redis_socket(),
        ] {
            let len = p.as_os_str().len();
            if len > MAX_SOCKET_PATH {
                return Err(format!(
                    "state dir path is too long for Unix sockets ({} is {len} bytes, the limit is {MAX_SOCKET_PATH}): use a shorter --state-dir",
                    p.display()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_absolute_and_named() {
        let s = StateDir::new("/tmp/x");
        assert_eq!(s.control_socket(), PathBuf::from("/tmp/x/chatctl.sock"));
        assert_eq!(s.log("worker-0"), PathBuf::from("/tmp/x/logs/worker-0.log"));
        assert!(StateDir::new("rel").root().is_absolute());
    }

    #[test]
    fn overlong_socket_paths_are_refused() {
        let s = StateDir::new(format!("/tmp/{}", "a".repeat(120)));
        assert!(s.check_socket_paths().unwrap_err().contains("too long"));
        assert!(StateDir::new("/tmp/short").check_socket_paths().is_ok());
    }
}
