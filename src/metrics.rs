//! Prometheus counters of one worker (`/metrics`, SPEC §2).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters only; gauges (connections, users, redis_up) are read from live state when
/// `/metrics` renders, so they can never drift.
#[derive(Default)]
pub struct Metrics {
    /// Messages accepted from clients (`send message` and `room message` acked ok).
    received: AtomicU64,
    /// Messages written to a socket (direct and room; redeliveries count again).
    delivered: AtomicU64,
    /// Sockets ever connected, and ever disconnected.
    connects: AtomicU64,
    disconnects: AtomicU64,
    /// Sockets cut for passing `max_queued_bytes_per_socket`.
    slow_disconnects: AtomicU64,
}

/// The live gauges `/metrics` reports beside the counters.
pub struct Gauges {
    pub connections: usize,
    pub users: usize,
    pub redis_up: bool,
    pub draining: bool,
}

impl Metrics {
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }
    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
    pub fn connected(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
    }
    pub fn disconnected(&self) {
        self.disconnects.fetch_add(1, Ordering::Relaxed);
    }
    pub fn slow_disconnect(&self) {
        self.slow_disconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(1024);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "chat_connections",
            "gauge",
            "Open Socket.IO connections.",
            g.connections as u64,
        );
        metric(
            "chat_users",
            "gauge",
            "Distinct logged-in users on this worker.",
            g.users as u64,
        );
        metric(
            "chat_messages_received_total",
            "counter",
            "Messages accepted from clients.",
            self.received.load(Ordering::Relaxed),
        );
        metric(
            "chat_messages_delivered_total",
            "counter",
            "Messages written to client sockets.",
            self.delivered.load(Ordering::Relaxed),
        );
        metric(
            "chat_redis_up",
            "gauge",
            "1 while both Redis links work.",
            g.redis_up as u64,
        );
        metric(
            "chat_draining",
            "gauge",
            "1 while the worker drains.",
            g.draining as u64,
        );
        metric(
            "chat_connections_total",
            "counter",
            "Connections ever opened.",
            self.connects.load(Ordering::Relaxed),
        );
        metric(
            "chat_disconnections_total",
            "counter",
            "Connections ever closed.",
            self.disconnects.load(Ordering::Relaxed),
        );
        metric(
            "chat_slow_disconnects_total",
            "counter",
            "Sockets cut because their unsent data passed max_queued_bytes_per_socket.",
            self.slow_disconnects.load(Ordering::Relaxed),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_spec_metrics() {
        let m = Metrics::default();
        m.received();
        m.delivered();
        m.delivered();
        let text = m.render(&Gauges {
            connections: 3,
            users: 2,
            redis_up: true,
            draining: false,
        });
        for line in [
            "chat_connections 3",
            "chat_users 2",
            "chat_messages_received_total 1",
            "chat_messages_delivered_total 2",
            "chat_redis_up 1",
            "chat_slow_disconnects_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
