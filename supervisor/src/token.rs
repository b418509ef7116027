//! `chatctl token USER`: login tokens for `[auth] secret` (SPEC §4).

/// Issues a token for `username`, or says why not.
pub fn issue(secret: Option<&str>, username: &str, ttl_secs: u64) -> Result<String, String> {
    chat::protocol::validate_username(username).map_err(|e| e.message)?;
    match secret {
        None => Err("auth is off: set `[auth] secret` in chat.toml to require login tokens".into()),
        Some(secret) => {
            // A short secret can be brute-forced offline from any token it signed.
            chat::auth::check_secret(secret)?;
            chat::auth::issue(secret, username, ttl_secs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_secret_is_refused() {
        let err = issue(Some("short"), "alice", 60).unwrap_err();
        assert!(err.contains("at least"), "{err}");
        assert!(issue(Some(&"k".repeat(32)), "alice", 60).is_ok());
    }
}
