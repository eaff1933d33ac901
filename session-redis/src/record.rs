//! The value stored under a session's Redis key: a packed string.
//!
//! ```text
//!  offset  size  field
//!  0       1     format tag, FORMAT (1)
//!  1       8     version, u64 big-endian
//!  9       8     expires_at, Unix milliseconds, i64 big-endian
//!  17      n     payload, the caller's bytes untouched
//! ```
//!
//! One string rather than a hash so that `load` is a single `GET` — the same work as
//! the raw `GET` a hand-written cache would do — and the scripts can read the
//! version with `GETRANGE` without copying the payload. The deadline is kept in the
//! header (as well as the key's TTL, which the scripts always set to the same
//! instant) so `load` needs no second command to report it. Big-endian keeps the
//! version bytes comparable as a string inside Lua, where numbers are doubles.

use session_core::time::OffsetDateTime;
use session_core::{Bytes, DecodeError, StoredRecord, Version};

/// Format tag of the current layout. The Lua scripts test it as the literal `1`.
pub(crate) const FORMAT: u8 = 1;
/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 17;
/// Offset of the deadline within the header (`SETRANGE` target of the touch script).
pub(crate) const DEADLINE_OFFSET: usize = 9;

/// The header of a record with `version` and a deadline of `deadline_ms`.
pub(crate) fn header(version: Version, deadline_ms: i64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = FORMAT;
    h[1..DEADLINE_OFFSET].copy_from_slice(&version.to_be_bytes());
    h[DEADLINE_OFFSET..].copy_from_slice(&deadline_ms.to_be_bytes());
    h
}

/// The format tag followed by `version`: the prefix the update script compares.
pub(crate) fn version_prefix(version: Version) -> [u8; DEADLINE_OFFSET] {
    let mut p = [0u8; DEADLINE_OFFSET];
    p[0] = FORMAT;
    p[1..].copy_from_slice(&version.to_be_bytes());
    p
}

/// `at` as Unix milliseconds for `PXAT` / `PEXPIREAT`.
///
/// Rounds down, so a record never outlives the deadline it was given. Redis rejects
/// deadlines `<= 0`; everything before 1970-01-01T00:00:00.001 becomes 1 ms, which is
/// just as much in the past and makes Redis delete the key at once.
pub(crate) fn deadline_ms(at: OffsetDateTime) -> i64 {
    let ms = at.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).unwrap_or(i64::MAX).max(1)
}

/// Parses a value read back with `GET`. Never panics, whatever the bytes.
pub(crate) fn decode(raw: Vec<u8>) -> Result<StoredRecord, DecodeError> {
    let Some(&tag) = raw.first() else {
        return Err(DecodeError::Malformed {
            reason: "empty redis value",
        });
    };
    if tag != FORMAT {
        return Err(DecodeError::UnknownVersion(u64::from(tag)));
    }
    let Some(head) = raw.get(..HEADER_LEN) else {
        return Err(DecodeError::Malformed {
            reason: "redis value shorter than the record header",
        });
    };
    let version = Version::from_be_bytes(be8(&head[1..DEADLINE_OFFSET]));
    let ms = i64::from_be_bytes(be8(&head[DEADLINE_OFFSET..]));
    let expires_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| DecodeError::Malformed {
            reason: "record deadline out of range",
        })?;
    // The payload is a view into the buffer the driver already allocated: no copy.
    let payload = Bytes::from(raw).slice(HEADER_LEN..);
    Ok(StoredRecord {
        payload,
        expires_at,
        version,
    })
}

/// Eight bytes out of a slice the caller sized to eight.
fn be8(s: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn round_trips_every_field() {
        let at = datetime!(2031-02-03 04:05:06.789 UTC);
        let mut raw = header(42, deadline_ms(at)).to_vec();
        raw.extend_from_slice(&[0, 255, 1, 2]);
        let rec = decode(raw).unwrap();
        assert_eq!(rec.version, 42);
        assert_eq!(rec.expires_at, at);
        assert_eq!(&rec.payload[..], &[0, 255, 1, 2]);
    }

    #[test]
    fn empty_payload_round_trips() {
        let rec = decode(header(1, 5_000).to_vec()).unwrap();
        assert!(rec.payload.is_empty());
        assert_eq!(rec.expires_at.unix_timestamp(), 5);
    }

    #[test]
    fn version_prefix_is_the_head_of_the_header() {
        assert_eq!(version_prefix(7)[..], header(7, 123)[..DEADLINE_OFFSET]);
    }

    #[test]
    fn deadlines_round_down_and_stay_positive() {
        assert_eq!(deadline_ms(datetime!(1970-01-01 0:00:01.0019 UTC)), 1001);
        assert_eq!(deadline_ms(datetime!(1960-01-01 0:00 UTC)), 1);
        assert_eq!(deadline_ms(OffsetDateTime::UNIX_EPOCH), 1);
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(matches!(
            decode(Vec::new()),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(b"hello world".to_vec()),
            Err(DecodeError::UnknownVersion(104))
        ));
        assert!(matches!(
            decode(vec![FORMAT, 0, 0]),
            Err(DecodeError::Malformed { .. })
        ));
        let mut huge = header(1, 0).to_vec();
        huge[DEADLINE_OFFSET..].copy_from_slice(&i64::MAX.to_be_bytes());
        assert!(matches!(decode(huge), Err(DecodeError::Malformed { .. })));
    }
}
