//! One named key: the secret is turned into purpose-bound sub-keys at once and
//! then forgotten, so no operation can use one sub-key for another purpose.

use std::fmt;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use session_core::Error;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::KeyError;
use crate::error::InvalidId;

/// Shortest secret accepted: 256 bits.
pub const MIN_SECRET_LEN: usize = 32;
/// A secret with fewer distinct byte values is refused as not random (see
/// [`Key::new`]).
pub const MIN_DISTINCT_BYTES: usize = 5;
/// Longest repetition period [`Key::new`] looks for in a secret (a secret
/// repeating a pattern of up to half its length, at most this long, is refused).
pub const MAX_CHECKED_PERIOD: usize = 32;
/// Longest key id (it travels in every cookie and record, so keep it short).
pub const MAX_KEY_ID_LEN: usize = 32;
/// Length of an HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Length of an XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub const AEAD_TAG_LEN: usize = 16;
/// What [`Key::encrypt_into`] adds to a plaintext: nonce and tag.
pub const AEAD_OVERHEAD: usize = NONCE_LEN + AEAD_TAG_LEN;

/// HKDF salt: fixed and public; it only separates this scheme from any other use
/// of the same secret.
const HKDF_SALT: &[u8] = b"session-crypto/v1";
const INFO_COOKIE_SIGNING: &[u8] = b"session-crypto/v1 cookie signing (HMAC-SHA256)";
const INFO_COOKIE_ENCRYPTION: &[u8] = b"session-crypto/v1 cookie encryption (XChaCha20-Poly1305)";
const INFO_STORE_ENCRYPTION: &[u8] = b"session-crypto/v1 encryption at rest (XChaCha20-Poly1305)";

/// Which encryption sub-key an AEAD operation uses. Cookies and stored records
/// never share a key, so a value sealed for one can never be opened as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Domain {
    /// Server-side records ([`EncryptedStore`](crate::EncryptedStore)).
    Store,
    /// Client-side encrypted cookies (`session-cookie`).
    Cookie,
}

/// A named secret key, as three HKDF-SHA256-derived sub-keys: cookie signing,
/// cookie encryption and encryption at rest.
///
/// The secret itself is not kept; the sub-keys are wiped from memory when the last
/// copy of the key is dropped. `Debug` shows the id only.
///
/// ```
/// use session_crypto::{Key, KeyError};
///
/// // In production the secret comes from configuration; here, fresh random bytes.
/// let mut secret = [0u8; 32];
/// getrandom::fill(&mut secret)?;
/// let key = Key::new("2025-06", secret)?;
/// assert_eq!(key.id(), "2025-06");
/// assert_eq!(format!("{key:?}"), r#"Key { id: "2025-06", .. }"#);
/// assert!(matches!(Key::new("short", b"too short"), Err(KeyError::SecretTooShort { len: 9, .. })));
/// assert!(matches!(Key::new("weak", [7u8; 32]), Err(KeyError::WeakSecret { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Key {
    id: Box<str>,
    signing: Zeroizing<[u8; 32]>,
    cookie_encryption: Zeroizing<[u8; 32]>,
    store_encryption: Zeroizing<[u8; 32]>,
}

