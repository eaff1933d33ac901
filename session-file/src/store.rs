//! [`FileStore`]: the [`SessionInterface`] over the pieces in the other modules.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use session_core::time::OffsetDateTime;
use session_core::{
    Capabilities, ConfigError, Error, FIRST_VERSION, NewRecord, Refreshed, SaveMode,
    SessionInterface, SharedClock, StorageKey, StoredRecord, Version, load_then_touch,
    system_clock,
};

use crate::format::{self, HEADER_LEN, Header};
use crate::fsio::{self, Root};
use crate::layout;
use crate::lock::{KeyLocks, OsLock};
use crate::sweep;

/// Default limit on a payload's size: far above any sensible session, low enough
/// that a stray huge file in the directory cannot exhaust memory.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;
/// Default number of keys `delete_expired` handles per blocking call.
pub const DEFAULT_SWEEP_BATCH: usize = 256;

/// How [`SessionInterface::touch`] moves a deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TouchMode {
    /// Write only the new deadline into the record's header, then `fdatasync` the
    /// file. Crash-safe through the format's two checksummed deadline slots: a torn
    /// write leaves the previous deadline. The default: it measured faster (see
    /// `BENCHMARKS.md`).
    #[default]
    InPlace,
    /// Rewrite the whole record with the new deadline, atomically (temporary file,
    /// sync, rename, directory sync) like a save.
    Rewrite,
}

/// Configures and opens a [`FileStore`]; see [`FileStore::builder`].
#[derive(Debug, Clone)]
pub struct FileStoreBuilder {
    dir: PathBuf,
    clock: SharedClock,
    touch_mode: TouchMode,
    sweep_batch: usize,
    max_payload_bytes: usize,
    allow_shared_directory: bool,
}

impl FileStoreBuilder {
    /// Takes "now" from `clock` instead of the system clock (a `ManualClock` in
    /// tests). Expiry decisions (`load`, `save`, `touch`, `delete_expired`) all ask it.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// How `touch` writes (default [`TouchMode::InPlace`]).
    pub fn touch_mode(mut self, mode: TouchMode) -> Self {
        self.touch_mode = mode;
        self
    }

    /// How many keys `delete_expired` handles per blocking call (default
    /// [`DEFAULT_SWEEP_BATCH`]); must be at least 1.
    pub fn sweep_batch(mut self, keys: usize) -> Self {
        self.sweep_batch = keys;
        self
    }

    /// The largest payload `save` accepts (default [`DEFAULT_MAX_PAYLOAD_BYTES`]);
    /// larger ones are [`Error::PayloadTooLarge`]. Record files larger than this
    /// are not read but reported as a decode error. Must be at least 1.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// Accepts a store directory, and shard directories, that another user owns
    /// or that its group can write to (default `false`: refused).
    ///
    /// By default the store uses only directories owned by the process's
    /// effective user (or root) that no other user can write to, because whoever
    /// can write to them can plant a record under a token of their choosing and be
    /// signed in as anyone. Opt in only when the directory's owner and group are
    /// trusted like the server itself — e.g. a volume mounted `root:app 2770`, or
    /// a directory provisioned by a deploy user. A directory every user can write
    /// to is refused even then, and record and lock files owned by another user
    /// are never used either way (see the crate documentation, "Ownership").
    pub fn allow_shared_directory(mut self, allow: bool) -> Self {
        self.allow_shared_directory = allow;
        self
    }

    /// Validates the settings and the directory and opens the store. The
    /// directory is created (mode 0700, with missing parents) if absent; it must be
    /// a writable directory, owned by this process's effective user or root and
    /// not writable by group or others (unless
    /// [`allow_shared_directory`](Self::allow_shared_directory); never writable by
    /// others). Failures are [`Error::Config`] with [`ConfigError::Invalid`], whose
    /// reason names the path and the problem.
    pub async fn open(self) -> Result<FileStore, Error> {
        let invalid = |setting, reason: &str| {
            Error::Config(ConfigError::Invalid {
                setting,
                reason: reason.to_owned(),
            })
        };
        if self.sweep_batch == 0 {
            return Err(invalid("session-file sweep batch", "must be at least 1"));
        }
        if self.max_payload_bytes == 0 {
            return Err(invalid(
                "session-file payload limit",
                "must be at least 1 byte",
            ));
        }
        let (dir, shared) = (self.dir.clone(), self.allow_shared_directory);
        let root = run_blocking(move || Root::open(&dir, shared)).await?;
        Ok(FileStore {
            inner: Arc::new(Inner {
                root,
                clock: self.clock,
                locks: KeyLocks::new(),
                touch_mode: self.touch_mode,
                sweep_batch: self.sweep_batch,
                max_payload_bytes: self.max_payload_bytes,
            }),
        })
    }
}

