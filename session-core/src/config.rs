//! Cookie and expiry options, validated once when they are built.

use time::Duration;

use crate::ConfigError;

/// The `SameSite` cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent only on same-site requests.
    Strict,
    /// Sent on same-site requests and top-level cross-site navigations (the default).
    #[default]
    Lax,
    /// Sent on every request; requires `Secure`.
    None,
}

/// The session options. Build one with [`SessionConfig::builder`]; invalid
/// combinations are rejected by [`SessionConfigBuilder::build`], never at the first
/// request.
///
/// | option | default |
/// |---|---|
/// | [`cookie_name`](Self::cookie_name) | `session_id` |
/// | [`secure`](Self::secure) | `true` |
/// | [`http_only`](Self::http_only) | `true` |
/// | [`same_site`](Self::same_site) / [`path`](Self::path) / [`domain`](Self::domain) / [`partitioned`](Self::partitioned) | `Lax` / `/` / none / `false` |
/// | [`idle_lifetime`](Self::idle_lifetime) (expiration time) | 24 h |
/// | [`absolute_lifetime`](Self::absolute_lifetime) | 7 days |
/// | [`permanent`](Self::permanent) | `false` |
/// | [`refresh_each_request`](Self::refresh_each_request) | `false` |
/// | [`refresh_threshold`](Self::refresh_threshold) (share of the idle lifetime a refresh must gain) | 0.5 |
/// | [`max_payload_bytes`](Self::max_payload_bytes) | 1 MiB |
/// | [`save_attempts`](Self::save_attempts) | 16 |
/// | [`rotate_every`](Self::rotate_every) | off |
/// | [`rotation_grace`](Self::rotation_grace) | 60 s |
///
/// ```
/// use session_core::{SameSite, SessionConfig, time::Duration};
///
/// let config = SessionConfig::builder()
///     .cookie_name("sid")
///     .same_site(SameSite::Strict)
///     .idle_lifetime(Duration::minutes(30))
///     .refresh_each_request(true)
///     .build()?;
/// assert_eq!(config.cookie_name(), "sid");
/// assert!(config.secure());
///
/// // Mistakes surface when the configuration is built.
/// assert!(SessionConfig::builder().cookie_name("no spaces").build().is_err());
/// assert!(SessionConfig::builder().idle_lifetime(Duration::ZERO).build().is_err());
/// # Ok::<(), session_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    cookie_name: String,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
    partitioned: bool,
    idle_lifetime: Duration,
    absolute_lifetime: Duration,
    permanent: bool,
    refresh_each_request: bool,
    refresh_threshold: Share,
    max_payload_bytes: usize,
    save_attempts: u32,
    rotate_every: Option<Duration>,
    rotation_grace: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: "session_id".to_owned(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".to_owned(),
            domain: None,
            partitioned: false,
            idle_lifetime: Duration::hours(24),
            absolute_lifetime: Duration::days(7),
            permanent: false,
            refresh_each_request: false,
            refresh_threshold: Share(SessionConfig::DEFAULT_REFRESH_THRESHOLD),
            max_payload_bytes: 1024 * 1024,
            save_attempts: 16,
            rotate_every: None,
            rotation_grace: Duration::seconds(60),
        }
    }
}

impl SessionConfig {
    /// The longest lifetime, period or grace window `build()` accepts: ten years,
    /// the farthest deadline the conformance suite proves every store keeps
    /// (browsers cap a cookie's `Max-Age` at 400 days anyway).
    pub const MAX_LIFETIME: Duration = Duration::days(3652);

    /// The default [`refresh_threshold`](Self::refresh_threshold): one half. A
    /// session used steadily is then written at most once per half idle lifetime
    /// (once in 12 hours with the default 24 h), the renewal rule of ASP.NET's
    /// sliding expiration, which renews once more than half the window has elapsed;
    /// in exchange an idle user may be logged out up to half an idle lifetime early.
    pub const DEFAULT_REFRESH_THRESHOLD: f64 = 0.5;

    /// A builder starting from the defaults.
    pub fn builder() -> SessionConfigBuilder {
        SessionConfigBuilder(Self::default())
    }

