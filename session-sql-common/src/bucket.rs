//! The coarse expiry bucket that the sweep index holds instead of the exact deadline.
//!
//! Every update moves a session's deadline, so an index on `expires_at` is rewritten by
//! every write (and on PostgreSQL the write loses the heap-only-tuple fast path, which
//! needs every indexed column unchanged). The tables index
//! `expires_bucket = ⌊unix seconds of expires_at / EXPIRY_BUCKET_SECONDS⌋` instead: a
//! session whose deadline slides with each request changes bucket at most once per
//! [`EXPIRY_BUCKET_SECONDS`] of wall-clock time, and a write that leaves the bucket
//! alone leaves the index alone (both PostgreSQL and InnoDB skip an index whose columns
//! keep their values).
//!
//! The sweep stays exact: a row whose deadline has passed at `now` has a bucket `≤
//! expiry_bucket(now)` (the bucket is monotonic in the deadline), so `expires_bucket <=
//! expiry_bucket(now) AND expires_at <= now` finds exactly the expired rows through the
//! index, scanning at most the live rows of the current bucket besides them.

use session_core::time::OffsetDateTime;

/// The width of one expiry bucket, in seconds: five minutes.
///
/// Wider buckets spare more index writes (a session updated every `s` seconds changes
/// bucket on about `s / 300` of its updates) but leave more live rows for the sweep to
/// step over (those expiring within the current bucket). Five minutes keeps both small:
/// a user clicking every ten seconds moves the index entry on one update in thirty,
/// and with a 24-hour idle lifetime the current bucket holds about 1/288 of the live
/// sessions. Part of the schema: changing it means re-bucketing every row.
pub const EXPIRY_BUCKET_SECONDS: i64 = 300;

/// The bucket of an instant: `⌊unix seconds / EXPIRY_BUCKET_SECONDS⌋`, rounding toward
/// negative infinity (so instants before 1970 bucket consistently too). The offset of
/// `at` does not matter: the same instant in any offset has the same bucket.
///
/// ```
/// use session_core::time::{Duration, OffsetDateTime, UtcOffset};
/// use session_sql_common::{EXPIRY_BUCKET_SECONDS, expiry_bucket};
///
/// // 2026-12-04 10:05:00 UTC, the first instant of a bucket.
/// let start = OffsetDateTime::from_unix_timestamp(1_796_378_700).unwrap();
/// let just_before = start - Duration::milliseconds(1);
/// assert_eq!(expiry_bucket(start), start.unix_timestamp() / EXPIRY_BUCKET_SECONDS);
/// assert_eq!(expiry_bucket(just_before), expiry_bucket(start) - 1);
/// // The same instant at UTC+02:00.
/// let offset = UtcOffset::from_hms(2, 0, 0).unwrap();
/// assert_eq!(expiry_bucket(start.to_offset(offset)), expiry_bucket(start));
/// ```
pub fn expiry_bucket(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(EXPIRY_BUCKET_SECONDS)
}

#[cfg(test)]
mod tests {
    use session_core::time::{Duration, UtcOffset};

    use super::*;

    #[test]
    fn buckets_are_floor_divisions_of_the_unix_time() {
        let epoch = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(expiry_bucket(epoch), 0);
        assert_eq!(expiry_bucket(epoch + Duration::seconds(299)), 0);
        assert_eq!(expiry_bucket(epoch + Duration::seconds(300)), 1);
        // Before 1970 the bucket rounds down, not toward zero: no two buckets share 0.
        assert_eq!(expiry_bucket(epoch - Duration::nanoseconds(1)), -1);
        assert_eq!(expiry_bucket(epoch - Duration::seconds(300)), -1);
        assert_eq!(expiry_bucket(epoch - Duration::seconds(301)), -2);
    }

    /// The sweep relies on this: a deadline at or before `now` never has a later bucket.
    #[test]
    fn buckets_are_monotonic_in_the_instant() {
        let offset = UtcOffset::from_hms(5, 30, 0).unwrap();
        let base = (OffsetDateTime::from_unix_timestamp(1_796_378_999).unwrap()
            + Duration::nanoseconds(999_999_999))
        .to_offset(offset);
        let mut previous = expiry_bucket(base - Duration::days(3));
        for step in 0..10_000i64 {
            let at = base - Duration::days(3) + Duration::milliseconds(step * 37_003);
            let bucket = expiry_bucket(at);
            assert!(bucket >= previous && bucket - previous <= 1, "{at}");
            previous = bucket;
        }
    }
}
