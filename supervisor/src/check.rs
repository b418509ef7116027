//! `chatctl check`: validates the configuration (file + flags) and renders haproxy.cfg
//! through `haproxy -c`, starting nothing; collects every problem rather than the first.

use crate::cli::UpArgs;
use crate::haproxy::{self, CfgView, Server};
use crate::plan::worker_port;
use crate::procs;
use crate::settings::{self, RedisChoice, Settings};
use chat::config::FileConfig;
use chat::paths::StateDir;
use std::path::Path;

/// What `check` found: the settings it would run with, or every problem.
pub struct Report {
    pub problems: Vec<String>,
    pub settings: Option<Settings>,
}

pub async fn check(
    file: Result<FileConfig, String>,
    args: &UpArgs,
    state_dir: &StateDir,
) -> Report {
    let mut problems = Vec::new();
    let file = file.unwrap_or_else(|e| {
        problems.push(e);
        FileConfig::default()
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let settings = match settings::merge(args, &file, cores) {
        Ok(s) => s,
        Err(errors) => {
            problems.extend(errors);
            return Report {
                problems,
                settings: None,
            };
        }
    };
    if procs::worker_binary().is_none() {
        problems.push("chat-worker not found beside chatctl or on PATH: build it with `cargo build --release` (or set CHATCTL_WORKER_BIN)".to_owned());
    }
    if settings.redis == RedisChoice::Embedded
        && procs::find_binary(Path::new("redis-server")).is_none()
    {
        problems.push(
            "redis-server not found: install the `redis-server` package, or pass --redis URL"
                .to_owned(),
        );
    }
    if worker_port(settings.base_port, settings.workers.saturating_sub(1)).is_none() {
        problems.push(format!(
            "{} workers from base port {} would need ports past 65535",
            settings.workers, settings.base_port
        ));
    }
    if settings.haproxy.enabled {
        match procs::find_binary(&settings.haproxy.binary) {
            None => problems.push(format!(
                "{} not found: install the `haproxy` package",
                settings.haproxy.binary.display()
            )),
            Some(bin) => {
                if let Err(e) = validate_cfg(&bin, &settings, state_dir).await {
                    problems.push(format!("{e:#}"));
                }
            }
        }
    }
    Report {
        problems,
        settings: Some(settings),
    }
}

/// Renders the haproxy.cfg `up` would write (generation 1) and runs `haproxy -c` on it.
async fn validate_cfg(bin: &Path, s: &Settings, state_dir: &StateDir) -> anyhow::Result<()> {
    let host = s
        .advertise
        .clone()
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let servers = (0..s.workers)
        .filter_map(|id| {
            worker_port(s.base_port, id).map(|port| Server {
                name: haproxy::server_name(s.advertise.as_deref(), id, port),
                addr: host.clone(),
                port,
            })
        })
        .collect();
    let view = CfgView::new(s, state_dir, 1, 65_536, servers);
    let cfg = std::env::temp_dir().join(format!("chatctl-check-{}.cfg", std::process::id()));
    std::fs::write(&cfg, haproxy::render(&view)?)?;
    let result = haproxy::validate(bin, &cfg).await;
    let _ = std::fs::remove_file(&cfg);
    result
}