    /// Name of the session cookie.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }
    /// Whether the cookie carries `Secure` (sent over HTTPS only).
    pub fn secure(&self) -> bool {
        self.secure
    }
    /// Whether the cookie carries `HttpOnly` (invisible to scripts).
    pub fn http_only(&self) -> bool {
        self.http_only
    }
    /// The cookie's `SameSite` attribute.
    pub fn same_site(&self) -> SameSite {
        self.same_site
    }
    /// The cookie's `Path`.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The cookie's `Domain`, if any.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }
    /// Whether the cookie carries `Partitioned` (CHIPS).
    pub fn partitioned(&self) -> bool {
        self.partitioned
    }
    /// How long a session lives without activity ("expiration time").
    pub fn idle_lifetime(&self) -> Duration {
        self.idle_lifetime
    }
    /// The hard cap on a session's life since its creation, whatever its activity.
    pub fn absolute_lifetime(&self) -> Duration {
        self.absolute_lifetime
    }
    /// Whether cookies are persistent (`Max-Age`/`Expires`) rather than ending with
    /// the browser session. The server record expires either way.
    pub fn permanent(&self) -> bool {
        self.permanent
    }
    /// Whether every request that uses a session extends its deadline (with a
    /// cheap `touch`, not a rewrite).
    ///
    /// Lazy by design: a request that never reads or changes its session (an image,
    /// a health check) makes no store call and so does not count as activity; the
    /// idle deadline moves only with requests that use the session.
    pub fn refresh_each_request(&self) -> bool {
        self.refresh_each_request
    }
    /// With [`refresh_each_request`](Self::refresh_each_request): the share of the
    /// idle lifetime a refresh must gain before it is made. A request whose refresh
    /// would move the deadline by this share or less costs no store write and sends
    /// no `Set-Cookie`; one that gains more moves the deadline to the full idle
    /// lifetime (capped by the absolute deadline as always).
    ///
    /// The price: after a request the session's remaining idle time is at least
    /// `(1 - share) × idle lifetime`, not the full idle lifetime — with the default
    /// 0.5 and 24 h, a user idle from then on is logged out after 12 to 24 hours.
    /// `0` refreshes whenever the deadline would move at all (every request).
    /// Client-side sessions the same way, judged by the deadline sealed in the
    /// cookie, when the sealer can tell it
    /// ([`CookieSealer::open_with_deadline`](crate::CookieSealer::open_with_deadline);
    /// `session-cookie`'s sealers can). With a sealer that cannot, a refresh
    /// reseals the cookie on every request. Always `0 <= share < 1` (checked by
    /// `build()`).
    pub fn refresh_threshold(&self) -> f64 {
        self.refresh_threshold.0
    }
    /// The largest encoded session the manager will save.
    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }
    /// How many times a save is tried when concurrent requests keep changing the
    /// same session (each retry re-applies this request's changes to fresh data).
    /// Every conflict means another request's save succeeded, so N concurrent
    /// writers of one session need at most N attempts. Requests that end in the same
    /// `SessionManager` queue per session instead of conflicting, so only writers in
    /// other processes count here. Retries after the first back
    /// off with a jittered sleep of up to 20 ms (Tokio's time driver must be on, as
    /// it is in `#[tokio::main]` runtimes).
    pub fn save_attempts(&self) -> u32 {
        self.save_attempts
    }
    /// How old a session id may get before a request that touches the session
    /// gives it a new one (off by default). See the crate docs on rotation.
    pub fn rotate_every(&self) -> Option<Duration> {
        self.rotate_every
    }
    /// How long the old id of a rotated session keeps leading to the new one.
    pub fn rotation_grace(&self) -> Duration {
        self.rotation_grace
    }
}

/// Builds a [`SessionConfig`]; see there for the options and defaults.
#[derive(Debug, Clone)]
#[must_use]
pub struct SessionConfigBuilder(SessionConfig);

