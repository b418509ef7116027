//! One bounded wait: poll a condition until it yields or a deadline passes.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Some` (that value) or `deadline` passes (`None`).
/// `check` always runs at least once.
pub async fn wait_until<T, F, Fut>(deadline: Instant, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn yields_the_first_value_or_gives_up_at_the_deadline() {
        let mut n = 0;
        let got = wait_until(Instant::now() + Duration::from_secs(5), || {
            n += 1;
            let v = (n == 3).then_some(n);
            async move { v }
        })
        .await;
        assert_eq!(got, Some(3));
        let never = wait_until(Instant::now(), || async { None::<()> }).await;
        assert_eq!(never, None);
    }
}
