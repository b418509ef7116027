//! `chatctl`: one command to run a chat cluster (SPEC §2). `up` runs the supervisor (in the
//! foreground, or in the background with `--detach`); every other subcommand is a client of
//! it over the control socket, except `logs`, which reads the files itself.
//!
//! Layout (pure decisions, unit-tested, marked *):
//! - `cli` — the subcommands and flags (clap); `settings`* — flags + chat.toml merged.
//! - `control` — the control socket: serve, call, probe for a live/stale socket.
//! - `daemon/` — the supervisor, one job per module:
//!   - `lifecycle`* — a child's state as one step function `(state, event, now)`;
//!   - `children` — spawn, exit, backoff for workers, the embedded Redis and HAProxy alike;
//!   - `workers` — worker slots, health waits and checks; `frontdoor` — HAProxy config
//!     view, reloads, runtime API; `redis` — the embedded Redis (conf template*, PING);
//!   - `members` — multi-host registration; `status` — the report `chatctl status` shows;
//!   - `handlers/` — one handler per control request; `preflight` — checks before `up`,
//!     state-dir files; `wait` — `wait_until`; `http` — GET `/health`, `/metrics`;
//!   - `scrape` — the cluster's one `--metrics` endpoint.
//! - `policy`* — restart backoff; `plan`* — scale plans and ports; `haproxy` — render*,
//!   validate, admin socket; `membership` — the service's members in Redis.
//! - `procs` — child process plumbing (logs, limits, /proc); `logs` — `chatctl logs`;
//!   `status`* — the status table; `token` — login tokens; `check` — `chatctl check`;
//!   `client` — the subcommands that call a running supervisor; `metrics`* — merging
//!   Prometheus expositions; `service` — the systemd unit* and sd_notify.

mod check;
mod cli;
mod client;
mod control;
mod daemon;
mod haproxy;
mod logs;
mod membership;
mod metrics;
mod plan;
mod policy;
mod procs;
mod service;
mod settings;
mod status;
mod token;

use anyhow::{bail, Context};
use chat::config::FileConfig;
use chat::control::{Request, Response};
use chat::paths::StateDir;
use clap::Parser;
use cli::{Cli, Command, UpArgs};
use control::SocketProbe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Set in the environment of the background supervisor that `up --detach` starts.
const DETACHED_ENV: &str = "CHATCTL_DETACHED";

fn main() -> ExitCode {
    // clap exits with status 2 on usage errors, as SPEC §2 asks.
    let cli = Cli::parse();
    let log_json = cli.log_format == cli::LogFormat::Json;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        cli::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        cli::LogFormat::Json => logs.json().with_ansi(false).init(),
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chatctl: cannot start the tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if log_json => {
            // One more JSON line for the collector; `fields.message` keeps the prefix that
            // `up --detach` looks for.
            tracing::error!("chatctl: {e:#}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("chatctl: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => {
            let file = load_config(cli.config.as_ref()).map_err(anyhow::Error::msg)?;
            let log_json = cli.log_format == cli::LogFormat::Json;
            up(cli.state_dir.as_ref(), &file, args, log_json).await
        }
        Command::Check { up, json } => {
            let file = load_config(cli.config.as_ref());
            let state_dir = settings::state_dir(cli.state_dir.as_ref(), file.as_ref().ok());
            let report = check::check(file, &up, &state_dir).await;
            let ok = report.problems.is_empty();
            if json {
                let settings = report.settings.as_ref().map(|s| {
                    serde_json::json!({"workers": s.workers, "port": s.port, "base_port": s.base_port})
                });
                let obj = serde_json::json!({"ok": ok, "problems": report.problems, "settings": settings});
                println!("{obj}");
            } else if let (true, Some(s)) = (ok, &report.settings) {
                println!(
                    "OK: {} workers on ports {}.., HAProxy {}, state dir {}",
                    s.workers,
                    s.base_port,
                    if s.haproxy.enabled {
                        format!("on port {} (haproxy -c accepts the config)", s.port)
                    } else {
                        "off".to_owned()
                    },
                    state_dir.root().display()
                );
            } else {
                for p in &report.problems {
                    eprintln!("chatctl: {p}");
                }
            }
            if ok {
                Ok(())
            } else {
                // Every problem is printed already.
                std::process::exit(1)
            }
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "chatctl", &mut std::io::stdout());
            Ok(())
        }
        Command::Service => {
            let file = load_config(cli.config.as_ref()).map_err(anyhow::Error::msg)?;
            print!("{}", service_unit(&cli, &file)?);
            Ok(())
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(())
        }
        command => {
            let file = load_config(cli.config.as_ref()).map_err(anyhow::Error::msg)?;
            let state_dir = settings::state_dir(cli.state_dir.as_ref(), Some(&file));
            client::client(&state_dir, command).await
        }
    }
}

