//! The Lua scripts, one `.lua` file each under `scripts/`, with the shared preludes
//! (`key.lua`, `worker.lua`, `deliver.lua`) prepended at compile time. Each file's header
//! says its KEYS and ARGV; the store's methods are the only callers.

use redis::Script;
use std::sync::LazyLock;

/// One of the store's scripts: its hash (for `EVALSHA`) and its source (for `EVAL` and
/// `SCRIPT LOAD`).
pub(crate) struct LuaScript {
    pub(super) script: Script,
    pub(super) source: &'static str,
}

/// A script made of preludes and a body, concatenated at compile time.
macro_rules! script {
    ($($file:literal),+) => {
        LazyLock::new(|| {
            let source = concat!($(include_str!(concat!("scripts/", $file))),+);
            LuaScript { script: Script::new(source), source }
        })
    };
}

/// Liveness refresh plus reaping of dead instances; `{fresh, reaped}`.
pub(super) static HEARTBEAT: LazyLock<LuaScript> =
    script!("key.lua", "worker.lua", "heartbeat.lua");
/// Re-registers this instance's live users and rooms.
pub(super) static RESYNC: LazyLock<LuaScript> = script!("key.lua", "worker.lua", "resync.lua");
/// Drops this instance and its memberships (drain).
pub(super) static REMOVE_WORKER: LazyLock<LuaScript> =
    script!("key.lua", "worker.lua", "remove_worker.lua");
/// Registers a user and returns its pending inbox.
pub(super) static LOGIN: LazyLock<LuaScript> = script!("login.lua");
/// The user's last local socket left.
pub(super) static LOGOUT: LazyLock<LuaScript> = script!("logout.lua");
/// Stores direct messages and publishes them to the recipients' instances, one PUBLISH per
/// instance.
pub(super) static SEND_MANY: LazyLock<LuaScript> =
    script!("key.lua", "deliver.lua", "send_many.lua");
/// Removes acknowledged messages; the first ack of each publishes its receipt, one PUBLISH
/// per worker instance.
pub(super) static ACK_MANY: LazyLock<LuaScript> = script!("key.lua", "deliver.lua", "ack_many.lua");
/// Registers room membership and returns the history.
pub(super) static JOIN: LazyLock<LuaScript> = script!("join.lua");
/// The room's last local member left.
pub(super) static LEAVE: LazyLock<LuaScript> = script!("leave.lua");
/// Appends to a room's history and publishes to its instances.
pub(super) static ROOM_SEND: LazyLock<LuaScript> =
    script!("key.lua", "deliver.lua", "room_send.lua");
/// Prunes expired service members and returns the live ones with their info.
pub(super) static MEMBERS_LIVE: LazyLock<LuaScript> = script!("members_live.lua");

// Redis Cluster: one slot per script; the caller does the cross-slot steps (`sharded.rs`).

/// Registers a user in its own slot and returns its pending inbox.
pub(super) static LOGIN_USER: LazyLock<LuaScript> = script!("login_user.lua");
/// Drops an instance from a user's worker set; returns how many remain.
pub(super) static UNREGISTER_USER: LazyLock<LuaScript> = script!("unregister_user.lua");
/// Registers room membership and returns the history, in the room's slot.
pub(super) static JOIN_ROOM: LazyLock<LuaScript> = script!("join_room.lua");
/// Stores a direct message; returns its id and the recipient's instances.
pub(super) static SEND_STORE: LazyLock<LuaScript> =
    script!("key.lua", "deliver.lua", "send_store.lua");
/// Stores a room message; returns its id and the room's instances.
pub(super) static ROOM_STORE: LazyLock<LuaScript> =
    script!("key.lua", "deliver.lua", "room_store.lua");

/// Every script a worker runs, for [`super::Store::load_scripts`].
pub(super) static WORKER_SCRIPTS: [&LazyLock<LuaScript>; 15] = [
    &HEARTBEAT,
    &RESYNC,
    &REMOVE_WORKER,
    &LOGIN,
    &LOGOUT,
    &SEND_MANY,
    &ACK_MANY,
    &JOIN,
    &LEAVE,
    &ROOM_SEND,
    &LOGIN_USER,
    &UNREGISTER_USER,
    &JOIN_ROOM,
    &SEND_STORE,
    &ROOM_STORE,
];