impl Key {
    /// A key named `id` from `secret`: at least [`MIN_SECRET_LEN`] bytes of
    /// high-entropy material, e.g. 32 random bytes (`openssl rand -base64 32`,
    /// used as is or decoded); not a password.
    ///
    /// `id` is 1 to [`MAX_KEY_ID_LEN`] characters of `[A-Za-z0-9._-]`; it is written
    /// in clear into every cookie and record this key seals, so that the matching
    /// key can be found after a rotation.
    ///
    /// # Errors
    ///
    /// - [`KeyError::InvalidId`] for an id outside those rules;
    /// - [`KeyError::SecretTooShort`] for fewer than [`MIN_SECRET_LEN`] bytes;
    /// - [`KeyError::WeakSecret`] for a secret that is obviously not random: one
    ///   with fewer than [`MIN_DISTINCT_BYTES`] distinct byte values, or one that
    ///   is a shorter pattern repeated (`abab…`, `password1password1…`): its period
    ///   is at most half its length (periods up to [`MAX_CHECKED_PERIOD`] are
    ///   checked, so the check costs at most 32 comparisons per byte).
    ///
    /// A secret of `n >= 32` uniformly random bytes is refused with probability
    /// below 10⁻³⁸: having period `p` takes `n - p >= 16` bytes matching their
    /// predecessors, `256^-(n-p)`, summed over the periods checked stays below
    /// `2 · 256⁻¹⁶ ≈ 6 · 10⁻³⁹`; at most 4 distinct values among 32 bytes is
    /// below `C(256,4) · (4/256)³² ≈ 3 · 10⁻⁵⁰`. A secret of 32 random *hex
    /// characters* (128 bits) is refused with probability below `2 · 16⁻¹⁶ +
    /// C(16,4) · (4/16)³² ≈ 10⁻¹⁶`.
    pub fn new(id: impl Into<String>, secret: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        let id = id.into();
        check_id(id.as_bytes()).map_err(KeyError::InvalidId)?;
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort {
                len: secret.len(),
                min: MIN_SECRET_LEN,
            });
        }
        if let Some(reason) = weakness(secret) {
            return Err(KeyError::WeakSecret { reason });
        }
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret);
        let derive = |info: &[u8]| {
            let mut okm = Zeroizing::new([0u8; 32]);
            if hkdf.expand(info, okm.as_mut()).is_err() {
                unreachable!("32 bytes is far below HKDF-SHA256's 255 * 32 byte limit");
            }
            okm
        };
        Ok(Self {
            signing: derive(INFO_COOKIE_SIGNING),
            cookie_encryption: derive(INFO_COOKIE_ENCRYPTION),
            store_encryption: derive(INFO_STORE_ENCRYPTION),
            id: id.into_boxed_str(),
        })
    }

    /// A key named `id` from 32 fresh bytes of the OS random source, which are
    /// forgotten at once: nothing sealed with it opens in another process or
    /// after a restart. For tests, examples and single-process development
    /// servers; production keys come from configuration ([`Key::new`]) so that
    /// every instance shares them and they survive a restart.
    ///
    /// Fails with [`Error::Randomness`] if the OS random source fails, and with
    /// [`Error::Config`] for an invalid id.
    ///
    /// ```
    /// use session_crypto::Key;
    ///
    /// let key = Key::generate("dev")?;
    /// assert_eq!(key.id(), "dev");
    /// # Ok::<(), session_core::Error>(())
    /// ```
    pub fn generate(id: impl Into<String>) -> Result<Self, Error> {
        let mut secret = Zeroizing::new([0u8; MIN_SECRET_LEN]);
        getrandom::fill(secret.as_mut()).map_err(|e| Error::Randomness(Box::new(e)))?;
        Ok(Self::new(id, secret.as_ref())?)
    }

    /// The key's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; 32 bytes cannot fail.
        match <Hmac<Sha256> as KeyInit>::new_from_slice(self.signing.as_ref()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        }
    }

    /// HMAC-SHA256 of the concatenation of `parts` under the signing sub-key.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut mac = self.mac();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the HMAC-SHA256 of the concatenation of `parts`, compared in
    /// constant time (the `hmac` crate's `verify_slice`).
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut mac = self.mac();
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(tag).is_ok()
    }

    fn cipher(&self, domain: Domain) -> XChaCha20Poly1305 {
        let key = match domain {
            Domain::Store => &self.store_encryption,
            Domain::Cookie => &self.cookie_encryption,
        };
        XChaCha20Poly1305::new(&chacha20poly1305::Key::from(**key))
    }

    /// Encrypts `plaintext` with XChaCha20-Poly1305 under `domain`'s sub-key and a
    /// fresh random nonce, authenticating `associated_data` too, and appends
    /// `nonce (24) || ciphertext || tag (16)` to `out`.
    ///
    /// Fails only if the OS random source fails ([`Error::Randomness`]).
    pub fn encrypt_into(
        &self,
        domain: Domain,
        associated_data: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::Randomness(Box::new(e)))?;
        self.encrypt_with_nonce(domain, associated_data, plaintext, nonce, out);
        Ok(())
    }

    /// [`encrypt_into`](Self::encrypt_into) with a given nonce: for known-answer
    /// tests only. A 192-bit random nonce never repeats in practice; a chosen one may.
    pub(crate) fn encrypt_with_nonce(
        &self,
        domain: Domain,
        associated_data: &[u8],
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
        out: &mut Vec<u8>,
    ) {
        out.reserve(AEAD_OVERHEAD + plaintext.len());
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let nonce = XNonce::from(nonce);
        // XChaCha20-Poly1305 fails only beyond 256 GiB of plaintext, which no
        // session (let alone a cookie) reaches.
        match self.cipher(domain).encrypt_inout_detached(
            &nonce,
            associated_data,
            (&mut out[start..]).into(),
        ) {
            Ok(tag) => out.extend_from_slice(&tag),
            Err(_) => unreachable!("XChaCha20-Poly1305 plaintext limit exceeded"),
        }
    }

    /// Opens what [`encrypt_into`](Self::encrypt_into) appended: `None` unless
    /// `sealed` is authentic under this key, `domain` and `associated_data`.
    pub fn decrypt(
        &self,
        domain: Domain,
        associated_data: &[u8],
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        let (nonce, rest) = sealed.split_first_chunk::<NONCE_LEN>()?;
        let (ciphertext, tag) = rest.split_last_chunk::<AEAD_TAG_LEN>()?;
        let mut buf = ciphertext.to_vec();
        self.cipher(domain)
            .decrypt_inout_detached(
                &XNonce::from(*nonce),
                associated_data,
                buf.as_mut_slice().into(),
                &Tag::from(*tag),
            )
            .ok()?;
        Some(buf)
    }
}