impl SessionConfigBuilder {
    /// Sets the cookie name (an RFC 6265 token).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.0.cookie_name = name.into();
        self
    }
    /// Sets the `Secure` attribute.
    pub fn secure(mut self, on: bool) -> Self {
        self.0.secure = on;
        self
    }
    /// Sets the `HttpOnly` attribute.
    pub fn http_only(mut self, on: bool) -> Self {
        self.0.http_only = on;
        self
    }
    /// Sets the `SameSite` attribute.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.0.same_site = same_site;
        self
    }
    /// Sets the cookie `Path` (must start with `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.0.path = path.into();
        self
    }
    /// Sets or clears the cookie `Domain`.
    pub fn domain(mut self, domain: Option<String>) -> Self {
        self.0.domain = domain;
        self
    }
    /// Sets the `Partitioned` attribute (requires `Secure`).
    pub fn partitioned(mut self, on: bool) -> Self {
        self.0.partitioned = on;
        self
    }
    /// Sets the idle lifetime (must be positive).
    pub fn idle_lifetime(mut self, lifetime: Duration) -> Self {
        self.0.idle_lifetime = lifetime;
        self
    }
    /// Sets the absolute lifetime (must be positive and at least the idle lifetime).
    pub fn absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.0.absolute_lifetime = lifetime;
        self
    }
    /// Makes cookies persistent (`Max-Age`) instead of browser-session cookies.
    pub fn permanent(mut self, on: bool) -> Self {
        self.0.permanent = on;
        self
    }
    /// Extends the deadline on every request that uses the session (reads or
    /// changes it); requests that never touch it do not (see
    /// [`SessionConfig::refresh_each_request`]).
    pub fn refresh_each_request(mut self, on: bool) -> Self {
        self.0.refresh_each_request = on;
        self
    }
    /// Sets the share of the idle lifetime a refresh must gain before it is made
    /// (`0 <= share < 1`; see [`SessionConfig::refresh_threshold`]).
    pub fn refresh_threshold(mut self, share: f64) -> Self {
        self.0.refresh_threshold = Share(share);
        self
    }
    /// Sets the largest encoded session that will be saved (at least 1 byte).
    pub fn max_payload_bytes(mut self, limit: usize) -> Self {
        self.0.max_payload_bytes = limit;
        self
    }
    /// Sets how many times a conflicting save is tried (at least 1).
    pub fn save_attempts(mut self, attempts: u32) -> Self {
        self.0.save_attempts = attempts;
        self
    }

    /// Rotates session ids older than `period` when a request touches the session
    /// (`None`: never). The old id keeps working for [`rotation_grace`](Self::rotation_grace).
    pub fn rotate_every(mut self, period: Option<Duration>) -> Self {
        self.0.rotate_every = period;
        self
    }
    /// Sets how long an old id leads to its rotated session (must be positive).
    pub fn rotation_grace(mut self, grace: Duration) -> Self {
        self.0.rotation_grace = grace;
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        let c = self.0;
        if !is_cookie_token(&c.cookie_name) {
            return Err(ConfigError::CookieName(c.cookie_name));
        }
        if !c.path.starts_with('/') || !c.path.bytes().all(is_attribute_byte) {
            return Err(ConfigError::CookiePath(c.path));
        }
        if let Some(d) = &c.domain {
            let ok = !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !ok {
                return Err(ConfigError::CookieDomain(d.clone()));
            }
        }
        for (which, value) in [
            ("idle lifetime", Some(c.idle_lifetime)),
            ("absolute lifetime", Some(c.absolute_lifetime)),
            ("rotation period", c.rotate_every),
            ("rotation grace", Some(c.rotation_grace)),
        ] {
            if value.is_some_and(|v| v > SessionConfig::MAX_LIFETIME) {
                return Err(ConfigError::LifetimeTooLong { which });
            }
        }
        if c.idle_lifetime <= Duration::ZERO {
            return Err(ConfigError::NonPositiveLifetime {
                which: "idle lifetime",
            });
        }
        if c.absolute_lifetime <= Duration::ZERO {
            return Err(ConfigError::NonPositiveLifetime {
                which: "absolute lifetime",
            });
        }
        if c.absolute_lifetime < c.idle_lifetime {
            return Err(ConfigError::AbsoluteShorterThanIdle);
        }
        if c.same_site == SameSite::None && !c.secure {
            return Err(ConfigError::SameSiteNoneWithoutSecure);
        }
        if c.partitioned && !c.secure {
            return Err(ConfigError::PartitionedWithoutSecure);
        }
        check_name_prefix(&c)?;
        // Written so that NaN fails too.
        if !(c.refresh_threshold.0 >= 0.0 && c.refresh_threshold.0 < 1.0) {
            return Err(ConfigError::RefreshThreshold);
        }
        if c.max_payload_bytes == 0 {
            return Err(ConfigError::ZeroPayloadLimit);
        }
        if c.save_attempts == 0 {
            return Err(ConfigError::ZeroSaveAttempts);
        }
        if c.rotate_every.is_some_and(|p| p <= Duration::ZERO) {
            return Err(ConfigError::NonPositiveLifetime {
                which: "rotation period",
            });
        }
        if c.rotation_grace <= Duration::ZERO {
            return Err(ConfigError::NonPositiveLifetime {
                which: "rotation grace",
            });
        }
        Ok(c)
    }
}

