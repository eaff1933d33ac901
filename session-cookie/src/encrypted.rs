//! Encrypted cookies: neither readable nor forgeable without a key.
//!
//! ```text
//! header (format 0x02, key id, deadline) || nonce (24) || ciphertext || tag (16)
//! ```
//!
//! XChaCha20-Poly1305 under the key's cookie-encryption sub-key, with the cookie's
//! name (length-prefixed, see `format`) and the header as associated data: the
//! deadline and key id cannot be changed either, and the value opens only under the
//! name it was sealed for.

use session_core::time::OffsetDateTime;
use session_core::{CookieSealer, Error, Opened};
use session_crypto::{AEAD_OVERHEAD, Domain, KeyRing};

use crate::format::{FORMAT_ENCRYPTED_V1, encode, header, name_binding, parse};

/// A [`CookieSealer`] that encrypts and authenticates the session with
/// XChaCha20-Poly1305 (random 192-bit nonces): the client sees only its length and
/// deadline.
///
/// Encrypts with the ring's newest key; decrypts with whichever key the cookie
/// names.
#[derive(Debug, Clone)]
pub struct EncryptedCookies {
    ring: KeyRing,
}

impl EncryptedCookies {
    /// A sealer over `ring`.
    pub fn new(ring: KeyRing) -> Self {
        Self { ring }
    }

    /// The key ring.
    pub fn key_ring(&self) -> &KeyRing {
        &self.ring
    }
}

impl CookieSealer for EncryptedCookies {
    fn seal(
        &self,
        cookie_name: &str,
        payload: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<String, Error> {
        let key = self.ring.newest();
        let mut bytes = header(FORMAT_ENCRYPTED_V1, key, expires_at);
        let header_len = bytes.len();
        bytes.reserve(AEAD_OVERHEAD + payload.len());
        let mut ad = name_binding(cookie_name);
        ad.extend_from_slice(&bytes);
        key.encrypt_into(Domain::Cookie, &ad, payload, &mut bytes)?;
        debug_assert_eq!(bytes.len(), header_len + AEAD_OVERHEAD + payload.len());
        encode(&bytes)
    }

    fn open(&self, cookie_name: &str, cookie_value: &str, now: OffsetDateTime) -> Option<Vec<u8>> {
        self.open_with_deadline(cookie_name, cookie_value, now)
            .map(|opened| opened.payload)
    }

    fn open_with_deadline(
        &self,
        cookie_name: &str,
        cookie_value: &str,
        now: OffsetDateTime,
    ) -> Option<Opened> {
        let parsed = parse(
            &self.ring,
            FORMAT_ENCRYPTED_V1,
            cookie_value,
            now,
            AEAD_OVERHEAD,
        )?;
        let (header, body) = parsed.bytes.split_at(parsed.header_len);
        let mut ad = name_binding(cookie_name);
        ad.extend_from_slice(header);
        let payload = parsed.key.decrypt(Domain::Cookie, &ad, body)?;
        Some(Opened::new(payload).with_expires_at(parsed.expires_at))
    }
}
