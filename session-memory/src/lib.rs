#![doc = include_str!("../README.md")]

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use session_core::time::OffsetDateTime;
use session_core::{
    Bytes, Capabilities, Error, FIRST_VERSION, NewRecord, Refreshed, SaveMode, SessionInterface,
    SharedClock, StorageKey, StoredRecord, Version, system_clock,
};

/// Default number of shards: enough that 32 busy tasks rarely meet on one lock.
const DEFAULT_SHARDS: usize = 64;
/// A shard is swept of expired entries whenever it has grown to this many entries
/// (or twice its size after the previous sweep, whichever is larger).
const MIN_SWEEP_LEN: usize = 1024;

/// One stored session. The payload is reference-counted, so a load clones a
/// pointer under the lock, never the bytes.
#[derive(Debug, Clone)]
struct Entry {
    payload: Bytes,
    expires_at: OffsetDateTime,
    /// `expires_at` in Unix nanoseconds: what every operation compares with
    /// [`Clock::now_unix_nanos`](session_core::Clock::now_unix_nanos), which is
    /// cheaper than comparing `OffsetDateTime`s with `Clock::now`.
    deadline: i128,
    version: Version,
}

impl Entry {
    fn new(payload: Bytes, expires_at: OffsetDateTime, version: Version) -> Self {
        Self {
            payload,
            expires_at,
            deadline: expires_at.unix_timestamp_nanos(),
            version,
        }
    }

    /// Moves the deadline.
    fn set_expires_at(&mut self, expires_at: OffsetDateTime) {
        self.expires_at = expires_at;
        self.deadline = expires_at.unix_timestamp_nanos();
    }

    /// Whether the entry is live at `now` (Unix nanoseconds).
    fn is_live(&self, now: i128) -> bool {
        now < self.deadline
    }
}

/// A fast hash with a random seed per map is enough: keys are SHA-256 digests of
/// tokens, so a client that picks the token it sends still cannot pick the key, and
/// the manager inserts only tokens it generated. SipHash's extra strength would only
/// cost time on every operation.
type KeyMap = HashMap<StorageKey, Entry, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Shard {
    map: KeyMap,
    /// Size at which the next insert triggers an opportunistic sweep of this shard.
    sweep_at: usize,
}

impl Shard {
    /// Removes entries expired at `now` (Unix nanoseconds) and returns how many.
    fn sweep(&mut self, now: i128) -> u64 {
        let before = self.map.len();
        self.map.retain(|_, e| e.is_live(now));
        self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP_LEN);
        (before - self.map.len()) as u64
    }
}

/// A sharded in-memory [`SessionInterface`].
///
/// Each shard is a `HashMap` behind its own mutex, picked by the key's first hex
/// digits, so concurrent requests on different sessions rarely share a lock. Locks
/// are held only for map operations, never across an `.await`, and payloads are
/// shared `Bytes`, so no record is deep-copied under a lock.
///
/// Memory stays bounded under churn: a shard sweeps its expired entries whenever it
/// has doubled in size since its last sweep, and [`delete_expired`] sweeps all of
/// them. Records live only as long as the process.
///
/// [`delete_expired`]: SessionInterface::delete_expired
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    clock: SharedClock,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store on the system clock with the default number of shards.
    pub fn new() -> Self {
        Self::with_clock(system_clock())
    }

    /// A store that takes "now" from `clock` (a `ManualClock` in tests).
    pub fn with_clock(clock: SharedClock) -> Self {
        Self::with_shards(DEFAULT_SHARDS, clock)
    }

    /// A store with `shards` shards (at least 1, rounded up to a power of two).
    pub fn with_shards(shards: usize, clock: SharedClock) -> Self {
        let n = shards.max(1).next_power_of_two();
        let shards = (0..n)
            .map(|_| {
                Mutex::new(Shard {
                    map: KeyMap::default(),
                    sweep_at: MIN_SWEEP_LEN,
                })
            })
            .collect();
        Self { shards, clock }
    }

    /// Number of records held, live or expired-but-not-yet-swept.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Whether the store holds no record at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &StorageKey) -> MutexGuard<'_, Shard> {
        lock(&self.shards[shard_index(key) & (self.shards.len() - 1)])
    }
}

/// The key's first eight hex digits as a number. Keys are SHA-256 output, so these
/// digits are uniform. A `StorageKey` is always lowercase hex, which lets each digit
/// be decoded without checks (`str::from_str_radix` cost more than the map lookup).
fn shard_index(key: &StorageKey) -> usize {
    key.as_str().as_bytes()[..8].iter().fold(0, |acc, &c| {
        // '0'..='9' are 0x30..=0x39 and 'a'..='f' 0x61..=0x66: the low four bits give
        // the digit, plus 9 for a letter (bit 6 set).
        (acc << 4) | usize::from((c & 0x0f) + 9 * (c >> 6))
    })
}

