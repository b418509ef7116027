//! `chatctl down` (and Ctrl-C, SIGTERM): the request only asks the supervisor to stop;
//! [`Supervisor::down`] is the graceful stop itself.

use super::super::children::ChildId;
use super::super::lifecycle::Event;
use super::super::{Sup, Supervisor};
use std::time::Duration;

/// How long Redis and HAProxy get after SIGTERM before SIGKILL.
const AUX_GRACE: Duration = Duration::from_secs(10);

impl Supervisor {
    pub(in crate::daemon) fn request_down(&self) -> String {
        self.request_shutdown();
        "stopping".to_owned()
    }

    /// Graceful stop of everything: workers drain (in parallel), then HAProxy, then Redis
    /// (which persists its append-only file on SIGTERM). Nothing is restarted from here on.
    pub async fn down(self: &Sup) {
        let _op = self.ops.lock().await;
        let ids: Vec<u32> = {
            let mut s = self.lock();
            s.stopping = true;
            s.slots.keys().copied().collect()
        };
        let children = ids.iter().map(|id| ChildId::Worker(*id));
        for c in children.chain([ChildId::Haproxy, ChildId::Redis]) {
            self.apply(c, Event::Stop);
        }
        self.deregister(&ids).await;
        futures_util::future::join_all(ids.iter().map(|id| self.stop_worker(*id))).await;
        for c in [ChildId::Haproxy, ChildId::Redis] {
            self.stop_child(c, AUX_GRACE).await;
        }
        let _ = std::fs::remove_file(self.state_dir.pid_file());
    }
}
