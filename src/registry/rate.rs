//! Per-socket rate limits: `messages_per_second` and `events_per_second` token buckets.

use super::Registry;
use socketioxide::socket::Sid;
use std::time::Instant;

/// A token bucket for `messages_per_second`: `rate` tokens per second, `rate` deep.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, now: Instant) -> Self {
        Self {
            tokens: rate as f64,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, rate: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate as f64).min(rate as f64);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Registry {
    pub fn take_token(&self, sid: Sid, rate: u32) -> bool {
        self.lock()
            .sockets
            .get_mut(&sid)
            .is_none_or(|s| s.bucket.try_take(rate, Instant::now()))
    }

    /// Takes a token of `events_per_second`.
    pub fn take_event_token(&self, sid: Sid, rate: u32) -> bool {
        self.lock()
            .sockets
            .get_mut(&sid)
            .is_none_or(|s| s.events.try_take(rate, Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_rate_then_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, t0);
        assert!(b.try_take(3, t0));
        assert!(b.try_take(3, t0));
        assert!(b.try_take(3, t0));
        assert!(!b.try_take(3, t0));
        assert!(b.try_take(3, t0 + Duration::from_millis(400)));
        assert!(!b.try_take(3, t0 + Duration::from_millis(400)));
    }

    #[test]
    fn bucket_never_exceeds_its_depth() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, t0);
        let later = t0 + Duration::from_secs(100);
        assert!(b.try_take(2, later));
        assert!(b.try_take(2, later));
        assert!(!b.try_take(2, later));
    }
}
