//! The sealed record format of encryption at rest.
//!
//! ```text
//! offset  size  field
//! 0       1     format version: 0x01
//! 1       1     n = length of the key id (1..=32)
//! 2       n     key id (ASCII, [A-Za-z0-9._-])
//! 2+n     24    XChaCha20 nonce (random)
//! 26+n    len   ciphertext of the payload (same length as the payload)
//! end-16  16    Poly1305 tag
//!
//! associated data = bytes 0..2+n (version, n, key id) || storage key (64 ASCII hex)
//! key             = the key's "encryption at rest" HKDF sub-key
//! ```
//!
//! Version bytes 0x02 to 0x08 are reserved for later versions of this format: a
//! record carrying one is [`DecodeError::UnknownVersion`], which the session manager
//! reports as an error rather than drop a session a newer release wrote. Any other
//! first byte cannot start a record of any version: it is
//! [`DecodeError::Malformed`] ("no session" for the manager), plaintext session
//! envelopes (`{`, see [`is_plaintext_record`]) included.
//!
//! The storage key in the associated data binds a record to the session it was
//! written for: bytes copied under another key do not open. The header in the
//! associated data makes the version and key id tamper-evident too.

use session_core::{DecodeError, Error, StorageKey};

use crate::key::{AEAD_OVERHEAD, is_valid_id};
use crate::{Domain, KeyRing};

/// The record format this build writes and reads.
pub const RECORD_FORMAT_V1: u8 = 0x01;

/// First bytes reserved for later versions of the record format.
const RESERVED_VERSIONS: std::ops::RangeInclusive<u8> = 0x02..=0x08;

/// Whether `stored` is a plaintext session, as written by a store without
/// encryption, rather than a sealed record.
///
/// session-core's codec writes a JSON object, `{"v":1,…}`, so a plaintext record
/// starts with `{` (0x7B); a sealed record starts with its format version, 0x01
/// (0x02 to 0x08 being reserved for later versions). The two never share a first
/// byte, so neither is ever mistaken for the other. Only the first byte is looked
/// at: whether the rest is a valid session is the codec's business.
///
/// ```
/// use session_crypto::is_plaintext_record;
///
/// assert!(is_plaintext_record(br#"{"v":1,"created":0,"abs":1,"data":{}}"#));
/// assert!(!is_plaintext_record(b"\x01\x02k1..."));
/// assert!(!is_plaintext_record(b""));
/// ```
pub fn is_plaintext_record(stored: &[u8]) -> bool {
    stored.first() == Some(&b'{')
}

/// Seals `payload` for `key` with the ring's newest key.
pub fn seal_record(ring: &KeyRing, key: &StorageKey, payload: &[u8]) -> Result<Vec<u8>, Error> {
    let k = ring.newest();
    let id = k.id().as_bytes();
    let header_len = 2 + id.len();
    let mut out = Vec::with_capacity(header_len + AEAD_OVERHEAD + payload.len());
    out.push(RECORD_FORMAT_V1);
    // Key ids are at most 32 bytes (checked when the key was made).
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    let ad = associated_data(&out, key);
    k.encrypt_into(Domain::Store, &ad, payload, &mut out)?;
    Ok(out)
}

/// Opens a record sealed by [`seal_record`] for `key` with any key of the ring.
///
/// Any defect is a typed [`DecodeError`]: a format version reserved for a later
/// release ([`DecodeError::UnknownVersion`]), or [`DecodeError::Malformed`] for
/// plaintext, any other first byte, a truncated header, a key id not in the ring,
/// or failed authentication (tampered bytes, or bytes moved from another storage
/// key). Never panics.
pub fn open_record(
    ring: &KeyRing,
    key: &StorageKey,
    sealed: &[u8],
) -> Result<Vec<u8>, DecodeError> {
    let (header, body) = split_header(sealed)?;
    let k = ring
        .get_by_bytes(&header[2..])
        .ok_or(DecodeError::Malformed {
            reason: "sealed with a key that is not in the key ring",
        })?;
    let ad = associated_data(header, key);
    k.decrypt(Domain::Store, &ad, body)
        .ok_or(DecodeError::Malformed {
            reason: "authentication failed: tampered, or written for another key",
        })
}

/// The id of the key that sealed `sealed`, if its header is well-formed (whether
/// or not that key is in any ring): to find records still sealed with an old key.
pub fn record_key_id(sealed: &[u8]) -> Option<&str> {
    let (header, _) = split_header(sealed).ok()?;
    std::str::from_utf8(&header[2..]).ok()
}

/// Splits a record into its header (version, length, id) and the AEAD body.
fn split_header(sealed: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let truncated = DecodeError::Malformed {
        reason: "truncated encrypted record",
    };
    let [version, id_len, ..] = sealed else {
        return Err(truncated);
    };
    if *version != RECORD_FORMAT_V1 {
        return Err(if RESERVED_VERSIONS.contains(version) {
            DecodeError::UnknownVersion(u64::from(*version))
        } else if is_plaintext_record(sealed) {
            DecodeError::Malformed {
                reason: "a plaintext session, not an encrypted record",
            }
        } else {
            DecodeError::Malformed {
                reason: "not an encrypted record",
            }
        });
    }
    let header_len = 2 + usize::from(*id_len);
    if sealed.len() < header_len + AEAD_OVERHEAD {
        return Err(truncated);
    }
    let (header, body) = sealed.split_at(header_len);
    if !is_valid_id(&header[2..]) {
        return Err(DecodeError::Malformed {
            reason: "invalid key id in encrypted record",
        });
    }
    Ok((header, body))
}

fn associated_data(header: &[u8], key: &StorageKey) -> Vec<u8> {
    [header, key.as_str().as_bytes()].concat()
}
