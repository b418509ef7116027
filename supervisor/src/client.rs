//! The subcommands that talk to a running supervisor over its control socket: `status`,
//! `scale`, `restart`, `reload`, `down`, `logs`, `token`.

use crate::cli::Command;
use crate::control::{self, SocketProbe};
use crate::{logs, status};
use anyhow::bail;
use chat::control::{Request, Response};
use chat::paths::StateDir;
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) async fn request(state_dir: &StateDir, req: &Request) -> anyhow::Result<Response> {
    let socket = state_dir.control_socket();
    match control::probe(&socket).await {
        SocketProbe::Live(_) => {}
        SocketProbe::Absent | SocketProbe::Stale => bail!(
            "no cluster is up on {} (start one with `chatctl up`, or pass --state-dir)",
            state_dir.root().display()
        ),
        SocketProbe::Foreign => bail!(
            "{} is not a chatctl socket: remove it or pass another --state-dir",
            socket.display()
        ),
    }
    control::call(&socket, req).await
}

pub(crate) fn expect_done(resp: Response) -> anyhow::Result<String> {
    match resp {
        Response::Done { message } => Ok(message),
        Response::Error { message } => bail!("{message}"),
        other => bail!("unexpected answer from the supervisor: {other:?}"),
    }
}

/// Prints a `Done` answer: the sentence, or `{"ok":true,"message":…}` with `--json`.
pub(crate) fn print_done(message: &str, json: bool) {
    if json {
        println!("{}", serde_json::json!({"ok": true, "message": message}));
    } else {
        println!("{message}");
    }
}

pub(crate) async fn status_report(
    state_dir: &StateDir,
) -> anyhow::Result<chat::control::StatusReport> {
    match request(state_dir, &Request::Status).await? {
        Response::Status(s) => Ok(*s),
        other => {
            expect_done(other)?;
            bail!("the supervisor answered no status")
        }
    }
}

pub(crate) async fn client(state_dir: &StateDir, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up(_)
        | Command::Check { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Service => {
            unreachable!("handled by run()")
        }
        Command::Scale { workers, json } => {
            let current = status_report(state_dir).await?.workers.len() as u32;
            let Some(target) = workers.resolve(current) else {
                bail!("cannot scale {current} workers by that much: the count must stay within 1..=1024");
            };
            let msg = expect_done(request(state_dir, &Request::Scale { workers: target }).await?)?;
            print_done(&msg, json);
        }
        Command::Restart { name, json } => {
            let msg = expect_done(request(state_dir, &Request::Restart { name }).await?)?;
            print_done(&msg, json);
        }
        Command::Reload { json } => {
            let msg = expect_done(request(state_dir, &Request::Reload).await?)?;
            print_done(&msg, json);
        }
        Command::Status { json, watch } => loop {
            let s = status_report(state_dir).await?;
            let colour = !json
                && std::io::IsTerminal::is_terminal(&std::io::stdout())
                && std::env::var_os("NO_COLOR").is_none();
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(&s)?)
            } else {
                status::render_coloured(&s, colour)
            };
            if watch && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                // Clear the screen and home the cursor before each redraw.
                print!("\x1b[2J\x1b[H");
            }
            print!("{text}");
            if !watch {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = tokio::signal::ctrl_c() => break,
            }
        },
        Command::Down { json } => {
            let pid = match control::probe(&state_dir.control_socket()).await {
                SocketProbe::Live(pid) => pid,
                _ => {
                    print_done(
                        &format!("no cluster is up on {}", state_dir.root().display()),
                        json,
                    );
                    return Ok(());
                }
            };
            // Everything up started, so we can wait for each of them, not only the supervisor.
            let mut pids = vec![pid];
            if let Ok(s) = status_report(state_dir).await {
                pids.extend(s.workers.iter().filter_map(|w| w.pid));
                pids.extend(s.haproxy.pid);
                pids.extend(s.redis.pid);
            }
            expect_done(request(state_dir, &Request::Down).await?)?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let alive: Vec<u32> = pids.iter().copied().filter(|p| is_alive(*p)).collect();
                if alive.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("still stopping after 60 s: pids {alive:?} (supervisor pid {pid})");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            print_done("stopped", json);
        }
        Command::Logs {
            name,
            follow,
            lines,
            json,
        } => logs::show(state_dir, name.as_deref(), follow, lines, json).await?,
        Command::Token {
            username,
            ttl,
            json,
        } => {
            match request(
                state_dir,
                &Request::Token {
                    username: username.clone(),
                    ttl_secs: ttl,
                },
            )
            .await?
            {
                Response::Token { token } if json => println!(
                    "{}",
                    serde_json::json!({"username": username, "token": token, "ttl_secs": ttl})
                ),
                Response::Token { token } => println!("{token}"),
                other => {
                    expect_done(other)?;
                }
            }
        }
    }
    Ok(())
}

/// Present and not a zombie.
pub(crate) fn is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

pub(crate) fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
