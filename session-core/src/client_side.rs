//! Client-side sessions: the whole session travels sealed in the cookie.

use std::sync::Arc;

use crate::Error;
use crate::codec::Envelope;
use crate::decision::CookieDecision;
use crate::sealer::{CookieSealer, MAX_SET_COOKIE_BYTES};
use crate::shared::Shared;
use crate::state::Loaded;

/// The manager's operations over a sealer.
pub(crate) struct ClientSide<'a> {
    shared: &'a Shared,
    sealer: &'a dyn CookieSealer,
}

impl<'a> ClientSide<'a> {
    pub(crate) fn new(shared: &'a Shared, sealer: &'a dyn CookieSealer) -> Self {
        Self { shared, sealer }
    }

    /// Opens the request's cookie, or starts a new session. A cookie that does not
    /// open (forged, expired, garbage) is no session.
    pub(crate) fn load(&self, sealed: Option<&str>) -> Result<Loaded, Error> {
        let now = self.shared.clock.now();
        let Some(opened) = sealed.and_then(|v| {
            self.sealer
                .open_with_deadline(self.shared.config.cookie_name(), v, now)
        }) else {
            return Ok(self.shared.fresh(now));
        };
        // The payload is authentic, so a decode failure is our own bug or a format
        // from a newer release: a typed error, not a silent logout.
        let envelope = Envelope::decode(&opened.payload)?;
        if envelope.meta.absolute_deadline <= now {
            return Ok(self.shared.fresh(now));
        }
        let mut loaded = self.shared.fresh(now);
        loaded.meta = envelope.meta;
        loaded.data = Arc::new(envelope.data);
        loaded.from_cookie = true;
        loaded.sealed_expires_at = opened.expires_at;
        Ok(loaded)
    }

    /// Ends a request: seals the session into a new cookie when it changed (or is
    /// refreshed), removes the cookie when it was emptied or destroyed.
    pub(crate) fn finish(
        &self,
        loaded: Option<Loaded>,
        cycle: bool,
        destroyed: bool,
        had_cookie: bool,
    ) -> Result<(CookieDecision, Option<Loaded>), Error> {
        let shared = self.shared;
        if destroyed {
            return Ok((shared.removal_if(had_cookie), None));
        }
        let Some(mut loaded) = loaded else {
            return Ok((CookieDecision::Leave, None));
        };
        if loaded.data.is_empty() {
            let gone = loaded.from_cookie || had_cookie;
            loaded.from_cookie = false;
            return Ok((shared.removal_if(gone), Some(loaded)));
        }
        let now = shared.clock.now();
        let expires_at = shared.deadline(&loaded.meta, now);
        // As for a stored session: a refresh that gains no more than the threshold
        // leaves the cookie alone. Unknown sealed deadline: always due.
        let refresh = loaded.from_cookie
            && shared.config.refresh_each_request()
            && loaded
                .sealed_expires_at
                .is_none_or(|sealed| shared.refresh_due(&loaded.meta, sealed, expires_at));
        if !(loaded.is_modified() || cycle || refresh || !loaded.from_cookie) {
            return Ok((CookieDecision::Leave, Some(loaded)));
        }
        let value = self.sealer.seal(
            shared.config.cookie_name(),
            &shared.encode(&loaded)?,
            expires_at,
        )?;
        let cookie = shared.cookie(value, &loaded, expires_at, now);
        let size = cookie.to_string().len();
        if size > MAX_SET_COOKIE_BYTES {
            return Err(Error::CookieTooLarge {
                size,
                limit: MAX_SET_COOKIE_BYTES,
            });
        }
        loaded.from_cookie = true;
        loaded.sealed_expires_at = Some(expires_at);
        Ok((CookieDecision::Set(cookie), Some(loaded)))
    }
}