/// `--config`, else `./chat.toml` when present, else nothing.
fn load_config(path: Option<&PathBuf>) -> Result<FileConfig, String> {
    let (path, required) = match path {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from("chat.toml"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => FileConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(_) if !required => Ok(FileConfig::default()),
        Err(e) => Err(format!("cannot read config {}: {e}", path.display())),
    }
}

async fn up(
    state_flag: Option<&PathBuf>,
    file: &FileConfig,
    args: UpArgs,
    log_json: bool,
) -> anyhow::Result<()> {
    let state_dir = settings::state_dir(state_flag, Some(file));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut settings = settings::merge(&args, file, cores)
        .map_err(|errors| anyhow::anyhow!("{}", errors.join("; ")))?;
    settings.log_json = log_json;
    match control::probe(&state_dir.control_socket()).await {
        SocketProbe::Live(pid) => bail!(
            "a cluster is already up on {} (supervisor pid {pid}): use `chatctl status`, or `chatctl down` first",
            state_dir.root().display()
        ),
        SocketProbe::Foreign => bail!(
            "{} exists and is not a chatctl socket: remove it or choose another --state-dir",
            state_dir.control_socket().display()
        ),
        SocketProbe::Absent | SocketProbe::Stale => {}
    }
    if std::env::var_os(DETACHED_ENV).is_none() {
        // Printed once, by the `up` the operator runs (not again by a detached supervisor).
        if let Some(warning) = daemon::open_door_warning(&settings) {
            tracing::warn!("{warning}");
        }
    }
    if args.detach && std::env::var_os(DETACHED_ENV).is_none() {
        return detach(&state_dir, &settings).await;
    }
    let pre = daemon::preflight(&settings, &state_dir)?;
    let foreground = std::env::var_os(DETACHED_ENV).is_none();
    let sup = daemon::Supervisor::new(settings.clone(), state_dir.clone(), pre, foreground)?;
    let listener = control::bind(&state_dir.control_socket()).await?;
    let server = tokio::spawn({
        let sup = sup.clone();
        let stop = sup.clone();
        control::serve(listener, move |req| sup.clone().handle(req), async move {
            stop.wait_shutdown_requested().await
        })
    });
    // Bound before anything starts, so a taken address fails `up` cleanly.
    let metrics = daemon::bind_metrics(settings.metrics.as_ref()).await?;
    if let Err(e) = sup.start().await {
        sup.down().await;
        sup.request_shutdown();
        let _ = server.await;
        let _ = std::fs::remove_file(state_dir.control_socket());
        return Err(e);
    }
    let scheme = if settings.haproxy.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let host = if settings.haproxy.bind == "0.0.0.0" {
        "localhost"
    } else {
        settings.haproxy.bind.as_str()
    };
    if let Some(listener) = metrics {
        let stop = sup.clone();
        tracing::info!("metrics: http://{}/metrics", listener.local_addr()?);
        tokio::spawn(daemon::serve_metrics(sup.clone(), listener, async move {
            stop.wait_shutdown_requested().await
        }));
    }
    tracing::info!(
        "cluster up: {} workers behind {scheme}://{host}:{}/ (state dir {}); Ctrl-C or `chatctl down` stops it",
        settings.workers,
        settings.port,
        state_dir.root().display()
    );
    service::notify(&format!(
        "READY=1\nSTATUS={} workers behind port {}",
        settings.workers, settings.port
    ));
    let failed = wait_for_stop(&sup).await;
    service::notify("STOPPING=1");
    tracing::info!("stopping: draining workers, then haproxy and redis");
    sup.request_shutdown();
    sup.down().await;
    let _ = server.await;
    let _ = std::fs::remove_file(state_dir.control_socket());
    if let Some(child) = failed {
        bail!("{child} failed for good (it kept crashing): see `chatctl logs`; stopped everything");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Waits for a stop request (SIGTERM, Ctrl-C, `chatctl down`), or for Redis or HAProxy to
/// fail for good: then it names that child.
async fn wait_for_stop(sup: &std::sync::Arc<daemon::Supervisor>) -> Option<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let failed = async {
        loop {
            if let Some(child) = sup.failed_for_good() {
                return child;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tokio::select! {
            _ = sup.wait_shutdown_requested() => return None,
            child = failed => return Some(child),
        }
    };
    tokio::select! {
        _ = term.recv() => None,
        _ = int.recv() => None,
        _ = sup.wait_shutdown_requested() => None,
        child = failed => Some(child),
    }
}

/// Starts the supervisor in the background (its own session, output in logs/chatctl.log)
/// and returns once every worker is healthy and HAProxy serves.
async fn detach(state_dir: &StateDir, settings: &settings::Settings) -> anyhow::Result<()> {
    let (workers, haproxy) = (settings.workers, settings.haproxy.enabled);
    let front_addr = match settings.haproxy.bind.as_str() {
        "0.0.0.0" => "127.0.0.1",
        bind => bind,
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir.logs_dir())
            .with_context(|| {
                format!(
                    "cannot create {}: choose a writable --state-dir",
                    state_dir.logs_dir().display()
                )
            })?;
    }
    daemon::check_private_dir(state_dir.root()).map_err(anyhow::Error::msg)?;
    let log_path = state_dir.log("chatctl");
    let log = procs::open_private_append(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let start_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().context("cannot find the chatctl executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(
        std::env::args_os()
            .skip(1)
            .filter(|a| a != "--detach" && a != "-d"),
    )
    .env(DETACHED_ENV, "1")
    .env("CHATCTL_STATE_DIR", state_dir.root())
    .stdin(std::process::Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log);
    // SAFETY: setsid in the forked child before exec is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .context("cannot start the background supervisor")?;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut announced = std::collections::BTreeSet::new();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: String = text.get(start_offset as usize..).unwrap_or("").to_owned();
            let reason = tail
                .lines()
                .rev()
                .find_map(fatal_reason)
                .unwrap_or_else(|| format!("it exited with {status}; see {}", log_path.display()));
            bail!("{reason}");
        }
        if let Ok(Response::Status(s)) = control::call_timeout(
            &state_dir.control_socket(),
            &Request::Status,
            Duration::from_secs(5),
        )
        .await
        {
            for line in status::newly_ready(&s, &mut announced) {
                println!("{line}");
            }
            let ready = s.workers.len() == workers as usize
                && s.workers
                    .iter()
                    .all(|w| w.state == chat::control::WorkerState::Up)
                && (!haproxy
                    || (s.haproxy.pid.is_some()
                        // Serving, so its sockets exist too (the supervisor's start waits
                        // for this before it returns, but status answers earlier).
                        && tokio::net::TcpStream::connect((front_addr, settings.port))
                            .await
                            .is_ok()));
            if ready {
                let front = if haproxy {
                    format!("HAProxy on port {}", s.haproxy.port)
                } else {
                    "no HAProxy here (--haproxy off)".to_owned()
                };
                println!(
                    "cluster up in the background: {} workers, {front} (supervisor pid {}); `chatctl status`, `chatctl down`",
                    s.workers.len(),
                    s.supervisor.pid
                );
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the cluster did not come up within 90 s; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The reason in chatctl's last line before a failed exit: `chatctl: REASON` in text, or the
/// same as the message of a JSON line (`--log-format json`).
fn fatal_reason(line: &str) -> Option<String> {
    if let Some(reason) = line.strip_prefix("chatctl: ") {
        return Some(reason.to_owned());
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let message = v["fields"]["message"].as_str()?;
    message.strip_prefix("chatctl: ").map(str::to_owned)
}

/// `chatctl service`: the systemd unit for this install, with absolute paths.
fn service_unit(cli: &Cli, file: &FileConfig) -> anyhow::Result<String> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let absolute = |p: &std::path::Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    let chatctl = std::env::current_exe().context("cannot find chatctl's own path")?;
    let config = absolute(
        cli.config
            .as_deref()
            .unwrap_or(std::path::Path::new("chat.toml")),
    );
    let state_dir = absolute(settings::state_dir(cli.state_dir.as_ref(), Some(file)).root());
    Ok(service::render(&service::Unit {
        chatctl: &chatctl,
        config: &config,
        state_dir: &state_dir,
        drain_timeout_secs: file.cluster.drain_timeout.unwrap_or(10),
        nofile: 65_536,
    }))
}
