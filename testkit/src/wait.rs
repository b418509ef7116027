//! Bounded waits: poll a condition until it holds, panic naming what was awaited once the
//! limit passes. Tests wait this way instead of sleeping.

use std::future::Future;
use std::time::{Duration, Instant};

/// Generous bound for anything a worker-level test waits on.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `probe` every `every` until it yields `Ok`; panics after `limit` with `what` and
/// the last `Err` (why it was not there yet).
pub async fn poll<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = match probe().await {
            Ok(v) => return v,
            Err(why) => why,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}{}{last}",
            if last.is_empty() { "" } else { ": " }
        );
        tokio::time::sleep(every).await;
    }
}

/// Polls `check` every 50 ms until it returns true; panics after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll(what, limit, Duration::from_millis(50), || {
        let fut = check();
        async move { fut.await.then_some(()).ok_or_else(String::new) }
    })
    .await
}

/// Polls `check` every 50 ms on this thread until it holds; panics after `limit`.
pub fn wait_sync(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a blocking call (a chatctl command, redis-cli, a process wait) without stalling the
/// test's other tasks. On a multi-thread runtime it goes through `block_in_place`, so the
/// simulated clients keep reading, acking and answering pings meanwhile; a test that measures
/// delivery delays must run on one, or every blocking call freezes its clients and the
/// freeze shows up as delay. On a current-thread runtime it simply runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
