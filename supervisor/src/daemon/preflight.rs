//! Everything `up` checks before starting anything (so a failure leaves nothing behind), and
//! the state dir's private files.

use crate::plan::worker_port;
use crate::procs;
use crate::settings::{RedisChoice, Settings};
use anyhow::{bail, Context};
use chat::paths::StateDir;
use std::path::{Path, PathBuf};

/// The binaries `up` found.
pub struct Preflight {
    pub worker_bin: PathBuf,
    pub redis_bin: PathBuf,
    pub haproxy_bin: PathBuf,
}

pub fn preflight(settings: &Settings, state_dir: &StateDir) -> anyhow::Result<Preflight> {
    if let Some(secret) = &settings.auth_secret {
        chat::auth::check_secret(secret).map_err(anyhow::Error::msg)?;
    }
    let worker_bin = procs::worker_binary().context(
        "chat-worker not found beside chatctl or on PATH: build it with `cargo build --release` (or set CHATCTL_WORKER_BIN)",
    )?;
    let redis_bin = procs::find_binary(Path::new("redis-server"));
    if settings.redis == RedisChoice::Embedded && redis_bin.is_none() {
        bail!("redis-server not found: install the `redis-server` package (scripts/setup.sh does), or pass --redis URL");
    }
    let haproxy_bin = procs::find_binary(&settings.haproxy.binary);
    if settings.haproxy.enabled && haproxy_bin.is_none() {
        bail!(
            "{} not found: install the `haproxy` package (scripts/setup.sh does)",
            settings.haproxy.binary.display()
        );
    }
    prepare_state_dir(state_dir)?;
    check_ports(settings)?;
    Ok(Preflight {
        worker_bin,
        redis_bin: redis_bin.unwrap_or_else(|| PathBuf::from("redis-server")),
        haproxy_bin: haproxy_bin.unwrap_or_else(|| PathBuf::from("haproxy")),
    })
}

/// Creates the state dir (owner only), refuses one others could tamper with, and checks it
/// is writable.
fn prepare_state_dir(state_dir: &StateDir) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    state_dir.check_socket_paths().map_err(anyhow::Error::msg)?;
    let root = state_dir.root();
    // Mode at creation: the dir never exists with looser permissions, even briefly.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| {
            format!(
                "cannot create {}: choose a writable --state-dir",
                root.display()
            )
        })?;
    check_private_dir(root).map_err(anyhow::Error::msg)?;
    {
        use std::os::unix::fs::PermissionsExt;
        // A dir we own that was created 0755 before us: tighten it, as only we need it.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot chmod 700 {}", root.display()))?;
    }
    for dir in [state_dir.logs_dir(), state_dir.redis_dir()] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| {
                format!(
                    "cannot create {}: choose a writable --state-dir",
                    dir.display()
                )
            })?;
    }
    let probe = root.join(".write-test");
    write_private(&probe, "ok").with_context(|| {
        format!(
            "state dir {} is not writable: fix its permissions or choose another --state-dir",
            root.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The state dir holds the control socket and the Redis password: it must be a real directory
/// (not a symlink), owned by us, and not writable by group or others.
pub fn check_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot stat {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!(
            "state dir {} is not a directory (a symlink?): choose another --state-dir",
            dir.display()
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "state dir {} is owned by uid {}, not by us (uid {me}): use a dir of your own, or `chown {me} {}`",
            dir.display(),
            meta.uid(),
            dir.display()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "state dir {} is writable by group or others (mode {:o}): run `chmod 700 {}`",
            dir.display(),
            meta.mode() & 0o7777,
            dir.display()
        ));
    }
    Ok(())
}

/// The one warning `up` prints when anyone who reaches the public port can log in as anyone.
pub fn open_door_warning(settings: &Settings) -> Option<String> {
    if settings.auth_secret.is_some() {
        return None;
    }
    let bind = settings.haproxy.bind.as_str();
    let loopback = bind == "localhost"
        || bind
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| {
        format!(
            "auth is off and the public port binds {bind}: anyone who reaches port {} can log in as anyone; \
             turn auth on with `[auth] secret` in chat.toml (32+ bytes) and issue tokens with `chatctl token USER`",
            settings.port
        )
    })
}

/// The public port, every worker port and the redirect port must be free.
fn check_ports(settings: &Settings) -> anyhow::Result<()> {
    let mut ports = vec![(settings.port, "--port")];
    for id in 0..settings.workers {
        if let Some(p) = worker_port(settings.base_port, id) {
            ports.push((p, "--base-port"));
        }
    }
    if let (Some(p), true) = (
        settings.haproxy.http_redirect_port,
        settings.haproxy.enabled,
    ) {
        ports.push((p, "--http-redirect-port"));
    }
    for (port, flag) in ports {
        let addr = if flag == "--base-port" {
            settings
                .advertise
                .clone()
                .unwrap_or_else(|| "127.0.0.1".to_owned())
        } else {
            settings.haproxy.bind.clone()
        };
        if let Err(e) = std::net::TcpListener::bind((addr.as_str(), port)) {
            bail!("port {port} on {addr} is not free ({e}): choose another with {flag}");
        }
    }
    Ok(())
}

/// `bytes` random bytes as hex (the embedded Redis password).
pub fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file only its owner can read (it may hold a password). A symlink planted at
/// `path` is not followed: the open fails (ELOOP) and the link's target stays untouched.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("chatctl-preflight-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_group_writable_state_dir_is_refused() {
        let dir = temp_dir("mode");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = check_private_dir(&dir).unwrap_err();
        assert!(err.contains("chmod 700"), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_private_dir(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn write_private_does_not_follow_a_symlink() {
        let dir = temp_dir("link");
        let target = dir.join("target");
        std::fs::write(&target, "original").unwrap();
        let link = dir.join("haproxy.cfg");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_private(&link, "evil").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "original");
        let fresh = dir.join("fresh");
        write_private(&fresh, "x").unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
