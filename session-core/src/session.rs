//! The per-request session handle.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use time::{Duration, OffsetDateTime};

use crate::codec::{Data, Envelope, Meta};
use crate::manager::Shared;
use crate::queue::{Saved, Ticket};
use crate::{Bytes, Error, SessionToken, StorageKey, Version};

/// One change this request made to one key, replayed onto fresh data when a save
/// conflicts with a concurrent request.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Set(Box<RawValue>),
    Remove,
}

/// The record this request loaded.
#[derive(Debug, Clone)]
pub(crate) struct Existing {
    pub token: SessionToken,
    pub key: StorageKey,
    pub version: Version,
    /// The payload as loaded, so a refresh without touch support can write it back
    /// without re-encoding.
    pub payload: Bytes,
    /// The record's deadline as loaded (or as this request last saved or touched it).
    pub expires_at: OffsetDateTime,
}

/// The session as this request sees it.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// `None` until the session is first used (lazy loading).
    pub loaded: Option<Loaded>,
    /// `cycle_id` was called.
    pub cycle: bool,
    /// `destroy` was called.
    pub destroyed: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// The stored record, or `None` for a session that does not exist yet.
    pub existing: Option<Existing>,
    /// A client-side session that came with the request's cookie.
    pub from_cookie: bool,
    pub meta: Meta,
    /// The current values: loaded data with this request's changes applied. Shared
    /// (copy on write): `finish` snapshots the session without copying every value,
    /// and a change copies the map only while a snapshot still holds it.
    pub data: Arc<Data>,
    /// This request's changes, per key (the last one wins).
    pub changes: BTreeMap<String, Change>,
    /// `clear` was called: replayed first, before `changes`.
    pub cleared: bool,
    /// `meta.idle` / `meta.permanent` were changed by this request.
    pub meta_changed: bool,
    /// The rotation pointer this request's cookie named, when the session was
    /// reached through one (the response must carry the new cookie).
    pub via: Option<StorageKey>,
    /// The load already refreshed the deadline (a one-step `load_and_touch`), so
    /// `finish` only owes the cookie of a permanent session.
    pub refreshed: bool,
}

impl Loaded {
    pub(crate) fn is_modified(&self) -> bool {
        self.cleared || !self.changes.is_empty() || self.meta_changed
    }

    /// What the manager's queue remembers after this request saved the session.
    pub(crate) fn saved(&self) -> Option<Saved> {
        self.existing.as_ref().map(|existing| Saved {
            existing: existing.clone(),
            meta: self.meta,
            data: Arc::clone(&self.data),
        })
    }

    /// Whether `saved` is a newer version of the record this request loaded.
    pub(crate) fn is_behind(&self, saved: &Saved) -> bool {
        self.existing
            .as_ref()
            .is_some_and(|e| e.key == saved.existing.key && e.version < saved.existing.version)
    }

    /// Catches up with a save of this manager's queue that this request's load did
    /// not see (a newer version of the same record), replaying this request's
    /// changes onto it; otherwise leaves the session as it is.
    pub(crate) fn catch_up(&mut self, saved: &Saved) {
        if self.is_behind(saved) {
            let fresh = Envelope {
                meta: saved.meta,
                data: Data::clone(&saved.data),
            };
            self.rebase(fresh, saved.existing.clone());
        }
    }

    /// Replays this request's changes onto `fresh` (a concurrent writer's version).
    pub(crate) fn rebase(&mut self, fresh: Envelope, existing: Existing) {
        let mut data = fresh.data;
        if self.cleared {
            data.clear();
        }
        for (k, change) in &self.changes {
            match change {
                Change::Set(v) => {
                    data.insert(k.clone(), v.clone());
                }
                Change::Remove => {
                    data.remove(k);
                }
            }
        }
        let mut meta = fresh.meta;
        if self.meta_changed {
            meta.idle = self.meta.idle;
            meta.permanent = self.meta.permanent;
        }
        self.data = Arc::new(data);
        self.meta = meta;
        self.existing = Some(existing);
    }
}

pub(crate) struct Inner {
    pub shared: Arc<Shared>,
    /// The token the request's cookie carried, if it was well-formed (server-side).
    pub incoming: Option<SessionToken>,
    /// The raw cookie value (client-side sessions, opened when first used).
    pub sealed: Option<String>,
    /// Whether the request carried a session cookie at all (even a garbage one), so
    /// a stale cookie can be removed.
    pub had_cookie: bool,
    /// Serialises the first load; later accesses see `state.loaded`.
    pub load_gate: tokio::sync::Mutex<()>,
    /// This request's place in the manager's per-session queue, taken when a
    /// server-side session named by the cookie is first used.
    pub ticket: OnceLock<Ticket>,
    pub state: Mutex<State>,
}

