//! Login tokens (SPEC §4): HS256 JWTs whose `sub` is the username. `chatctl token` issues
//! them; the worker verifies them at `log in` when `[auth] secret` is set.

use crate::protocol::{ChatError, ErrorCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Environment variable through which chatctl hands workers the secret (never argv).
pub const SECRET_ENV: &str = "CHAT_AUTH_SECRET";

/// Shortest `[auth] secret` accepted: HS256 keys shorter than the hash (32 bytes) are
/// brute-forceable offline from any one token (RFC 7518 §3.2 asks for at least this).
pub const MIN_SECRET_BYTES: usize = 32;

/// Longest token lifetime issued or accepted (30 days): a leaked token must not be a
/// permanent login, and `iat + ttl` must not overflow.
pub const MAX_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

/// Refuses a secret too short to sign tokens safely, saying what to do.
pub fn check_secret(secret: &str) -> Result<(), String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "[auth] secret is {} bytes; it must be at least {MIN_SECRET_BYTES}: generate one with \
             `openssl rand -hex 32`",
            secret.len()
        ));
    }
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A token for `username` valid for `ttl_secs` (at most [`MAX_TOKEN_TTL_SECS`]).
pub fn issue(secret: &str, username: &str, ttl_secs: u64) -> Result<String, String> {
    if ttl_secs > MAX_TOKEN_TTL_SECS {
        return Err(format!(
            "a token may live at most {MAX_TOKEN_TTL_SECS} s (30 days), not {ttl_secs} s: \
             choose a shorter --ttl"
        ));
    }
    let now = now_secs();
    let claims = Claims {
        sub: username.to_owned(),
        iat: now,
        exp: now.saturating_add(ttl_secs),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("cannot sign the token: {e}"))
}

/// Checks that `token` is a valid, unexpired HS256 token for `username`.
pub fn verify(secret: &str, token: Option<&str>, username: &str) -> Result<(), ChatError> {
    let unauthorized = |why: &str| ChatError::new(ErrorCode::Unauthorized, why);
    let token = token.ok_or_else(|| unauthorized("log in needs a token (auth is on)"))?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 5;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => unauthorized("the token has expired"),
        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
            unauthorized("the token's signature is not valid")
        }
        _ => unauthorized("the token is not a valid login token"),
    })?;
    if data.claims.sub != username {
        return Err(unauthorized("the token is for another user"));
    }
    // Tokens signed elsewhere with the same secret are held to the same lifetime cap.
    let latest_exp = now_secs().saturating_add(MAX_TOKEN_TTL_SECS + validation.leeway);
    if data.claims.exp > latest_exp {
        return Err(unauthorized("the token's lifetime is longer than 30 days"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_token_for_the_user_passes() {
        let t = issue("s3cret", "alice", 60).unwrap();
        assert!(verify("s3cret", Some(&t), "alice").is_ok());
    }

    #[test]
    fn wrong_user_signature_expiry_and_absence_are_unauthorized() {
        let t = issue("s3cret", "alice", 60).unwrap();
        for (secret, token, user) in [
            ("s3cret", Some(t.as_str()), "bob"),
            ("other", Some(t.as_str()), "alice"),
            ("s3cret", None, "alice"),
            ("s3cret", Some("not.a.jwt"), "alice"),
        ] {
            let e = verify(secret, token, user).unwrap_err();
            assert_eq!(e.code, ErrorCode::Unauthorized, "{secret} {user}");
        }
        let now = now_secs();
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                iat: now - 100,
                exp: now - 60,
            },
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        let e = verify("s3cret", Some(&expired), "alice").unwrap_err();
        assert!(e.message.contains("expired"), "{}", e.message);
    }

    #[test]
    fn lifetimes_are_capped_when_issued_and_when_verified() {
        let e = issue("s3cret", "alice", MAX_TOKEN_TTL_SECS + 1).unwrap_err();
        assert!(e.contains("at most"), "{e}");
        assert!(
            issue("s3cret", "alice", u64::MAX).is_err(),
            "no overflow, no token"
        );
        let now = now_secs();
        let forever = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                iat: now,
                exp: now + 10 * MAX_TOKEN_TTL_SECS,
            },
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        let e = verify("s3cret", Some(&forever), "alice").unwrap_err();
        assert!(e.message.contains("30 days"), "{}", e.message);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(check_secret("s3cret").unwrap_err().contains("openssl rand"));
        assert!(check_secret(&"k".repeat(MIN_SECRET_BYTES)).is_ok());
    }
}
