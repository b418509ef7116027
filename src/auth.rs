//! Login tokens (SPEC §4): HS256 JWTs whose `sub` is the username. `chatctl token` issues
//! them; the worker verifies them at `log in` when `[auth] secret` is set.

use crate::protocol::{ChatError, ErrorCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Environment variable through which chatctl hands workers the secret (never argv).
pub const SECRET_ENV: &str = "CHAT_AUTH_SECRET";

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

/// A token for `username` valid for `ttl_secs`.
pub fn issue(secret: &str, username: &str, ttl_secs: u64) -> Result<String, String> {
    let now = now_secs();
    let claims = Claims {
        sub: username.to_owned(),
        iat: now,
        exp: now + ttl_secs,
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
}
