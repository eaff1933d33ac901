//! CSRF protection: a random token kept in the session, embedded in every form and
//! compared on every POST (the synchronizer-token pattern).

use session_core::{Error, Session, SessionToken};
use subtle::ConstantTimeEq;

/// The session key of the token.
pub const SESSION_KEY: &str = "csrf";
/// The form field that carries it.
pub const FORM_FIELD: &str = "csrf";

/// The session's token, drawn (256 bits from the OS CSPRNG) on first use.
pub async fn token(session: &Session) -> Result<String, Error> {
    if let Some(token) = session.get::<String>(SESSION_KEY).await? {
        return Ok(token);
    }
    let token = SessionToken::generate()?.to_cookie_value();
    session.insert(SESSION_KEY, &token).await?;
    Ok(token)
}

/// Whether `submitted` is the session's token. A session without a token (a new
/// one, a logged-out one) accepts nothing, and nothing is stored by checking.
pub async fn verify(session: &Session, submitted: &str) -> Result<bool, Error> {
    Ok(match session.get::<String>(SESSION_KEY).await? {
        Some(expected) => constant_time_eq(expected.as_bytes(), submitted.as_bytes()),
        None => false,
    })
}

/// Compares in constant time (`subtle`, which keeps the optimiser from adding an
/// early exit), so the time taken does not reveal how many leading bytes of a guess
/// were right. (The length is not secret: tokens have a fixed length.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn equality_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
