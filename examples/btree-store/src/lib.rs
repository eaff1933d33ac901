//! A complete small session store for `session-core`, written only against its
//! public API: records in a `Mutex<BTreeMap>`, time from an injected
//! [`Clock`](session_core::Clock). It is the worked example of the
//! "Writing a backend" guide in the `conformance-tests` README, and it passes the
//! whole conformance suite (see `tests/conformance.rs`).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use session_core::time::OffsetDateTime;
use session_core::{
    Bytes, Capabilities, Error, FIRST_VERSION, NewRecord, SaveMode, SessionInterface, SharedClock,
    StorageKey, StoredRecord, Version, system_clock,
};

/// What the store keeps per key.
#[derive(Debug, Clone)]
struct Entry {
    payload: Bytes,
    expires_at: OffsetDateTime,
    version: Version,
}

/// A session store in one `Mutex<BTreeMap>`.
///
/// Every operation takes the lock once and never holds it across an `.await`, which
/// makes each one atomic: the check and the write of `save` cannot be separated by a
/// concurrent request.
#[derive(Debug)]
pub struct BTreeStore {
    map: Mutex<BTreeMap<StorageKey, Entry>>,
    clock: SharedClock,
}

impl Default for BTreeStore {
    fn default() -> Self {
        Self::new()
    }
}

impl BTreeStore {
    /// A store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(system_clock())
    }

    /// A store that takes "now" from `clock` (a `ManualClock` in tests).
    pub fn with_clock(clock: SharedClock) -> Self {
        Self {
            map: Mutex::new(BTreeMap::new()),
            clock,
        }
    }

    /// Number of records held, live or expired but not yet purged.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds no record at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<StorageKey, Entry>> {
        // Every mutation is a single map operation, so a panic elsewhere cannot
        // leave a half-written entry behind: poisoning can be ignored.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SessionInterface for BTreeStore {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        let now = self.clock.now();
        Ok(self
            .lock()
            .get(key)
            // An expired record is never returned, purged or not.
            .filter(|e| now < e.expires_at)
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
        let now = self.clock.now();
        let mut map = self.lock();
        let live = map.get(key).filter(|e| now < e.expires_at);
        let version = match (mode, live) {
            // Create: only over an absent or expired record.
            (SaveMode::Create, Some(_)) => return Err(Error::Collision),
            (SaveMode::Create, None) => FIRST_VERSION,
            // Update: compare-and-set on the version; never resurrect.
            (SaveMode::Update { .. }, None) => return Err(Error::NotFound),
            (SaveMode::Update { expected_version }, Some(e)) if e.version != expected_version => {
                return Err(Error::Conflict);
            }
            (SaveMode::Update { expected_version }, Some(_)) => expected_version + 1,
        };
        map.insert(
            key.clone(),
            Entry {
                payload: record.payload.clone(),
                expires_at: record.expires_at,
                version,
            },
        );
        Ok(version)
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        // Removing an absent key is fine: expire is idempotent.
        self.lock().remove(key);
        Ok(())
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        let now = self.clock.now();
        match self.lock().get_mut(key) {
            // Only the deadline moves; payload and version stay.
            Some(e) if now < e.expires_at => {
                e.expires_at = expires_at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        let now = self.clock.now();
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, e| now < e.expires_at);
        Ok((before - map.len()) as u64)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
    }
}
