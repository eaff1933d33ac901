//! Forward pointers for periodic id rotation.
//!
//! When a session's id is rotated, its old record is replaced by a pointer to the new
//! token for a short grace window, so requests still carrying the old cookie find
//! the new session (and receive its cookie) instead of losing their changes.
//!
//! The pointer must not put a usable cookie into the store (a leaked dump would
//! hand out live sessions), so it holds the new token XOR a pad derived from the
//! old token: only someone who holds the old cookie can recover the new one.

use sha2::{Digest, Sha256};

use crate::SessionToken;

/// Domain separation for the pad, so it can never equal a storage key (which is the
/// plain SHA-256 of a token).
const PAD_CONTEXT: &[u8] = b"session-core rotation pointer v1";

fn pad(old: &SessionToken) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(PAD_CONTEXT);
    h.update(old.bytes());
    h.finalize().into()
}

fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// The pointer contents for `new`, readable only with `old`.
pub(crate) fn mask(new: &SessionToken, old: &SessionToken) -> [u8; 32] {
    xor(new.bytes(), &pad(old))
}

/// Recovers the new token from a pointer stored under `old`'s key.
pub(crate) fn unmask(masked: &[u8; 32], old: &SessionToken) -> SessionToken {
    SessionToken::from_bytes(xor(masked, &pad(old)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_round_trips_only_with_the_old_token() {
        let old = SessionToken::generate().unwrap();
        let new = SessionToken::generate().unwrap();
        let masked = mask(&new, &old);
        assert_eq!(unmask(&masked, &old), new);
        assert_ne!(&masked, new.bytes());
        let other = SessionToken::generate().unwrap();
        assert_ne!(unmask(&masked, &other), new);
    }
}
