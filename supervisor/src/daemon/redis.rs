//! The embedded Redis: where workers find Redis, its redis.conf (rendered from
//! `redis/redis.conf.tmpl`, a pure function with a golden test), its command line, and the
//! PING that says it answers.

use super::preflight::{random_hex, write_private};
use super::wait::wait_until;
use super::{RedisTarget, Supervisor, START_TIMEOUT};
use crate::procs::harden;
use crate::settings::RedisChoice;
use anyhow::Context;
use chat::paths::StateDir;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Command;

pub const TEMPLATE: &str = include_str!("../../../redis/redis.conf.tmpl");

/// redis.conf for the embedded Redis.
pub fn render_conf(socket: &Path, dir: &Path, password: &str, maxmemory: u64) -> String {
    TEMPLATE
        .replace("{{maxmemory}}", &maxmemory.to_string())
        .replace("{{socket}}", &socket.display().to_string())
        .replace("{{dir}}", &dir.display().to_string())
        .replace("{{password}}", password)
}

/// Where workers find Redis: the embedded one (its password generated once and kept in the
/// state dir) or the `--redis URL`.
pub(super) fn target(choice: &RedisChoice, state_dir: &StateDir) -> anyhow::Result<RedisTarget> {
    Ok(match choice {
        RedisChoice::Embedded => {
            let pass_file = state_dir.redis_password();
            let password = match std::fs::read_to_string(&pass_file) {
                Ok(p) if !p.trim().is_empty() => p.trim().to_owned(),
                _ => {
                    let p = random_hex(24)?;
                    write_private(&pass_file, &p)?;
                    p
                }
            };
            RedisTarget {
                url: format!("redis+unix://{}", state_dir.redis_socket().display()),
                password: Some(password),
                embedded: true,
            }
        }
        RedisChoice::External(url) => RedisTarget {
            url: url.clone(),
            // For Sentinel URLs (which carry no data-node password) and to keep passwords
            // off command lines: taken from the environment, handed on to the workers.
            password: std::env::var(chat::store::PASSWORD_ENV)
                .ok()
                .filter(|p| !p.is_empty()),
            embedded: false,
        },
    })
}

impl Supervisor {
    /// Writes redis.conf and returns the embedded Redis's command line.
    pub(super) fn redis_command(&self) -> anyhow::Result<Command> {
        let password = self
            .redis
            .password
            .as_deref()
            .context("the embedded redis has no password")?;
        let sd = &self.state_dir;
        let conf = sd.root().join("redis.conf");
        write_private(
            &conf,
            &render_conf(
                &sd.redis_socket(),
                &sd.redis_dir(),
                password,
                self.settings.redis_maxmemory,
            ),
        )?;
        let _ = std::fs::remove_file(sd.redis_socket());
        let mut cmd = Command::new(&self.redis_bin);
        cmd.arg(&conf);
        harden(&mut cmd, None);
        Ok(cmd)
    }

    /// PING with the round-trip time in ms, or `None`.
    pub(super) async fn redis_ping(&self) -> Option<f64> {
        let link = chat::link::Link::new(
            &self.redis.url,
            self.redis.password.clone(),
            Duration::from_secs(2),
        )
        .ok()?;
        Some(link.ping().await?.as_secs_f64() * 1000.0)
    }

    /// A Redis Cluster's nodes (empty for one Redis or when no node answers).
    pub(super) async fn redis_cluster_nodes(&self) -> Vec<chat::link::ClusterNode> {
        let Ok(link) = chat::link::Link::new(
            &self.redis.url,
            self.redis.password.clone(),
            Duration::from_secs(2),
        ) else {
            return Vec::new();
        };
        link.cluster_nodes().await.unwrap_or_default()
    }

    pub(super) async fn wait_redis(&self) -> anyhow::Result<()> {
        let up = || async { self.redis_ping().await.map(|_| ()) };
        wait_until(Instant::now() + START_TIMEOUT, up)
            .await
            .with_context(|| {
                format!(
                    "redis did not answer within {START_TIMEOUT:?}: see {}",
                    self.state_dir.log("redis").display()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_golden_file() {
        let golden = include_str!("../../../redis/testdata/golden.conf");
        let got = render_conf(
            Path::new("/state/redis.sock"),
            Path::new("/state/redis"),
            "0123abcd",
            512 << 20,
        );
        if got != golden {
            panic!("render differs from redis/testdata/golden.conf:\n{got}");
        }
    }
}
