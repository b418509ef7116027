//! Prometheus series of one worker (`/metrics`, SPEC §2): counters, latency histograms, and
//! the exposition text.
//!
//! Every family has its own HELP and TYPE and a name no other family's samples can take
//! (a counter `X_total` belongs to family `X`, so no gauge may be called `X`); chatctl's
//! cluster endpoint relabels these lines with `worker="N"`, and `tests/metrics.rs` runs them
//! through `promtool check metrics`. Observations are relaxed atomic adds: no lock, no
//! allocation.

use crate::protocol::ErrorCode;
use crate::store::Op;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of the latency histograms' buckets: a Redis round trip on
/// loopback is well under a millisecond, a stalled one hits the store's timeout (seconds).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with the fixed [`BUCKETS`].
pub struct Histogram {
    /// Observations per bucket, not cumulative; the last slot is past every bound (`+Inf`).
    counts: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of the observations, in microseconds (an integer, so one atomic add).
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub const fn new() -> Self {
        Histogram {
            counts: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The `_bucket`, `_sum` and `_count` samples; `labels` is empty or `k="v",` (with the
    /// trailing comma, `le` follows it).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let _ = match BUCKETS.get(i) {
                Some(bound) => {
                    writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}")
                }
                None => writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}"),
            };
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let braced = match labels.strip_suffix(',') {
            Some(l) => format!("{{{l}}}"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{name}_sum{braced} {sum}\n{name}_count{braced} {cumulative}"
        );
    }
}

/// Every Redis call's latency, by operation (`chat_redis_call_seconds{op}`). Process-wide
/// because the store is timed where it has no handle on [`Metrics`], and a process is one
/// worker.
pub static REDIS_CALLS: RedisCalls = RedisCalls {
    by_op: [const { Histogram::new() }; Op::ALL.len()],
};

pub struct RedisCalls {
    by_op: [Histogram; Op::ALL.len()],
}

impl RedisCalls {
    pub fn observe(&self, op: Op, took: Duration) {
        self.by_op[op as usize].observe(took);
    }

    pub fn count(&self, op: Op) -> u64 {
        self.by_op[op as usize].count()
    }
}

/// The error codes in `chat_errors_total{code}`, each at the slot [`code_slot`] gives it.
const CODES: [ErrorCode; 9] = [
    ErrorCode::BadRequest,
    ErrorCode::InvalidUsername,
    ErrorCode::InvalidRoom,
    ErrorCode::NotLoggedIn,
    ErrorCode::MessageTooLarge,
    ErrorCode::RateLimited,
    ErrorCode::Unauthorized,
    ErrorCode::Unavailable,
    ErrorCode::LimitReached,
];

/// Exhaustive, so a new code cannot be forgotten here; its label is the code's wire name.
fn code_slot(code: ErrorCode) -> (usize, &'static str) {
    match code {
        ErrorCode::BadRequest => (0, "bad_request"),
        ErrorCode::InvalidUsername => (1, "invalid_username"),
        ErrorCode::InvalidRoom => (2, "invalid_room"),
        ErrorCode::NotLoggedIn => (3, "not_logged_in"),
        ErrorCode::MessageTooLarge => (4, "message_too_large"),
        ErrorCode::RateLimited => (5, "rate_limited"),
        ErrorCode::Unauthorized => (6, "unauthorized"),
        ErrorCode::Unavailable => (7, "unavailable"),
        ErrorCode::LimitReached => (8, "limit_reached"),
    }
}

