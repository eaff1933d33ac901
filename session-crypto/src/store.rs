//! `EncryptedStore`: encryption at rest as a wrapper around any store.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use session_core::time::OffsetDateTime;
use session_core::{
    Bytes, Capabilities, Error, NewRecord, SaveMode, SessionInterface, StorageKey, StoredRecord,
    Version,
};

use crate::KeyRing;
use crate::record::{open_record, seal_record};

/// A [`SessionInterface`] that seals every payload with XChaCha20-Poly1305 before
/// the inner store sees it, and opens it again on `load`.
///
/// - Each record is bound to its storage key (associated data), so a payload copied
///   to another key does not decrypt: `load` returns [`Error::Decode`].
/// - Records are sealed with the ring's newest key and opened with whichever key
///   sealed them, so old sessions stay readable after a rotation and move to the
///   newest key the next time they are saved.
/// - Deadlines and versions pass through untouched: `touch`, `expire` and
///   `delete_expired` cost the inner store exactly what they cost without
///   encryption.
///
/// What it does not protect against: someone who can write to the store can still
/// delete records, change their deadlines, or put back an older sealed payload of
/// the *same* session (a rollback). Confidentiality and integrity of each payload
/// are what it guarantees.
///
/// ```
/// use std::sync::Arc;
/// use session_core::{SessionConfig, SessionManager};
/// use session_crypto::{EncryptedStore, Key, KeyRing};
/// use session_memory::MemoryStore;
///
/// let ring = KeyRing::new(Key::new("2025-06", [42u8; 32])?);
/// let store = EncryptedStore::new(Arc::new(MemoryStore::new()), ring);
/// let manager = SessionManager::new(Arc::new(store), SessionConfig::default());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EncryptedStore<S: ?Sized = dyn SessionInterface> {
    inner: Arc<S>,
    ring: KeyRing,
}

impl<S: SessionInterface + ?Sized> EncryptedStore<S> {
    /// Wraps `inner`, sealing with `ring`'s newest key.
    pub fn new(inner: Arc<S>, ring: KeyRing) -> Self {
        Self { inner, ring }
    }

    /// The wrapped store (which holds only sealed bytes).
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The key ring.
    pub fn key_ring(&self) -> &KeyRing {
        &self.ring
    }

    /// The bytes this store writes to the inner store for `payload` under `key`.
    pub fn seal(&self, key: &StorageKey, payload: &[u8]) -> Result<Vec<u8>, Error> {
        seal_record(&self.ring, key, payload)
    }

    /// The payload of sealed bytes read from the inner store under `key`.
    pub fn open(&self, key: &StorageKey, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(open_record(&self.ring, key, sealed)?)
    }
}

impl<S: ?Sized> Clone for EncryptedStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            ring: self.ring.clone(),
        }
    }
}

impl<S: SessionInterface + ?Sized> fmt::Debug for EncryptedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("inner", &self.inner.capabilities())
            .field("ring", &self.ring)
            .finish()
    }
}

#[async_trait]
impl<S: SessionInterface + ?Sized> SessionInterface for EncryptedStore<S> {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        let Some(record) = self.inner.load(key).await? else {
            return Ok(None);
        };
        let payload = self.open(key, &record.payload)?;
        Ok(Some(StoredRecord {
            payload: Bytes::from(payload),
            ..record
        }))
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        let sealed = NewRecord {
            payload: Bytes::from(self.seal(key, &record.payload)?),
            expires_at: record.expires_at,
        };
        self.inner.save(key, &sealed, mode).await
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        self.inner.expire(key).await
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        self.inner.touch(key, expires_at).await
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        self.inner.delete_expired().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}
