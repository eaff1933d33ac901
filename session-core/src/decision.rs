//! What the response does with the session cookie.

use cookie::Cookie;

/// What the response must do with the session cookie.
///
/// `Debug` shows the cookie's name and attributes but not its value (the session
/// token, or the sealed session of a client-side manager).
#[derive(Clone, PartialEq)]
#[must_use]
pub enum CookieDecision {
    /// Send nothing: the browser's cookie is still right.
    Leave,
    /// Set this cookie (a new session, a new id, or a refreshed `Max-Age`).
    Set(Cookie<'static>),
    /// Remove the cookie (logout, an emptied session, a cookie that is not a
    /// session token). A cookie naming a session that is dead or unknown is left
    /// alone instead: after a login's `cycle_id` it may be the old id of a request
    /// still in flight, and the removal would delete the browser's new cookie.
    Remove(Cookie<'static>),
}

impl std::fmt::Debug for CookieDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// The `Set-Cookie` form with the value replaced.
        struct Redacted<'a>(&'a Cookie<'static>);
        impl std::fmt::Debug for Redacted<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut cookie = self.0.clone();
                if !cookie.value().is_empty() {
                    cookie.set_value("<redacted>");
                }
                write!(f, "{:?}", cookie.to_string())
            }
        }
        match self {
            CookieDecision::Leave => f.write_str("Leave"),
            CookieDecision::Set(c) => f.debug_tuple("Set").field(&Redacted(c)).finish(),
            CookieDecision::Remove(c) => f.debug_tuple("Remove").field(&Redacted(c)).finish(),
        }
    }
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
