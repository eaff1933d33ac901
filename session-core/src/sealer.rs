//! The storage of client-side sessions: a sealed cookie.

use time::OffsetDateTime;

use crate::Error;

/// Browsers keep cookies of up to 4,096 bytes (name, value and attributes); a
/// larger one is silently dropped, so the manager refuses to send it.
pub const MAX_SET_COOKIE_BYTES: usize = 4096;

/// Seals a whole encoded session into a cookie value and opens it again: the
/// storage of client-side sessions (see [`SessionManager::client_side`]).
///
/// Implementations (signed or encrypted, in the `session-cookie` crate) carry the
/// deadline inside the sealed value, so a replayed cookie dies with its deadline.
///
/// The manager passes its cookie name to both methods. Implementations authenticate
/// it along with the value (without storing it in the value), so a value sealed for
/// one cookie does not open as another that shares the keys — say `user_session`
/// replayed as `admin_session`.
///
/// [`SessionManager::client_side`]: crate::SessionManager::client_side
pub trait CookieSealer: Send + Sync + 'static {
    /// Seals `payload` (the encoded session envelope) with its deadline into a
    /// value for the cookie named `cookie_name`, made of cookie-safe characters (for
    /// example base64url).
    fn seal(
        &self,
        cookie_name: &str,
        payload: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<String, Error>;

    /// Returns the payload only if `cookie_value` is authentic, untampered, was sealed
    /// for the cookie named `cookie_name` and its deadline is after `now`. Any other
    /// input yields `None`; never panics.
    fn open(&self, cookie_name: &str, cookie_value: &str, now: OffsetDateTime) -> Option<Vec<u8>>;

    /// [`open`](Self::open), and also the deadline `cookie_value` was sealed with.
    ///
    /// The manager opens cookies through this method. Knowing the sealed deadline,
    /// it leaves a cookie alone when a refresh would move that deadline by no more
    /// than [`SessionConfig::refresh_threshold`] of the idle lifetime: no new seal
    /// and no `Set-Cookie` on most requests. The default returns
    /// [`Opened::expires_at`] `None` (deadline unknown), and the manager then
    /// reseals a refreshed session on every request. Override it when the format
    /// carries the deadline; the ones in `session-cookie` do.
    ///
    /// [`SessionConfig::refresh_threshold`]: crate::SessionConfig::refresh_threshold
    fn open_with_deadline(
        &self,
        cookie_name: &str,
        cookie_value: &str,
        now: OffsetDateTime,
    ) -> Option<Opened> {
        self.open(cookie_name, cookie_value, now).map(Opened::new)
    }
}

/// An opened cookie value: what [`CookieSealer::open_with_deadline`] returns.
///
/// ```
/// use session_core::Opened;
/// use session_core::time::macros::datetime;
///
/// let deadline = datetime!(2030-01-01 12:00 UTC);
/// let opened = Opened::new(b"payload".to_vec()).with_expires_at(deadline);
/// assert_eq!(opened.payload, b"payload");
/// assert_eq!(opened.expires_at, Some(deadline));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Opened {
    /// The payload that was sealed: the encoded session envelope.
    pub payload: Vec<u8>,
    /// The deadline the value was sealed with, when the sealer can tell it (at the
    /// precision its format keeps); `None` when it cannot.
    pub expires_at: Option<OffsetDateTime>,
}

impl Opened {
    /// A payload whose sealed deadline is unknown.
    pub fn new(payload: Vec<u8>) -> Self {
        Self {
            payload,
            expires_at: None,
        }
    }

    /// The same, with the deadline the value was sealed with.
    #[must_use]
    pub fn with_expires_at(mut self, expires_at: OffsetDateTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }
}