/// Counters and histograms; gauges (connections, users, redis_up) are read from live state
/// when `/metrics` renders, so they can never drift.
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
    /// Errors answered to clients, by [`code_slot`].
    errors: [AtomicU64; CODES.len()],
    /// A direct message's `sentAt` to a recipient socket's ack.
    delivery_latency: Histogram,
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
    /// An error answered to a client (ack or `chat error`).
    pub fn error(&self, code: ErrorCode) {
        self.errors[code_slot(code).0].fetch_add(1, Ordering::Relaxed);
    }
    /// A recipient acknowledged a direct message sent at `sent_at_ms` (Unix ms, stamped by
    /// the sender's worker). Millisecond stamps, and clocks of different hosts: the figure
    /// is good to about a millisecond; a clock behind the sender's reads as 0.
    pub fn acked(&self, sent_at_ms: u64) {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let took = now_us.saturating_sub(sent_at_ms.saturating_mul(1000));
        self.delivery_latency.observe(Duration::from_micros(took));
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(8192);
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            head(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
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
            "chat_connects_total",
            "counter",
            "Socket.IO connections ever opened.",
            self.connects.load(Ordering::Relaxed),
        );
        metric(
            "chat_disconnects_total",
            "counter",
            "Socket.IO connections ever closed.",
            self.disconnects.load(Ordering::Relaxed),
        );
        metric(
            "chat_slow_disconnects_total",
            "counter",
            "Sockets cut because their unsent data passed max_queued_bytes_per_socket.",
            self.slow_disconnects.load(Ordering::Relaxed),
        );

        // Every code, zeros included, so that rates and alerts see the series from the start.
        head(
            &mut out,
            "chat_errors_total",
            "counter",
            "Errors answered to clients, by error code.",
        );
        for code in CODES {
            let (slot, name) = code_slot(code);
            let n = self.errors[slot].load(Ordering::Relaxed);
            let _ = writeln!(out, "chat_errors_total{{code=\"{name}\"}} {n}");
        }

        head(
            &mut out,
            "chat_delivery_latency_seconds",
            "histogram",
            "From a direct message's sentAt to a recipient socket's acknowledgement.",
        );
        self.delivery_latency
            .render(&mut out, "chat_delivery_latency_seconds", "");

        // Only operations called at least once: fourteen empty histograms would be most of
        // the page.
        head(
            &mut out,
            "chat_redis_call_seconds",
            "histogram",
            "Redis calls (scripts and commands) by operation, failures and timeouts included.",
        );
        for op in Op::ALL {
            let h = &REDIS_CALLS.by_op[op as usize];
            if h.count() > 0 {
                let labels = format!("op=\"{}\",", op.name());
                h.render(&mut out, "chat_redis_call_seconds", &labels);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            connections: 3,
            users: 2,
            redis_up: true,
            draining: false,
        }
    }

    #[test]
    fn renders_the_spec_metrics() {
        let m = Metrics::default();
        m.received();
        m.delivered();
        m.delivered();
        let text = m.render(&gauges());
        for line in [
            "chat_connections 3",
            "chat_users 2",
            "chat_messages_received_total 1",
            "chat_messages_delivered_total 2",
            "chat_redis_up 1",
            "chat_slow_disconnects_total 0",
            "chat_errors_total{code=\"unavailable\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    /// Each family is declared once, and no sample belongs to a family other than the one
    /// it is listed under (the `chat_connections` / `chat_connections_total` clash).
    #[test]
    fn families_are_distinct() {
        let m = Metrics::default();
        m.acked(0);
        REDIS_CALLS.observe(Op::Ping, Duration::from_millis(1));
        let text = m.render(&gauges());
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let base = |f: &str| f.strip_suffix("_total").unwrap_or(f).to_owned();
        for (i, a) in families.iter().enumerate() {
            for b in &families[i + 1..] {
                assert_ne!(base(a), base(b), "{a} and {b} are one family");
            }
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(300)); // 0.0005
        h.observe(Duration::from_millis(3)); // 0.005
        h.observe(Duration::from_secs(60)); // +Inf only
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "op=\"ping\",");
        for line in [
            "x_seconds_bucket{op=\"ping\",le=\"0.0005\"} 1",
            "x_seconds_bucket{op=\"ping\",le=\"0.0025\"} 1",
            "x_seconds_bucket{op=\"ping\",le=\"0.005\"} 2",
            "x_seconds_bucket{op=\"ping\",le=\"10\"} 2",
            "x_seconds_bucket{op=\"ping\",le=\"+Inf\"} 3",
            "x_seconds_sum{op=\"ping\"} 60.0033",
            "x_seconds_count{op=\"ping\"} 3",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
        let mut bare = String::new();
        h.render(&mut bare, "y_seconds", "");
        assert!(bare.contains("y_seconds_bucket{le=\"+Inf\"} 3\ny_seconds_sum 60.0033\n"));
    }

    #[test]
    fn error_labels_are_the_wire_codes() {
        for (i, code) in CODES.into_iter().enumerate() {
            let (slot, name) = code_slot(code);
            assert_eq!(slot, i);
            assert_eq!(serde_json::to_value(code).unwrap(), name);
        }
    }

    #[test]
    fn op_indexes_follow_all() {
        for (i, op) in Op::ALL.into_iter().enumerate() {
            assert_eq!(op as usize, i, "{}", op.name());
        }
    }
}
