//! One abstraction for every child (workers, the embedded Redis, HAProxy): spawn, watch for
//! the exit, restart with backoff. What to do is decided by `lifecycle::step`; this module
//! only carries out its actions.

use super::lifecycle::{self, Action, Event, Life};
use super::wait::wait_until;
use super::{Shared, Sup, Supervisor};
use crate::procs::{self, harden, spawn_logged};
use anyhow::Context;
use std::fmt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use tokio::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildId {
    Worker(u32),
    Redis,
    Haproxy,
}

/// The name in logs and of the log file.
impl fmt::Display for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildId::Worker(id) => write!(f, "worker-{id}"),
            ChildId::Redis => f.write_str("redis"),
            ChildId::Haproxy => f.write_str("haproxy"),
        }
    }
}

impl Shared {
    fn life_mut(&mut self, c: ChildId) -> Option<&mut Life> {
        match c {
            ChildId::Worker(id) => self.slots.get_mut(&id).map(|s| &mut s.life),
            ChildId::Redis => Some(&mut self.redis),
            ChildId::Haproxy => Some(&mut self.haproxy),
        }
    }

    pub(super) fn life(&self, c: ChildId) -> Option<&Life> {
        match c {
            ChildId::Worker(id) => self.slots.get(&id).map(|s| &s.life),
            ChildId::Redis => Some(&self.redis),
            ChildId::Haproxy => Some(&self.haproxy),
        }
    }
}

impl Supervisor {
    /// Feeds `event` to child `c`'s lifecycle (the only writer of its state); returns what
    /// to do. A child that is gone (scaled away) gets no actions.
    pub(super) fn apply(&self, c: ChildId, event: Event) -> Vec<Action> {
        let mut s = self.lock();
        let Some(life) = s.life_mut(c) else {
            return Vec::new();
        };
        let (next, actions) = lifecycle::step(life.clone(), event, Instant::now());
        *life = next;
        actions
    }

    /// The pid of child `c`'s current process.
    pub(super) fn pid_of(&self, c: ChildId) -> Option<u32> {
        self.lock().life(c).and_then(Life::pid)
    }

    /// Starts child `c` and watches for its exit.
    pub(super) fn spawn_child(self: &Sup, c: ChildId) -> anyhow::Result<()> {
        let (mut cmd, bin) = match c {
            ChildId::Worker(id) => (self.worker_command(id)?, &self.worker_bin),
            ChildId::Redis => (self.redis_command()?, &self.redis_bin),
            ChildId::Haproxy => (self.haproxy_command(), &self.haproxy_bin),
        };
        let mut child = spawn_logged(&mut cmd, self.sink(&c.to_string()))
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().unwrap_or(0);
        let seq = {
            let mut s = self.lock();
            s.seq += 1;
            s.seq
        };
        let checked = matches!(c, ChildId::Worker(_));
        self.apply(c, Event::Spawned { pid, seq, checked });
        let me = self.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            me.child_exited(c, seq, pid, &describe_exit(&status));
        });
        Ok(())
    }

    fn child_exited(self: &Sup, c: ChildId, seq: u64, pid: u32, how: &str) {
        for action in self.apply(c, Event::Exited { seq }) {
            match action {
                Action::RestartAfter(delay) => {
                    tracing::warn!(
                        "{c} (pid {pid}) {how}; restarting in {} ms",
                        delay.as_millis()
                    );
                    let me = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        if me
                            .apply(c, Event::RestartDue { seq })
                            .contains(&Action::Spawn)
                        {
                            if let Err(e) = me.spawn_child(c) {
                                tracing::error!("cannot restart {c}: {e:#}");
                            }
                        }
                    });
                }
                Action::GiveUp => tracing::error!(
                    "{c} (pid {pid}) {how}; it crashed too often, giving up (failed)"
                ),
                Action::Spawn => {}
            }
        }
    }

    /// Stops child `c` on purpose: SIGTERM, then SIGKILL if it is still there after
    /// `grace`. Returns once it exited (or a few seconds after the SIGKILL).
    pub(super) async fn stop_child(&self, c: ChildId, grace: Duration) {
        self.apply(c, Event::Stop);
        let Some(pid) = self.pid_of(c) else { return };
        procs::signal(pid, nix::sys::signal::Signal::SIGTERM);
        let gone = || {
            let g = self.pid_of(c) != Some(pid);
            async move { g.then_some(()) }
        };
        if wait_until(Instant::now() + grace, gone).await.is_none() {
            tracing::warn!("{c} did not stop within {} s; killing it", grace.as_secs());
            procs::signal(pid, nix::sys::signal::Signal::SIGKILL);
            wait_until(Instant::now() + Duration::from_secs(5), gone).await;
        }
    }

    /// The command line of worker `id`.
    fn worker_command(&self, id: u32) -> anyhow::Result<Command> {
        let (port, core) = {
            let s = self.lock();
            let slot = s.slots.get(&id).context("no such worker")?;
            (slot.port, slot.core)
        };
        let l = &self.settings.limits;
        // `ps` shows command lines to every user: the password goes through the environment.
        let (redis_url, url_password) = split_password(&self.redis.url);
        let mut cmd = Command::new(&self.worker_bin);
        cmd.args(["--port", &port.to_string()])
            .args(["--redis", &redis_url])
            .args(["--id", &id.to_string()])
            .args(["--host", self.worker_host()])
            .args([
                "--drain-timeout",
                &self.settings.drain_timeout.as_secs().to_string(),
            ])
            .args([
                "--coalesce-us",
                &self.settings.coalesce.as_micros().to_string(),
            ])
            .args(["--max-message-bytes", &l.max_message_bytes.to_string()])
            .args([
                "--max-connections",
                &l.max_connections_per_worker.to_string(),
            ])
            .args(["--messages-per-second", &l.messages_per_second.to_string()])
            .args(["--inbox-max", &l.inbox_max.to_string()])
            .args(["--inbox-ttl", &l.inbox_ttl.to_string()])
            .args([
                "--max-queued-bytes-per-socket",
                &l.max_queued_bytes_per_socket.to_string(),
            ])
            .args([
                "--max-sockets-per-user",
                &l.max_sockets_per_user.to_string(),
            ])
            .args([
                "--max-rooms-per-socket",
                &l.max_rooms_per_socket.to_string(),
            ])
            .args(["--events-per-second", &l.events_per_second.to_string()])
            .args(["--room-history-ttl", &l.room_history_ttl.to_string()])
            .args([
                "--min-replicas-acked",
                &self.settings.min_replicas_acked.to_string(),
            ]);
        match self.redis.password.as_ref().or(url_password.as_ref()) {
            Some(pw) => cmd.env(chat::store::PASSWORD_ENV, pw),
            None => cmd.env_remove(chat::store::PASSWORD_ENV),
        };
        match &self.settings.auth_secret {
            Some(secret) => cmd.env(chat::auth::SECRET_ENV, secret),
            None => cmd.env_remove(chat::auth::SECRET_ENV),
        };
        if self.settings.log_json {
            cmd.args(["--log-format", "json"]);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        harden(&mut cmd, core);
        Ok(cmd)
    }
}

