//! The lifecycle manager: from a request's cookie to a lazy [`Session`], and at the
//! end of the request to the store operations and the cookie decision.

use std::sync::{Arc, Mutex};

use cookie::Cookie;

use crate::client_side::ClientSide;
use crate::decision::CookieDecision;
use crate::pinned::Pinned;
use crate::sealer::{CookieSealer, MAX_SET_COOKIE_BYTES};
use crate::server_side::ServerSide;
use crate::session::Inner;
use crate::shared::{Backend, Shared};
use crate::state::State;
use crate::{
    Error, Session, SessionConfig, SessionInterface, SessionToken, SharedClock, system_clock,
};

/// Turns cookies into sessions and sessions into store operations and cookies.
///
/// Framework-agnostic: an adapter calls [`session`](Self::session) with the request's
/// cookie value, hands the [`Session`] to the handler, then calls
/// [`finish`](Self::finish) and applies the returned [`CookieDecision`].
///
/// ```
/// use std::sync::Arc;
/// use session_core::{CookieDecision, SessionConfig, SessionManager};
/// use session_memory::MemoryStore;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default());
///
/// // First request: no cookie. The handler stores something.
/// let session = manager.session(None);
/// session.insert("cart", &["apple"]).await?;
/// let CookieDecision::Set(cookie) = manager.finish(&session).await? else { panic!() };
///
/// // Second request carries the cookie and sees the data.
/// let session = manager.session(Some(cookie.value()));
/// assert_eq!(session.get::<Vec<String>>("cart").await?, Some(vec!["apple".into()]));
/// assert_eq!(manager.finish(&session).await?, CookieDecision::Leave);
/// # Ok::<(), session_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SessionManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.shared.config)
            .field(
                "backend",
                &match &self.shared.backend {
                    Backend::Server(store) => format!("server {:?}", store.capabilities()),
                    Backend::Client(_) => "client-side cookies".to_owned(),
                },
            )
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// A manager over `store` with `config`, on the system clock.
    pub fn new(store: Arc<dyn SessionInterface>, config: SessionConfig) -> Self {
        Self::with_clock(store, config, system_clock())
    }

    /// A manager that takes "now" from `clock` (share it with the store in tests).
    pub fn with_clock(
        store: Arc<dyn SessionInterface>,
        config: SessionConfig,
        clock: SharedClock,
    ) -> Self {
        Self::build(Backend::Server(store), config, clock)
    }

    /// A manager for client-side sessions: the whole session is sealed into the
    /// cookie by `sealer` (see [`CookieSealer`]). The `Session` API is the same, so an
    /// application switches between server-side and cookie sessions by changing the
    /// constructor. A cookie session cannot be revoked before its deadline.
    pub fn client_side(sealer: Arc<dyn CookieSealer>, config: SessionConfig) -> Self {
        Self::client_side_with_clock(sealer, config, system_clock())
    }

    /// [`client_side`](Self::client_side) with an explicit clock.
    pub fn client_side_with_clock(
        sealer: Arc<dyn CookieSealer>,
        config: SessionConfig,
        clock: SharedClock,
    ) -> Self {
        Self::build(Backend::Client(sealer), config, clock)
    }

    fn build(backend: Backend, config: SessionConfig, clock: SharedClock) -> Self {
        Self {
            shared: Arc::new(Shared {
                backend,
                config,
                clock,
                queue: Arc::default(),
                pinned: Pinned::default(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.shared.config
    }

    /// The store, for a server-side manager.
    pub fn store(&self) -> Option<&Arc<dyn SessionInterface>> {
        match &self.shared.backend {
            Backend::Server(store) => Some(store),
            Backend::Client(_) => None,
        }
    }

    /// How many sessions have a request in flight in this manager's per-session
    /// queue: requests that used a session their cookie names and whose `Session`
    /// is still alive. A gauge for monitoring; it falls back to zero when the
    /// requests end.
    pub fn queued_sessions(&self) -> usize {
        self.shared.queue.len()
    }

    /// The session for a request whose session cookie had `cookie_value` (`None`
    /// when the request had no such cookie). No I/O happens here; an ill-formed
    /// value is simply no session.
    pub fn session(&self, cookie_value: Option<&str>) -> Session {
        let (incoming, sealed) = match &self.shared.backend {
            Backend::Server(_) => (cookie_value.and_then(SessionToken::parse), None),
            Backend::Client(_) => (
                None,
                cookie_value
                    .filter(|v| !v.is_empty() && v.len() <= MAX_SET_COOKIE_BYTES)
                    .map(str::to_owned),
            ),
        };
        Session {
            inner: Arc::new(Inner {
                shared: self.shared.clone(),
                incoming,
                sealed,
                had_cookie: cookie_value.is_some(),
                load_gate: tokio::sync::Mutex::new(()),
                ticket: std::sync::OnceLock::new(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The session for a request with these `Cookie` header values. Several
    /// cookies may carry the configured name (one planted by a sibling subdomain,
    /// say); the first *usable* one wins, so a planted garbage value can neither
    /// make the request anonymous nor get the real cookie removed:
    ///
    /// - server-side: the first value that is a well-formed token;
    /// - client-side: the only value as it is (opened lazily, when first used), or
    ///   of several the first that the sealer opens.
    ///
    /// When no value is usable the request has no session, and a cookie to remove.
    pub fn session_from_cookie_headers<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a str>,
    ) -> Session {
        let name = self.shared.config.cookie_name();
        let candidates: Vec<String> = headers
            .into_iter()
            .flat_map(|header| Cookie::split_parse(header).flatten())
            .filter(|c| c.name() == name)
            .map(|c| c.value().to_owned())
            .collect();
        let chosen = match &self.shared.backend {
            Backend::Server(_) => candidates.iter().find(|v| SessionToken::parse(v).is_some()),
            Backend::Client(_) if candidates.len() == 1 => candidates.first(),
            Backend::Client(sealer) => {
                let now = self.shared.clock.now();
                candidates
                    .iter()
                    .find(|v| sealer.open(name, v, now).is_some())
            }
        };
        match chosen {
            Some(value) => self.session(Some(value)),
            // A cookie that was present but unusable is still a cookie to remove.
            None if !candidates.is_empty() => self.session(Some("")),
            None => self.session(None),
        }
    }

    /// Ends the request: performs the store operations the session needs and says
    /// what to do with the cookie.
    ///
    /// - Untouched session: no store call, [`CookieDecision::Leave`].
    /// - New session with data: `Create` under a fresh token (redrawn on collision),
    ///   cookie set. New and empty: nothing stored.
    /// - Changed session: `Update` with compare-and-set; on a conflict the session is
    ///   reloaded and this request's per-key changes re-applied, up to
    ///   [`SessionConfig::save_attempts`] times. If the session was destroyed
    ///   meanwhile, the changes are dropped (never resurrected) and the cookie left
    ///   to the request that ended the session: [`CookieDecision::Leave`].
    /// - Cookie naming a dead or unknown session, nothing stored: no store write,
    ///   [`CookieDecision::Leave`] — after a login's `cycle_id` a request still in
    ///   flight with the old id must not delete the browser's new cookie. A cookie
    ///   that is not a session token: [`CookieDecision::Remove`].
    /// - Emptied session: record removed by compare-and-set on the loaded version
    ///   (merged and decided again on a conflict), cookie removed.
    /// - Destroyed session: record expired unconditionally, cookie removed.
    /// - `cycle_id`: data moved to a new token, old record removed by
    ///   compare-and-set (a change saved meanwhile is merged into the new record),
    ///   new cookie.
    /// - Requests of one session that end in this manager take turns (a
    ///   per-session queue), so they do not conflict with each other.
    /// - Unchanged session with refresh-each-request: `touch` (a rewrite only if the
    ///   store cannot touch), but only when that moves the deadline by more than
    ///   [`SessionConfig::refresh_threshold`] of the idle lifetime; otherwise no
    ///   store call and [`CookieDecision::Leave`], even for a permanent session.
    ///   With a store that declares [`Capabilities::load_and_touch`](crate::Capabilities::load_and_touch)
    ///   the load already made that refresh (see
    ///   [`SessionInterface::load_and_touch`]): no further store call.
    ///
    /// On error nothing of this request is half-written: the store's record is
    /// either the old one or the new one.
    pub async fn finish(&self, session: &Session) -> Result<CookieDecision, Error> {
        self.finish_with(session, true).await
    }

    /// [`finish`](Self::finish) without merging: the request's changes are saved only
    /// if the session is still the version this request loaded. If another request
    /// — of this process or another — saved it meanwhile, nothing is written and the
    /// result is [`Error::Conflict`]; the caller reads the session afresh (a new
    /// [`Session`]) and decides again.
    ///
    /// For a decision that depends on what the request read, where replaying the
    /// request's values onto someone else's version would be wrong: a counter, a
    /// budget, "admit the N-th call". Each `Conflict` means another request's save
    /// succeeded.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use session_core::*;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let manager = SessionManager::new(Arc::new(session_memory::MemoryStore::new()), SessionConfig::default());
    /// # let s = manager.session(None);
    /// # s.insert("calls", &0u32).await?;
    /// # let CookieDecision::Set(cookie) = manager.finish(&s).await? else { panic!() };
    /// # let cookie = cookie.value().to_owned();
    /// // Two requests read the same count…
    /// let a = manager.session(Some(&cookie));
    /// let b = manager.session(Some(&cookie));
    /// let n: u32 = a.get("calls").await?.unwrap_or(0);
    /// a.insert("calls", &(n + 1)).await?;
    /// let m: u32 = b.get("calls").await?.unwrap_or(0);
    /// b.insert("calls", &(m + 1)).await?;
    /// // …only the first one's increment is stored; the second must read again.
    /// assert_eq!(manager.finish_if_unchanged(&a).await?, CookieDecision::Leave);
    /// assert!(matches!(manager.finish_if_unchanged(&b).await, Err(Error::Conflict)));
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn finish_if_unchanged(&self, session: &Session) -> Result<CookieDecision, Error> {
        self.finish_with(session, false).await
    }

    async fn finish_with(&self, session: &Session, merge: bool) -> Result<CookieDecision, Error> {
        let (loaded, cycle, destroyed) = {
            let state = session.state();
            let mut loaded = state.loaded.clone();
            if let Some(l) = &mut loaded {
                l.ended_meanwhile = false;
            }
            (loaded, state.cycle, state.destroyed)
        };
        let had_cookie = session.inner.had_cookie;
        let (decision, loaded) = match &self.shared.backend {
            Backend::Server(store) => {
                let server = ServerSide::new(&self.shared, store.as_ref()).merging(merge);
                server
                    .finish(
                        session.inner.incoming.as_ref(),
                        session.inner.ticket.get(),
                        loaded,
                        cycle,
                        destroyed,
                        had_cookie,
                    )
                    .await?
            }
            Backend::Client(sealer) => {
                let client = ClientSide::new(&self.shared, sealer.as_ref());
                client.finish(loaded, cycle, destroyed, had_cookie)?
            }
        };
        let Some(mut loaded) = loaded else {
            let mut state = session.state();
            state.cycle = false;
            state.loaded = None;
            return Ok(decision);
        };
        // The request's changes are now stored: later finishes start from here.
        loaded.changes.clear();
        loaded.cleared = false;
        loaded.meta_changed = false;
        loaded.refreshed = false;
        let mut state = session.state();
        state.cycle = false;
        state.loaded = Some(loaded);
        Ok(decision)
    }
}
