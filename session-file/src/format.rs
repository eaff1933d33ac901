//! The on-disk record format.
//!
//! ```text
//! offset len  field
//!      0   4  magic            b"SESF"
//!      4   2  format           u16 LE, this build writes and reads 1
//!      6   2  reserved         0
//!      8   8  version          u64 LE, the record's version
//!     16   8  payload_len      u64 LE
//!     24   4  payload_crc      CRC-32 (IEEE) of the payload
//!     28   4  header_crc       CRC-32 of bytes 0..28
//!     32  24  deadline slot 0  seq u64, unix seconds i64, nanoseconds u32, CRC-32 of those 20 bytes
//!     56  24  deadline slot 1  same layout
//!     80   …  payload          payload_len bytes, then end of file
//! ```
//!
//! The deadline lives in two checksummed slots so that `touch` can move it in place
//! and still survive a torn write: it writes the slot that is *not* current with a
//! the next sequence number, and a reader takes the valid slot with the newer
//! sequence (compared wrapping, in serial-number arithmetic). A write torn by a power loss leaves that slot invalid, so the reader
//! falls back to the other slot — the old deadline — instead of a broken record.
//! Everything else (version, payload) is only ever written by replacing the whole
//! file atomically, and is covered by the header and payload checksums.

use session_core::time::OffsetDateTime;
use session_core::{Bytes, DecodeError, StoredRecord, Version};

/// First bytes of every record file.
pub(crate) const MAGIC: [u8; 4] = *b"SESF";
/// The format version this build writes.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Length of the fixed header, i.e. the payload's offset.
pub(crate) const HEADER_LEN: usize = 80;

const FIXED_LEN: usize = 32;
const SLOT_LEN: usize = 24;
const SLOT_OFFSETS: [usize; 2] = [FIXED_LEN, FIXED_LEN + SLOT_LEN];

/// The decoded header of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The record's version.
    pub version: Version,
    /// The current deadline (from the newest valid slot).
    pub expires_at: OffsetDateTime,
    payload_len: u64,
    payload_crc: u32,
    /// Index of the slot `expires_at` came from.
    current_slot: usize,
    /// Its sequence number.
    current_seq: u64,
}

impl Header {
    /// Whether the record is live at `now` (the contract: `now < expires_at`).
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }

    /// The in-place write that moves the deadline to `expires_at`: the file offset
    /// and the bytes of the slot that is not current, with the next sequence number.
    pub fn touch_write(&self, expires_at: OffsetDateTime) -> (u64, [u8; SLOT_LEN]) {
        let target = 1 - self.current_slot;
        // Sequence numbers compare in serial-number arithmetic (see `newer`), so the
        // slot written here is always read as the newer one, even past u64::MAX
        // (which only a crafted or corrupted file can hold). Saturating here once let
        // a touch of a slot at u64::MAX write a tie that the reader resolved to the
        // old deadline: `touch` reported success and the deadline never moved.
        let seq = self.current_seq.wrapping_add(1);
        (SLOT_OFFSETS[target] as u64, encode_slot(seq, expires_at))
    }
}

/// Encodes a whole record.
pub(crate) fn encode(version: Version, expires_at: OffsetDateTime, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&out[..28]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    // Both slots valid: slot 0 is current (seq 1); slot 1 holds the same deadline
    // with seq 0, so a reader never has to cope with a record lacking a fallback.
    out.extend_from_slice(&encode_slot(1, expires_at));
    out.extend_from_slice(&encode_slot(0, expires_at));
    out.extend_from_slice(payload);
    out
}

fn encode_slot(seq: u64, expires_at: OffsetDateTime) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[0..8].copy_from_slice(&seq.to_le_bytes());
    slot[8..16].copy_from_slice(&expires_at.unix_timestamp().to_le_bytes());
    slot[16..20].copy_from_slice(&expires_at.nanosecond().to_le_bytes());
    let crc = crc32fast::hash(&slot[..20]);
    slot[20..24].copy_from_slice(&crc.to_le_bytes());
    slot
}