/// How a process ended, in words: `exited with status 1`, `killed by SIGKILL`.
fn describe_exit(status: &std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("killed by {}", signal_name(sig)),
            _ => format!("ended ({st})"),
        },
        Err(e) => format!("could not be waited for ({e})"),
    }
}

fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(known) => known.as_str().to_owned(),
        Err(_) => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exits_are_described_in_words() {
        assert_eq!(
            describe_exit(&Ok(ExitStatus::from_raw(
                nix::sys::signal::Signal::SIGKILL as i32
            ))),
            "killed by SIGKILL"
        );
        assert_eq!(
            describe_exit(&Ok(ExitStatus::from_raw(1 << 8))),
            "exited with status 1"
        );
        assert_eq!(
            describe_exit(&Ok(ExitStatus::from_raw(64))),
            "killed by signal 64"
        );
        assert_eq!(ChildId::Worker(3).to_string(), "worker-3");
    }
}

/// `url` without its password (user name kept), and the password, percent-decoded as the
/// redis crate reads it.
pub fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((cred, host)) = authority.rsplit_once('@') else {
        return (url.to_owned(), None);
    };
    let Some((user, password)) = cred.split_once(':') else {
        return (url.to_owned(), None);
    };
    let stripped = if user.is_empty() {
        format!("{scheme}://{host}{tail}")
    } else {
        format!("{scheme}://{user}@{host}{tail}")
    };
    (stripped, Some(percent_decode(password)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod split_tests {
    use super::split_password;

    #[test]
    fn the_password_leaves_the_url() {
        assert_eq!(
            split_password("redis://:SECRET@127.0.0.1:6379/0"),
            (
                "redis://127.0.0.1:6379/0".to_owned(),
                Some("SECRET".to_owned())
            )
        );
        assert_eq!(
            split_password("redis://bob:p%40ss@h:1"),
            ("redis://bob@h:1".to_owned(), Some("p@ss".to_owned()))
        );
        assert_eq!(
            split_password("redis://127.0.0.1:6379"),
            ("redis://127.0.0.1:6379".to_owned(), None)
        );
        assert_eq!(
            split_password("redis://bob@h:1"),
            ("redis://bob@h:1".to_owned(), None)
        );
    }
}
