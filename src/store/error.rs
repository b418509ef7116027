//! What the store could not do, and how a client hears it.

use crate::protocol::ChatError;
use redis::RedisError;
use std::time::Duration;

/// What the store could not do. Every variant reaches clients as `unavailable`: nothing was
/// accepted, so retrying later is safe.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    #[error("only {got} of {want} replicas confirmed the write")]
    NotReplicated { got: i64, want: u32 },
}

/// A handler's `?` on a store call: the cause goes to the log (the client needs no Redis
/// detail), the client hears [`ChatError::unavailable`].
impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        tracing::warn!("redis call failed: {e}");
        ChatError::unavailable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;

    #[test]
    fn every_store_error_is_unavailable() {
        for e in [
            StoreError::Timeout(Duration::from_secs(2)),
            StoreError::NotReplicated { got: 0, want: 1 },
        ] {
            assert_eq!(ChatError::from(e), ChatError::unavailable());
        }
        let e: ChatError = StoreError::from(RedisError::from(std::io::Error::other("x"))).into();
        assert_eq!(e.code, ErrorCode::Unavailable);
    }
}
