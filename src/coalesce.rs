//! Wake-up coalescing for the worker's single thread: its wake-ups are at least a window
//! apart. When it runs out of work, the thread sleeps what is left of the window since it
//! last woke, then sleeps in `epoll_wait`, so that the next wake-up finds a batch of frames,
//! Redis replies and deliveries instead of one.
//!
//! Why: on this kind of machine (a VM, 2 vCPUs) a worker at 1,000 messages/s woke about 1.1
//! times per message, and the sleep/wake path (`finish_task_switch`, interrupts re-enabled
//! after a switch) was a quarter of its CPU. With a 1 ms window the workers spent 11–21 %
//! less CPU per message at 2,000 msg/s (four alternated passes), Redis and HAProxy less too
//! (bigger batches per script call and per write), and the highest rate held with p99 < 50 ms
//! rose; the median delivery latency rose by about 1.4 ms (BENCHMARKS.md, "Wake-ups
//! coalesced"). Interrupt coalescing in a NIC and Nagle's algorithm make the same trade.
//!
//! Counted from the wake-up, not from the end of the turn: the first version slept the whole
//! window after every turn, so a turn's own work came on top of it and a loaded worker idled
//! a window per turn. At the same 1 ms, counting from the wake-up took 0.45 ms off the p50 at
//! 2,000 msg/s for the same CPU, and about 0.8 ms at 8,000 msg/s for about 6 % more, where
//! p99 < 10 ms then held in 15 runs of 15 against 13 of 15 (BENCHMARKS.md, "The window counted
//! from the wake-up").
//!
//! Shorter is not gentler: at 300 µs the sleep is a wake-up of its own and too little arrives
//! meanwhile, so it cost more CPU than no window. Longer is not free: 1.5 and 2 ms save
//! 8–13 % of the workers' CPU at 2,000 msg/s, but at 8,000 msg/s they miss p99 < 10 ms far
//! more often (5 of 11 and 1 of 8 runs held it; BENCHMARKS.md, "The window counted from the
//! wake-up", "… and the 2 ms window at 8,000 msg/s").
//!
//! The window is unconditional: an adaptive one (wait only while wake-ups came less than
//! four windows apart) measured worse on CPU at 2,000 msg/s and no better on latency at
//! 100 msg/s, where 1,000 sockets' pings keep the worker that busy anyway.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The default window in microseconds (`chat-worker --coalesce-us`, `[cluster] coalesce_us`).
pub const DEFAULT_MICROS: u64 = 1000;

/// [`DEFAULT_MICROS`] as a duration.
pub const DEFAULT_WINDOW: Duration = Duration::from_micros(DEFAULT_MICROS);

/// The longest window accepted: beyond it the added latency is felt in a chat.
pub const MAX_WINDOW: Duration = Duration::from_millis(10);

/// Checks a window given in microseconds; the error says what is accepted.
pub fn window_from_micros(micros: u64) -> Result<Duration, String> {
    let window = Duration::from_micros(micros);
    if window > MAX_WINDOW {
        return Err(format!(
            "a coalescing window of {micros} µs is too long: at most {} µs (0 turns it off)",
            MAX_WINDOW.as_micros()
        ));
    }
    Ok(window)
}

thread_local! {
    /// When this thread's runtime last woke up: the window counts from there.
    static WOKE_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A current-thread runtime builder that, each time it runs out of work, waits what is left
/// of `window` since it last woke before it parks (nothing is installed for a zero window).
/// So wake-ups are at least `window` apart, and a turn that was busy for the whole window
/// parks at once: a loaded worker adds no idle time to its turns. The wait is a plain sleep:
/// the thread has nothing else to run, and what arrives meanwhile waits in the kernel's
/// buffers.
pub fn runtime_builder(window: Duration) -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if !window.is_zero() {
        builder
            .on_thread_park(move || {
                let busy = WOKE_AT.with(Cell::get).map(|woke| woke.elapsed());
                let rest = window.saturating_sub(busy.unwrap_or_default());
                if !rest.is_zero() {
                    std::thread::sleep(rest);
                }
            })
            .on_thread_unpark(|| WOKE_AT.with(|w| w.set(Some(Instant::now()))));
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_longer_than_the_maximum_are_refused_with_the_bound() {
        assert_eq!(window_from_micros(0), Ok(Duration::ZERO));
        assert_eq!(window_from_micros(1000), Ok(DEFAULT_WINDOW));
        assert_eq!(window_from_micros(10_000), Ok(MAX_WINDOW));
        let err = window_from_micros(10_001).unwrap_err();
        assert!(err.contains("at most 10000"), "{err}");
    }

    /// The hook runs when the runtime runs out of work: a task that wakes up 20 times in a row
    /// (each time from a timer) finds the window passed each time it went idle.
    #[test]
    fn each_idle_turn_waits_the_window_and_work_still_completes() {
        let window = Duration::from_millis(5);
        let rt = runtime_builder(window).enable_all().build().unwrap();
        let start = Instant::now();
        let echoed = rt.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut a, mut b) = tokio::io::duplex(64);
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                let mut one = [0u8];
                while b.read_exact(&mut one).await.is_ok() {
                    got.push(one[0]);
                }
                got
            });
            for i in 0..20u8 {
                a.write_all(&[i]).await.unwrap();
                tokio::time::sleep(Duration::from_micros(10)).await;
            }
            drop(a);
            reader.await.unwrap()
        });
        assert_eq!(echoed, (0..20).collect::<Vec<u8>>());
        assert!(
            start.elapsed() >= window * 20,
            "20 idle turns took {:?}",
            start.elapsed()
        );
    }

    /// The window counts from the wake-up: a turn that was busy for most of it waits only
    /// what is left, so a loaded worker adds no idle time to each turn.
    #[test]
    fn a_busy_turn_waits_only_what_is_left_of_the_window() {
        let window = Duration::from_millis(200);
        let rt = runtime_builder(window).enable_all().build().unwrap();
        let after_busy_turn = rt.block_on(async {
            // A first idle turn, so the next one starts at a wake-up.
            tokio::time::sleep(Duration::from_millis(1)).await;
            let busy_until = Instant::now() + Duration::from_millis(150);
            while Instant::now() < busy_until {
                std::hint::spin_loop();
            }
            let parked = Instant::now();
            tokio::time::sleep(Duration::from_millis(1)).await;
            parked.elapsed()
        });
        // About 50 ms; the old window waited at least its whole 200 ms.
        assert!(
            after_busy_turn < Duration::from_millis(180),
            "after 150 ms of a 200 ms window busy, the wait took {after_busy_turn:?}"
        );
    }
}
