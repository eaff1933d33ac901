//! `EncryptedStore`: encryption at rest as a wrapper around any store.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use session_core::time::OffsetDateTime;
use session_core::{
    Bytes, Capabilities, DecodeError, Error, NewRecord, Refreshed, SaveMode, SessionInterface,
    StorageKey, StoredRecord, Version,
};

use crate::KeyRing;
use crate::record::{is_plaintext_record, open_record, seal_record};

/// What an [`EncryptedStore`] does with plaintext records (sessions written
/// without encryption): the way to switch encryption at rest on or off over a
/// store that already holds sessions. See the crate README, "Switching encryption
/// on and off".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Migration {
    /// Every save seals; `load` opens sealed records only. A plaintext record is
    /// [`DecodeError::Malformed`], which the session manager treats as "no
    /// session": that user starts afresh.
    #[default]
    Off,
    /// Switching encryption on: `load` reads plaintext records as they are, as
    /// well as sealed ones; every save seals. A session is encrypted the next
    /// time it is saved; watch [`EncryptedStore::plaintext_reads`].
    ToEncrypted,
    /// Switching encryption off: `load` opens sealed records (with the keys of
    /// the ring) and reads plaintext ones; every save writes **plaintext**. A
    /// session is decrypted the next time it is saved; watch
    /// [`EncryptedStore::sealed_reads`], then remove the wrapper.
    ///
    /// Only for payloads written by session-core (JSON objects, which start with
    /// `{`): an arbitrary payload written in plaintext that does not start with
    /// `{` is taken for a sealed record on `load`, and fails to open.
    ToPlaintext,
}

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
/// Records written without encryption (plaintext) are "no session" by default;
/// [`EncryptedStore::builder`] with a [`Migration`] switches encryption on or off
/// over a store that already holds sessions.
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
/// let ring = KeyRing::new(Key::generate("2025-06")?);
/// let store = EncryptedStore::new(Arc::new(MemoryStore::new()), ring);
/// let manager = SessionManager::new(Arc::new(store), SessionConfig::default());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EncryptedStore<S: ?Sized = dyn SessionInterface> {
    inner: Arc<S>,
    ring: KeyRing,
    migration: Migration,
    /// Shared by clones: they are the same store.
    reads: Arc<Reads>,
}

/// How many loads found a record of each kind.
#[derive(Debug, Default)]
struct Reads {
    plaintext: AtomicU64,
    sealed: AtomicU64,
}

/// Builds an [`EncryptedStore`] with options; from [`EncryptedStore::builder`].
#[must_use]
pub struct EncryptedStoreBuilder<S: ?Sized = dyn SessionInterface> {
    inner: Arc<S>,
    ring: KeyRing,
    migration: Migration,
}

impl<S: SessionInterface + ?Sized> EncryptedStoreBuilder<S> {
    /// How plaintext records are read and what saves write (default
    /// [`Migration::Off`]).
    pub fn migration(mut self, migration: Migration) -> Self {
        self.migration = migration;
        self
    }

    /// The store.
    pub fn build(self) -> EncryptedStore<S> {
        EncryptedStore {
            inner: self.inner,
            ring: self.ring,
            migration: self.migration,
            reads: Arc::default(),
        }
    }
}

impl<S: SessionInterface + ?Sized> EncryptedStore<S> {
    /// Wraps `inner`, sealing with `ring`'s newest key ([`Migration::Off`]).
    pub fn new(inner: Arc<S>, ring: KeyRing) -> Self {
        Self::builder(inner, ring).build()
    }

