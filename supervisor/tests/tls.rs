//! TLS at HAProxy (SPEC §4): `--tls-cert` makes the public port speak HTTPS/WSS, with an
//! optional plain-HTTP redirect; and nothing private is exposed (control socket, HAProxy admin
//! socket, embedded Redis).

use chat_testkit::*;
use std::process::Command;

/// A self-signed certificate for 127.0.0.1 (openssl CLI): (combined PEM for HAProxy, cert).
fn make_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed (scripts/setup.sh)");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let pem = dir.join("haproxy.pem");
    let mut both = std::fs::read(&cert).unwrap();
    both.extend(std::fs::read(&key).unwrap());
    std::fs::write(&pem, both).unwrap();
    (pem, cert)
}

/// `curl -s -w FORMAT URL` (bounded to 5 s): what the format asked for.
fn curl_write_out(url: &str, format: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "-w",
            format,
            url,
        ])
        .output()
        .expect("curl (scripts/setup.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn official_client_over_wss_and_https_polling_with_an_http_redirect() {
    let certs = tempfile::tempdir().unwrap();
    let (pem, cert) = make_cert(certs.path());
    let redirect = free_port_range(1);
    let c = Cluster::up_with(
        2,
        &[
            "--tls-cert",
            pem.to_str().unwrap(),
            "--http-redirect-port",
            &redirect.to_string(),
        ],
    );
    let url = format!("https://127.0.0.1:{}", c.port);
    let ca = [("NODE_EXTRA_CA_CERTS", cert.as_os_str())];
    node_e2e(&url, &url, "websocket", &ca).await;
    node_e2e(&url, &url, "polling", &ca).await;

    // Plain HTTP on the redirect port answers 301 to the HTTPS port.
    let answer = curl_write_out(
        &format!("http://127.0.0.1:{redirect}/chat?x=1"),
        "%{http_code} %{redirect_url}",
    );
    assert_eq!(answer, format!("301 https://127.0.0.1:{}/chat?x=1", c.port));
    // A Host of the strict `name[:port]` form is used; anything else is refused with 400,
    // never copied into `Location`.
    let with_host = |host: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--max-time", "5", "-H"])
            .arg(format!("Host: {host}"))
            .args(["-w", "%{http_code} %{redirect_url}"])
            .arg(format!("http://127.0.0.1:{redirect}/chat"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        with_host("chat.example:8080"),
        format!("301 https://chat.example:{}/chat", c.port)
    );
    for evil in [
        "evil.example/phish?",
        "evil.example@attacker",
        "a b",
        "evil.example:80:81",
        "evil.example#",
        "",
    ] {
        let answer = with_host(evil);
        assert!(answer.starts_with("400"), "Host {evil:?}: {answer}");
    }
    // And the public port does not speak plain HTTP.
    let status = curl_write_out(
        &format!("http://127.0.0.1:{}/health", c.port),
        "%{http_code}",
    );
    assert_ne!(status, "200");
}

#[tokio::test]
async fn private_sockets_are_private_and_the_embedded_redis_needs_its_password() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let c = Cluster::up(1);
    let dir = c.dir.path();
    for (file, mode) in [
        ("chatctl.sock", 0o600),
        ("haproxy.sock", 0o600),
        ("haproxy-master.sock", 0o600),
        ("redis.sock", 0o700),
        ("redis.pass", 0o600),
    ] {
        let meta = std::fs::metadata(dir.join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
        if file.ends_with(".sock") {
            assert!(meta.file_type().is_socket(), "{file}");
        }
    }
    // The state dir itself is the owner's only.
    assert_eq!(
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o077,
        0
    );
    // Redis: no TCP port, and nothing without the password.
    let conf = std::fs::read_to_string(dir.join("redis.conf")).unwrap();
    assert!(conf.lines().any(|l| l == "port 0"), "{conf}");
    let out = Command::new("redis-cli")
        .arg("-s")
        .arg(dir.join("redis.sock"))
        .arg("PING")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOAUTH"));
    assert_eq!(c.redis(&["PING"]), "PONG");
    // HAProxy's admin interface is a Unix socket only: no stats page on any TCP bind.
    let cfg = std::fs::read_to_string(dir.join("haproxy.cfg")).unwrap();
    assert!(
        !cfg.contains("stats enable") && !cfg.contains("stats uri"),
        "{cfg}"
    );
    // The only TCP bind is the public port; HAProxy's exporter is a 0600 Unix socket.
    let tcp_binds: Vec<&str> = cfg
        .lines()
        .filter(|l| l.trim_start().starts_with("bind ") && !l.contains("bind unix@"))
        .collect();
    assert_eq!(tcp_binds.len(), 1, "only the public port: {tcp_binds:?}");
    assert!(
        cfg.lines()
            .filter(|l| l.contains("bind unix@"))
            .all(|l| l.ends_with("mode 600")),
        "{cfg}"
    );
    // The Redis password is never on a command line.
    let pass = std::fs::read_to_string(dir.join("redis.pass")).unwrap();
    for w in c.status()["workers"].as_array().unwrap() {
        let pid = w["pid"].as_u64().unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains(pass.trim()));
    }
}
