//! The control requests, one handler per [`Request`] variant (`scale`, `reload`, `restart`, `down` in
//! their own files; the one-liners here).

mod down;
mod reload;
mod restart;
mod scale;

use super::{Sup, Supervisor};
use chat::control::{Request, Response};

impl Supervisor {
    pub async fn handle(self: Sup, request: Request) -> Response {
        match request {
            Request::Ping => ping(),
            Request::Status => Response::Status(Box::new(self.status().await)),
            Request::Scale { workers } => done(self.scale(workers).await),
            Request::Reload => done(self.rolling_reload().await),
            Request::Restart { name } => done(self.restart(&name).await),
            Request::Down => done(Ok(self.request_down())),
            Request::Token { username, ttl_secs } => self.token(&username, ttl_secs),
        }
    }

    fn token(&self, username: &str, ttl_secs: u64) -> Response {
        match crate::token::issue(self.settings.auth_secret.as_deref(), username, ttl_secs) {
            Ok(token) => Response::Token { token },
            Err(message) => Response::Error { message },
        }
    }
}

fn ping() -> Response {
    Response::Pong {
        pid: std::process::id(),
    }
}

/// The answer to a request that changes something.
fn done(result: anyhow::Result<String>) -> Response {
    match result {
        Ok(message) => Response::Done { message },
        Err(e) => Response::Error {
            message: format!("{e:#}"),
        },
    }
}
