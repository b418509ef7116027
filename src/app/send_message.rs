//! `send message`: a direct message to a user, stored in its inbox and delivered by Redis.

use super::{logged_in, payload, rate_check, App, Reply};
use crate::protocol::{self, events, ChatError, SendMessage};
use crate::store::now_ms;
use serde_json::{json, Value};
use socketioxide::extract::{SocketRef, State, TryData};

pub(super) async fn on_send_message(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    reply: Reply,
    State(app): State<App>,
) {
    let result = send_message(&app, &socket, payload(events::SEND_MESSAGE, data)).await;
    reply.send(&app, events::SEND_MESSAGE, result);
}

async fn send_message(
    app: &App,
    socket: &SocketRef,
    data: Result<Value, ChatError>,
) -> Result<Value, ChatError> {
    let req: SendMessage = protocol::parse(events::SEND_MESSAGE, data?)?;
    let from = logged_in(app, socket)?;
    protocol::validate_username(&req.username)?;
    protocol::validate_text(&req.message, app.limits.max_message_bytes)?;
    rate_check(app, socket)?;
    let id = app
        .store
        .send(&from, &req.username, &req.message, now_ms())
        .await?;
    app.metrics.received();
    Ok(json!({"ok": true, "id": id}))
}
