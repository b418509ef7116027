//! Secrets and exposure (SPEC §4, issue 10): the Redis password stays off command lines,
//! status and logs; short auth secrets, loose state dirs and planted symlinks are refused; the
//! open-door warning.

use chat_testkit::cluster::chatctl_at;
use chat_testkit::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

const SECRET: &str = "HardeningSecret4711";

/// Every file under `dir`, read as text (lossy), joined.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push_str(&all_text(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

#[tokio::test]
async fn a_redis_url_password_stays_off_command_lines_status_and_logs() {
    let port = free_port_range(1);
    let dir = tempfile::tempdir().unwrap();
    let _redis = Reaped::spawn(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--requirepass", SECRET])
            .arg("--dir")
            .arg(dir.path()),
    );
    wait_until("redis to accept connections", WAIT, || {
        std::future::ready(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    })
    .await;
    let url = format!("redis://:{SECRET}@127.0.0.1:{port}");
    let c = Cluster::up_with(2, &["--redis", &url]);
    let s = c
        .wait_status("2 workers up in haproxy", |s| all_up(s, 2))
        .await;
    // The supervisor's own command line holds what the operator typed; its children's must not.
    let supervisor = s["supervisor"]["pid"].as_u64().unwrap() as u32;
    for pid in Cluster::our_pids(&s)
        .into_iter()
        .filter(|p| *p != supervisor)
    {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains(SECRET), "pid {pid}: {cmdline}");
    }
    let json = c.ok(&["status", "--json"]);
    assert!(!json.contains(SECRET), "{json}");
    let table = c.ok(&["status"]);
    assert!(!table.contains(SECRET), "{table}");
    // And the cluster works: a login lands on a worker that reached Redis with the password.
    let (_client, welcome) = login(&c.url(), "alice").await;
    assert!(!welcome.is_null(), "login through HAProxy");
    let logs = all_text(&c.path().join("logs"));
    assert!(!logs.contains(SECRET), "the password is in a log");
}

fn write_config(dir: &Path, secret: &str) -> String {
    let path = dir.join("chat.toml");
    std::fs::write(&path, format!("[auth]\nsecret = \"{secret}\"\n")).unwrap();
    path.display().to_string()
}

#[test]
fn a_short_auth_secret_is_refused_by_up_and_token() {
    let conf_dir = tempfile::tempdir().unwrap();
    let config = write_config(conf_dir.path(), "tooshort");
    let state = tempfile::tempdir().unwrap();
    let (port, base) = (free_port_range(1), free_port_range(4));
    let out = chatctl_at(
        state.path(),
        &[
            "up",
            "--config",
            &config,
            "--port",
            &port.to_string(),
            "--base-port",
            &base.to_string(),
            "--workers",
            "1",
        ],
    );
    assert!(!out.success(), "{}", out.describe("up"));
    assert!(out.stderr.contains("at least 32"), "{}", out.stderr);
}

#[test]
fn a_loose_state_dir_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let state = parent.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o770)).unwrap();
    let out = chatctl_at(&state, &["up", "--workers", "1"]);
    assert!(!out.success(), "{}", out.describe("up"));
    assert!(
        out.stderr.contains("chmod 700") && out.stderr.contains(&state.display().to_string()),
        "{}",
        out.stderr
    );
}

#[test]
fn a_state_dir_owned_by_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: chown to another uid needs root");
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let state = parent.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let out = chatctl_at(&state, &["up", "--workers", "1"]);
    assert!(!out.success(), "{}", out.describe("up"));
    assert!(out.stderr.contains("owned by uid 65534"), "{}", out.stderr);
}

#[tokio::test]
async fn a_planted_symlink_is_not_followed_and_modes_are_private() {
    // redis.conf is written before anything starts: a symlink there
    // makes `up` fail, and the link's target stays as it was.
    let state = chat_testkit::redis::short_tempdir("hrd");
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), "precious").unwrap();
    let (port, base) = (free_port_range(1), free_port_range(4));
    let args = [
        "up",
        "--workers",
        "1",
        "--port",
        &port.to_string(),
        "--base-port",
        &base.to_string(),
        "--bind",
        "127.0.0.1",
        "--detach",
    ];
    // Plant links at every private file name chatctl writes before it starts a child.
    let mut planted = Vec::new();
    for name in ["redis.conf", "haproxy.cfg"] {
        let link = state.path().join(name);
        if std::os::unix::fs::symlink(victim.path(), &link).is_ok() {
            planted.push(link);
        }
    }
    let out = chatctl_at(state.path(), &args);
    let _ = chatctl_at(state.path(), &["down"]);
    assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "precious");
    assert!(
        !out.success(),
        "{}",
        out.describe("up over planted symlinks")
    );

    // Without the links: the state dir is 0700 and the control socket 0600.
    for link in planted {
        let _ = std::fs::remove_file(link);
    }
    let c = Cluster::up_with(1, &[]);
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(c.path()), 0o700);
    assert_eq!(mode(&c.path().join("chatctl.sock")), 0o600);
}

fn up_stderr(extra: &[&str], config: Option<&str>) -> String {
    let state = chat_testkit::redis::short_tempdir("hw");
    let (port, base) = (free_port_range(1), free_port_range(4));
    let (port, base) = (port.to_string(), base.to_string());
    let mut args = vec![
        "up",
        "--workers",
        "1",
        "--port",
        &port,
        "--base-port",
        &base,
        "--detach",
    ];
    if let Some(c) = config {
        args.extend(["--config", c]);
    }
    args.extend_from_slice(extra);
    let out = chatctl_at(state.path(), &args);
    let _ = chatctl_at(state.path(), &["down"]);
    assert!(out.success(), "{}", out.describe("up"));
    out.stderr
}

#[test]
fn up_warns_once_when_auth_is_off_on_a_public_bind() {
    const LINE: &str = "can log in as anyone";
    let stderr = up_stderr(&[], None);
    assert_eq!(stderr.matches(LINE).count(), 1, "{stderr}");
    assert!(stderr.contains("chatctl token"), "{stderr}");
    let stderr = up_stderr(&["--bind", "127.0.0.1"], None);
    assert!(!stderr.contains(LINE), "{stderr}");
    let conf_dir = tempfile::tempdir().unwrap();
    let config = write_config(conf_dir.path(), &"k".repeat(32));
    let stderr = up_stderr(&[], Some(&config));
    assert!(!stderr.contains(LINE), "{stderr}");
}
