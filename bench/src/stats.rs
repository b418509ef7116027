//! Counters and histograms shared by every connection task.

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Latencies are recorded in microseconds, 1 µs … 10 min, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail (not an I/O path).
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

#[derive(Default)]
pub struct Counters {
    pub connect_started: AtomicU64,
    pub logged_in: AtomicU64,
    pub connect_failed: AtomicU64,
    /// Connections that closed after logging in, before the end of the run.
    pub dropped: AtomicU64,
    pub sent: AtomicU64,
    pub acked_ok: AtomicU64,
    pub ack_err: AtomicU64,
    /// `new message` events received (all phases).
    pub received: AtomicU64,
    /// `new message` events received while the run phase lasted (the throughput figure).
    pub received_in_run: AtomicU64,
    pub delivered_receipts: AtomicU64,
    /// Sends skipped because a connection already had `--max-outstanding` unacked sends.
    pub skipped: AtomicU64,
}

pub struct Stats {
    pub c: Counters,
    pub latency: Mutex<Histogram<u64>>,
    pub latency_interval: Mutex<Histogram<u64>>,
    pub ack_latency: Mutex<Histogram<u64>>,
    pub login_latency: Mutex<Histogram<u64>>,
    pub errors: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            c: Counters::default(),
            latency: Mutex::new(new_histogram()),
            latency_interval: Mutex::new(new_histogram()),
            ack_latency: Mutex::new(new_histogram()),
            login_latency: Mutex::new(new_histogram()),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn error(&self, kind: &str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(kind.to_owned()).or_insert(0) += 1;
        }
    }

    pub fn record_delivery(&self, micros: u64) {
        let v = micros.max(1);
        if let Ok(mut h) = self.latency.lock() {
            h.saturating_record(v);
        }
        if let Ok(mut h) = self.latency_interval.lock() {
            h.saturating_record(v);
        }
    }

    pub fn record(h: &Mutex<Histogram<u64>>, micros: u64) {
        if let Ok(mut h) = h.lock() {
            h.saturating_record(micros.max(1));
        }
    }

    pub fn get(a: &AtomicU64) -> u64 {
        a.load(Relaxed)
    }

    pub fn inc(a: &AtomicU64) {
        a.fetch_add(1, Relaxed);
    }
}

/// p50/p99/p99.9/max/mean in milliseconds.
pub fn summary(h: &Mutex<Histogram<u64>>) -> Value {
    let Ok(h) = h.lock() else {
        return Value::Null;
    };
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "mean": (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
    })
}

/// (p50, p99) in ms of the interval histogram, then resets it.
pub fn take_interval(h: &Mutex<Histogram<u64>>) -> (f64, f64, u64) {
    let Ok(mut h) = h.lock() else {
        return (0.0, 0.0, 0);
    };
    let r = (
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.len(),
    );
    h.reset();
    r
}
