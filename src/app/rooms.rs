//! Rooms: `join room` (with bounded history), `leave room` and `room message`.

use super::args::Arg;
use super::reply::json_len;
use super::{event_rate_check, forget_room, logged_in, rate_check, App, Reply};
use crate::protocol::{self, events, ChatError, ErrorCode, RoomMessage, RoomRef};
use crate::store::now_ms;
use serde_json::{json, Value};
use socketioxide::extract::{SocketRef, State};

/// Most bytes of room history one `join room` answers with (the newest messages that fit),
/// so a room of large messages never makes one reply of megabytes.
pub const HISTORY_MAX_BYTES: usize = 256 * 1024;

pub(super) async fn on_join_room(
    socket: SocketRef,
    req: Arg<RoomRef>,
    reply: Reply,
    State(app): State<App>,
) {
    let result = match event_rate_check(&app, &socket) {
        Ok(()) => join_room(&app, &socket, req.of(events::JOIN_ROOM)).await,
        Err(e) => Err(e),
    };
    reply.send(&app, events::JOIN_ROOM, result);
}

async fn join_room(
    app: &App,
    socket: &SocketRef,
    req: Result<RoomRef, ChatError>,
) -> Result<Value, ChatError> {
    let req = req?;
    logged_in(app, socket)?;
    protocol::validate_room(&req.room)?;
    let max = app.limits.max_rooms_per_socket;
    if !app.registry.may_join(socket.id, &req.room, max) {
        return Err(ChatError::new(
            ErrorCode::LimitReached,
            format!(
                "this connection is in {max} rooms already (max_rooms_per_socket); leave one first"
            ),
        ));
    }
    app.registry.join(socket.id, &req.room);
    // Always registers (idempotent), so a join also repairs a registration Redis lost.
    match app.store.join(&req.room).await {
        Ok(mut history) => {
            // Newest last: drop from the front until the rest fits.
            let mut size = json_len(&history);
            while size > HISTORY_MAX_BYTES && !history.is_empty() {
                size -= json_len(&history.remove(0)) + 1;
            }
            Ok(json!({"ok": true, "history": history}))
        }
        Err(e) => {
            tracing::warn!("join failed: {e}");
            if app.registry.leave(socket.id, &req.room) {
                forget_room(app, req.room);
            }
            Err(ChatError::unavailable())
        }
    }
}

pub(super) async fn on_leave_room(
    socket: SocketRef,
    req: Arg<RoomRef>,
    reply: Reply,
    State(app): State<App>,
) {
    let result = (|| {
        event_rate_check(&app, &socket)?;
        let req = req.of(events::LEAVE_ROOM)?;
        logged_in(&app, &socket)?;
        protocol::validate_room(&req.room)?;
        if app.registry.leave(socket.id, &req.room) {
            forget_room(&app, req.room);
        }
        Ok(json!({"ok": true}))
    })();
    reply.send(&app, events::LEAVE_ROOM, result);
}

pub(super) async fn on_room_message(
    socket: SocketRef,
    req: Arg<RoomMessage>,
    reply: Reply,
    State(app): State<App>,
) {
    let result = room_message(&app, &socket, req.of(events::ROOM_MESSAGE)).await;
    reply.send(&app, events::ROOM_MESSAGE, result);
}

async fn room_message(
    app: &App,
    socket: &SocketRef,
    req: Result<RoomMessage, ChatError>,
) -> Result<Value, ChatError> {
    let req = req?;
    let from = logged_in(app, socket)?;
    protocol::validate_room(&req.room)?;
    if !app.registry.in_room(socket.id, &req.room) {
        return Err(ChatError::bad_request(format!(
            "join room `{}` before sending to it",
            req.room
        )));
    }
    protocol::validate_text(&req.message, app.limits.max_message_bytes)?;
    rate_check(app, socket)?;
    let id = app
        .store
        .room_send(&req.room, &from, &req.message, now_ms(), socket.id.as_str())
        .await?;
    app.metrics.received();
    Ok(json!({"ok": true, "id": id}))
}
