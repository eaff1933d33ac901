//! The lifecycle manager: from a request's cookie to a lazy [`Session`], and at the
//! end of the request to the store operations and the cookie decision.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cookie::Cookie;
use time::OffsetDateTime;

use crate::codec::{Data, Envelope, Meta};
use crate::config::SameSite;
use crate::session::{Inner, Loaded, State, loaded_from_record};
use crate::{
    Bytes, Error, NewRecord, SaveMode, Session, SessionConfig, SessionInterface, SessionToken,
    SharedClock, system_clock,
};

/// How many fresh tokens are drawn when `Create` collides. A collision of 256-bit
/// random tokens means a broken random source or a broken store, so a few tries are
/// plenty.
const CREATE_ATTEMPTS: u32 = 4;

/// What the response must do with the session cookie.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum CookieDecision {
    /// Send nothing: the browser's cookie is still right.
    Leave,
    /// Set this cookie (a new session, a new id, or a refreshed `Max-Age`).
    Set(Cookie<'static>),
    /// Remove the cookie (logout, an emptied session, an unknown or dead session).
    Remove(Cookie<'static>),
}

impl CookieDecision {
    /// The `Set-Cookie` header value to send, if any.
    pub fn set_cookie_header(&self) -> Option<String> {
        match self {
            CookieDecision::Leave => None,
            CookieDecision::Set(c) | CookieDecision::Remove(c) => Some(c.to_string()),
        }
    }
}

/// State shared by the manager and every session it hands out.
pub(crate) struct Shared {
    pub store: Arc<dyn SessionInterface>,
    pub config: SessionConfig,
    pub clock: SharedClock,
}

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
            .field("capabilities", &self.shared.store.capabilities())
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
        Self {
            shared: Arc::new(Shared {
                store,
                config,
                clock,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.shared.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionInterface> {
        &self.shared.store
    }

    /// The session for a request whose session cookie had `cookie_value` (`None`
    /// when the request had no such cookie). No I/O happens here; an ill-formed
    /// value is simply no session.
    pub fn session(&self, cookie_value: Option<&str>) -> Session {
        Session {
            inner: Arc::new(Inner {
                shared: self.shared.clone(),
                incoming: cookie_value.and_then(SessionToken::parse),
                had_cookie: cookie_value.is_some(),
                load_gate: tokio::sync::Mutex::new(()),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The session for a request with these `Cookie` header values: the first
    /// cookie with the configured name whose value is a well-formed token wins.
    pub fn session_from_cookie_headers<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a str>,
    ) -> Session {
        let name = self.shared.config.cookie_name();
        let mut seen = false;
        let mut token = None;
        'outer: for header in headers {
            for c in Cookie::split_parse(header).flatten() {
                if c.name() == name {
                    seen = true;
                    if SessionToken::parse(c.value()).is_some() {
                        token = Some(c.value().to_owned());
                        break 'outer;
                    }
                }
            }
        }
        match token {
            Some(t) => self.session(Some(&t)),
            // A cookie that was present but unusable is still a cookie to remove.
            None if seen => self.session(Some("")),
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
    ///   meanwhile, the changes are dropped and the cookie removed: never resurrected.
    /// - Emptied or destroyed session: record expired, cookie removed.
    /// - `cycle_id`: data moved to a new token, old record expired, new cookie.
    /// - Unchanged session with refresh-each-request: `touch` (a rewrite only if the
    ///   store cannot touch).
    ///
    /// On error nothing of this request is half-written: the store's record is
    /// either the old one or the new one.
    pub async fn finish(&self, session: &Session) -> Result<CookieDecision, Error> {
        let (loaded, cycle, destroyed) = {
            let state = session.state();
            (state.loaded.clone(), state.cycle, state.destroyed)
        };
        let shared = &self.shared;
        let had_cookie = session.inner.had_cookie;
        if destroyed {
            // The incoming key is known without loading: expire it blindly.
            if let Some(token) = &session.inner.incoming {
                shared.store.expire(&token.storage_key()).await?;
            }
            session.state().loaded = None;
            return Ok(shared.removal_if(had_cookie));
        }
        let Some(mut loaded) = loaded else {
            return Ok(CookieDecision::Leave);
        };
        let decision = match loaded.existing.clone() {
            None if loaded.data.is_empty() => shared.removal_if(had_cookie),
            None => shared.create(&mut loaded).await?,
            Some(existing) if cycle => {
                let decision = if loaded.data.is_empty() {
                    shared.removal_if(true)
                } else {
                    shared.create(&mut loaded).await?
                };
                shared.store.expire(&existing.key).await?;
                decision
            }
            Some(existing) if loaded.data.is_empty() && loaded.is_modified() => {
                shared.store.expire(&existing.key).await?;
                loaded.existing = None;
                shared.removal_if(true)
            }
            Some(_) if loaded.is_modified() => shared.update(&mut loaded).await?,
            Some(_) if shared.config.refresh_each_request() => shared.refresh(&mut loaded).await?,
            Some(_) => CookieDecision::Leave,
        };
        // The request's changes are now stored: later finishes start from here.
        loaded.changes.clear();
        loaded.cleared = false;
        loaded.meta_changed = false;
        let mut state = session.state();
        state.cycle = false;
        state.loaded = Some(loaded);
        Ok(decision)
    }
}

impl Shared {
    /// Loads the session named by `incoming` (or starts a new one).
    pub(crate) async fn load(&self, incoming: Option<&SessionToken>) -> Result<Loaded, Error> {
        let now = self.clock.now();
        if let Some(token) = incoming {
            let key = token.storage_key();
            if let Some(record) = self.store.load(&key).await? {
                let envelope = Envelope::decode(&record.payload)?;
                // The store's clock may differ from ours (server time); the absolute
                // cap is enforced here too.
                if envelope.meta.absolute_deadline > now {
                    return Ok(loaded_from_record(
                        token.clone(),
                        key,
                        record.version,
                        record.payload,
                        envelope,
                    ));
                }
            }
        }
        Ok(self.fresh(now))
    }

    fn fresh(&self, now: OffsetDateTime) -> Loaded {
        Loaded {
            existing: None,
            meta: Meta {
                created_at: now,
                absolute_deadline: now + self.config.absolute_lifetime(),
                idle: None,
                permanent: None,
            },
            data: Data::new(),
            changes: BTreeMap::new(),
            cleared: false,
            meta_changed: false,
        }
    }

    /// Expiry = min(last activity + idle lifetime, created + absolute lifetime).
    pub(crate) fn deadline(&self, meta: &Meta, now: OffsetDateTime) -> OffsetDateTime {
        let idle = meta.idle.unwrap_or(self.config.idle_lifetime());
        (now + idle).min(meta.absolute_deadline)
    }

    fn record(&self, loaded: &Loaded, now: OffsetDateTime) -> Result<NewRecord, Error> {
        let payload = Envelope::encode(&loaded.meta, &loaded.data);
        let limit = self.config.max_payload_bytes();
        if payload.len() > limit {
            return Err(Error::PayloadTooLarge {
                size: payload.len(),
                limit,
            });
        }
        Ok(NewRecord {
            payload: Bytes::from(payload),
            expires_at: self.deadline(&loaded.meta, now),
        })
    }

    /// Stores `loaded` under a fresh token and returns the cookie that names it.
    async fn create(&self, loaded: &mut Loaded) -> Result<CookieDecision, Error> {
        let now = self.clock.now();
        let record = self.record(loaded, now)?;
        for _ in 0..CREATE_ATTEMPTS {
            let token = SessionToken::generate()?;
            let key = token.storage_key();
            match self.store.save(&key, &record, SaveMode::Create).await {
                Ok(version) => {
                    let cookie = self.cookie(&token, loaded, record.expires_at, now);
                    loaded.existing = Some(crate::session::Existing {
                        token,
                        key,
                        version,
                        payload: record.payload,
                    });
                    return Ok(CookieDecision::Set(cookie));
                }
                Err(Error::Collision) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Collision)
    }

    /// Compare-and-set with conflict merge.
    async fn update(&self, loaded: &mut Loaded) -> Result<CookieDecision, Error> {
        let attempts = self.config.save_attempts();
        for _ in 0..attempts {
            let Some(existing) = loaded.existing.clone() else {
                return Ok(self.removal_if(true));
            };
            if loaded.data.is_empty() {
                // A concurrent clear or removal left nothing after the merge.
                self.store.expire(&existing.key).await?;
                loaded.existing = None;
                return Ok(self.removal_if(true));
            }
            let now = self.clock.now();
            let record = self.record(loaded, now)?;
            let mode = SaveMode::Update {
                expected_version: existing.version,
            };
            match self.store.save(&existing.key, &record, mode).await {
                Ok(version) => {
                    let decision = if self.is_permanent(loaded) || loaded.meta_changed {
                        CookieDecision::Set(self.cookie(
                            &existing.token,
                            loaded,
                            record.expires_at,
                            now,
                        ))
                    } else {
                        CookieDecision::Leave
                    };
                    loaded.existing = Some(crate::session::Existing {
                        version,
                        payload: record.payload,
                        ..existing
                    });
                    return Ok(decision);
                }
                Err(Error::Conflict) => {
                    // Someone saved first: replay our changes onto their version.
                    match self.store.load(&existing.key).await? {
                        Some(fresh) => {
                            let envelope = Envelope::decode(&fresh.payload)?;
                            loaded.rebase(
                                envelope,
                                crate::session::Existing {
                                    version: fresh.version,
                                    payload: fresh.payload,
                                    ..existing
                                },
                            );
                        }
                        None => return Ok(self.gone(loaded)),
                    }
                }
                // Destroyed meanwhile: drop the changes, never resurrect.
                Err(Error::NotFound) => return Ok(self.gone(loaded)),
                Err(e) => return Err(e),
            }
        }
        Err(Error::TooManyConflicts { attempts })
    }

    /// Extends the deadline of an unchanged session.
    async fn refresh(&self, loaded: &mut Loaded) -> Result<CookieDecision, Error> {
        let Some(existing) = loaded.existing.clone() else {
            return Ok(CookieDecision::Leave);
        };
        let now = self.clock.now();
        let deadline = self.deadline(&loaded.meta, now);
        let alive = if self.store.capabilities().touch {
            self.store.touch(&existing.key, deadline).await?
        } else {
            // No touch: write the loaded bytes back unchanged with the new deadline.
            let record = NewRecord {
                payload: existing.payload.clone(),
                expires_at: deadline,
            };
            let mode = SaveMode::Update {
                expected_version: existing.version,
            };
            match self.store.save(&existing.key, &record, mode).await {
                Ok(version) => {
                    loaded.existing = Some(crate::session::Existing {
                        version,
                        ..existing.clone()
                    });
                    true
                }
                // A concurrent request saved (and so refreshed) it: fine.
                Err(Error::Conflict) => true,
                Err(Error::NotFound) => false,
                Err(e) => return Err(e),
            }
        };
        if !alive {
            return Ok(self.gone(loaded));
        }
        Ok(if self.is_permanent(loaded) {
            CookieDecision::Set(self.cookie(&existing.token, loaded, deadline, now))
        } else {
            CookieDecision::Leave
        })
    }

    /// The session vanished under us: drop this request's changes, remove the cookie.
    fn gone(&self, loaded: &mut Loaded) -> CookieDecision {
        loaded.existing = None;
        loaded.data.clear();
        self.removal_if(true)
    }

    fn is_permanent(&self, loaded: &Loaded) -> bool {
        loaded.meta.permanent.unwrap_or(self.config.permanent())
    }

    fn base_cookie(&self, value: String) -> cookie::CookieBuilder<'static> {
        let c = &self.config;
        let mut b = Cookie::build((c.cookie_name().to_owned(), value))
            .path(c.path().to_owned())
            .secure(c.secure())
            .http_only(c.http_only())
            .same_site(match c.same_site() {
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::None => cookie::SameSite::None,
            })
            .partitioned(c.partitioned());
        if let Some(d) = c.domain() {
            b = b.domain(d.to_owned());
        }
        b
    }

    /// The session cookie for `token`; `Max-Age`/`Expires` only for permanent ones.
    fn cookie(
        &self,
        token: &SessionToken,
        loaded: &Loaded,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Cookie<'static> {
        let mut b = self.base_cookie(token.to_cookie_value());
        if self.is_permanent(loaded) {
            b = b
                .max_age((expires_at - now).max(time::Duration::ZERO))
                .expires(expires_at);
        }
        b.build()
    }

    /// A removal cookie when the browser has a cookie to remove.
    fn removal_if(&self, had_cookie: bool) -> CookieDecision {
        if !had_cookie {
            return CookieDecision::Leave;
        }
        let mut c = self.base_cookie(String::new()).build();
        c.make_removal();
        CookieDecision::Remove(c)
    }
}