fn malformed(reason: &'static str) -> DecodeError {
    DecodeError::Malformed { reason }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Whether sequence number `b` is newer than `a`, in serial-number arithmetic
/// (RFC 1982): `a + 1` (wrapping) is always newer than `a`, so a touch of either slot
/// wins over the slot it replaces, whatever the stored numbers.
fn newer(b: u64, a: u64) -> bool {
    (b.wrapping_sub(a) as i64) > 0
}

/// A slot's `(seq, deadline)`, or `None` if its checksum or contents are invalid.
fn decode_slot(slot: &[u8]) -> Option<(u64, OffsetDateTime)> {
    if crc32fast::hash(&slot[..20]) != u32_at(slot, 20) {
        return None;
    }
    let seq = u64_at(slot, 0);
    let secs = u64_at(slot, 8) as i64;
    let nanos = u32_at(slot, 16);
    let at = OffsetDateTime::from_unix_timestamp(secs)
        .ok()?
        .replace_nanosecond(nanos)
        .ok()?;
    Some((seq, at))
}

/// Decodes the header from the first bytes of a record file whose total length is
/// `file_len`. `bytes` may be shorter than [`HEADER_LEN`] (a truncated file).
pub(crate) fn decode_header(bytes: &[u8], file_len: u64) -> Result<Header, DecodeError> {
    // Magic and format first: a future format may lay out (and checksum) its header
    // differently, so it must be reported as such, not as a checksum failure.
    if bytes.len() < 6 {
        return Err(malformed(if bytes.is_empty() {
            "empty record file"
        } else {
            "truncated record header"
        }));
    }
    if bytes[..4] != MAGIC {
        return Err(malformed("not a session record (bad magic)"));
    }
    let format = u16_at(bytes, 4);
    if format != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(u64::from(format)));
    }
    if bytes.len() < HEADER_LEN || file_len < HEADER_LEN as u64 {
        return Err(malformed("truncated record header"));
    }
    if crc32fast::hash(&bytes[..28]) != u32_at(bytes, 28) {
        return Err(malformed("record header checksum mismatch"));
    }
    if u16_at(bytes, 6) != 0 {
        return Err(malformed("reserved header bits set"));
    }
    let payload_len = u64_at(bytes, 16);
    match (HEADER_LEN as u64)
        .checked_add(payload_len)
        .map(|l| l.cmp(&file_len))
    {
        Some(std::cmp::Ordering::Equal) => {}
        Some(std::cmp::Ordering::Greater) | None => {
            return Err(malformed("truncated record payload"));
        }
        Some(std::cmp::Ordering::Less) => return Err(malformed("trailing bytes after payload")),
    }
    let slots = SLOT_OFFSETS.map(|at| decode_slot(&bytes[at..at + SLOT_LEN]));
    let (current_slot, (current_seq, expires_at)) = match slots {
        [Some(a), Some(b)] if newer(b.0, a.0) => (1, b),
        [Some(a), _] => (0, a),
        [None, Some(b)] => (1, b),
        [None, None] => return Err(malformed("no valid deadline slot")),
    };
    Ok(Header {
        version: u64_at(bytes, 8),
        expires_at,
        payload_len,
        payload_crc: u32_at(bytes, 24),
        current_slot,
        current_seq,
    })
}