/// A request's session: a lazily loaded map of string keys to serde values.
///
/// Obtained from [`SessionManager::session`](crate::SessionManager::session); cheap to
/// clone (clones share one state) and safe to use from several tasks of one request.
/// Nothing touches the store until a method that needs the data is called, and
/// [`SessionManager::finish`](crate::SessionManager::finish) writes only what changed.
///
/// ```
/// # use std::sync::Arc;
/// # use session_core::*;
/// # async fn demo(manager: SessionManager) -> Result<(), Error> {
/// let session = manager.session(None);
/// session.insert("user_id", &42u64).await?;
/// assert_eq!(session.get::<u64>("user_id").await?, Some(42));
/// session.remove("user_id").await?;
/// assert!(session.is_empty().await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token or the values.
        let state = self.state();
        f.debug_struct("Session")
            .field("loaded", &state.loaded.is_some())
            .field(
                "modified",
                &state.loaded.as_ref().is_some_and(|l| l.is_modified()),
            )
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // Every mutation under this lock is a single map operation or flag write,
        // so a panic elsewhere cannot leave it half-updated.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads the session on first use. Concurrent first uses share one store call.
    pub(crate) async fn ensure_loaded(&self) -> Result<(), Error> {
        if self.state().loaded.is_some() {
            return Ok(());
        }
        let _gate = self.inner.load_gate.lock().await;
        if self.state().loaded.is_some() {
            return Ok(());
        }
        let loaded = self.inner.shared.load(&self.inner).await?;
        self.state().loaded = Some(loaded);
        Ok(())
    }

    /// Runs `f` on the loaded state.
    async fn with_loaded<R>(&self, f: impl FnOnce(&mut Loaded) -> R) -> Result<R, Error> {
        self.ensure_loaded().await?;
        let mut state = self.state();
        match state.loaded.as_mut() {
            Some(l) => Ok(f(l)),
            // ensure_loaded succeeded and nothing unloads a session.
            None => Err(Error::NotFound),
        }
    }

    /// The value under `key`, deserialized as `T`; `None` if absent.
    ///
    /// Only this key's JSON is deserialized, however large the session.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let raw = self.with_loaded(|l| l.data.get(key).cloned()).await?;
        raw.map(|r| {
            serde_json::from_str(r.get()).map_err(|source| Error::Value {
                key: key.to_owned(),
                type_name: std::any::type_name::<T>(),
                source: source.into(),
            })
        })
        .transpose()
    }

    /// Stores `value` under `key`, replacing any previous value.
    ///
    /// Inserting a value equal to the stored one is not a change and writes nothing.
    pub async fn insert<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        let raw = serde_json::value::to_raw_value(value).map_err(|source| Error::Value {
            key: key.to_owned(),
            type_name: std::any::type_name::<T>(),
            source: source.into(),
        })?;
        self.with_loaded(|l| {
            if l.data.get(key).is_some_and(|old| old.get() == raw.get()) {
                return;
            }
            Arc::make_mut(&mut l.data).insert(key.to_owned(), raw.clone());
            l.changes.insert(key.to_owned(), Change::Set(raw));
        })
        .await
    }

    /// Removes `key`; returns whether it was present.
    pub async fn remove(&self, key: &str) -> Result<bool, Error> {
        self.with_loaded(|l| {
            let existed = l.data.contains_key(key);
            if existed {
                Arc::make_mut(&mut l.data).remove(key);
            }
            if existed {
                l.changes.insert(key.to_owned(), Change::Remove);
            }
            existed
        })
        .await
    }

    /// Removes `key` and returns its value deserialized as `T`.
    pub async fn take<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let value = self.get::<T>(key).await?;
        self.remove(key).await?;
        Ok(value)
    }

    /// Whether `key` is present.
    pub async fn contains(&self, key: &str) -> Result<bool, Error> {
        self.with_loaded(|l| l.data.contains_key(key)).await
    }

    /// The keys, in sorted order.
    pub async fn keys(&self) -> Result<Vec<String>, Error> {
        self.with_loaded(|l| l.data.keys().cloned().collect()).await
    }

    /// Every entry as a `serde_json::Value` ("get all"), in key order. This decodes
    /// the whole session; prefer [`get`](Self::get) for single keys.
    pub async fn entries(&self) -> Result<Vec<(String, serde_json::Value)>, Error> {
        let data = self.with_loaded(|l| Arc::clone(&l.data)).await?;
        data.iter()
            .map(|(k, raw)| match serde_json::from_str(raw.get()) {
                Ok(v) => Ok((k.clone(), v)),
                Err(source) => Err(Error::Value {
                    key: k.clone(),
                    type_name: std::any::type_name::<serde_json::Value>(),
                    source: source.into(),
                }),
            })
            .collect()
    }

    /// Number of entries.
    pub async fn len(&self) -> Result<usize, Error> {
        self.with_loaded(|l| l.data.len()).await
    }

    /// Whether the session holds no entries. An empty session is not stored.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        self.with_loaded(|l| l.data.is_empty()).await
    }

    /// Removes every entry. The clear takes effect when this request saves: values
    /// other requests saved before that are cleared too, values saved after it
    /// survive, and entries this request adds after the clear are kept.
    ///
    /// Clearing a session that is already empty, with nothing removed by this
    /// request, is not a change.
    pub async fn clear(&self) -> Result<(), Error> {
        self.with_loaded(|l| {
            if l.data.is_empty() && l.changes.is_empty() && !l.cleared {
                return;
            }
            l.data = Arc::default();
            l.changes.clear();
            l.cleared = true;
        })
        .await
    }

    /// Whether this request has changed the session (values, lifetime, id).
    pub fn is_modified(&self) -> bool {
        let state = self.state();
        state.cycle || state.destroyed || state.loaded.as_ref().is_some_and(Loaded::is_modified)
    }

    /// Whether this request has used the session: read or changed it (which loaded
    /// it) or destroyed it. The response to such a request depends on the request's
    /// cookie, so an HTTP layer marks it `Vary: Cookie` for shared caches. A request
    /// that never touched its session is not accessed and costs no store call.
    pub fn is_accessed(&self) -> bool {
        let state = self.state();
        state.loaded.is_some() || state.destroyed
    }

    /// Whether the session existed before this request (false for a session this
    /// request started).
    pub async fn exists(&self) -> Result<bool, Error> {
        self.with_loaded(|l| l.existing.is_some() || l.from_cookie)
            .await
    }

    /// When the session will expire if saved now: the earlier of last activity +
    /// idle lifetime and creation + absolute lifetime.
    pub async fn expires_at(&self) -> Result<OffsetDateTime, Error> {
        let now = self.inner.shared.clock.now();
        let meta = self.with_loaded(|l| l.meta).await?;
        Ok(self.inner.shared.deadline(&meta, now))
    }

    /// Whether the session is over: destroyed by this request, or past the deadline
    /// its record had when this request loaded it (or last saved or refreshed it),
    /// or past its absolute deadline. Asked late in a long request, it notices an
    /// idle deadline that passed while the request ran; a session this request
    /// started has not expired.
    pub async fn has_expired(&self) -> Result<bool, Error> {
        if self.state().destroyed {
            return Ok(true);
        }
        let now = self.inner.shared.clock.now();
        let (record_deadline, absolute) = self
            .with_loaded(|l| {
                (
                    l.existing.as_ref().map(|e| e.expires_at),
                    l.meta.absolute_deadline,
                )
            })
            .await?;
        Ok(absolute <= now || record_deadline.is_some_and(|d| d <= now))
    }

    /// Overrides the idle lifetime for this session (persisted with it), or returns
    /// to the configured one with `None`. The absolute lifetime still caps it, so a
    /// longer value is kept as [`SessionConfig::MAX_LIFETIME`](crate::SessionConfig::MAX_LIFETIME)
    /// (which no absolute lifetime exceeds). Non-positive durations are treated as
    /// `None`.
    pub async fn set_idle_lifetime(&self, lifetime: Option<Duration>) -> Result<(), Error> {
        let lifetime = lifetime
            .filter(|d| d.is_positive())
            .map(|d| d.min(crate::SessionConfig::MAX_LIFETIME));
        self.with_loaded(|l| {
            if l.meta.idle != lifetime {
                l.meta.idle = lifetime;
                l.meta_changed = true;
            }
        })
        .await
    }

    /// Makes this session's cookie persistent (`true`), a browser-session cookie
    /// (`false`), or follow the configuration (`None`). Persisted with the session,
    /// e.g. for "remember me".
    pub async fn set_permanent(&self, permanent: Option<bool>) -> Result<(), Error> {
        self.with_loaded(|l| {
            if l.meta.permanent != permanent {
                l.meta.permanent = permanent;
                l.meta_changed = true;
            }
        })
        .await
    }

    /// Gives the session a new id at the end of the request, keeping its data; the
    /// old id stops working at once. Call it when privileges change (login) to
    /// defeat session fixation.
    pub async fn cycle_id(&self) -> Result<(), Error> {
        self.ensure_loaded().await?;
        self.state().cycle = true;
        Ok(())
    }

    /// Destroys the session at the end of the request (logout): the record is
    /// expired, the cookie removed, and this request's changes dropped.
    pub fn destroy(&self) {
        self.state().destroyed = true;
    }
}

/// A decoded record plus what the manager needs to save it again.
pub(crate) fn loaded_from_record(existing: Existing, envelope: Envelope) -> Loaded {
    Loaded {
        existing: Some(existing),
        from_cookie: false,
        meta: envelope.meta,
        data: Arc::new(envelope.data),
        changes: BTreeMap::new(),
        cleared: false,
        meta_changed: false,
        via: None,
        refreshed: false,
    }
}