/// Key ids: short, printable, and safe in any log line.
pub(crate) fn is_valid_id(id: &[u8]) -> bool {
    check_id(id).is_ok()
}

/// What is wrong with `id`, if anything (without quoting it).
fn check_id(id: &[u8]) -> Result<(), InvalidId> {
    if id.is_empty() {
        return Err(InvalidId::Empty);
    }
    if id.len() > MAX_KEY_ID_LEN {
        return Err(InvalidId::TooLong { len: id.len() });
    }
    match id
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
    {
        Some(position) => Err(InvalidId::Character { position }),
        None => Ok(()),
    }
}

/// Why `secret` is obviously not random, if it is (the rule of [`Key::new`]).
fn weakness(secret: &[u8]) -> Option<&'static str> {
    let mut seen = [false; 256];
    for &b in secret {
        seen[usize::from(b)] = true;
    }
    if seen.iter().filter(|&&s| s).count() < MIN_DISTINCT_BYTES {
        return Some("too few distinct bytes");
    }
    // Period p: every byte equals the one p places before it.
    let longest = (secret.len() / 2).min(MAX_CHECKED_PERIOD);
    if (1..=longest).any(|p| secret[p..] == secret[..secret.len() - p]) {
        return Some("a short pattern repeated");
    }
    None
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn kat_key() -> Key {
        let secret: Vec<u8> = (0u8..32).collect();
        Key::new("kat-1", secret).unwrap()
    }

    /// Sub-keys as computed independently by `scripts/kat.py` (stdlib HKDF).
    #[test]
    fn known_answer_subkeys() {
        let k = kat_key();
        assert_eq!(
            hex(k.signing.as_ref()),
            "2920d7e0fbef478af90195eb7401f36ef044eb8776a94a5b57e80dc440dd8cb8"
        );
        assert_eq!(
            hex(k.cookie_encryption.as_ref()),
            "9960528a05220e651b8ce9e8449f89e12ecf57dbf41c39443b800aa92d941601"
        );
        assert_eq!(
            hex(k.store_encryption.as_ref()),
            "c44b3da830f192d798fbe4c739f9bf2fb95820f7365eb8c4250880e41388d719"
        );
    }

    /// A record sealed with a fixed nonce, byte for byte as `scripts/kat.py` builds
    /// it with an independent XChaCha20-Poly1305.
    #[test]
    fn known_answer_store_encryption() {
        let k = kat_key();
        let header = b"\x01\x05kat-1";
        let storage_key = b"66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925";
        let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| 0x40 + i as u8);
        let mut out = header.to_vec();
        k.encrypt_with_nonce(
            Domain::Store,
            &[&header[..], &storage_key[..]].concat(),
            br#"{"v":1,"created":0,"abs":1,"data":{"user":42}}"#,
            nonce,
            &mut out,
        );
        assert_eq!(
            hex(&out),
            "01056b61742d31404142434445464748494a4b4c4d4e4f50515253545556570fc5ae1ec3\
             e1e294e509c1a76897fbae84551f80fdaf8b5925c1dd06b524d304b8df1efbfd9f257496\
             89d70be1bb4733945c3b01857937a99c31d7993b9d"
        );
    }

    #[test]
    fn domains_use_different_keys() {
        let k = kat_key();
        let mut sealed = Vec::new();
        k.encrypt_into(Domain::Cookie, b"ad", b"secret", &mut sealed)
            .unwrap();
        assert_eq!(sealed.len(), AEAD_OVERHEAD + 6);
        assert_eq!(
            k.decrypt(Domain::Cookie, b"ad", &sealed).as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(k.decrypt(Domain::Store, b"ad", &sealed), None);
        assert_eq!(k.decrypt(Domain::Cookie, b"AD", &sealed), None);
        // Too short to hold a nonce and a tag.
        for n in 0..AEAD_OVERHEAD {
            assert_eq!(k.decrypt(Domain::Cookie, b"ad", &sealed[..n]), None);
        }
    }

    #[test]
    fn sign_and_verify() {
        let k = kat_key();
        let tag = k.sign(&[b"ab", b"c"]);
        assert!(k.verify(&[b"abc"], &tag));
        assert!(!k.verify(&[b"abd"], &tag));
        assert!(!k.verify(&[b"abc"], &tag[..31]));
        // Same id, another secret (the KAT secret reversed).
        let other = Key::new("kat-1", (0u8..32).rev().collect::<Vec<_>>()).unwrap();
        assert!(!other.verify(&[b"abc"], &tag));
    }
}
