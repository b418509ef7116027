//! HAProxy: the configuration (rendered from `haproxy/haproxy.cfg.tmpl`, a pure function),
//! and the runtime plumbing — validation with `haproxy -c`, the master process, reloads
//! confirmed through the admin socket, and runtime API commands. See `haproxy/README.md`.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TEMPLATE: &str = include_str!("../../haproxy/haproxy.cfg.tmpl");
/// The backend that holds the chat workers; runtime API commands name it.
pub const BACKEND: &str = "chat_workers";

/// One server line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `w<id>` locally; also the stickiness cookie value.
    pub name: String,
    pub addr: String,
    pub port: u16,
}

/// Everything the template needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgView {
    pub generation: u64,
    pub bind: String,
    pub port: u16,
    pub maxconn: u64,
    pub server_maxconn: u64,
    pub admin_socket: PathBuf,
    /// HAProxy's Prometheus exporter, read by chatctl's `--metrics` endpoint.
    pub metrics_socket: PathBuf,
    pub hard_stop_after_secs: u64,
    /// `nbthread`; `None` renders no line (HAProxy's default, a thread per CPU).
    pub threads: Option<u32>,
    pub timeout_connect: u64,
    pub timeout_client: u64,
    pub timeout_server: u64,
    pub timeout_tunnel: u64,
    pub timeout_client_fin: u64,
    /// A PEM (certificate + key) makes the public port speak HTTPS/WSS.
    pub tls_cert: Option<PathBuf>,
    /// With TLS: also answer plain HTTP on this port with a redirect to HTTPS.
    pub http_redirect_port: Option<u16>,
    pub servers: Vec<Server>,
}

/// Where HAProxy's Prometheus exporter listens: a Unix socket in the state dir (mode 0600),
/// so its figures never reach the public port; chatctl's `--metrics` endpoint reads it.
pub fn metrics_socket(state_dir: &chat::paths::StateDir) -> PathBuf {
    state_dir.root().join("haproxy-metrics.sock")
}

impl CfgView {
    /// The view of generation `generation` for `settings`, with `servers` behind it: the one
    /// place that maps settings to HAProxy's configuration (`up` renders it, `check` tests it).
    pub fn new(
        settings: &crate::settings::Settings,
        state_dir: &chat::paths::StateDir,
        generation: u64,
        fd_limit: u64,
        servers: Vec<Server>,
    ) -> CfgView {
        let h = &settings.haproxy;
        CfgView {
            generation,
            bind: h.bind.clone(),
            port: settings.port,
            maxconn: maxconn_for_fd_limit(fd_limit),
            server_maxconn: settings.limits.max_connections_per_worker as u64,
            admin_socket: state_dir.haproxy_admin_socket(),
            metrics_socket: metrics_socket(state_dir),
            hard_stop_after_secs: h.timeout_tunnel,
            threads: h.threads,
            timeout_connect: h.timeout_connect,
            timeout_client: h.timeout_client,
            timeout_server: h.timeout_server,
            timeout_tunnel: h.timeout_tunnel,
            timeout_client_fin: h.timeout_client_fin,
            tls_cert: h.tls_cert.clone(),
            http_redirect_port: h.http_redirect_port,
            servers,
        }
    }
}

/// The one naming rule for a local worker's server (and stickiness cookie): `w<id>` on a
/// single host; with `--advertise ADDR`, the host-independent member name.
pub fn server_name(advertise: Option<&str>, id: u32, port: u16) -> String {
    match advertise {
        Some(host) => crate::membership::server_name(host, port),
        None => format!("w{id}"),
    }
}

/// HAProxy needs two descriptors per proxied connection plus a few of its own: fit maxconn
/// to the descriptor limit, or it refuses to start.
pub fn maxconn_for_fd_limit(nofile: u64) -> u64 {
    (nofile.saturating_sub(256) / 2).max(64)
}

