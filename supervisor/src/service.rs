//! systemd integration: `chatctl service` renders the unit in `packaging/` for this install,
//! and `notify` tells systemd (`Type=notify`) when the cluster is up and when it stops.

use std::path::Path;

const TEMPLATE: &str = include_str!("../../packaging/chatctl.service.tmpl");

/// Seconds systemd waits for the ordered stop beyond the workers' drain: HAProxy's
/// hard-stop and Redis's shutdown (AOF fsync) fit well within it.
const STOP_MARGIN_SECS: u64 = 30;

/// What the unit is filled in with.
pub struct Unit<'a> {
    pub chatctl: &'a Path,
    pub config: &'a Path,
    pub state_dir: &'a Path,
    pub drain_timeout_secs: u64,
    /// File descriptors for chatctl and its children: HAProxy needs two per connection.
    pub nofile: u64,
}

/// The unit file text.
pub fn render(u: &Unit) -> String {
    TEMPLATE
        .replace("{{chatctl}}", &u.chatctl.display().to_string())
        .replace("{{config}}", &u.config.display().to_string())
        .replace("{{state_dir}}", &u.state_dir.display().to_string())
        .replace(
            "{{timeout_stop}}",
            &(u.drain_timeout_secs + STOP_MARGIN_SECS).to_string(),
        )
        .replace("{{nofile}}", &u.nofile.to_string())
}

/// Sends `state` (`READY=1`, `STOPPING=1`, `STATUS=…`) to systemd when it started us with
/// `Type=notify`; does nothing otherwise. Failures are logged, never fatal: the cluster runs
/// the same without systemd.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = notify_to(Path::new(&path), state) {
        tracing::warn!("cannot notify systemd ({state}): {e}");
    }
}

/// `notify` to an explicit socket; a path starting with `@` is in the abstract namespace.
pub fn notify_to(path: &Path, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = path.as_os_str().as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(path)?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_text(chatctl: &Path) -> String {
        render(&Unit {
            chatctl,
            config: Path::new("/etc/chat/chat.toml"),
            state_dir: Path::new("/var/lib/chatctl"),
            drain_timeout_secs: 10,
            nofile: 65536,
        })
    }

    #[test]
    fn the_unit_has_what_systemd_needs_for_an_ordered_drain() {
        let text = unit_text(Path::new("/usr/local/bin/chatctl"));
        assert!(!text.contains("{{"), "{text}");
        for line in [
            "Type=notify",
            "KillMode=mixed",
            "TimeoutStopSec=40",
            "LimitNOFILE=65536",
            "Restart=on-failure",
            "ExecStart=/usr/local/bin/chatctl up --config /etc/chat/chat.toml --state-dir /var/lib/chatctl",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }

    /// `systemd-analyze verify` where the machine has it (Debian's `systemd` package).
    #[test]
    fn systemd_analyze_verifies_the_unit() {
        let Ok(analyze) = which("systemd-analyze") else {
            eprintln!("systemd-analyze not installed: unit not verified");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        // ExecStart must name an executable that exists: this test binary stands in.
        let exe = std::env::current_exe().unwrap();
        let path = dir.path().join("chatctl.service");
        std::fs::write(&path, unit_text(&exe)).unwrap();
        let out = std::process::Command::new(analyze)
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Offline (no systemd as PID 1) it may warn about the manager; it must not complain
        // about our unit.
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("chatctl.service"))
            .collect();
        assert!(ours.is_empty(), "{stderr}");
    }

    fn which(name: &str) -> Result<std::path::PathBuf, ()> {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or(())
    }

    #[test]
    fn notify_reaches_a_datagram_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        notify_to(&path, "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
