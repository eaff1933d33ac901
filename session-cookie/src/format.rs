//! The sealed cookie formats, shared parts.
//!
//! Both formats start with the same header, and the whole value is base64url
//! without padding:
//!
//! ```text
//! offset  size  field
//! 0       1     format: 0x01 signed v1, 0x02 encrypted v1
//! 1       1     n = length of the key id (1..=32)
//! 2       n     key id (ASCII, [A-Za-z0-9._-])
//! 2+n     8     deadline: Unix milliseconds, big-endian signed
//! 10+n          the body (see `signed` and `encrypted`)
//! ```
//!
//! The cookie's name is authenticated but not stored: both formats feed
//! [`name_binding`] (the name's length as 8 big-endian bytes, then the name) to the
//! MAC or AEAD ahead of the header, so a value only opens under the name it was
//! sealed for.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use session_core::Error;
use session_core::time::OffsetDateTime;
use session_crypto::{Key, KeyRing, MAX_KEY_ID_LEN};

/// Longest cookie value [`open`](session_core::CookieSealer::open) looks at; longer
/// input is refused before any decoding or cryptography. Browsers keep cookies of
/// at most 4,096 bytes, so no genuine value comes near it.
pub const MAX_COOKIE_VALUE_LEN: usize = 8 * 1024;

/// Format byte of [`SignedCookies`](crate::SignedCookies) values.
pub const FORMAT_SIGNED_V1: u8 = 0x01;
/// Format byte of [`EncryptedCookies`](crate::EncryptedCookies) values.
pub const FORMAT_ENCRYPTED_V1: u8 = 0x02;

const DEADLINE_LEN: usize = 8;

/// Unix milliseconds, rounded down.
pub(crate) fn unix_millis(t: OffsetDateTime) -> i64 {
    // OffsetDateTime spans ±9999 years (±3.2e14 ms), far inside i64.
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

/// The bytes that bind a value to its cookie's name: the name's length (8 bytes,
/// big-endian), then the name. The length prefix keeps name and header apart (no
/// two (name, header) pairs give the same bytes).
pub(crate) fn name_binding(cookie_name: &str) -> Vec<u8> {
    let name = cookie_name.as_bytes();
    let mut out = Vec::with_capacity(8 + name.len());
    out.extend_from_slice(&(name.len() as u64).to_be_bytes());
    out.extend_from_slice(name);
    out
}

/// The header of a value sealed with `key` until `expires_at`.
pub(crate) fn header(format: u8, key: &Key, expires_at: OffsetDateTime) -> Vec<u8> {
    let id = key.id().as_bytes();
    let mut out = Vec::with_capacity(2 + id.len() + DEADLINE_LEN);
    out.push(format);
    // Key ids are at most 32 bytes (session-crypto checks when the key is made).
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&unix_millis(expires_at).to_be_bytes());
    out
}

/// Encodes a sealed value, refusing one that `open` would refuse as oversized.
pub(crate) fn encode(bytes: &[u8]) -> Result<String, Error> {
    let value = URL_SAFE_NO_PAD.encode(bytes);
    if value.len() > MAX_COOKIE_VALUE_LEN {
        return Err(Error::CookieTooLarge {
            size: value.len(),
            limit: MAX_COOKIE_VALUE_LEN,
        });
    }
    Ok(value)
}

/// A value whose header has been checked: format, key id in the ring, deadline
/// after now. Nothing is authenticated yet.
pub(crate) struct Parsed<'a> {
    pub key: &'a Key,
    /// The value's bytes.
    pub bytes: Vec<u8>,
    /// Length of the header within `bytes`.
    pub header_len: usize,
    /// The deadline in the header (after `now`, or the value was refused).
    pub expires_at: OffsetDateTime,
}

/// Decodes `value` and checks its header; `None` for anything that is not a live
/// value of `format` under a key of `ring` with at least `min_body` body bytes.
pub(crate) fn parse<'a>(
    ring: &'a KeyRing,
    format: u8,
    value: &str,
    now: OffsetDateTime,
    min_body: usize,
) -> Option<Parsed<'a>> {
    // Size first: a megabyte of header must not cost a megabyte of decoding.
    if value.is_empty() || value.len() > MAX_COOKIE_VALUE_LEN {
        return None;
    }
    // The decoder rejects padding, non-alphabet bytes and non-canonical trailing
    // bits, so each sealed byte string has exactly one accepted spelling.
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    let (header_len, id, deadline) = split_header(&bytes)?;
    if bytes[0] != format || bytes.len() < header_len + min_body {
        return None;
    }
    // An expired value is rejected before any cryptography: replays of old
    // cookies cost nothing.
    if deadline <= unix_millis(now) {
        return None;
    }
    let key = ring.get_by_bytes(id)?;
    // Every deadline a sealer writes came from an OffsetDateTime, so one outside its
    // range (beyond year 9999) is forged: no session, as the tag check would say.
    let expires_at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(deadline) * 1_000_000).ok()?;
    Some(Parsed {
        key,
        bytes,
        header_len,
        expires_at,
    })
}

/// (header length, key id, deadline) of a value's bytes, if the header is whole.
fn split_header(bytes: &[u8]) -> Option<(usize, &[u8], i64)> {
    let [_, n, rest @ ..] = bytes else {
        return None;
    };
    let n = usize::from(*n);
    if n == 0 || n > MAX_KEY_ID_LEN {
        return None;
    }
    let id = rest.get(..n)?;
    let deadline = rest.get(n..n + DEADLINE_LEN)?;
    let deadline = i64::from_be_bytes(deadline.try_into().ok()?);
    Some((2 + n + DEADLINE_LEN, id, deadline))
}

/// The id of the key a cookie value claims to be sealed with, read from its header
/// without checking anything else: to watch a rotation progress (how many
/// requests still carry cookies of the old key). Never trust it for more.
///
/// ```
/// use session_cookie::{SignedCookies, sealed_key_id};
/// use session_core::{CookieSealer, time::{Duration, OffsetDateTime}};
/// use session_crypto::{Key, KeyRing};
///
/// let sealer = SignedCookies::new(KeyRing::new(Key::generate("k7")?));
/// let value = sealer.seal("session_id", b"{}", OffsetDateTime::now_utc() + Duration::hours(1))?;
/// assert_eq!(sealed_key_id(&value).as_deref(), Some("k7"));
/// assert_eq!(sealed_key_id("garbage"), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn sealed_key_id(value: &str) -> Option<String> {
    if value.len() > MAX_COOKIE_VALUE_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    let (_, id, _) = split_header(&bytes)?;
    let id = std::str::from_utf8(id).ok()?;
    // Only ids a key could have: nothing odd ends up in a log line.
    id.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        .then(|| id.to_owned())
}
