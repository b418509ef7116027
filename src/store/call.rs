//! [`ScriptCall`]: an `EVALSHA` of one of the store's scripts, written straight into one
//! command buffer.
//!
//! redis-rs's `ScriptInvocation` keeps every key and argument in its own `Vec<u8>` and copies
//! them all into a command when it is invoked: a dozen allocations per send or ack. Here each
//! key and argument is written once, in place ([`keys::Name`](super::keys::Name) writes its
//! parts without building a `String`).
//!
//! When Redis does not know the script (`NOSCRIPT`: a fresh or restarted Redis, a promoted
//! replica), the same call is sent again as an `EVAL` of the source, which also caches it.
//! redis-rs's fallback (`SCRIPT LOAD`, then the `EVALSHA` again) reorders pipelined calls:
//! a call written after the `SCRIPT LOAD` but before the retry finds the script and runs
//! first. Two overlapping batches of sends were stored out of order that way
//! (`tests/protocol.rs`, `a_burst_of_sends_is_stored_in_batches_and_arrives_intact_in_order`).
//! An `EVAL` retry leaves only calls already refused with `NOSCRIPT` to race among
//! themselves, and [`super::Store::load_scripts`] keeps even that off the usual path.

use super::scripts::LuaScript;
use redis::aio::ConnectionLike;
use redis::{Arg, Cmd, ErrorKind, FromRedisValue, RedisResult, ServerErrorKind, ToRedisArgs};

/// An `EVALSHA` call being built: first its keys, then its arguments.
pub(super) struct ScriptCall<'s> {
    script: &'s LuaScript,
    cmd: Cmd,
    /// Keys still expected before the first argument.
    keys_left: usize,
}

impl<'s> ScriptCall<'s> {
    /// A call of `script` with exactly `keys` keys, added with [`ScriptCall::key`] before any
    /// [`ScriptCall::arg`].
    pub(super) fn new(script: &'s LuaScript, keys: usize) -> Self {
        // Room for the keys and a few arguments each, so the buffers rarely grow while the
        // call is written (a send of one message is about 10 arguments and 200 bytes).
        let mut cmd = redis::Cmd::with_capacity(8 + 6 * keys, 160 + 96 * keys);
        cmd.arg("EVALSHA").arg(script.script.get_hash()).arg(keys);
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

    /// Sends the call; when Redis does not know the script (first use, or after a restart
    /// or `SCRIPT FLUSH`), sends it again as an `EVAL` of the source.
    pub(super) async fn invoke<T: FromRedisValue, C: ConnectionLike>(
        &self,
        con: &mut C,
    ) -> RedisResult<T> {
        debug_assert_eq!(self.keys_left, 0, "fewer keys than the call declared");
        match self.cmd.query_async(con).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.as_eval().query_async(con).await
            }
            result => result,
        }
    }

    /// The same call as `EVAL source numkeys keys… args…`.
    fn as_eval(&self) -> Cmd {
        let mut eval = redis::cmd("EVAL");
        eval.arg(self.script.source);
        // `EVALSHA` and the hash are the first two; the key count, keys and arguments follow.
        for arg in self.cmd.args_iter().skip(2) {
            if let Arg::Simple(bytes) = arg {
                eval.arg(bytes);
            }
        }
        eval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(source: &'static str) -> LuaScript {
        LuaScript {
            script: redis::Script::new(source),
            source,
        }
    }

    fn args(cmd: &Cmd) -> Vec<Vec<u8>> {
        cmd.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn the_retry_is_eval_of_the_source_with_the_same_keys_and_arguments() {
        let script = script("return KEYS[1]");
        let mut call = ScriptCall::new(&script, 1);
        call.key("k1").arg("a").arg(7);
        let want: Vec<&[u8]> = vec![b"EVAL", b"return KEYS[1]", b"1", b"k1", b"a", b"7"];
        assert_eq!(args(&call.as_eval()), want);
    }

    #[test]
    fn the_call_is_evalsha_hash_key_count_keys_then_arguments() {
        let script = script("return 1");
        let mut call = ScriptCall::new(&script, 2);
        call.key("k1").key("k2").arg("a").arg(7);
        let want: Vec<&[u8]> = vec![
            b"EVALSHA",
            script.script.get_hash().as_bytes(),
            b"2",
            b"k1",
            b"k2",
            b"a",
            b"7",
        ];
        assert_eq!(args(&call.cmd), want);
    }
}
