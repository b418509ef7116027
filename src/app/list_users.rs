//! `list users`: the users logged in anywhere in the cluster (at most `LIST_USERS_MAX`).

use super::{event_rate_check, logged_in, App, Reply};
use crate::protocol::{self, events, ChatError};
use serde_json::json;
use socketioxide::extract::{SocketRef, State};

pub(super) async fn on_list_users(socket: SocketRef, reply: Reply, State(app): State<App>) {
    let result = match event_rate_check(&app, &socket).and_then(|()| logged_in(&app, &socket)) {
        Err(e) => Err(e),
        Ok(_) => list_users(&app).await,
    };
    reply.send(&app, events::LIST_USERS, result);
}

async fn list_users(app: &App) -> Result<serde_json::Value, ChatError> {
    let users = app.store.list_users(protocol::LIST_USERS_MAX).await?;
    Ok(json!({"ok": true, "users": users}))
}