/// Whether a service member read from the shared Redis may become a server line: the host
/// is an IP address (v4 or v6) or a DNS name of letters, digits, dots and dashes, and the
/// port is 1–65535. Anyone who can write to that Redis writes these values; a host holding a
/// newline would otherwise add sections (even `program` ones) to every front door's config.
pub fn check_member(host: &str, port: u16) -> Result<(), String> {
    if port == 0 {
        return Err(format!("port {port} is not 1-65535"));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let labels_ok = host
        .split('.')
        .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    let chars_ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if host.is_empty() || host.len() > 253 || !labels_ok || !chars_ok {
        return Err(format!(
            "host {host:?} is neither an IP address nor a DNS name"
        ));
    }
    Ok(())
}

/// Every value substituted into the template must be one token: whitespace or a control
/// character (a newline above all) could end a directive and start another. The last line of
/// defence behind [`check_member`] and the settings' own checks.
fn one_token(what: &str, value: &str) -> anyhow::Result<()> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("refusing to render haproxy.cfg: {what} {value:?} is empty or holds whitespace or control characters");
    }
    Ok(())
}

/// Renders haproxy.cfg; an error (nothing rendered) when a value is not one clean token, so
/// that the caller keeps the configuration it has.
pub fn render(v: &CfgView) -> anyhow::Result<String> {
    one_token("bind address", &v.bind)?;
    one_token("admin socket", &v.admin_socket.display().to_string())?;
    one_token("metrics socket", &v.metrics_socket.display().to_string())?;
    if let Some(pem) = &v.tls_cert {
        one_token("TLS certificate", &pem.display().to_string())?;
    }
    let mut servers = String::new();
    for s in &v.servers {
        one_token("server name", &s.name)?;
        one_token("server address", &s.addr)?;
        // An IPv6 address needs brackets before `:port`.
        let addr = match s.addr.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{}]", s.addr),
            Err(_) => s.addr.clone(),
        };
        servers.push_str(&format!(
            "    server {name} {addr}:{port} cookie {name} check\n",
            name = s.name,
            port = s.port
        ));
    }
    let (tls_global, tls_bind) = match &v.tls_cert {
        Some(pem) => (
            "    ssl-default-bind-options ssl-min-ver TLSv1.2\n".to_owned(),
            format!(" ssl crt {} alpn http/1.1", pem.display()),
        ),
        None => (String::new(), String::new()),
    };
    let nbthread = v
        .threads
        .map(|n| format!("    nbthread {n}\n"))
        .unwrap_or_default();
    let redirect_frontend = match (v.tls_cert.is_some(), v.http_redirect_port) {
        (true, Some(p)) => format!(
            "\nfrontend chat_http_redirect\n    bind {bind}:{p}\n    http-request return status 400 content-type text/plain string \"bad Host\\n\" unless {{ req.hdr_cnt(host) eq 1 }} {{ req.hdr(host) -m reg ^[A-Za-z0-9.-]+(:[0-9]+)?$ }}\n    http-request redirect location https://%[req.hdr(host),regsub(:[0-9]+$,)]:{port}%[capture.req.uri] code 301\n",
            bind = v.bind,
            port = v.port
        ),
        _ => String::new(),
    };
    Ok(TEMPLATE
        .replace("{{generation}}", &v.generation.to_string())
        .replace("{{maxconn}}", &v.maxconn.to_string())
        .replace("{{server_maxconn}}", &v.server_maxconn.to_string())
        .replace("{{admin_socket}}", &v.admin_socket.display().to_string())
        .replace(
            "{{metrics_socket}}",
            &v.metrics_socket.display().to_string(),
        )
        .replace("{{hard_stop_after}}", &v.hard_stop_after_secs.to_string())
        .replace("{{nbthread}}", &nbthread)
        .replace("{{timeout_connect}}", &v.timeout_connect.to_string())
        .replace("{{timeout_client}}", &v.timeout_client.to_string())
        .replace("{{timeout_server}}", &v.timeout_server.to_string())
        .replace("{{timeout_tunnel}}", &v.timeout_tunnel.to_string())
        .replace("{{timeout_client_fin}}", &v.timeout_client_fin.to_string())
        .replace("{{tls_global}}", &tls_global)
        .replace("{{bind}}", &v.bind)
        .replace("{{port}}", &v.port.to_string())
        .replace("{{tls_bind}}", &tls_bind)
        .replace("{{redirect_frontend}}", &redirect_frontend)
        .replace("{{servers}}", servers.trim_end_matches('\n')))
}

