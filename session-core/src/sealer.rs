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
}