    /// A builder wrapping `inner`, sealing with `ring`'s newest key.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use session_crypto::{EncryptedStore, Key, KeyRing, Migration};
    /// use session_memory::MemoryStore;
    ///
    /// // Switching encryption on over a store full of plaintext sessions.
    /// let ring = KeyRing::new(Key::generate("k1")?);
    /// let store = EncryptedStore::builder(Arc::new(MemoryStore::new()), ring)
    ///     .migration(Migration::ToEncrypted)
    ///     .build();
    /// assert_eq!(store.migration(), Migration::ToEncrypted);
    /// assert_eq!(store.plaintext_reads(), 0);
    /// # Ok::<(), session_core::Error>(())
    /// ```
    pub fn builder(inner: Arc<S>, ring: KeyRing) -> EncryptedStoreBuilder<S> {
        EncryptedStoreBuilder {
            inner,
            ring,
            migration: Migration::Off,
        }
    }

    /// How this store treats plaintext records.
    pub fn migration(&self) -> Migration {
        self.migration
    }

    /// How many loads (by this store and its clones, since it was built) found a
    /// plaintext record, whether [`migration`](Self::migration) let them read it
    /// or not. A load counts each time: one session read on ten requests counts
    /// ten. While switching encryption on, this stops growing once no live
    /// session is left in plaintext (see the crate README for the time bound).
    pub fn plaintext_reads(&self) -> u64 {
        self.reads.plaintext.load(Ordering::Relaxed)
    }

    /// How many loads (by this store and its clones, since it was built) opened a
    /// sealed record. While switching encryption off
    /// ([`Migration::ToPlaintext`]), this stops growing once no live session is
    /// left sealed.
    pub fn sealed_reads(&self) -> u64 {
        self.reads.sealed.load(Ordering::Relaxed)
    }

    /// The wrapped store (which holds sealed bytes, and plaintext ones during a
    /// [`Migration`]).
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The key ring.
    pub fn key_ring(&self) -> &KeyRing {
        &self.ring
    }

    /// The sealed bytes of `payload` under `key`: what every save writes, except
    /// with [`Migration::ToPlaintext`].
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
            migration: self.migration,
            reads: self.reads.clone(),
        }
    }
}

impl<S: SessionInterface + ?Sized> fmt::Debug for EncryptedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("inner", &self.inner.capabilities())
            .field("ring", &self.ring)
            .field("migration", &self.migration)
            .finish()
    }
}

impl<S: SessionInterface + ?Sized> EncryptedStore<S> {
    /// A record read from the inner store, with its payload opened (or passed
    /// through as plaintext where the [`Migration`] allows it).
    fn reveal(&self, key: &StorageKey, record: StoredRecord) -> Result<StoredRecord, Error> {
        let payload = if is_plaintext_record(&record.payload) {
            self.reads.plaintext.fetch_add(1, Ordering::Relaxed);
            if self.migration == Migration::Off {
                // Not `UnknownVersion`: the manager would answer every request
                // of this user with an error for as long as the record lives.
                return Err(Error::Decode(DecodeError::Malformed {
                    reason: "a plaintext session, not an encrypted record (see Migration)",
                }));
            }
            record.payload
        } else {
            let payload = self.open(key, &record.payload)?;
            self.reads.sealed.fetch_add(1, Ordering::Relaxed);
            Bytes::from(payload)
        };
        Ok(StoredRecord { payload, ..record })
    }
}

#[async_trait]
impl<S: SessionInterface + ?Sized> SessionInterface for EncryptedStore<S> {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        let Some(record) = self.inner.load(key).await? else {
            return Ok(None);
        };
        self.reveal(key, record).map(Some)
    }

    /// The inner store's one step, then the payload opened as `load` opens it. A
    /// record that cannot be opened gets its deadline put back before the error is
    /// returned, so an unreadable record never lives longer for having been asked.
    async fn load_and_touch(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Result<Option<Refreshed>, Error> {
        let Some(found) = self
            .inner
            .load_and_touch(key, expires_at, due_before)
            .await?
        else {
            return Ok(None);
        };
        match self.reveal(key, found.record) {
            Ok(record) => Ok(Some(Refreshed { record, ..found })),
            Err(e) => {
                if found.touched {
                    self.inner.touch(key, found.previous_expires_at).await?;
                }
                Err(e)
            }
        }
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        if self.migration == Migration::ToPlaintext {
            return self.inner.save(key, record, mode).await;
        }
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