/// `haproxy -c -f cfg`: refuse to use a configuration HAProxy itself rejects.
pub async fn validate(binary: &Path, cfg: &Path) -> anyhow::Result<()> {
    let out = tokio::process::Command::new(binary)
        .args(["-c", "-q", "-f"])
        .arg(cfg)
        .output()
        .await
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "haproxy rejected {}: {}",
            cfg.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Sends one command to a HAProxy CLI socket (admin or master) and returns the answer.
pub async fn cli(socket: &Path, command: &str) -> anyhow::Result<String> {
    let talk = async {
        let mut s = tokio::net::UnixStream::connect(socket)
            .await
            .with_context(|| format!("cannot reach {}", socket.display()))?;
        s.write_all(format!("{command}\n").as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, anyhow::Error>(out)
    };
    tokio::time::timeout(Duration::from_secs(5), talk)
        .await
        .with_context(|| format!("{} did not answer `{command}`", socket.display()))?
}

/// The generation the running HAProxy worker was configured with (`show info` description).
pub async fn running_generation(admin: &Path) -> Option<u64> {
    let info = cli(admin, "show info").await.ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("description: chat-generation-"))
        .and_then(|g| g.trim().parse().ok())
}

/// Parses `show stat` CSV into (server name, status) for the chat backend.
pub fn parse_server_states(csv: &str) -> Vec<(String, String)> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let (Some(px), Some(sv), Some(st)) = (
        cols.iter().position(|c| *c == "pxname"),
        cols.iter().position(|c| *c == "svname"),
        cols.iter().position(|c| *c == "status"),
    ) else {
        return Vec::new();
    };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let name = *f.get(sv)?;
            (f.get(px) == Some(&BACKEND) && name != "BACKEND" && name != "FRONTEND")
                .then(|| (name.to_owned(), f.get(st).copied().unwrap_or("").to_owned()))
        })
        .collect()
}

