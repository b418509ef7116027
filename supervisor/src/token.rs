//! `chatctl token USER`: login tokens for `[auth] secret` (SPEC §4).

/// Issues a token for `username`, or says why not.
pub fn issue(secret: Option<&str>, username: &str, ttl_secs: u64) -> Result<String, String> {
    chat::protocol::validate_username(username).map_err(|e| e.message)?;
    match secret {
        None => Err("auth is off: set `[auth] secret` in chat.toml to require login tokens".into()),
        Some(secret) => chat::auth::issue(secret, username, ttl_secs),
    }
}