/// Locks a shard. A panic while a shard was locked cannot leave an entry half
/// written (every mutation is a single map call), so poisoning is ignored.
fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl SessionInterface for MemoryStore {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        let now = self.clock.now_unix_nanos();
        let shard = self.shard(key);
        Ok(shard
            .map
            .get(key)
            .filter(|e| e.is_live(now))
            .map(|e| StoredRecord {
                payload: e.payload.clone(),
                expires_at: e.expires_at,
                version: e.version,
            }))
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        let now = self.clock.now_unix_nanos();
        let mut shard = self.shard(key);
        match mode {
            SaveMode::Create => {
                if shard.map.get(key).is_some_and(|e| e.is_live(now)) {
                    return Err(Error::Collision);
                }
                if shard.map.len() >= shard.sweep_at {
                    shard.sweep(now);
                }
                shard.map.insert(
                    key.clone(),
                    Entry::new(record.payload.clone(), record.expires_at, FIRST_VERSION),
                );
                Ok(FIRST_VERSION)
            }
            SaveMode::Update { expected_version } => {
                let entry = match shard.map.get_mut(key) {
                    Some(e) if e.is_live(now) => e,
                    _ => return Err(Error::NotFound),
                };
                if entry.version != expected_version {
                    return Err(Error::Conflict);
                }
                if record.expires_at.unix_timestamp_nanos() <= now {
                    // A compare-and-set removal: free the memory now rather than
                    // at the next sweep.
                    shard.map.remove(key);
                    return Ok(expected_version + 1);
                }
                entry.payload = record.payload.clone();
                entry.set_expires_at(record.expires_at);
                entry.version += 1;
                Ok(entry.version)
            }
        }
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        self.shard(key).map.remove(key);
        Ok(())
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        let now = self.clock.now_unix_nanos();
        let mut shard = self.shard(key);
        match shard.map.get_mut(key) {
            Some(e) if e.is_live(now) => {
                e.set_expires_at(expires_at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn load_and_touch(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Result<Option<Refreshed>, Error> {
        let now = self.clock.now_unix_nanos();
        let mut shard = self.shard(key);
        let Some(e) = shard.map.get_mut(key).filter(|e| e.is_live(now)) else {
            return Ok(None);
        };
        let previous_expires_at = e.expires_at;
        let touched = previous_expires_at < due_before;
        if touched {
            e.set_expires_at(expires_at);
        }
        Ok(Some(Refreshed {
            record: StoredRecord {
                payload: e.payload.clone(),
                expires_at: e.expires_at,
                version: e.version,
            },
            previous_expires_at,
            touched,
        }))
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        let now = self.clock.now_unix_nanos();
        // One shard at a time: each lock is held for one bounded batch.
        Ok(self.shards.iter().map(|s| lock(s).sweep(now)).sum())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full().with_load_and_touch(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::time::Duration;
    use session_core::{Clock, ManualClock, SessionToken};

    fn key() -> StorageKey {
        SessionToken::generate().unwrap().storage_key()
    }

    fn rec(now: OffsetDateTime, ttl: Duration) -> NewRecord {
        NewRecord {
            payload: Bytes::from_static(b"x"),
            expires_at: now + ttl,
        }
    }

    #[test]
    fn shard_index_reads_the_first_eight_hex_digits() {
        for _ in 0..1000 {
            let k = key();
            let expected = usize::from_str_radix(&k.as_str()[..8], 16).unwrap();
            assert_eq!(shard_index(&k), expected, "{}", k.as_str());
        }
        let k = StorageKey::parse(&format!("0123abcf{}", "9".repeat(56))).unwrap();
        assert_eq!(shard_index(&k), 0x0123_abcf);
    }

    #[tokio::test]
    async fn a_removing_update_frees_the_entry_at_once() {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::with_clock(clock.shared());
        let now = clock.now();
        let (k, other) = (key(), key());
        store
            .save(&k, &rec(now, Duration::HOUR), SaveMode::Create)
            .await
            .unwrap();
        store
            .save(&other, &rec(now, Duration::HOUR), SaveMode::Create)
            .await
            .unwrap();
        let stale = store
            .save(
                &k,
                &rec(now, -Duration::HOUR),
                SaveMode::Update {
                    expected_version: 7,
                },
            )
            .await;
        assert!(matches!(stale, Err(Error::Conflict)));
        assert_eq!(store.len(), 2, "a conflicting removal removes nothing");
        let v = store
            .save(
                &k,
                &rec(now, Duration::ZERO),
                SaveMode::Update {
                    expected_version: 1,
                },
            )
            .await
            .unwrap();
        assert_eq!(v, 2);
        assert_eq!(store.len(), 1, "the removed entry is gone without a sweep");
        assert!(store.load(&other).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn churn_is_bounded_by_sweep() {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::with_clock(clock.shared());
        for _ in 0..100_000 {
            store
                .save(
                    &key(),
                    &rec(clock.now(), Duration::minutes(5)),
                    SaveMode::Create,
                )
                .await
                .unwrap();
        }
        assert_eq!(store.len(), 100_000);
        clock.advance(Duration::minutes(6));
        assert_eq!(store.delete_expired().await.unwrap(), 100_000);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn inserts_sweep_their_shard_without_an_explicit_sweep() {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::with_shards(1, clock.shared());
        for _ in 0..10_000 {
            store
                .save(
                    &key(),
                    &rec(clock.now(), Duration::seconds(1)),
                    SaveMode::Create,
                )
                .await
                .unwrap();
            // Every session dies one second after it is made.
            clock.advance(Duration::seconds(2));
        }
        assert!(store.len() <= MIN_SWEEP_LEN, "len {}", store.len());
    }
}