/// A share of the idle lifetime. Compared by its bits, so that the configuration
/// stays `Eq` (`build()` admits only finite values in `[0, 1)`).
#[derive(Debug, Clone, Copy)]
struct Share(f64);

impl PartialEq for Share {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Share {}

/// The cookie name prefixes (RFC 6265bis 4.1.3; browsers match them ignoring case):
/// `__Secure-` needs `Secure`; `__Host-` needs `Secure`, `Path=/` and no `Domain`.
fn check_name_prefix(c: &SessionConfig) -> Result<(), ConfigError> {
    let has = |prefix: &str| {
        c.cookie_name
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    let fail = |prefix, requirement| {
        Err(ConfigError::CookiePrefix {
            prefix,
            requirement,
        })
    };
    if has("__Host-") {
        if !c.secure {
            return fail("__Host-", "the Secure attribute");
        }
        if c.path != "/" {
            return fail("__Host-", "Path=/");
        }
        if c.domain.is_some() {
            return fail("__Host-", "no Domain attribute");
        }
    } else if has("__Secure-") && !c.secure {
        return fail("__Secure-", "the Secure attribute");
    }
    Ok(())
}

/// RFC 6265 `cookie-name` = RFC 2616 `token`: visible ASCII without separators.
fn is_cookie_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// A byte allowed in a cookie attribute value: printable ASCII except `;`.
fn is_attribute_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b';'
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every default in the options table (README, `SessionConfig` docs) is what `default()` and `build()` give.
    #[test]
    fn defaults_match_the_design_table() {
        let c = SessionConfig::default();
        assert_eq!(c, SessionConfig::builder().build().unwrap());
        assert_eq!(c.cookie_name(), "session_id");
        assert!(c.secure() && c.http_only() && !c.partitioned() && !c.permanent());
        assert_eq!(c.same_site(), SameSite::Lax);
        assert_eq!(c.path(), "/");
        assert_eq!(c.domain(), None);
        assert_eq!(c.idle_lifetime(), Duration::hours(24));
        assert_eq!(c.absolute_lifetime(), Duration::days(7));
        assert!(!c.refresh_each_request());
        assert_eq!(c.refresh_threshold(), 0.5);
        assert_eq!(c.max_payload_bytes(), 1 << 20);
        assert_eq!(c.save_attempts(), 16);
        assert_eq!(c.rotate_every(), None);
        assert_eq!(c.rotation_grace(), Duration::seconds(60));
    }

    #[test]
    fn refresh_thresholds_from_zero_to_just_below_one_are_accepted() {
        for share in [0.0, 0.25, 0.5, 0.999] {
            let c = SessionConfig::builder().refresh_threshold(share).build();
            assert_eq!(c.map(|c| c.refresh_threshold()), Ok(share));
        }
    }

    #[test]
    fn invalid_settings_are_typed_errors() {
        let b = SessionConfig::builder;
        let cases: Vec<(SessionConfigBuilder, ConfigError)> = vec![
            (b().cookie_name(""), ConfigError::CookieName("".into())),
            (
                b().cookie_name("a b"),
                ConfigError::CookieName("a b".into()),
            ),
            (
                b().cookie_name("a;b"),
                ConfigError::CookieName("a;b".into()),
            ),
            (
                b().cookie_name("a=b"),
                ConfigError::CookieName("a=b".into()),
            ),
            (b().cookie_name("é"), ConfigError::CookieName("é".into())),
            (b().path("x"), ConfigError::CookiePath("x".into())),
            (b().refresh_threshold(-0.01), ConfigError::RefreshThreshold),
            (b().refresh_threshold(1.0), ConfigError::RefreshThreshold),
            (
                b().refresh_threshold(f64::NAN),
                ConfigError::RefreshThreshold,
            ),
            (
                b().refresh_threshold(f64::INFINITY),
                ConfigError::RefreshThreshold,
            ),
            (b().path("/a;b"), ConfigError::CookiePath("/a;b".into())),
            (
                b().domain(Some("a b".into())),
                ConfigError::CookieDomain("a b".into()),
            ),
            (
                b().idle_lifetime(Duration::ZERO),
                ConfigError::NonPositiveLifetime {
                    which: "idle lifetime",
                },
            ),
            (
                b().idle_lifetime(Duration::seconds(-5)),
                ConfigError::NonPositiveLifetime {
                    which: "idle lifetime",
                },
            ),
            (
                b().absolute_lifetime(Duration::seconds(-1)),
                ConfigError::NonPositiveLifetime {
                    which: "absolute lifetime",
                },
            ),
            (
                b().absolute_lifetime(Duration::hours(1)),
                ConfigError::AbsoluteShorterThanIdle,
            ),
            (
                b().same_site(SameSite::None).secure(false),
                ConfigError::SameSiteNoneWithoutSecure,
            ),
            (
                b().partitioned(true).secure(false),
                ConfigError::PartitionedWithoutSecure,
            ),
            (b().max_payload_bytes(0), ConfigError::ZeroPayloadLimit),
            (b().save_attempts(0), ConfigError::ZeroSaveAttempts),
            (
                b().rotate_every(Some(Duration::ZERO)),
                ConfigError::NonPositiveLifetime {
                    which: "rotation period",
                },
            ),
            (
                b().rotation_grace(Duration::seconds(-1)),
                ConfigError::NonPositiveLifetime {
                    which: "rotation grace",
                },
            ),
        ];
        for (builder, expected) in cases {
            assert_eq!(builder.build().unwrap_err(), expected);
        }
    }

    /// Security review (HARDENING.md): a `__Host-` cookie with a Domain (this module's
    /// own example once had one) or a prefixed cookie without Secure was accepted,
    /// and browsers silently refuse to store such cookies.
    #[test]
    fn cookie_name_prefixes_require_their_attributes() {
        let b = || SessionConfig::builder().cookie_name("__Host-sid");
        let prefix = |prefix, requirement| ConfigError::CookiePrefix {
            prefix,
            requirement,
        };
        let cases = [
            (b().secure(false), prefix("__Host-", "the Secure attribute")),
            (b().path("/app"), prefix("__Host-", "Path=/")),
            (
                b().domain(Some("example.com".into())),
                prefix("__Host-", "no Domain attribute"),
            ),
            (
                b().cookie_name("__host-sid").secure(false),
                prefix("__Host-", "the Secure attribute"),
            ),
            (
                b().cookie_name("__SECURE-sid").secure(false),
                prefix("__Secure-", "the Secure attribute"),
            ),
        ];
        for (builder, expected) in cases {
            assert_eq!(builder.build().unwrap_err(), expected);
        }
        assert!(b().build().is_ok());
        let secure = SessionConfig::builder().cookie_name("__Secure-sid");
        assert!(
            secure
                .clone()
                .path("/app")
                .domain(Some("a.test".into()))
                .build()
                .is_ok()
        );
        // Not a prefix: no requirement.
        let plain = SessionConfig::builder()
            .cookie_name("_Host-sid")
            .secure(false);
        assert!(plain.build().is_ok());
    }

    #[test]
    fn valid_custom_settings_build() {
        let c = SessionConfig::builder()
            .cookie_name("__Secure-sid")
            .domain(Some("example.com".into()))
            .same_site(SameSite::None)
            .partitioned(true)
            .idle_lifetime(Duration::minutes(5))
            .absolute_lifetime(Duration::minutes(5))
            .build()
            .unwrap();
        assert_eq!(c.domain(), Some("example.com"));
        assert!(c.partitioned());
    }
}
