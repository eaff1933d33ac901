//! Signed cookies: readable by the client, forgeable by no one without a key.
//!
//! ```text
//! header (format 0x01, key id, deadline) || payload || HMAC-SHA256(name || header || payload)
//! ```
//!
//! The tag covers every byte before it and the cookie's name (length-prefixed, see
//! `format`), under the key's signing sub-key.

use session_core::time::OffsetDateTime;
use session_core::{CookieSealer, Error, Opened};
use session_crypto::{KeyRing, MAC_LEN};

use crate::format::{FORMAT_SIGNED_V1, encode, header, name_binding, parse};

/// A [`CookieSealer`] that signs the session with HMAC-SHA256: the client can
/// read the session (it is base64 JSON) but not change it.
///
/// Signs with the ring's newest key; verifies with whichever key the cookie names
/// (constant-time comparison of the tag). Use [`EncryptedCookies`](crate::EncryptedCookies)
/// when the session holds anything the user must not see.
#[derive(Debug, Clone)]
pub struct SignedCookies {
    ring: KeyRing,
}

impl SignedCookies {
    /// A sealer over `ring`.
    pub fn new(ring: KeyRing) -> Self {
        Self { ring }
    }

    /// The key ring.
    pub fn key_ring(&self) -> &KeyRing {
        &self.ring
    }
}

impl CookieSealer for SignedCookies {
    fn seal(
        &self,
        cookie_name: &str,
        payload: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<String, Error> {
        let key = self.ring.newest();
        let mut bytes = header(FORMAT_SIGNED_V1, key, expires_at);
        bytes.reserve(payload.len() + MAC_LEN);
        bytes.extend_from_slice(payload);
        let tag = key.sign(&[&name_binding(cookie_name), &bytes]);
        bytes.extend_from_slice(&tag);
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
        let parsed = parse(&self.ring, FORMAT_SIGNED_V1, cookie_value, now, MAC_LEN)?;
        let mut bytes = parsed.bytes;
        let signed_len = bytes.len() - MAC_LEN;
        let (signed, tag) = bytes.split_at(signed_len);
        if !parsed
            .key
            .verify(&[&name_binding(cookie_name), signed], tag)
        {
            return None;
        }
        bytes.truncate(signed_len);
        bytes.drain(..parsed.header_len);
        Some(Opened::new(bytes).with_expires_at(parsed.expires_at))
    }
}
