//! The cookie token and the storage key derived from it.
//!
//! The cookie carries a 256-bit random [`SessionToken`]; stores only ever see the
//! [`StorageKey`], the lowercase hex SHA-256 of the token. A leaked store therefore
//! holds no usable cookie, and every key is 64 characters of `[0-9a-f]` — safe as a
//! file name, a Redis key or a SQL value.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::Error;

/// Number of random bytes in a token.
pub const TOKEN_BYTES: usize = 32;
/// Length of a token's cookie form: 32 bytes in base64url without padding.
pub const TOKEN_COOKIE_LEN: usize = 43;
/// Length of a [`StorageKey`]: 64 lowercase hex characters.
pub const STORAGE_KEY_LEN: usize = 64;

/// A session token: 256 bits from the operating system's CSPRNG.
///
/// Its only textual form is the cookie value (base64url, no padding). `Debug` never
/// prints it, so a token cannot leak through logs.
///
/// ```
/// use session_core::SessionToken;
///
/// let token = SessionToken::generate().unwrap();
/// let cookie = token.to_cookie_value();
/// assert_eq!(cookie.len(), 43);
/// assert_eq!(SessionToken::parse(&cookie), Some(token.clone()));
/// // Anything else is "no session", never an error or a panic.
/// assert_eq!(SessionToken::parse("../../etc/passwd"), None);
/// assert_eq!(token.storage_key().as_str().len(), 64);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionToken([u8; TOKEN_BYTES]);

impl SessionToken {
    /// Draws a fresh token from the operating system's random source.
    ///
    /// Fails only if the OS cannot provide randomness, which is reported as a
    /// retryable [`Error::Randomness`].
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| Error::Randomness(Box::new(e)))?;
        Ok(Self(bytes))
    }

    /// Parses a cookie value. Total: any input that is not exactly the canonical
    /// 43-character base64url encoding of 32 bytes yields `None`.
    pub fn parse(cookie_value: &str) -> Option<Self> {
        // Length first: a 10 MB header must not cost a 10 MB decode.
        if cookie_value.len() != TOKEN_COOKIE_LEN {
            return None;
        }
        let mut bytes = [0u8; TOKEN_BYTES];
        // The decoder rejects non-alphabet bytes and non-canonical trailing bits, so
        // exactly one cookie string maps to each token.
        match URL_SAFE_NO_PAD.decode_slice(cookie_value.as_bytes(), &mut bytes) {
            Ok(TOKEN_BYTES) => Some(Self(bytes)),
            _ => None,
        }
    }

    /// The cookie form of the token (43 characters of base64url).
    pub fn to_cookie_value(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The token's bytes (for deriving the rotation pad; never stored raw).
    pub(crate) fn bytes(&self) -> &[u8; TOKEN_BYTES] {
        &self.0
    }

    /// A token from bytes (for following a rotation pointer).
    pub(crate) fn from_bytes(bytes: [u8; TOKEN_BYTES]) -> Self {
        Self(bytes)
    }

    /// The key under which stores keep this session: hex SHA-256 of the token.
    pub fn storage_key(&self) -> StorageKey {
        StorageKey::from_digest(&Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// A storage key: exactly 64 lowercase hex characters.
///
/// Stores can only be handed a `StorageKey`, and the type admits no other shape, so a
/// store can use it as a file name or a database key without further checks.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey(Box<str>);

impl StorageKey {
    fn from_digest(digest: &[u8; 32]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(STORAGE_KEY_LEN);
        for b in digest {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 0x0f)] as char);
        }
        Self(s.into_boxed_str())
    }

    /// Validates a key read back from a store (a file name, a Redis key suffix).
    /// Returns `None` unless `s` is 64 characters of `[0-9a-f]`; upper case is
    /// rejected so that keys never differ only in case.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == STORAGE_KEY_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Self(s.into()))
    }

    /// The key as a string slice (64 lowercase hex characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StorageKey {
    // The key is a one-way hash, so printing it leaks no cookie; it helps debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageKey({})", self.0)
    }
}

impl AsRef<str> for StorageKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_key_shape() {
        for _ in 0..100 {
            let t = SessionToken::generate().unwrap();
            let v = t.to_cookie_value();
            assert_eq!(v.len(), TOKEN_COOKIE_LEN);
            assert!(
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(SessionToken::parse(&v).unwrap(), t);
            let k = t.storage_key();
            assert_eq!(StorageKey::parse(k.as_str()), Some(k.clone()));
        }
    }

    #[test]
    fn known_answer_storage_key() {
        // SHA-256 of 32 zero bytes.
        let t = SessionToken([0; 32]);
        assert_eq!(
            t.to_cookie_value(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(
            t.storage_key().as_str(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn tokens_differ() {
        let a = SessionToken::generate().unwrap();
        let b = SessionToken::generate().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn hostile_cookie_values_are_no_session() {
        let valid = SessionToken::generate().unwrap().to_cookie_value();
        let huge = "A".repeat(10 * 1024 * 1024);
        let mut wrong_alphabet = valid.clone();
        wrong_alphabet.replace_range(0..1, "+");
        let mut non_canonical = "A".repeat(42);
        non_canonical.push('B'); // trailing bits set: not the canonical encoding
        let padded = format!("{}=", &valid[..42]);
        let nul = format!("{}\0", &valid[..42]);
        let multibyte = format!("{}é", &valid[..41]);
        let cases: Vec<&str> = vec![
            "",
            "../../x",
            "../../etc/passwd",
            "'; DROP TABLE sessions; --",
            &huge,
            &wrong_alphabet,
            &non_canonical,
            &padded,
            &nul,
            &multibyte,
            &valid[..42],
            "ééééééééééééééééééééé",
        ];
        for c in cases {
            assert_eq!(SessionToken::parse(c), None, "{c:.60?}");
        }
        let upper = valid.to_uppercase();
        if upper != valid {
            // Case is significant in base64: a differently-cased value is another token.
            assert_ne!(SessionToken::parse(&upper), SessionToken::parse(&valid));
        }
    }

    #[test]
    fn storage_key_parse_is_strict() {
        let k = SessionToken::generate().unwrap().storage_key();
        assert!(
            StorageKey::parse(&k.as_str().to_uppercase()).is_none()
                || k.as_str().bytes().all(|b| b.is_ascii_digit())
        );
        assert!(StorageKey::parse(&k.as_str()[..63]).is_none());
        assert!(StorageKey::parse(&format!("{}0", k.as_str())).is_none());
        assert!(StorageKey::parse(&"../".repeat(21)).is_none());
        assert!(StorageKey::parse(&"g".repeat(64)).is_none());
        assert!(StorageKey::parse("").is_none());
    }

    #[test]
    fn debug_redacts_token() {
        let t = SessionToken::generate().unwrap();
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(&t.to_cookie_value()));
    }
}
