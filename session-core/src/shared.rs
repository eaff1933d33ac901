//! What the manager and every session it hands out share: the backend, the
//! configuration, the clock and the queue, and the rules that turn a session into a
//! deadline, a payload and a cookie.

use std::collections::BTreeMap;
use std::sync::Arc;

use cookie::Cookie;
use time::OffsetDateTime;

use crate::clock::saturating_add;
use crate::codec::{Envelope, Meta};
use crate::config::SameSite;
use crate::decision::CookieDecision;
use crate::pinned::Pinned;
use crate::queue::Queue;
use crate::sealer::CookieSealer;
use crate::state::Loaded;
use crate::{Error, SessionConfig, SessionInterface, SharedClock};

/// Where sessions live.
pub(crate) enum Backend {
    /// Server-side: the cookie names a record in a store.
    Server(Arc<dyn SessionInterface>),
    /// Client-side: the cookie is the sealed session itself.
    Client(Arc<dyn CookieSealer>),
}

/// State shared by the manager and every session it hands out.
pub(crate) struct Shared {
    pub backend: Backend,
    pub config: SessionConfig,
    pub clock: SharedClock,
    /// One writer per session at a time within this manager.
    pub queue: Arc<Queue>,
    /// Sessions whose one-step refresh had to be corrected: loaded in two steps.
    pub pinned: Pinned,
}

impl Shared {
    /// A session that does not exist yet, created `now`.
    pub(crate) fn fresh(&self, now: OffsetDateTime) -> Loaded {
        Loaded {
            existing: None,
            from_cookie: false,
            sealed_expires_at: None,
            meta: Meta {
                created_at: now,
                absolute_deadline: saturating_add(now, self.config.absolute_lifetime()),
                idle: None,
                permanent: None,
                id_issued_at: now,
            },
            data: Arc::default(),
            changes: BTreeMap::new(),
            cleared: false,
            meta_changed: false,
            via: None,
            refreshed: false,
            ended_meanwhile: false,
        }
    }

    /// Expiry = min(last activity + idle lifetime, created + absolute lifetime).
    pub(crate) fn deadline(&self, meta: &Meta, now: OffsetDateTime) -> OffsetDateTime {
        let idle = meta.idle.unwrap_or(self.config.idle_lifetime());
        saturating_add(now, idle).min(meta.absolute_deadline)
    }

    /// Whether moving a record's deadline from `current` to `deadline` gains more
    /// than the configured share of the session's idle lifetime (see
    /// [`SessionConfig::refresh_threshold`]).
    pub(crate) fn refresh_due(
        &self,
        meta: &Meta,
        current: OffsetDateTime,
        deadline: OffsetDateTime,
    ) -> bool {
        let idle = meta.idle.unwrap_or(self.config.idle_lifetime());
        // In float seconds: no lifetime or stored deadline can overflow it.
        let gain = (deadline - current).as_seconds_f64();
        gain > 0.0 && gain > idle.as_seconds_f64() * self.config.refresh_threshold()
    }

    /// Encodes the session, enforcing the payload limit.
    pub(crate) fn encode(&self, loaded: &Loaded) -> Result<Vec<u8>, Error> {
        let payload = Envelope::encode(&loaded.meta, &loaded.data);
        let limit = self.config.max_payload_bytes();
        if payload.len() > limit {
            return Err(Error::PayloadTooLarge {
                size: payload.len(),
                limit,
            });
        }
        Ok(payload)
    }

    /// The session vanished under us (another request destroyed it, emptied it or
    /// cycled its id, or it expired): drop this request's changes, and leave the
    /// cookie alone — the request that ended the session decided about the cookie,
    /// and after a login's `cycle_id` the browser's cookie may already be the new
    /// one, which a removal would delete.
    pub(crate) fn gone(&self, loaded: &mut Loaded) -> CookieDecision {
        loaded.existing = None;
        loaded.data = Arc::default();
        loaded.ended_meanwhile = true;
        CookieDecision::Leave
    }

    pub(crate) fn is_permanent(&self, loaded: &Loaded) -> bool {
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

    /// The session cookie carrying `value`; `Max-Age`/`Expires` only for permanent
    /// sessions.
    pub(crate) fn cookie(
        &self,
        value: String,
        loaded: &Loaded,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Cookie<'static> {
        let mut b = self.base_cookie(value);
        if self.is_permanent(loaded) {
            b = b
                .max_age((expires_at - now).max(time::Duration::ZERO))
                .expires(expires_at);
        }
        b.build()
    }

    /// A removal cookie when the browser has a cookie to remove.
    pub(crate) fn removal_if(&self, had_cookie: bool) -> CookieDecision {
        if !had_cookie {
            return CookieDecision::Leave;
        }
        let mut c = self.base_cookie(String::new()).build();
        c.make_removal();
        CookieDecision::Remove(c)
    }
}
