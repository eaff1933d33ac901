//! A store for the layer's tests: the memory store, with counters and a switch that
//! makes writes fail like a backend outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use session_core::time::OffsetDateTime;
use session_core::{
    Capabilities, Error, NewRecord, SaveMode, SessionConfig, SessionInterface, SessionManager,
    StorageKey, StoredRecord, Version,
};
use session_memory::MemoryStore;

#[derive(Default)]
pub struct TestStore {
    inner: MemoryStore,
    pub fail_writes: AtomicBool,
    pub loads: AtomicUsize,
    pub saves: AtomicUsize,
}

impl TestStore {
    pub fn records(&self) -> usize {
        self.inner.len()
    }

    fn write_gate(&self) -> Result<(), Error> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(Error::Backend {
                retryable: true,
                source: "the test switched writes off".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl SessionInterface for TestStore {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        self.write_gate()?;
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.save(key, record, mode).await
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        self.write_gate()?;
        self.inner.expire(key).await
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        self.write_gate()?;
        self.inner.touch(key, expires_at).await
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        self.inner.delete_expired().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

/// A manager over a fresh test store, with the store for inspection.
pub fn manager() -> (SessionManager, Arc<TestStore>) {
    let store = Arc::new(TestStore::default());
    let manager = SessionManager::new(store.clone(), SessionConfig::default());
    (manager, store)
}

/// The `name=value` part of a `Set-Cookie` header, to send back as `Cookie`.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}
