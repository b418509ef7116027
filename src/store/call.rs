//! [`ScriptCall`]: an `EVALSHA` of one of the store's scripts, written straight into one
//! command buffer.
//!
//! redis-rs's `ScriptInvocation` keeps every key and argument in its own `Vec<u8>` and copies
//! them all into a command when it is invoked: a dozen allocations per send or ack. Here each
//! key and argument is written once, in place ([`keys::Name`](super::keys::Name) writes its
//! parts without building a `String`), and the `NOSCRIPT` fallback is the same as redis-rs's:
//! load the script, then send the very same command again.

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind, ToRedisArgs};

/// An `EVALSHA` call being built: first its keys, then its arguments.
pub(super) struct ScriptCall<'s> {
    script: &'s Script,
    cmd: Cmd,
    /// Keys still expected before the first argument.
    keys_left: usize,
}

impl<'s> ScriptCall<'s> {
    /// A call of `script` with exactly `keys` keys, added with [`ScriptCall::key`] before any
    /// [`ScriptCall::arg`].
    pub(super) fn new(script: &'s Script, keys: usize) -> Self {
        // Room for the keys and a few arguments each, so the buffers rarely grow while the
        // call is written (a send of one message is about 10 arguments and 200 bytes).
        let mut cmd = redis::Cmd::with_capacity(8 + 6 * keys, 160 + 96 * keys);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys);
        Self {
            script,
            cmd,
            keys_left: keys,
        }
    }

    pub(super) fn key<K: ToRedisArgs>(&mut self, key: K) -> &mut Self {
        debug_assert!(self.keys_left > 0, "more keys than the call declared");
        self.keys_left = self.keys_left.saturating_sub(1);
        self.cmd.arg(key);
        self
    }

    pub(super) fn arg<A: ToRedisArgs>(&mut self, arg: A) -> &mut Self {
        debug_assert_eq!(self.keys_left, 0, "an argument before the last key");
        self.cmd.arg(arg);
        self
    }

    /// Sends the call; when Redis does not know the script yet (first use, or after a restart
    /// or `SCRIPT FLUSH`), loads it and sends the call again.
    pub(super) async fn invoke<T: FromRedisValue, C: ConnectionLike>(
        &self,
        con: &mut C,
    ) -> RedisResult<T> {
        debug_assert_eq!(self.keys_left, 0, "fewer keys than the call declared");
        match self.cmd.query_async(con).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script.load_async(con).await?;
                self.cmd.query_async(con).await
            }
            result => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_is_evalsha_hash_key_count_keys_then_arguments() {
        let script = Script::new("return 1");
        let mut call = ScriptCall::new(&script, 2);
        call.key("k1").key("k2").arg("a").arg(7);
        let args: Vec<Vec<u8>> = call
            .cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        let want: Vec<&[u8]> = vec![
            b"EVALSHA",
            script.get_hash().as_bytes(),
            b"2",
            b"k1",
            b"k2",
            b"a",
            b"7",
        ];
        assert_eq!(args, want);
    }
}
