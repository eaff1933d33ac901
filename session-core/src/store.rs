//! The storage contract every backend implements.

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::{Error, StorageKey};

/// A record's version. The first version of a record is [`FIRST_VERSION`]; every
/// successful update adds one.
pub type Version = u64;

/// The version a record has right after `save(Create)`.
pub const FIRST_VERSION: Version = 1;

/// What a store keeps under a key, as [`SessionInterface::load`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The opaque payload, byte for byte as it was saved.
    pub payload: Bytes,
    /// When the record stops being live (UTC). Stores must keep at least
    /// one-second precision.
    pub expires_at: OffsetDateTime,
    /// The record's version.
    pub version: Version,
}

/// What [`SessionInterface::load_and_touch`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// The record as it is after the call: its deadline is the new one when
    /// `touched`, the old one otherwise. Payload and version are never changed.
    pub record: StoredRecord,
    /// The deadline the record had before the call.
    pub previous_expires_at: OffsetDateTime,
    /// Whether the deadline was moved.
    pub touched: bool,
}

/// What to write with [`SessionInterface::save`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// The opaque payload; stores never look inside.
    pub payload: Bytes,
    /// The record's deadline (UTC).
    pub expires_at: OffsetDateTime,
}

/// How [`SessionInterface::save`] may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Insert only if no live record holds the key.
    Create,
    /// Compare-and-set: replace the live record only if its version is `expected_version`.
    ///
    /// A record whose deadline is not in the future makes the update a
    /// **compare-and-set removal**: on a version match the record is dead at once.
    Update {
        /// The version the caller loaded.
        expected_version: Version,
    },
}

/// What a store can promise beyond the core operations, so the manager and the
/// conformance suite can adapt. A capability never excuses a broken core operation:
/// where the contract has an answer and the capability is not declared, the store
/// returns [`Error::Unsupported`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `touch` moves the deadline without rewriting the payload. Without it `touch`
    /// returns [`Error::Unsupported`] and the manager rewrites the record instead.
    pub touch: bool,
    /// `delete_expired` purges expired records. Without it the store returns
    /// [`Error::Unsupported`] and must have some other way to reclaim space
    /// (typically `native_ttl`).
    pub delete_expired: bool,
    /// The server evicts expired records by itself (Redis); `delete_expired` may
    /// return 0.
    pub native_ttl: bool,
    /// Records survive a restart of the process (and of the server, where the
    /// server is configured durably).
    pub durable: bool,
    /// [`load_and_touch`](SessionInterface::load_and_touch) is implemented in one
    /// round trip where a refresh is due (and `touch` is supported). The manager then
    /// loads a session with refresh-each-request through it; without it, it loads and
    /// touches separately, and only when the refresh is due. A store may still answer
    /// a call whose bound is before the new deadline (a refresh due only now and then)
    /// with a plain load and a touch when due, where that is cheaper on its server
    /// (session-redis, session-postgres and session-mysql do: the one-step form costs
    /// their servers more on every read than the rare second round trip). Off in
    /// [`full`](Self::full): the trait's default implementation is two round trips.
    pub load_and_touch: bool,
}

impl Capabilities {
    /// Everything a store that implements every operation in-process offers:
    /// touch and delete_expired, no native TTL, not durable, no one-step
    /// `load_and_touch` (declare it with [`with_load_and_touch`](Self::with_load_and_touch)
    /// where the store overrides the method).
    pub const fn full() -> Self {
        Self {
            touch: true,
            delete_expired: true,
            native_ttl: false,
            durable: false,
            load_and_touch: false,
        }
    }

    /// `self` with `touch` set to `on`.
    pub const fn with_touch(mut self, on: bool) -> Self {
        self.touch = on;
        self
    }

    /// `self` with `delete_expired` set to `on`.
    pub const fn with_delete_expired(mut self, on: bool) -> Self {
        self.delete_expired = on;
        self
    }

    /// `self` with `native_ttl` set to `on`.
    pub const fn with_native_ttl(mut self, on: bool) -> Self {
        self.native_ttl = on;
        self
    }

    /// `self` with `durable` set to `on`.
    pub const fn with_durable(mut self, on: bool) -> Self {
        self.durable = on;
        self
    }

    /// `self` with `load_and_touch` set to `on`.
    pub const fn with_load_and_touch(mut self, on: bool) -> Self {
        self.load_and_touch = on;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::full()
    }
}

