//! The per-request session handle.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

use crate::client_side::ClientSide;
use crate::queue::Ticket;
use crate::server_side::ServerSide;
use crate::shared::{Backend, Shared};
use crate::state::{Change, Loaded, State};
use crate::{Error, SessionToken};

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
        let loaded = load(&self.inner.shared, &self.inner).await?;
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

    /// After [`SessionManager::finish`](crate::SessionManager::finish): whether the
    /// session turned out to have ended while this request held it — another
    /// request destroyed it, emptied it or cycled its id, or it expired — so that
    /// nothing of this request was saved (never resurrected). Such a response
    /// carries no cookie (only the request that ends a session removes it), so this
    /// is how a caller tells "saved" from "dropped"; `false` before `finish`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use session_core::*;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let manager = SessionManager::new(Arc::new(session_memory::MemoryStore::new()), SessionConfig::default());
    /// # let s = manager.session(None);
    /// # s.insert("cart", &1u32).await?;
    /// # let CookieDecision::Set(cookie) = manager.finish(&s).await? else { panic!() };
    /// # let cookie = cookie.value().to_owned();
    /// // A request adds to the cart while another one logs out.
    /// let add = manager.session(Some(&cookie));
    /// add.insert("cart", &2u32).await?;
    /// let logout = manager.session(Some(&cookie));
    /// logout.destroy();
    /// assert!(matches!(manager.finish(&logout).await?, CookieDecision::Remove(_)));
    /// // The addition is dropped, and its response leaves the cookie to the logout's.
    /// assert_eq!(manager.finish(&add).await?, CookieDecision::Leave);
    /// assert!(add.ended_meanwhile());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn ended_meanwhile(&self) -> bool {
        self.state()
            .loaded
            .as_ref()
            .is_some_and(|l| l.ended_meanwhile)
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

/// Loads the session a request names (or starts a new one), on either backend.
async fn load(shared: &Shared, inner: &Inner) -> Result<Loaded, Error> {
    match &shared.backend {
        Backend::Server(store) => {
            ServerSide::new(shared, store.as_ref())
                .load(inner.incoming.as_ref(), &inner.ticket)
                .await
        }
        Backend::Client(sealer) => {
            ClientSide::new(shared, sealer.as_ref()).load(inner.sealed.as_deref())
        }
    }
}