/// A crash-safe file-system [`SessionInterface`]: one file per session.
///
/// See the crate documentation for the layout, the file format and the guarantees.
/// Cloning is cheap and clones share the store (including its in-process locks).
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: Root,
    pub(crate) clock: SharedClock,
    pub(crate) locks: KeyLocks,
    touch_mode: TouchMode,
    pub(crate) sweep_batch: usize,
    max_payload_bytes: usize,
}

/// Runs blocking file-system work on the blocking pool, never on an async worker.
pub(crate) async fn run_blocking<T, F>(f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        // Only a panic in our own code gets here; keep it a panic, do not hide it.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down.
        Err(e) => Err(Error::retryable(e)),
    }
}

impl FileStore {
    /// The shared state, for the sweep's unit tests.
    #[cfg(test)]
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Opens a store in `dir` with the default settings (system clock, in-place
    /// touch, only a directory of this process's user or root that no one else can
    /// write to). Same as `FileStore::builder(dir).open()`.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::builder(dir).open().await
    }

    /// A builder for a store in `dir`.
    pub fn builder(dir: impl Into<PathBuf>) -> FileStoreBuilder {
        FileStoreBuilder {
            dir: dir.into(),
            clock: system_clock(),
            touch_mode: TouchMode::default(),
            sweep_batch: DEFAULT_SWEEP_BATCH,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            allow_shared_directory: false,
        }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        self.inner.root.path()
    }

    fn max_file_len(&self) -> u64 {
        (self.inner.max_payload_bytes as u64).saturating_add(HEADER_LEN as u64)
    }
}

impl Inner {
    fn save_blocking(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        let shard = self.root.shard_or_create(key)?;
        let lock = OsLock::acquire(shard, key)?;
        let now = self.clock.now();
        let current = fsio::read_header(shard, key, false)?.map(|(h, _)| h);
        let exists = current.is_some();
        let new_version = match (mode, current) {
            (SaveMode::Create, Some(h)) if h.is_live(now) => Err(Error::Collision),
            (SaveMode::Create, _) => Ok(FIRST_VERSION),
            (SaveMode::Update { .. }, None) => Err(Error::NotFound),
            (SaveMode::Update { .. }, Some(h)) if !h.is_live(now) => Err(Error::NotFound),
            (SaveMode::Update { expected_version }, Some(h)) if h.version != expected_version => {
                Err(Error::Conflict)
            }
            (SaveMode::Update { expected_version }, Some(_)) => expected_version
                .checked_add(1)
                .ok_or_else(|| Error::backend("record version overflow")),
        };
        let new_version = match new_version {
            Ok(v) => v,
            Err(e) => {
                lock.release(exists)?;
                return Err(e);
            }
        };
        let bytes = format::encode(new_version, record.expires_at, &record.payload);
        let written = fsio::write_atomic(shard, key, &bytes);
        // If the write failed the old record (if any) is still in place.
        lock.release(exists || written.is_ok())?;
        written.map(|()| new_version)
    }

    fn expire_blocking(&self, key: &StorageKey) -> Result<(), Error> {
        let Some(shard) = self.root.shard(key)? else {
            return Ok(());
        };
        let lock = OsLock::acquire(shard, key)?;
        // Under the lock, so no concurrent save can rename a record back in after
        // this returns.
        let removed = fsio::remove(shard, layout::record_name(key), "remove record")?;
        fsio::remove(shard, &layout::tmp_name(key), "remove temporary file")?;
        if removed {
            // A logout must stay done across a crash.
            fsio::sync_dir(shard)?;
        }
        lock.release(false)
    }

