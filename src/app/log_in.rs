//! `log in`: verifies the name (and token), registers the socket, and sends its inbox.

use super::args::Arg;
use super::{event_rate_check, forget_user, App, Reply};
use crate::protocol::{self, events, ChatError, ErrorCode, LogIn, NewMessage};
use crate::registry::Reserve;
use serde_json::json;
use socketioxide::extract::{SocketRef, State};
use std::collections::HashSet;

pub(super) async fn on_log_in(
    socket: SocketRef,
    req: Arg<LogIn>,
    reply: Reply,
    State(app): State<App>,
) {
    let result = match event_rate_check(&app, &socket) {
        Ok(()) => log_in(&app, &socket, req.of(events::LOG_IN)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((username, pending)) => {
            reply.send(
                &app,
                events::LOG_IN,
                Ok(json!({"ok": true, "username": username, "pending": pending.len()})),
            );
            // The ack goes first, then the pending messages oldest first, then whatever
            // arrived while the inbox was being read. The backlog goes out in pages: up to
            // a full flight now, the rest by refills as the client acknowledges.
            for message in &pending {
                if app.emit_direct(&socket, &username, message, true) == Reserve::Hold {
                    break;
                }
            }
            let ids: HashSet<&str> = pending.iter().map(|m| m.id.as_str()).collect();
            for message in app.registry.finish_login(socket.id, &ids) {
                app.emit_direct(&socket, &username, &message, false);
            }
        }
        Err(e) => reply.fail(&app, events::LOG_IN, e),
    }
}

async fn log_in(
    app: &App,
    socket: &SocketRef,
    req: Result<LogIn, ChatError>,
) -> Result<(String, Vec<NewMessage>), ChatError> {
    let req = req?;
    protocol::validate_username(&req.username)?;
    if let Some(secret) = &app.auth_secret {
        // A failed login leaves the socket as it was (logged out, or its previous user).
        crate::auth::verify(secret, req.token.as_deref(), &req.username)?;
    }
    // Counted on this worker only: the cluster-wide socket count of a user is not kept in
    // Redis, so a user spread over W workers may hold up to W times the cap.
    let max = app.limits.max_sockets_per_user;
    if !app.registry.may_log_in(socket.id, &req.username, max) {
        return Err(ChatError::new(
            ErrorCode::LimitReached,
            format!(
                "`{}` already has {max} sockets here (max_sockets_per_user)",
                req.username
            ),
        ));
    }
    if let Some(orphan) = app.registry.begin_login(socket.id, &req.username) {
        forget_user(app, orphan);
    }
    match app.store.login(&req.username).await {
        Ok(pending) => Ok((req.username, pending)),
        Err(e) => {
            tracing::warn!("log in failed: {e}");
            if let Some(orphan) = app.registry.abort_login(socket.id) {
                forget_user(app, orphan);
            }
            Err(ChatError::unavailable())
        }
    }
}
