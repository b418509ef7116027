//! What the run reports: a progress line on stderr every second, and the summary object.

use crate::procfs::{self, Sample};
use crate::stats::{self, summary as histogram, Stats};
use crate::{Phase, Shared};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the phases measured, beyond the shared counters and histograms.
pub struct Measured {
    /// Seconds from the first connect to all logged in (or failed, or timed out).
    pub connect_secs: f64,
    pub logged_in_at_start: u64,
    /// Connections still up when the run ended.
    pub still_connected: u64,
    pub run_secs: f64,
    /// Sends, acks and deliveries during the run phase (the throughput figures).
    pub sent_in_run: u64,
    pub received_in_run: u64,
    pub acked_in_run: u64,
    /// Watched processes before connecting, at the start and at the end of the run phase.
    pub before: Vec<Option<Sample>>,
    pub at_start: Vec<Option<Sample>>,
    pub at_end: Vec<Option<Sample>>,
    /// The machine's busy milliseconds at the start and end of the run phase.
    pub busy_start: Option<f64>,
    pub busy_end: Option<f64>,
}

/// The summary object printed at the end.
pub fn summary(sh: &Shared, m: &Measured) -> Value {
    let &Measured {
        connect_secs,
        logged_in_at_start,
        still_connected,
        run_secs,
        sent_in_run,
        received_in_run,
        acked_in_run,
        ref before,
        ref at_start,
        ref at_end,
        busy_start,
        busy_end,
    } = m;
    let args = &sh.args;
    let c = &sh.stats.c;
    let sent = Stats::get(&c.sent);
    let acked = Stats::get(&c.acked_ok);
    let received = Stats::get(&c.received);
    let errors = sh
        .stats
        .errors
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    json!({
        "config": {
            "urls": args.url,
            "connections": args.connections,
            "mode": if args.idle { "idle" } else if args.rate > 0.0 { "rate" } else { "ack-window" },
            "rate": args.rate,
            "window": args.window,
            "senders": if args.senders == 0 { args.connections } else { args.senders },
            "duration_s": args.duration,
            "warmup_s": if args.idle { 0.0 } else { args.warmup },
            "size": args.size,
            "source_ips": args.source_ips,
            "threads": args.threads,
            "user_prefix": sh.prefix,
        },
        "connect": {
            "logged_in": logged_in_at_start,
            "failed": Stats::get(&c.connect_failed),
            "seconds": round3(connect_secs),
            "rate_per_s": round3(logged_in_at_start as f64 / connect_secs.max(1e-9)),
            "login_latency_ms": histogram(&sh.stats.login_latency),
            "held_at_end": still_connected,
            "dropped": Stats::get(&c.dropped),
        },
        "messages": {
            "sent": sent,
            "acked_ok": acked,
            "ack_errors": Stats::get(&c.ack_err),
            "unanswered": sent.saturating_sub(acked + Stats::get(&c.ack_err)),
            "received": received,
            // Each message goes to every socket of its recipient.
            "lost": (acked * sh.args.sockets_per_user.max(1) as u64).saturating_sub(received),
            "delivered_receipts": Stats::get(&c.delivered_receipts),
            "skipped_window_full": Stats::get(&c.skipped),
        },
        "throughput": {
            "run_seconds": round3(run_secs),
            "sent_per_s": round3(sent_in_run as f64 / run_secs.max(1e-9)),
            "acked_per_s": round3(acked_in_run as f64 / run_secs.max(1e-9)),
            "delivered_per_s": round3(received_in_run as f64 / run_secs.max(1e-9)),
        },
        "latency_ms": histogram(&sh.stats.latency),
        "ack_latency_ms": histogram(&sh.stats.ack_latency),
        "errors": errors,
        "processes": procfs::report(&args.watch, before, at_start, at_end),
        "machine": procfs::others(busy_start, busy_end, &args.watch, at_start, at_end, run_secs),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Every second: phase, connections, rates and the last second's latency.
pub async fn progress_loop(sh: Arc<Shared>, phase: watch::Receiver<Phase>) {
    if sh.args.quiet {
        return;
    }
    let c = &sh.stats.c;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_sent, mut last_acked, mut last_recv) = (0, 0, 0);
    let start = Instant::now();
    loop {
        tick.tick().await;
        let p = *phase.borrow();
        let (sent, acked, recv) = (
            Stats::get(&c.sent),
            Stats::get(&c.acked_ok),
            Stats::get(&c.received),
        );
        let (p50, p99, _) = stats::take_interval(&sh.stats.latency_interval);
        eprintln!(
            "[{:>5.1}s] {:<10} conns {}/{} failed {} dropped {} | sent/s {} acked/s {} recv/s {} | p50 {:.2} ms p99 {:.2} ms | unanswered {} ack-errors {}",
            start.elapsed().as_secs_f64(),
            format!("{p:?}").to_lowercase(),
            Stats::get(&c.logged_in) - Stats::get(&c.dropped),
            sh.args.connections,
            Stats::get(&c.connect_failed),
            Stats::get(&c.dropped),
            sent - last_sent,
            acked - last_acked,
            recv - last_recv,
            p50,
            p99,
            sent.saturating_sub(acked + Stats::get(&c.ack_err)),
            Stats::get(&c.ack_err),
        );
        (last_sent, last_acked, last_recv) = (sent, acked, recv);
    }
}
