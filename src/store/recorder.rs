//! A test double for the Redis connection: records every command as its argument strings and
//! answers from a queue, so unit tests pin each call's exact keys and arguments without a
//! server.

use redis::aio::ConnectionLike;
use redis::{Cmd, RedisFuture, Value};
use std::sync::{Arc, Mutex};

/// Records commands (a pipeline's commands one by one) and answers script and single-command
/// calls from the queue given with [`Recorder::reply`]; pipelines get `OK` for each command.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    sent: Arc<Mutex<Vec<Vec<String>>>>,
    replies: Arc<Mutex<Vec<Value>>>,
}

impl Recorder {
    /// Queues the answer to the next single command.
    pub(crate) fn reply(self, v: Value) -> Self {
        self.replies.lock().unwrap().push(v);
        self
    }

    /// Every command sent so far, as argument strings.
    pub(crate) fn sent(&self) -> Vec<Vec<String>> {
        self.sent.lock().unwrap().clone()
    }

    fn record(&self, cmd: &Cmd) {
        let args = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => "<other>".into(),
            })
            .collect();
        self.sent.lock().unwrap().push(args);
    }
}

impl ConnectionLike for Recorder {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.record(cmd);
        let v = self.replies.lock().unwrap().remove(0);
        Box::pin(async move { Ok(v) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipe: &'a redis::Pipeline,
        _offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        for cmd in pipe.cmd_iter() {
            self.record(cmd);
        }
        Box::pin(async move { Ok(vec![Value::Okay; count]) })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// A bulk string reply.
pub(crate) fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

impl super::Sharded for Recorder {}
