//! Restart policy for children that exit unexpectedly (SPEC §2): exponential backoff from
//! 100 ms doubling to 10 s, reset after 60 s up; `failed` after 10 crashes within 60 s.
//! A pure function of the crash history and the clock, so it is tested without processes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// A child up this long is considered healthy again: its backoff starts over.
    pub reset_after: Duration,
    /// This many crashes within `window` and the child is given up (`failed`).
    pub max_crashes: usize,
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            reset_after: Duration::from_secs(60),
            max_crashes: 10,
            window: Duration::from_secs(60),
        }
    }
}

/// What a child's past crashes are, for the policy.
#[derive(Debug, Clone, Default)]
pub struct CrashHistory {
    recent: VecDeque<Instant>,
    next_delay: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this delay (state `restarting` meanwhile).
    RestartAfter(Duration),
    /// Too many crashes: leave it `failed`.
    GiveUp,
}

impl RestartPolicy {
    /// A child that started at `started_at` exited unexpectedly at `now`.
    pub fn on_crash(&self, h: &mut CrashHistory, started_at: Instant, now: Instant) -> Decision {
        if now.saturating_duration_since(started_at) >= self.reset_after {
            h.next_delay = None;
        }
        h.recent.push_back(now);
        while h
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.window)
        {
            h.recent.pop_front();
        }
        if h.recent.len() >= self.max_crashes {
            return Decision::GiveUp;
        }
        let delay = h.next_delay.unwrap_or(self.initial_delay);
        h.next_delay = Some((delay * 2).min(self.max_delay));
        Decision::RestartAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        let p = RestartPolicy {
            max_crashes: 100,
            ..Default::default()
        };
        let mut h = CrashHistory::default();
        let t0 = Instant::now();
        let delays: Vec<_> = (0..10)
            .map(|i| match p.on_crash(&mut h, t0, t0 + ms(i)) {
                Decision::RestartAfter(d) => d.as_millis() as u64,
                Decision::GiveUp => 0,
            })
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000]
        );
    }

    #[test]
    fn a_minute_up_resets_the_backoff() {
        let p = RestartPolicy::default();
        let mut h = CrashHistory::default();
        let t0 = Instant::now();
        assert_eq!(p.on_crash(&mut h, t0, t0), Decision::RestartAfter(ms(100)));
        assert_eq!(
            p.on_crash(&mut h, t0, t0 + ms(1)),
            Decision::RestartAfter(ms(200))
        );
        let started = t0 + Duration::from_secs(1);
        let crash = started + Duration::from_secs(61);
        assert_eq!(
            p.on_crash(&mut h, started, crash),
            Decision::RestartAfter(ms(100))
        );
    }

    #[test]
    fn ten_crashes_in_a_minute_give_up() {
        let p = RestartPolicy::default();
        let mut h = CrashHistory::default();
        let t0 = Instant::now();
        for i in 0..9 {
            assert!(matches!(
                p.on_crash(&mut h, t0, t0 + Duration::from_secs(i)),
                Decision::RestartAfter(_)
            ));
        }
        assert_eq!(
            p.on_crash(&mut h, t0, t0 + Duration::from_secs(9)),
            Decision::GiveUp
        );
    }

    #[test]
    fn crashes_older_than_the_window_do_not_count() {
        let p = RestartPolicy::default();
        let mut h = CrashHistory::default();
        let t0 = Instant::now();
        for i in 0..9 {
            p.on_crash(&mut h, t0, t0 + Duration::from_secs(i * 10));
        }
        // 9 crashes spread over 80 s: only those within the last 60 s count.
        assert!(matches!(
            p.on_crash(&mut h, t0, t0 + Duration::from_secs(90)),
            Decision::RestartAfter(_)
        ));
    }
}
