//! The delivery subscriber: one pub/sub connection to this worker's channel that reconnects
//! and resubscribes by itself; [`link`](crate::link) makes the connection and
//! [`Delivery`] decodes what arrives. redis-rs's `ConnectionManager` reconnects commands but not
//! subscriptions, and socketioxide-redis neither reconnects nor resubscribes (and drops
//! messages when its buffer fills), so this loop is ours.

use crate::store::Delivery;
use futures_util::StreamExt;
use std::future::Future;
use std::time::Duration;

/// What the subscriber reports to the worker.
pub enum BusEvent {
    /// The channel is subscribed (again): anything published while it was not was missed.
    Subscribed,
    /// The subscription is lost; reconnecting.
    Lost,
    /// A delivery arrived.
    Delivery(Delivery),
}

/// Runs until `shutdown` resolves. `on_event` is called on this task for every event, so
/// deliveries keep their publish order.
pub async fn run_subscriber(
    link: std::sync::Arc<crate::link::Link>,
    channel: String,
    connect_timeout: Duration,
    mut on_event: impl FnMut(BusEvent),
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        // Asked anew each time: after a Sentinel failover this is the new primary.
        let attempt = link.subscribe(&channel);
        let connected = tokio::select! {
            _ = &mut shutdown => return,
            r = tokio::time::timeout(connect_timeout, attempt) => r,
        };
        match connected {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(100);
                tracing::info!(%channel, "subscribed");
                on_event(BusEvent::Subscribed);
                let mut messages = pubsub.into_on_message();
                loop {
                    let next = tokio::select! {
                        _ = &mut shutdown => return,
                        m = messages.next() => m,
                    };
                    let Some(msg) = next else { break };
                    match std::str::from_utf8(msg.get_payload_bytes())
                        .ok()
                        .and_then(Delivery::parse)
                    {
                        Some(d) => on_event(BusEvent::Delivery(d)),
                        None => tracing::warn!("ignored a malformed delivery on {channel}"),
                    }
                }
                tracing::warn!(%channel, "subscription lost; reconnecting");
                on_event(BusEvent::Lost);
            }
            Ok(Err(e)) => tracing::debug!("subscribe failed: {e}"),
            Err(_) => tracing::debug!("subscribe timed out"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