/// The storage contract: bytes + deadline + version under a [`StorageKey`].
///
/// Stores move bytes; the session core owns their meaning. A store never parses the
/// payload, never sees a cookie, never decides policy. Every method is atomic with
/// respect to the others on the same key, including across processes where the
/// store is shared.
///
/// "Now" is the store's clock (stores that accept a [`Clock`](crate::Clock) use it;
/// server stores may use the server's time). A record is **live** while
/// `now < expires_at`.
///
/// The trait is object-safe: the manager holds an `Arc<dyn SessionInterface>`.
/// Prove an implementation with the `conformance-tests` crate.
#[async_trait]
pub trait SessionInterface: Send + Sync + 'static {
    /// Returns the live record under `key`, or `None`.
    ///
    /// - A record whose `expires_at` has passed is **never** returned, whether or not
    ///   it has been purged yet.
    /// - The payload comes back byte for byte as saved, whatever its size
    ///   (0 bytes to several MiB) and content.
    /// - Stored bytes that cannot be read are [`Error::Decode`], for this key only.
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error>;

    /// Writes `record` under `key` and returns the record's new version.
    ///
    /// - [`SaveMode::Create`]: inserts only if no live record holds the key (an
    ///   expired one may be replaced). If a live record exists: [`Error::Collision`],
    ///   nothing written. Of any number of concurrent creates of one key exactly one
    ///   succeeds. Returns [`FIRST_VERSION`].
    /// - [`SaveMode::Update`]: compare-and-set. Writes only if a live record holds the
    ///   key and its version equals `expected_version`, then returns
    ///   `expected_version + 1`. Another version: [`Error::Conflict`], nothing
    ///   written. Absent or expired: [`Error::NotFound`], nothing written — a
    ///   destroyed session is **never** resurrected by an update. Of any number of
    ///   concurrent updates with the same expected version exactly one succeeds.
    /// - An `Update` whose `record.expires_at` is not after now is a
    ///   **compare-and-set removal**, under the same rules: on a version match it
    ///   returns `expected_version + 1` and the record is dead at once (no `load`
    ///   returns it, no later `Update` or `touch` finds it, a `Create` may take the
    ///   key); on another version it is a `Conflict` and the live record stays as it
    ///   was; absent or expired, `NotFound`. The manager removes a session it loaded
    ///   this way (emptied, cleared, id cycled), so a change saved meanwhile is merged
    ///   instead of thrown away. Stores may keep the dead record until
    ///   `delete_expired`, or drop it at once.
    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error>;

    /// Destroys the record under `key` now. Idempotent: expiring an absent or
    /// expired key succeeds. After it returns, no `load` sees the record and no
    /// `Update` finds it.
    async fn expire(&self, key: &StorageKey) -> Result<(), Error>;

    /// Moves the deadline of the live record under `key` to `expires_at` without
    /// rewriting the payload or changing the version. Returns whether a live record
    /// existed; on an absent or expired key it returns `false` and creates nothing.
    /// A deadline in the past makes the record dead at once.
    ///
    /// Stores without the [`Capabilities::touch`] capability return
    /// [`Error::Unsupported`].
    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error>;

    /// Loads the live record under `key` and, when its deadline is before
    /// `due_before`, moves the deadline to `expires_at` as [`touch`](Self::touch)
    /// would (payload and version unchanged); returns the record as it is after
    /// that, with the deadline it had before. On an absent or expired key it
    /// returns `None` and creates nothing. An `expires_at` that is not in the
    /// future makes a touched record dead at once (the answer still carries it;
    /// the manager never asks for that).
    ///
    /// This is the manager's sliding refresh in one step: it passes `now + idle
    /// lifetime` and `due_before = expires_at - threshold × idle lifetime`, so the
    /// store moves the deadline exactly when the refresh gains more than
    /// [`SessionConfig::refresh_threshold`](crate::SessionConfig::refresh_threshold).
    ///
    /// **The absolute lifetime and per-session idle lifetimes.** They live inside
    /// the payload, which stores never read, so the manager cannot hand the store
    /// the session's own cap before loading; it passes the configured idle
    /// lifetime. When the loaded session's own deadline (capped by its absolute
    /// deadline, or under its own idle lifetime) differs from what the store set,
    /// the manager follows with one corrective `touch` — to its own deadline if the
    /// refresh is due by its own rule, else back to `previous_expires_at`. The same
    /// happens for a rotation pointer or an unreadable record: their deadline is
    /// put back, so a pointer's grace window never grows. The cap therefore holds;
    /// the cost is a second write for such sessions (in the last stretch of the
    /// absolute lifetime, or with a per-session idle lifetime much shorter than
    /// the configured one), and only once per session and manager: the manager
    /// remembers a session it corrected and loads it with [`load`](Self::load)
    /// afterwards.
    ///
    /// **The default implementation** is [`load`](Self::load), then — only when the
    /// loaded deadline is before `due_before` and the store declares
    /// [`Capabilities::touch`] — [`touch`](Self::touch): two round trips and not
    /// atomic. A write landing between them is not lost (`touch` never writes a
    /// payload), but the answer then shows the older payload and version and the
    /// touch moves the newer record's deadline; a removal between them makes the
    /// answer `None`. Stores that do it in one round trip override it and declare
    /// [`Capabilities::load_and_touch`]; such an override is atomic with respect to
    /// the other operations on the key, like every other method, wherever it runs in
    /// one step (it may answer a bound before `expires_at` with this default, see the
    /// capability).
    async fn load_and_touch(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Result<Option<Refreshed>, Error> {
        load_then_touch(self, key, expires_at, due_before).await
    }

    /// Removes every expired record, in bounded batches, and returns how many it
    /// removed. Never removes a live record. Stores whose server evicts natively
    /// ([`Capabilities::native_ttl`]) may return 0; stores without the
    /// [`Capabilities::delete_expired`] capability return [`Error::Unsupported`].
    async fn delete_expired(&self) -> Result<u64, Error>;

    /// What this store promises beyond the core operations.
    fn capabilities(&self) -> Capabilities;
}

/// The default [`SessionInterface::load_and_touch`]: [`load`](SessionInterface::load),
/// then — when the deadline is before `due_before` and the store declares
/// [`Capabilities::touch`] — [`touch`](SessionInterface::touch). Two round trips, not
/// atomic (see the method). Public for stores that override the method but fall back
/// to this in some configurations.
pub async fn load_then_touch<S: SessionInterface + ?Sized>(
    store: &S,
    key: &StorageKey,
    expires_at: OffsetDateTime,
    due_before: OffsetDateTime,
) -> Result<Option<Refreshed>, Error> {
    let Some(mut record) = store.load(key).await? else {
        return Ok(None);
    };
    let previous_expires_at = record.expires_at;
    let touched = previous_expires_at < due_before && store.capabilities().touch;
    if touched {
        if !store.touch(key, expires_at).await? {
            return Ok(None);
        }
        record.expires_at = expires_at;
    }
    Ok(Some(Refreshed {
        record,
        previous_expires_at,
        touched,
    }))
}
