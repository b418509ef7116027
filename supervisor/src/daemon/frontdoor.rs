//! The front door, HAProxy: what haproxy.cfg lists (the view `haproxy::render` renders),
//! its command line, reloads confirmed by generation, and the runtime API calls that take a
//! worker out of rotation and wait for it to come back.

use super::children::ChildId;
use super::wait::wait_until;
use super::{Supervisor, START_TIMEOUT};
use crate::haproxy::{self, CfgView, Server};
use crate::membership;
use crate::procs::{self, harden};
use anyhow::{bail, Context};
use std::path::Path;
use std::time::Instant;
use tokio::process::Command;

impl Supervisor {
    /// HAProxy's name (and cookie) for local worker `id`.
    pub(super) fn server_name(&self, id: u32, port: u16) -> String {
        haproxy::server_name(self.settings.advertise.as_deref(), id, port)
    }

    fn cfg_view(&self, generation: u64) -> CfgView {
        let servers = if self.settings.advertise.is_some() {
            self.lock()
                .members
                .iter()
                .map(|m| Server {
                    name: membership::server_name(&m.host, m.port),
                    addr: m.host.clone(),
                    port: m.port,
                })
                .collect()
        } else {
            self.lock()
                .slots
                .iter()
                .map(|(id, s)| Server {
                    name: self.server_name(*id, s.port),
                    addr: self.worker_host().to_owned(),
                    port: s.port,
                })
                .collect()
        };
        CfgView::new(
            &self.settings,
            &self.state_dir,
            generation,
            self.fd_limit,
            servers,
        )
    }

    /// Renders the next generation into haproxy.cfg after `haproxy -c` accepted it.
    pub(super) async fn write_cfg(&self) -> anyhow::Result<u64> {
        let generation = self.lock().generation + 1;
        // A refused render leaves haproxy.cfg (and the running generation) as they were.
        let text = haproxy::render(&self.cfg_view(generation))?;
        let cfg = self.state_dir.haproxy_cfg();
        let next = cfg.with_extension("cfg.next");
        // Private, and a symlink planted at the path is not followed.
        super::preflight::write_private(&next, &text)?;
        haproxy::validate(&self.haproxy_bin, &next).await?;
        std::fs::rename(&next, &cfg)?;
        self.lock().generation = generation;
        Ok(generation)
    }

    /// The HAProxy master's command line (master-worker mode, master CLI socket).
    pub(super) fn haproxy_command(&self) -> Command {
        let master = self.state_dir.haproxy_master_socket();
        let _ = std::fs::remove_file(&master);
        let _ = std::fs::remove_file(self.state_dir.haproxy_admin_socket());
        let mut cmd = Command::new(&self.haproxy_bin);
        cmd.arg("-W")
            .arg("-S")
            .arg(format!("{},mode,600", master.display()))
            .arg("-f")
            .arg(self.state_dir.haproxy_cfg());
        harden(&mut cmd, None);
        cmd
    }

    /// Waits until HAProxy's current worker runs `generation` and the public port accepts.
    pub(super) async fn wait_haproxy(&self, generation: u64) -> anyhow::Result<()> {
        let admin = self.state_dir.haproxy_admin_socket();
        let addr = if self.settings.haproxy.bind == "0.0.0.0" {
            "127.0.0.1".to_owned()
        } else {
            self.settings.haproxy.bind.clone()
        };
        let serving = || async {
            if haproxy::running_generation(&admin).await != Some(generation) {
                return None;
            }
            let accepts = tokio::net::TcpStream::connect((addr.as_str(), self.settings.port))
                .await
                .is_ok();
            accepts.then_some(())
        };
        wait_until(Instant::now() + START_TIMEOUT, serving)
            .await
            .with_context(|| {
                format!(
                    "haproxy did not serve configuration generation {generation} within {START_TIMEOUT:?}: see {}",
                    self.state_dir.log("haproxy").display()
                )
            })
    }

    /// Renders, validates and reloads (SIGUSR2 to the master), then confirms the new
    /// generation serves. Open WebSockets stay with the old HAProxy worker.
    pub(super) async fn reload_haproxy(&self) -> anyhow::Result<()> {
        if !self.settings.haproxy.enabled {
            return Ok(());
        }
        let generation = self.write_cfg().await?;
        let pid = self
            .pid_of(ChildId::Haproxy)
            .context("haproxy is not running")?;
        procs::signal(pid, nix::sys::signal::Signal::SIGUSR2);
        self.wait_haproxy(generation).await
    }

    /// New clients stop going to worker `id` (drain), then nothing does (maint) so that its
    /// clients, reconnecting with its stickiness cookie, are redispatched elsewhere. From
    /// here on it is on its way out: not re-registered, not restarted.
    pub(super) async fn retire_from_haproxy(&self, admin: &Path, id: u32) {
        self.apply(ChildId::Worker(id), super::lifecycle::Event::Stop);
        let port = self.worker_port(id).unwrap_or(0);
        // Other front doors drop it when it leaves the membership.
        self.deregister(&[id]).await;
        if !self.settings.haproxy.enabled {
            return;
        }
        let name = self.server_name(id, port);
        for state in ["drain", "maint"] {
            if let Err(e) = haproxy::set_server_state(admin, &name, state).await {
                tracing::warn!("set {name} {state}: {e:#}");
            }
        }
    }

    /// Puts worker `id` back in rotation and waits until HAProxy's checks see it UP.
    pub(super) async fn readmit(&self, admin: &Path, id: u32) -> anyhow::Result<()> {
        if !self.settings.haproxy.enabled {
            return Ok(());
        }
        let name = self.server_name(id, self.worker_port(id).unwrap_or(0));
        haproxy::set_server_state(admin, &name, "ready").await?;
        let up = || async {
            let csv = haproxy::cli(admin, "show stat").await.unwrap_or_default();
            haproxy::parse_server_states(&csv)
                .iter()
                .any(|(n, st)| *n == name && st.starts_with("UP"))
                .then_some(())
        };
        if wait_until(Instant::now() + START_TIMEOUT, up)
            .await
            .is_none()
        {
            bail!("haproxy did not see {name} UP within {START_TIMEOUT:?}");
        }
        Ok(())
    }
}