/// `set server chat_workers/NAME state ready|drain|maint`.
pub async fn set_server_state(admin: &Path, server: &str, state: &str) -> anyhow::Result<()> {
    let answer = cli(
        admin,
        &format!("set server {BACKEND}/{server} state {state}"),
    )
    .await?;
    if !answer.trim().is_empty() {
        bail!("haproxy: {}", answer.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> CfgView {
        CfgView {
            generation: 3,
            bind: "127.0.0.1".into(),
            port: 8080,
            maxconn: maxconn_for_fd_limit(20_000),
            server_maxconn: 30_000,
            admin_socket: "/state/haproxy.sock".into(),
            metrics_socket: "/state/haproxy-metrics.sock".into(),
            hard_stop_after_secs: 3600,
            threads: None,
            timeout_connect: 4,
            timeout_client: 60,
            timeout_server: 60,
            timeout_tunnel: 3600,
            timeout_client_fin: 10,
            tls_cert: None,
            http_redirect_port: None,
            servers: vec![
                Server {
                    name: "w0".into(),
                    addr: "127.0.0.1".into(),
                    port: 30001,
                },
                Server {
                    name: "w1".into(),
                    addr: "127.0.0.1".into(),
                    port: 30002,
                },
            ],
        }
    }

    #[test]
    fn renders_the_golden_file() {
        let golden = include_str!("../../haproxy/testdata/golden.cfg");
        let got = render(&view()).unwrap();
        if got != golden {
            panic!("render differs from haproxy/testdata/golden.cfg:\n{got}");
        }
    }

    #[test]
    fn nbthread_renders_only_when_set() {
        let mut v = view();
        assert!(!render(&v).unwrap().contains("nbthread"));
        v.threads = Some(1);
        let cfg = render(&v).unwrap();
        assert!(cfg.contains("    master-worker\n    nbthread 1\n"), "{cfg}");
    }

    #[test]
    fn tls_and_redirect_render_only_when_asked() {
        let mut v = view();
        assert!(!render(&v).unwrap().contains("ssl crt"));
        v.tls_cert = Some("/c.pem".into());
        v.http_redirect_port = Some(8081);
        let cfg = render(&v).unwrap();
        assert!(cfg.contains("bind 127.0.0.1:8080 ssl crt /c.pem alpn http/1.1"));
        assert!(cfg.contains("frontend chat_http_redirect\n    bind 127.0.0.1:8081"));
        // The Host check comes before the redirect that uses it.
        let check = cfg.find("http-request return status 400").unwrap();
        assert!(check < cfg.find("http-request redirect").unwrap());
    }

    #[test]
    fn members_must_be_an_ip_or_a_dns_name_and_a_port() {
        for (host, port) in [
            ("10.0.0.7", 30001),
            ("::1", 1),
            ("fe80::1", 65535),
            ("worker-3.chat.example", 8080),
            ("localhost", 80),
        ] {
            assert_eq!(check_member(host, port), Ok(()), "{host}:{port}");
        }
        for (host, port) in [
            ("10.0.0.7", 0),
            ("", 80),
            ("10.0.0.7\nlisten evil\n    bind :1", 80),
            ("a b", 80),
            ("host_name", 80),
            ("a..b", 80),
            ("-a.b", 80),
            ("a.b-", 80),
            ("h\u{7f}", 80),
            ("[::1]", 80),
            ("Ѐ.example", 80),
        ] {
            assert!(check_member(host, port).is_err(), "{host:?}:{port}");
        }
    }

    #[test]
    fn refuses_values_with_whitespace_or_control_characters() {
        let evil = [
            "127.0.0.1\nlisten evil",
            "127.0.0.1 backup",
            "127.0.0.1\t",
            "a\rb",
            "a\u{0}b",
            "",
        ];
        for bad in evil {
            let mut v = view();
            v.servers[1].addr = bad.into();
            assert!(render(&v).is_err(), "addr {bad:?}");
            let mut v = view();
            v.servers[0].name = bad.into();
            assert!(render(&v).is_err(), "name {bad:?}");
            let mut v = view();
            v.bind = bad.into();
            assert!(render(&v).is_err(), "bind {bad:?}");
            let mut v = view();
            v.admin_socket = bad.into();
            assert!(render(&v).is_err(), "admin socket {bad:?}");
            let mut v = view();
            v.tls_cert = Some(bad.into());
            assert!(render(&v).is_err(), "tls cert {bad:?}");
        }
    }

    #[test]
    fn ipv6_servers_are_bracketed() {
        let mut v = view();
        v.servers[0].addr = "fe80::1".into();
        assert!(render(&v)
            .unwrap()
            .contains("server w0 [fe80::1]:30001 cookie w0 check"));
    }

    #[test]
    fn maxconn_fits_the_fd_limit() {
        assert_eq!(maxconn_for_fd_limit(20_000), 9872);
        assert!(maxconn_for_fd_limit(100) >= 64);
    }

    #[test]
    fn parses_show_stat() {
        let csv = "# pxname,svname,qcur,status,weight\nchat,FRONTEND,,OPEN,\nchat_workers,w0,0,UP,1\nchat_workers,w1,0,MAINT,1\nchat_workers,BACKEND,0,UP,1\n";
        assert_eq!(
            parse_server_states(csv),
            vec![("w0".into(), "UP".into()), ("w1".into(), "MAINT".into())]
        );
    }
}
