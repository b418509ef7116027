//! The delivery subscriber: one pub/sub connection to this worker's channel that reconnects
//! and resubscribes by itself; [`link`](crate::link) makes the connection,
//! [`subscription`](crate::subscription) reads its frames and [`Delivery`] decodes what
//! arrives. The command connection ([`command_wire`](crate::command_wire)) is made again
//! by the next command, which a subscription never sends, and socketioxide-redis neither
//! reconnects nor resubscribes (and drops messages when its buffer fills), so this loop is
//! ours.

use crate::store::Delivery;
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
            Ok(Ok(mut subscription)) => {
                backoff = Duration::from_millis(100);
                tracing::info!(%channel, "subscribed");
                on_event(BusEvent::Subscribed);
                loop {
                    let next = tokio::select! {
                        _ = &mut shutdown => return,
                        m = subscription.next() => m,
                    };
                    let Some(payload) = next else { break };
                    match std::str::from_utf8(payload).ok().and_then(Delivery::parse) {
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

/// How often the sharded subscriber checks that its channel still has a subscriber on the
/// shard that owns it.
const SHARDED_CHECK: Duration = Duration::from_secs(1);

/// [`run_subscriber`] for a Redis Cluster: `SSUBSCRIBE` on the shard that owns the channel,
/// messages arriving as RESP3 pushes. redis-rs re-subscribes after a reconnect or a slot-map
/// refresh, but nothing refreshes the map while no command fails, and a push does not say
/// which node it came from; so every [`SHARDED_CHECK`] the subscriber asks the channel's
/// primary (`PUBSUB SHARDNUMSUB`, only this worker subscribes to its channel), subscribes
/// again when the count is 0, and reports [`BusEvent::Subscribed`] each time the channel is
/// (re)subscribed, so deliveries published during a failover are resent from the inboxes.
/// The check also makes redis-rs notice a dead primary and refresh its slot map.
pub async fn run_sharded_subscriber(
    link: std::sync::Arc<crate::link::Link>,
    channel: String,
    mut on_event: impl FnMut(BusEvent),
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let Some(mut pushes) = link.take_cluster_pushes() else {
        tracing::error!("no cluster push stream; deliveries will not arrive");
        return;
    };
    let mut subscribed = false;
    let mut check = tokio::time::interval(SHARDED_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            push = pushes.recv() => {
                let Some(push) = push else { return };
                let ours = push.data.first().is_some_and(|c| {
                    matches!(c, redis::Value::BulkString(b) if b.as_slice() == channel.as_bytes())
                });
                match push.kind {
                    redis::PushKind::SMessage if ours => {
                        let payload = match push.data.get(1) {
                            Some(redis::Value::BulkString(b)) => std::str::from_utf8(b).ok(),
                            _ => None,
                        };
                        match payload.and_then(Delivery::parse) {
                            Some(d) => on_event(BusEvent::Delivery(d)),
                            None => tracing::warn!("ignored a malformed delivery on {channel}"),
                        }
                    }
                    redis::PushKind::SSubscribe if ours => {
                        tracing::info!(%channel, "subscribed (sharded)");
                        subscribed = true;
                        on_event(BusEvent::Subscribed);
                    }
                    // The slot moved away from the node (resharding): redis-rs subscribes
                    // again on the new owner after its next slot-map refresh.
                    redis::PushKind::SUnsubscribe if ours => {
                        tracing::warn!(%channel, "unsubscribed by the cluster; resubscribing");
                        subscribed = false;
                        on_event(BusEvent::Lost);
                    }
                    _ => {}
                }
            }
            _ = check.tick() => {
                let mut ask = redis::cmd("PUBSUB");
                ask.arg("SHARDNUMSUB").arg(&channel);
                let count = match link.on_primary_of(&channel, ask).await {
                    Ok(v) => redis::from_redis_value::<(String, i64)>(v).ok().map(|(_, n)| n),
                    Err(e) => {
                        tracing::debug!("PUBSUB SHARDNUMSUB failed: {e}");
                        None
                    }
                };
                match count {
                    // Re-subscribed by redis-rs itself (after a reconnect or a slot-map
                    // refresh), possibly without a push we could match: resend what may have
                    // been missed meanwhile.
                    Some(n) if n > 0 => {
                        if !subscribed {
                            tracing::info!(%channel, "subscribed (sharded, confirmed)");
                            subscribed = true;
                            on_event(BusEvent::Subscribed);
                        }
                    }
                    _ => {
                        if subscribed {
                            tracing::warn!(%channel, "sharded subscription lost; resubscribing");
                            on_event(BusEvent::Lost);
                        }
                        subscribed = false;
                        if let Err(e) = link.ssubscribe(&channel).await {
                            tracing::debug!("SSUBSCRIBE failed: {e}");
                        }
                    }
                }
            }
        }
    }
}
