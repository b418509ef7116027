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
//! An `EVAL` retry still left the calls refused with `NOSCRIPT` to race with new ones: with
//! batches B1 and B2 both refused, B1's `EVAL` caches the script, and a B3 written before
//! B2's refusal came back ran before B2's retry. [`ScriptGate`] closes that: after a
//! refusal, new calls wait until every call already written has been answered (its retry
//! included), then go in the order they came. [`super::Store::load_scripts`] keeps all of
//! this off the usual path.

use super::scripts::LuaScript;
use redis::aio::ConnectionLike;
use redis::{Arg, Cmd, ErrorKind, FromRedisValue, RedisResult, ServerErrorKind, ToRedisArgs};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

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
    /// or `SCRIPT FLUSH`), sends it again as an `EVAL` of the source. Calls that share a
    /// connection and must keep their order go through a [`ScriptGate`] instead.
    pub(super) async fn invoke<T: FromRedisValue, C: ConnectionLike>(
        &self,
        con: &mut C,
    ) -> RedisResult<T> {
        self.invoke_noting_refusal(con, || {}).await
    }

    async fn invoke_noting_refusal<T: FromRedisValue, C: ConnectionLike>(
        &self,
        con: &mut C,
        refused: impl FnOnce(),
    ) -> RedisResult<T> {
        debug_assert_eq!(self.keys_left, 0, "fewer keys than the call declared");
        match self.cmd.query_async(con).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                refused();
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

/// Keeps script calls on one connection in the order they were written across a
/// `NOSCRIPT`: once a call is refused, new calls wait until every call in flight has been
/// answered (the refused ones after their `EVAL` retry), then go in the order they came.
/// Until a refusal it only counts calls.
#[derive(Default, Clone)]
pub(super) struct ScriptGate(Arc<Mutex<GateState>>);

#[derive(Default)]
struct GateState {
    /// Calls written and not answered yet, retries included.
    in_flight: usize,
    /// A call in flight was refused with `NOSCRIPT`: calls written before its retry will be
    /// refused too, and must retry before anything new is written.
    closed: bool,
    /// Calls waiting for the gate to open, oldest first. Each is handed its place in flight.
    waiting: VecDeque<oneshot::Sender<InFlight>>,
}

/// One call's place in flight; dropping it (answered, failed, timed out or cancelled) lets
/// the gate open when it was the last.
pub(super) struct InFlight(ScriptGate);

impl Drop for InFlight {
    fn drop(&mut self) {
        let handed_back = {
            let mut state = self.0.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight > 0 || !state.closed {
                return;
            }
            state.closed = false;
            self.0.open(&mut state)
        };
        // Places handed to waiters that had gone (their calls timed out): dropped outside
        // the lock, since each drop takes it.
        drop(handed_back);
    }
}

impl ScriptGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        // A panic while holding this lock leaves counts that are still whole numbers.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands every waiter its place in flight, oldest first; returns the places of waiters
    /// that had gone.
    fn open(&self, state: &mut GateState) -> Vec<InFlight> {
        let mut gone = Vec::new();
        while let Some(waiter) = state.waiting.pop_front() {
            state.in_flight += 1;
            if let Err(place) = waiter.send(InFlight(self.clone())) {
                gone.push(place);
            }
        }
        gone
    }

    /// Waits for the gate to be open; the place it returns must live as long as the call.
    async fn enter(&self) -> InFlight {
        let waiting = {
            let mut state = self.lock();
            if !state.closed {
                state.in_flight += 1;
                return InFlight(self.clone());
            }
            let (hand, place) = oneshot::channel();
            state.waiting.push_back(hand);
            place
        };
        match waiting.await {
            Ok(place) => place,
            // The gate is never dropped with waiters (it drops with its last call); if it
            // were, going ahead is what the call did before the gate existed.
            Err(_) => {
                self.lock().in_flight += 1;
                InFlight(self.clone())
            }
        }
    }

    fn close(&self) {
        self.lock().closed = true;
    }

    /// `call` on `con`, in order with every other call through this gate.
    pub(super) async fn invoke<T: FromRedisValue, C: ConnectionLike>(
        &self,
        call: &ScriptCall<'_>,
        con: &mut C,
    ) -> RedisResult<T> {
        let _place = self.enter().await;
        call.invoke_noting_refusal(con, || self.close()).await
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

    /// A connection like one to a Redis that has just lost its scripts: it answers calls in
    /// the order they were written, one more each time the test calls `answer`, and refuses
    /// `EVALSHA` with `NOSCRIPT` until an `EVAL` has been written before it.
    #[derive(Clone, Default)]
    struct ForgetfulRedis(Arc<Mutex<Forgetful>>);

    #[derive(Default)]
    struct Forgetful {
        /// `EVALSHA b1`, `EVAL b1`…: each call's command and first key, in write order.
        written: Vec<String>,
        cached: bool,
        answered: usize,
        wakers: Vec<std::task::Waker>,
    }

    impl ForgetfulRedis {
        fn written(&self) -> Vec<String> {
            self.0.lock().unwrap().written.clone()
        }

        /// Lets the next written call have its answer.
        fn answer(&self) {
            let mut s = self.0.lock().unwrap();
            s.answered += 1;
            s.wakers.drain(..).for_each(|w| w.wake());
        }
    }

    impl ConnectionLike for ForgetfulRedis {
        fn req_packed_command<'a>(
            &'a mut self,
            cmd: &'a Cmd,
        ) -> redis::RedisFuture<'a, redis::Value> {
            let redis = self.0.clone();
            Box::pin(async move {
                let a = args(cmd);
                let name = String::from_utf8_lossy(&a[0]).into_owned();
                let (turn, refused) = {
                    let mut s = redis.lock().unwrap();
                    // Redis runs commands in the order they arrive, so what it will answer
                    // is known when a command is written.
                    let refused = name == "EVALSHA" && !s.cached;
                    s.cached |= name == "EVAL";
                    s.written
                        .push(format!("{name} {}", String::from_utf8_lossy(&a[3])));
                    (s.written.len(), refused)
                };
                std::future::poll_fn(|cx| {
                    let mut s = redis.lock().unwrap();
                    if s.answered >= turn {
                        std::task::Poll::Ready(())
                    } else {
                        s.wakers.push(cx.waker().clone());
                        std::task::Poll::Pending
                    }
                })
                .await;
                if refused {
                    redis::parse_redis_value(b"-NOSCRIPT No matching script.\r\n")
                } else {
                    Ok(redis::Value::Int(1))
                }
            })
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            _: &'a redis::Pipeline,
            _: usize,
            _: usize,
        ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
            unreachable!("script calls are single commands")
        }

        fn get_db(&self) -> i64 {
            0
        }
    }

    /// Lets every future in the test's `join!` run until it waits on the connection.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    /// Calls of `script` with the keys b1, b2 and b3, as three batches would be.
    fn three_batches(script: &LuaScript) -> [ScriptCall<'_>; 3] {
        ["b1", "b2", "b3"].map(|key| {
            let mut call = ScriptCall::new(script, 1);
            call.key(key);
            call
        })
    }

    /// Two batches in flight are both refused; the first one's retry caches the script; a
    /// third batch comes before the second's refusal is back. Without the gate the third
    /// was written (and stored) before the second's retry.
    #[tokio::test]
    async fn after_noscript_calls_are_stored_in_the_order_they_were_written() {
        let script = script("return 1");
        let [b1, b2, b3] = three_batches(&script);
        let (redis, gate) = (ForgetfulRedis::default(), ScriptGate::default());
        let (third_comes, third_came) = oneshot::channel::<()>();
        let run = |call: &'static str| {
            let (mut con, gate) = (redis.clone(), gate.clone());
            let call = match call {
                "b1" => &b1,
                "b2" => &b2,
                _ => &b3,
            };
            async move { gate.invoke::<i64, _>(call, &mut con).await }
        };
        let third = run("b3");
        let driver = async {
            settle().await;
            assert_eq!(redis.written(), ["EVALSHA b1", "EVALSHA b2"]);
            redis.answer(); // b1: NOSCRIPT, and its EVAL goes out
            settle().await;
            assert_eq!(redis.written(), ["EVALSHA b1", "EVALSHA b2", "EVAL b1"]);
            let _ = third_comes.send(());
            settle().await;
            for _ in 0..4 {
                redis.answer(); // b2's NOSCRIPT, b1's EVAL, b2's EVAL, then b3
                settle().await;
            }
        };
        let (r1, r2, r3, ()) = tokio::join!(
            run("b1"),
            run("b2"),
            async move {
                let _ = third_came.await;
                third.await
            },
            driver
        );
        assert_eq!(
            redis.written(),
            [
                "EVALSHA b1",
                "EVALSHA b2",
                "EVAL b1",
                "EVAL b2",
                "EVALSHA b3"
            ],
            "b3 waited for b2's retry"
        );
        assert_eq!((r1.ok(), r2.ok(), r3.ok()), (Some(1), Some(1), Some(1)));
        let state = gate.lock();
        assert_eq!(
            (state.in_flight, state.closed),
            (0, false),
            "the gate is open again"
        );
    }

    /// A call that gives up while the gate is closed (its caller's timeout) must not keep
    /// the gate closed, or every script call after it would wait forever.
    #[tokio::test]
    async fn a_call_that_gives_up_at_the_closed_gate_leaves_it_whole() {
        let script = script("return 1");
        let [b1, b2, b3] = three_batches(&script);
        let (redis, gate) = (ForgetfulRedis::default(), ScriptGate::default());
        let (mut con1, mut con2, mut con3) = (redis.clone(), redis.clone(), redis.clone());
        let driver = async {
            settle().await;
            redis.answer(); // b1: NOSCRIPT; the gate closes and b1's EVAL goes out
            settle().await;
            let b2_call = gate.invoke::<i64, _>(&b2, &mut con2);
            let gave_up = tokio::time::timeout(std::time::Duration::from_millis(1), b2_call);
            assert!(gave_up.await.is_err(), "b2 waits at the closed gate");
            redis.answer(); // b1's EVAL
            settle().await;
        };
        let (r1, ()) = tokio::join!(gate.invoke::<i64, _>(&b1, &mut con1), driver);
        assert_eq!(r1.ok(), Some(1));
        {
            let state = gate.lock();
            assert_eq!(
                (state.in_flight, state.closed, state.waiting.len()),
                (0, false, 0),
                "open again, b2's place given back"
            );
        }
        let (r3, ()) = tokio::join!(gate.invoke::<i64, _>(&b3, &mut con3), async {
            settle().await;
            redis.answer();
        });
        assert_eq!(r3.ok(), Some(1));
        assert_eq!(redis.written(), ["EVALSHA b1", "EVAL b1", "EVALSHA b3"]);
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
