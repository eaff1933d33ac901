//! Counting wrappers around the two storage traits: every call into the store is
//! counted, by the kind of request that made it (a task-local set around each
//! request) and by method. One call is one count whatever the store does inside it
//! (ours' `load_and_touch` is one call; a tower-sessions SQL `create` that runs a
//! transaction is one call too).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use session_core::{
    Capabilities, Error, NewRecord, Refreshed, SaveMode, SessionInterface, StorageKey,
    StoredRecord, Version,
};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, SessionStore};

use super::{KINDS, Kind};

tokio::task_local! {
    /// The kind of the request the current task is serving.
    static KIND: Kind;
}

/// Runs `f` as a request of `kind`: store calls it makes are counted under it.
pub async fn as_kind<F: Future>(kind: Kind, f: F) -> F::Output {
    KIND.scope(kind, f).await
}

/// The store methods counted (both traits map onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `load` (both).
    Load,
    /// Ours: `load_and_touch`.
    LoadAndTouch,
    /// Ours: `save(Create)`; tower-sessions: `create`.
    Create,
    /// Ours: `save(Update)` (compare-and-set, also a removal); tower-sessions: `save`.
    Update,
    /// Ours: `expire`; tower-sessions: `delete`.
    Delete,
    /// Ours: `touch`.
    Touch,
    /// Ours: `delete_expired`.
    DeleteExpired,
}

impl Method {
    /// Every method, in report order.
    pub const ALL: [Method; 7] = [
        Method::Load,
        Method::LoadAndTouch,
        Method::Create,
        Method::Update,
        Method::Delete,
        Method::Touch,
        Method::DeleteExpired,
    ];

    /// The name in the report (ours' name / tower-sessions' where they differ).
    pub fn label(self) -> &'static str {
        match self {
            Method::Load => "load",
            Method::LoadAndTouch => "load_and_touch",
            Method::Create => "create",
            Method::Update => "update/save",
            Method::Delete => "expire/delete",
            Method::Touch => "touch",
            Method::DeleteExpired => "delete_expired",
        }
    }
}

/// Rows of [`Calls`]: one per request kind, and one for calls made outside a
/// request (none are expected while measuring).
const ROWS: usize = KINDS.len() + 1;

/// Store calls and requests, by request kind.
#[derive(Debug, Default)]
pub struct Calls {
    calls: [[AtomicU64; Method::ALL.len()]; ROWS],
    requests: [AtomicU64; KINDS.len()],
}

/// A copy of [`Calls`] at one moment; subtract two to get a run's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls by row (kind, then "outside a request") and method.
    pub calls: [[u64; Method::ALL.len()]; ROWS],
    /// Requests by kind.
    pub requests: [u64; KINDS.len()],
}

impl Calls {
    fn count(&self, method: Method) {
        let row = KIND.try_with(|k| k.index()).unwrap_or(KINDS.len());
        let col = Method::ALL.iter().position(|m| *m == method).unwrap_or(0);
        self.calls[row][col].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one request of `kind`.
    pub fn request(&self, kind: Kind) {
        self.requests[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Counts {
        let mut c = Counts::default();
        for (row, out) in self.calls.iter().zip(c.calls.iter_mut()) {
            for (x, o) in row.iter().zip(out.iter_mut()) {
                *o = x.load(Ordering::Relaxed);
            }
        }
        for (x, o) in self.requests.iter().zip(c.requests.iter_mut()) {
            *o = x.load(Ordering::Relaxed);
        }
        c
    }
}

impl Counts {
    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &Counts) -> Counts {
        let mut c = *self;
        for (row, e) in c.calls.iter_mut().zip(&earlier.calls) {
            for (x, y) in row.iter_mut().zip(e) {
                *x -= y;
            }
        }
        for (x, y) in c.requests.iter_mut().zip(&earlier.requests) {
            *x -= y;
        }
        c
    }

    /// `self + other`, field by field.
    pub fn add(&mut self, other: &Counts) {
        for (row, o) in self.calls.iter_mut().zip(&other.calls) {
            for (x, y) in row.iter_mut().zip(o) {
                *x += y;
            }
        }
        for (x, y) in self.requests.iter_mut().zip(&other.requests) {
            *x += y;
        }
    }

    /// Store calls made by requests of `kind`.
    pub fn calls_of(&self, kind: Kind) -> u64 {
        self.calls[kind.index()].iter().sum()
    }

    /// Store calls made outside any request.
    pub fn untagged(&self) -> u64 {
        self.calls[KINDS.len()].iter().sum()
    }

    /// Every request.
    pub fn total_requests(&self) -> u64 {
        self.requests.iter().sum()
    }

    /// Every store call made by a request.
    pub fn total_calls(&self) -> u64 {
        KINDS.iter().map(|k| self.calls_of(*k)).sum()
    }

    /// Calls of `method` made by requests of `kind`.
    pub fn method(&self, kind: Kind, method: Method) -> u64 {
        let col = Method::ALL.iter().position(|m| *m == method).unwrap_or(0);
        self.calls[kind.index()][col]
    }
}

/// Ours, counted: delegates every method of [`SessionInterface`] to `inner`.
pub struct CountingStore {
    /// The store.
    pub inner: Arc<dyn SessionInterface>,
    /// Where the calls go.
    pub calls: Arc<Calls>,
    /// Hide the inner store's one-step `load_and_touch` from the manager, which
    /// then loads with `load` and touches only when a refresh is due.
    pub two_step: bool,
}

#[async_trait]
impl SessionInterface for CountingStore {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        self.calls.count(Method::Load);
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        self.calls.count(match mode {
            SaveMode::Create => Method::Create,
            SaveMode::Update { .. } => Method::Update,
        });
        self.inner.save(key, record, mode).await
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        self.calls.count(Method::Delete);
        self.inner.expire(key).await
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        self.calls.count(Method::Touch);
        self.inner.touch(key, expires_at).await
    }

    async fn load_and_touch(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Result<Option<Refreshed>, Error> {
        if self.capabilities().load_and_touch {
            self.calls.count(Method::LoadAndTouch);
            self.inner.load_and_touch(key, expires_at, due_before).await
        } else {
            // The inner store's default is a load and a touch: count them as such.
            session_core::load_then_touch(self, key, expires_at, due_before).await
        }
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        self.calls.count(Method::DeleteExpired);
        self.inner.delete_expired().await
    }

    fn capabilities(&self) -> Capabilities {
        let caps = self.inner.capabilities();
        if self.two_step {
            caps.with_load_and_touch(false)
        } else {
            caps
        }
    }
}

/// tower-sessions, counted: delegates every method of [`SessionStore`] to `inner`.
#[derive(Debug, Clone)]
pub struct CountingTowerStore<S> {
    /// The store.
    pub inner: S,
    /// Where the calls go.
    pub calls: Arc<Calls>,
}

#[async_trait]
impl<S: SessionStore> SessionStore for CountingTowerStore<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.calls.count(Method::Create);
        self.inner.create(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.calls.count(Method::Update);
        self.inner.save(record).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.calls.count(Method::Load);
        self.inner.load(id).await
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.calls.count(Method::Delete);
        self.inner.delete(id).await
    }
}
