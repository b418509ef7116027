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

/// Creates the state dir (owner only) and checks it is writable.
fn prepare_state_dir(state_dir: &StateDir) -> anyhow::Result<()> {
    state_dir.check_socket_paths().map_err(anyhow::Error::msg)?;
    for dir in [
        state_dir.root().to_path_buf(),
        state_dir.logs_dir(),
        state_dir.redis_dir(),
    ] {
        std::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "cannot create {}: choose a writable --state-dir",
                dir.display()
            )
        })?;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        // Only the owner may reach the sockets and the Redis password inside.
        let _ = std::fs::set_permissions(state_dir.root(), std::fs::Permissions::from_mode(0o700));
    }
    let probe = state_dir.root().join(".write-test");
    std::fs::write(&probe, b"ok").with_context(|| {
        format!(
            "state dir {} is not writable: fix its permissions or choose another --state-dir",
            state_dir.root().display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
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

/// Writes a file only its owner can read (it may hold a password).
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