    fn touch_blocking(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        max_len: u64,
    ) -> Result<bool, Error> {
        let Some(shard) = self.root.shard(key)? else {
            return Ok(false);
        };
        let lock = OsLock::acquire(shard, key)?;
        let now = self.clock.now();
        let result = match self.touch_mode {
            TouchMode::InPlace => match fsio::read_header(shard, key, true) {
                Ok(Some((h, file))) if h.is_live(now) => {
                    let (offset, slot) = h.touch_write(expires_at);
                    fsio::write_slot(&file, offset, &slot).map(|()| (true, true))
                }
                Ok(found) => Ok((false, found.is_some())),
                Err(e) => Err(e),
            },
            TouchMode::Rewrite => match fsio::read_record(shard, key, max_len) {
                Ok(Some(r)) if now < r.expires_at => {
                    let bytes = format::encode(r.version, expires_at, &r.payload);
                    fsio::write_atomic(shard, key, &bytes).map(|()| (true, true))
                }
                // An expired record still exists on disk until swept.
                Ok(Some(_)) => Ok((false, true)),
                Ok(None) => Ok((false, false)),
                Err(e) => Err(e),
            },
        };
        match result {
            Ok((touched, exists)) => {
                lock.release(exists)?;
                Ok(touched)
            }
            Err(e) => {
                lock.release(true)?;
                Err(e)
            }
        }
    }
}

/// A record read through a read-write descriptor by `load_and_touch`.
type Opened = (Header, StoredRecord, std::fs::File);