/// Decodes a whole record file, checking the payload checksum. The payload is a
/// view into `file`, not a copy.
pub(crate) fn decode(file: Bytes) -> Result<(Header, StoredRecord), DecodeError> {
    let header = decode_header(&file, file.len() as u64)?;
    let payload = file.slice(HEADER_LEN..);
    debug_assert_eq!(payload.len() as u64, header.payload_len);
    if crc32fast::hash(&payload) != header.payload_crc {
        return Err(malformed("record payload checksum mismatch"));
    }
    let record = StoredRecord {
        payload,
        expires_at: header.expires_at,
        version: header.version,
    };
    Ok((header, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::time::{Duration, UtcOffset};
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2031-05-06 7:08:09.123456789 UTC);

    fn decode_vec(v: Vec<u8>) -> Result<StoredRecord, DecodeError> {
        decode(Bytes::from(v)).map(|(_, r)| r)
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let rec = decode_vec(encode(42, T, &payload)).unwrap();
        assert_eq!(rec.version, 42);
        assert_eq!(rec.expires_at, T);
        assert_eq!(rec.payload, payload);
        let empty = decode_vec(encode(1, T, b"")).unwrap();
        assert!(empty.payload.is_empty());
    }

    #[test]
    fn extreme_deadlines_round_trip_in_utc() {
        let offset = datetime!(2030-01-01 12:00 +05:30);
        for t in [
            datetime!(-9999-01-01 0:00 UTC),
            datetime!(9999-12-31 23:59:59.999999999 UTC),
            datetime!(1970-01-01 0:00 UTC),
            offset,
        ] {
            let rec = decode_vec(encode(1, t, b"x")).unwrap();
            assert_eq!(rec.expires_at, t);
            assert_eq!(rec.expires_at.offset(), UtcOffset::UTC);
        }
    }

    #[test]
    fn every_truncation_is_a_decode_error() {
        let full = encode(7, T, b"some payload bytes");
        for len in 0..full.len() {
            let r = decode_vec(full[..len].to_vec());
            assert!(
                matches!(r, Err(DecodeError::Malformed { .. })),
                "len {len}: {r:?}"
            );
        }
        let mut longer = full.clone();
        longer.push(0);
        assert!(matches!(
            decode_vec(longer),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn every_bit_flip_outside_the_slots_is_detected() {
        let full = encode(7, T, b"payload");
        for i in (0..full.len()).filter(|i| !(FIXED_LEN..HEADER_LEN).contains(i)) {
            for bit in 0..8 {
                let mut bad = full.clone();
                bad[i] ^= 1 << bit;
                assert!(decode_vec(bad).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn a_flip_in_a_slot_falls_back_to_the_other_slot_never_to_garbage() {
        let full = encode(7, T, b"payload");
        for i in FIXED_LEN..HEADER_LEN {
            let mut bad = full.clone();
            bad[i] ^= 0x10;
            // Both slots hold T in a fresh record, so one damaged slot changes nothing.
            assert_eq!(decode_vec(bad).unwrap().expires_at, T, "byte {i}");
        }
        let mut both = full;
        both[FIXED_LEN] ^= 1;
        both[FIXED_LEN + SLOT_LEN] ^= 1;
        assert!(matches!(
            decode_vec(both),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn touch_writes_alternate_slots_and_a_torn_touch_keeps_the_old_deadline() {
        let mut file = encode(3, T, b"p");
        let mut deadline = T;
        for round in 0..5 {
            let header = decode_header(&file, file.len() as u64).unwrap();
            assert_eq!(header.expires_at, deadline);
            let next = deadline + Duration::minutes(1);
            let (at, slot) = header.touch_write(next);
            let at = at as usize;
            assert_ne!(at, SLOT_OFFSETS[header.current_slot], "round {round}");

            // A write torn after any prefix of the slot: the old deadline survives.
            for torn in 1..SLOT_LEN {
                let mut copy = file.clone();
                copy[at..at + torn].copy_from_slice(&slot[..torn]);
                let got = decode_vec(copy).unwrap();
                assert_eq!(got.expires_at, deadline, "round {round} torn at {torn}");
            }

            file[at..at + SLOT_LEN].copy_from_slice(&slot);
            let got = decode_vec(file.clone()).unwrap();
            assert_eq!((got.expires_at, got.version), (next, 3));
            deadline = next;
        }
    }

    /// Regression (found by the `file_record` fuzz target): a slot whose sequence
    /// number is at or near `u64::MAX` (only a crafted or corrupted file holds one)
    /// must not make a touch a silent no-op. With a saturating increment, touching
    /// a current slot 0 at `u64::MAX` wrote a tie into slot 1 and the reader kept
    /// slot 0: `touch` reported success and the deadline never moved.
    #[test]
    fn touch_moves_the_deadline_whatever_the_stored_sequence_numbers() {
        for (seq0, seq1) in [
            (u64::MAX, 0),
            (u64::MAX, u64::MAX - 1),
            (u64::MAX - 1, u64::MAX),
            (0, u64::MAX),
            (u64::MAX, u64::MAX),
            (1 << 63, 0),
        ] {
            let mut file = encode(5, T, b"payload");
            file[SLOT_OFFSETS[0]..][..SLOT_LEN].copy_from_slice(&encode_slot(seq0, T));
            file[SLOT_OFFSETS[1]..][..SLOT_LEN].copy_from_slice(&encode_slot(seq1, T));
            let mut deadline = T;
            for round in 0..4 {
                let header = decode_header(&file, file.len() as u64).unwrap();
                assert_eq!(header.expires_at, deadline);
                let next = deadline - Duration::hours(1);
                let (at, slot) = header.touch_write(next);
                file[at as usize..][..SLOT_LEN].copy_from_slice(&slot);
                let got = decode_vec(file.clone()).unwrap();
                assert_eq!(
                    (got.expires_at, got.version),
                    (next, 5),
                    "seqs ({seq0}, {seq1}) round {round}"
                );
                deadline = next;
            }
        }
    }

    #[test]
    fn future_format_is_unknown_version_and_foreign_bytes_are_malformed() {
        let mut future = encode(1, T, b"x");
        future[4..6].copy_from_slice(&2u16.to_le_bytes());
        assert!(matches!(
            decode_vec(future),
            Err(DecodeError::UnknownVersion(2))
        ));
        for junk in [&b""[..], b"hello world", b"SESF", &[0xff; 200]] {
            assert!(matches!(
                decode_vec(junk.to_vec()),
                Err(DecodeError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn a_lying_payload_length_does_not_panic_or_allocate() {
        let mut bad = encode(1, T, b"abc");
        bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        let crc = crc32fast::hash(&bad[..28]);
        bad[28..32].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode_vec(bad),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn pseudo_random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let base = encode(9, T, &[0xab; 64]);
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut v = base.clone();
            let len = (x as usize) % (base.len() + 8);
            v.resize(len, (x >> 8) as u8);
            let i = (x >> 16) as usize % base.len().max(1);
            if i < v.len() {
                v[i] = (x >> 24) as u8;
            }
            let _ = decode_vec(v);
        }
    }
}
