//! `chatctl reload`: a rolling restart, one worker at a time taken out of HAProxy, drained,
//! replaced on the same port, checked healthy and put back before the next.

use super::super::children::ChildId;
use super::super::lifecycle::Event;
use super::super::{Sup, Supervisor};

impl Supervisor {
    pub(in crate::daemon) async fn rolling_reload(self: &Sup) -> anyhow::Result<String> {
        let _op = self.ops.lock().await;
        let ids: Vec<u32> = self.lock().slots.keys().copied().collect();
        let admin = self.state_dir.haproxy_admin_socket();
        for id in &ids {
            self.retire_from_haproxy(&admin, *id).await;
            self.stop_worker(*id).await;
            // A deliberate replacement: its backoff starts over.
            self.apply(ChildId::Worker(*id), Event::ForgetCrashes);
            self.spawn_child(ChildId::Worker(*id))?;
            self.wait_worker_healthy(*id).await?;
            self.register_local().await;
            self.readmit(&admin, *id).await?;
        }
        Ok(format!("restarted {} workers one at a time", ids.len()))
    }
}