impl Inner {
    /// The due half of `load_and_touch`, under the key's locks: writes the new
    /// deadline in place into the file that was read (`opened`), after checking
    /// that it is still the key's record, still live and still due. If a save or an
    /// expire replaced or removed it since, the record is read afresh (a second
    /// open, only in that race).
    fn touch_opened(
        &self,
        key: &StorageKey,
        opened: Opened,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
        max_len: u64,
    ) -> Result<Option<Refreshed>, Error> {
        let Some(shard) = self.root.shard(key)? else {
            return Ok(None);
        };
        let lock = OsLock::acquire(shard, key)?;
        let now = self.clock.now();
        let (header, record, file) = opened;
        let current = match fsio::reread_header(shard, key, &file) {
            Ok(Some(h)) if h.version == header.version => Ok(Some((h, record, file))),
            Ok(_) => fsio::read_record_rw(shard, key, max_len),
            Err(e) => Err(e),
        };
        let result = current.and_then(|found| {
            let Some((h, mut record, file)) = found else {
                return Ok((None, false));
            };
            if !h.is_live(now) {
                return Ok((None, true));
            }
            let previous_expires_at = h.expires_at;
            record.expires_at = previous_expires_at;
            let touched = previous_expires_at < due_before;
            if touched {
                let (offset, slot) = h.touch_write(expires_at);
                fsio::write_slot(&file, offset, &slot)?;
                record.expires_at = expires_at;
            }
            Ok((
                Some(Refreshed {
                    record,
                    previous_expires_at,
                    touched,
                }),
                true,
            ))
        });
        match result {
            Ok((answer, exists)) => {
                lock.release(exists)?;
                Ok(answer)
            }
            Err(e) => {
                lock.release(true)?;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl SessionInterface for FileStore {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        // No lock: records are replaced by rename (a reader sees the old or the new
        // file) and the in-place deadline write is checksummed per slot.
        let inner = Arc::clone(&self.inner);
        let key = key.clone();
        let max_len = self.max_file_len();
        run_blocking(move || {
            let Some(shard) = inner.root.shard(&key)? else {
                return Ok(None);
            };
            let record = fsio::read_record(shard, &key, max_len)?;
            let now = inner.clock.now();
            Ok(record.filter(|r| now < r.expires_at))
        })
        .await
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        let size = record.payload.len();
        if size > self.inner.max_payload_bytes {
            return Err(Error::PayloadTooLarge {
                size,
                limit: self.inner.max_payload_bytes,
            });
        }
        let guard = self.inner.locks.lock(key).await;
        let inner = Arc::clone(&self.inner);
        let (key, record) = (key.clone(), record.clone());
        run_blocking(move || {
            // Moved in so a cancelled caller does not let another task of this
            // process queue on the OS lock while the write is still running.
            let _guard = guard;
            inner.save_blocking(&key, &record, mode)
        })
        .await
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        let guard = self.inner.locks.lock(key).await;
        let inner = Arc::clone(&self.inner);
        let key = key.clone();
        run_blocking(move || {
            let _guard = guard;
            inner.expire_blocking(&key)
        })
        .await
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        let guard = self.inner.locks.lock(key).await;
        let inner = Arc::clone(&self.inner);
        let key = key.clone();
        let max_len = self.max_file_len();
        run_blocking(move || {
            let _guard = guard;
            inner.touch_blocking(&key, expires_at, max_len)
        })
        .await
    }

    async fn load_and_touch(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Result<Option<Refreshed>, Error> {
        if self.inner.touch_mode != TouchMode::InPlace {
            // A rewriting touch replaces the file: nothing to gain from the open one.
            return load_then_touch(self, key, expires_at, due_before).await;
        }
        let max_len = self.max_file_len();
        // Like `load`: no lock, one open — read-write, so a due deadline can be
        // written into the same file.
        let inner = Arc::clone(&self.inner);
        let k = key.clone();
        let read = run_blocking(move || {
            let Some(shard) = inner.root.shard(&k)? else {
                return Ok(None);
            };
            let found = fsio::read_record_rw(shard, &k, max_len)?;
            let now = inner.clock.now();
            Ok(found.filter(|(_, r, _)| now < r.expires_at))
        })
        .await?;
        let Some(opened) = read else {
            return Ok(None);
        };
        let previous_expires_at = opened.1.expires_at;
        if previous_expires_at >= due_before {
            return Ok(Some(Refreshed {
                record: opened.1,
                previous_expires_at,
                touched: false,
            }));
        }
        let guard = self.inner.locks.lock(key).await;
        let inner = Arc::clone(&self.inner);
        let k = key.clone();
        run_blocking(move || {
            let _guard = guard;
            inner.touch_opened(&k, opened, expires_at, due_before, max_len)
        })
        .await
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        sweep::delete_expired(Arc::clone(&self.inner)).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
            .with_durable(true)
            .with_load_and_touch(self.inner.touch_mode == TouchMode::InPlace)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use session_core::time::{Duration, macros::datetime};
    use session_core::{Bytes, Clock, ManualClock, SessionToken};

    use super::*;
    use crate::fsio::synced;

    /// What a unit test that calls the store's blocking internals on its own
    /// thread needs: a current-thread runtime for the async API, the store's
    /// directory, a manual clock (at a whole second) and the store.
    pub(crate) struct TestStore {
        pub(crate) rt: tokio::runtime::Runtime,
        pub(crate) clock: ManualClock,
        pub(crate) store: FileStore,
        /// Deleted on drop: bind it (`dir: _dir`) for as long as the store is used.
        pub(crate) dir: tempfile::TempDir,
    }

    impl TestStore {
        pub(crate) fn open() -> Result<Self, Error> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::retryable)?;
            let dir = tempfile::tempdir().map_err(Error::retryable)?;
            let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
            let store = rt.block_on(FileStore::builder(dir.path()).clock(clock.shared()).open())?;
            Ok(Self {
                rt,
                clock,
                store,
                dir,
            })
        }

        /// A record of `payload` with its deadline.
        pub(crate) fn record(payload: &'static [u8], expires_at: OffsetDateTime) -> NewRecord {
            NewRecord {
                payload: Bytes::from_static(payload),
                expires_at,
            }
        }
    }

    /// Every write is durable before it returns: a create syncs the temporary
    /// file, then the shard directory after the rename (and the store directory
    /// when it made the shard); an update the same but the store directory; an
    /// in-place touch the record; an expire the shard directory. A black-box test
    /// cannot see a missing sync without a power cut, so the steps are logged.
    #[test]
    fn every_write_path_syncs_before_it_returns() -> Result<(), Error> {
        let TestStore {
            clock,
            store,
            dir: _dir,
            ..
        } = TestStore::open()?;
        let inner = store.inner();
        let key = SessionToken::generate()?.storage_key();
        let record = TestStore::record;
        synced::take();

        let one = record(b"one", clock.now() + Duration::hours(1));
        assert_eq!(inner.save_blocking(&key, &one, SaveMode::Create)?, 1);
        assert_eq!(
            synced::take(),
            ["store directory", "temporary file", "shard directory"]
        );

        let two = record(b"two", clock.now() + Duration::hours(1));
        let update = SaveMode::Update {
            expected_version: 1,
        };
        assert_eq!(inner.save_blocking(&key, &two, update)?, 2);
        assert_eq!(synced::take(), ["temporary file", "shard directory"]);

        let later = clock.now() + Duration::hours(2);
        assert!(inner.touch_blocking(&key, later, store.max_file_len())?);
        assert_eq!(synced::take(), ["record"]);

        inner.expire_blocking(&key)?;
        assert_eq!(synced::take(), ["shard directory"]);
        Ok(())
    }
}
