//! CSRF protection, in two forms:
//!
//! - **Logged-in sessions**: a random token kept in the session, embedded in every
//!   form and compared on every POST (the synchronizer-token pattern). Login removes
//!   it, so a token known before login is worthless after.
//! - **Anonymous visitors** (the login form, an anonymous cart): a *signed double
//!   submit*. A random nonce goes into a cookie, and the form carries
//!   `HMAC-SHA256(server key, nonce)`; a POST is accepted when the form's value is the
//!   HMAC of the cookie's nonce. A cross-site page can neither read the cookie nor
//!   compute the HMAC. Nothing is stored on the server, so an anonymous visitor
//!   creates no session record (security review, issue 20: every `GET /login` used
//!   to store one).
//!
//! The HMAC key is derived from each configured secret key (so instances with the
//! same keys accept each other's forms, and a rotated-out key's forms still verify
//! until it leaves the ring); without configured keys it is random per process.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header::COOKIE};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use session_core::{Error, SameSite, Session, SessionConfig, SessionToken};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::secrets::SecretKey;

/// The session key of a logged-in session's token.
pub const SESSION_KEY: &str = "csrf";
/// The form field that carries the token.
pub const FORM_FIELD: &str = "csrf";
/// The cookie that carries an anonymous visitor's nonce.
pub const NONCE_COOKIE: &str = "session_demo_csrf";

/// Separates this use of a configured secret from every other (the secret also
/// seals cookies or records through session-crypto, under its own derivations).
const KEY_LABEL: &[u8] = b"session-demo/v1 CSRF double-submit HMAC key";

/// The HMAC keys of the double-submit tokens, newest first, plus the cookie
/// attributes of the nonce cookie.
#[derive(Clone)]
pub struct Csrf {
    keys: Arc<[Zeroizing<[u8; 32]>]>,
    cookie_attributes: Arc<str>,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Csrf")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .finish_non_exhaustive()
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

impl Csrf {
    /// Keys derived from `secrets` (HMAC-SHA256 of a fixed label under each secret),
    /// or one random key when there are none; the nonce cookie gets `config`'s
    /// `Path`, `Domain`, `Secure`, `SameSite` and `Partitioned`.
    pub fn new(secrets: &[SecretKey], config: &SessionConfig) -> Result<Self, Error> {
        let keys: Vec<Zeroizing<[u8; 32]>> = if secrets.is_empty() {
            let mut key = Zeroizing::new([0u8; 32]);
            getrandom::fill(key.as_mut()).map_err(|e| Error::Randomness(Box::new(e)))?;
            vec![key]
        } else {
            secrets
                .iter()
                .map(|secret| {
                    let mut mac = hmac(&secret.secret);
                    mac.update(KEY_LABEL);
                    Zeroizing::new(mac.finalize().into_bytes().into())
                })
                .collect()
        };
        let mut attributes = format!("; Path={}; HttpOnly", config.path());
        if let Some(domain) = config.domain() {
            attributes.push_str(&format!("; Domain={domain}"));
        }
        if config.secure() {
            attributes.push_str("; Secure");
        }
        attributes.push_str(match config.same_site() {
            SameSite::Strict => "; SameSite=Strict",
            SameSite::Lax => "; SameSite=Lax",
            SameSite::None => "; SameSite=None",
        });
        if config.partitioned() {
            attributes.push_str("; Partitioned");
        }
        Ok(Self {
            keys: keys.into(),
            cookie_attributes: attributes.into(),
        })
    }

    fn sign(key: &[u8; 32], nonce: &str) -> Hmac<Sha256> {
        let mut mac = hmac(key);
        mac.update(nonce.as_bytes());
        mac
    }

    /// The form token for an anonymous visitor, and the `Set-Cookie` value when the
    /// request carried no usable nonce (a new one is drawn then).
    pub fn anonymous_token(
        &self,
        headers: &HeaderMap,
    ) -> Result<(String, Option<HeaderValue>), Error> {
        let (nonce, set_cookie) = match request_nonce(headers) {
            Some(nonce) => (nonce, None),
            None => {
                let nonce = SessionToken::generate()?.to_cookie_value();
                let cookie = format!("{NONCE_COOKIE}={nonce}{}", self.cookie_attributes);
                // The nonce is base64url and the attributes come from a validated
                // configuration; a failure here is a configuration the cookie
                // grammar refuses, reported like any other session error.
                let value = HeaderValue::try_from(cookie).map_err(|_| {
                    Error::Config(session_core::ConfigError::Invalid {
                        setting: "cookie attributes",
                        reason: "not a valid Set-Cookie header value".into(),
                    })
                })?;
                (nonce, Some(value))
            }
        };
        let tag = Self::sign(&self.keys[0], &nonce).finalize().into_bytes();
        Ok((URL_SAFE_NO_PAD.encode(tag), set_cookie))
    }

    /// Whether `submitted` is the HMAC of the request's nonce cookie under one of
    /// the keys (constant-time comparison, `hmac`'s `verify_slice`).
    pub fn verify_anonymous(&self, headers: &HeaderMap, submitted: &str) -> bool {
        let Some(nonce) = request_nonce(headers) else {
            return false;
        };
        // A tag is 32 bytes: 43 base64url characters.
        if submitted.len() != 43 {
            return false;
        }
        let Ok(tag) = URL_SAFE_NO_PAD.decode(submitted) else {
            return false;
        };
        self.keys
            .iter()
            .any(|key| Self::sign(key, &nonce).verify_slice(&tag).is_ok())
    }
}

/// The nonce of the request's nonce cookie, when it is well-formed (43 base64url
/// characters of 32 random bytes, the session token format).
fn request_nonce(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == NONCE_COOKIE && SessionToken::parse(value).is_some())
        .map(|(_, value)| value.to_owned())
}

/// A logged-in session's token, drawn (256 bits from the OS CSPRNG) on first use.
pub async fn session_token(session: &Session) -> Result<String, Error> {
    if let Some(token) = session.get::<String>(SESSION_KEY).await? {
        return Ok(token);
    }
    let token = SessionToken::generate()?.to_cookie_value();
    session.insert(SESSION_KEY, &token).await?;
    Ok(token)
}

/// Whether `submitted` is the session's token. A session without a token accepts
/// nothing, and nothing is stored by checking.
pub async fn verify_session(session: &Session, submitted: &str) -> Result<bool, Error> {
    Ok(match session.get::<String>(SESSION_KEY).await? {
        Some(expected) => constant_time_eq(expected.as_bytes(), submitted.as_bytes()),
        None => false,
    })
}

/// Compares in constant time (`subtle`, which keeps the optimiser from adding an
/// early exit), so the time taken does not reveal how many leading bytes of a guess
/// were right. (The length is not secret: tokens have a fixed length.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::try_from(value).unwrap());
        headers
    }

    fn random_secret(id: &str) -> SecretKey {
        let mut secret = Zeroizing::new(vec![0u8; 32]);
        getrandom::fill(&mut secret).unwrap();
        SecretKey {
            id: id.to_owned(),
            secret,
        }
    }

    #[test]
    fn equality_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn double_submit_tokens_verify_only_with_their_nonce_and_key() {
        let config = SessionConfig::default();
        let csrf = Csrf::new(&[], &config).unwrap();
        let (token, cookie) = csrf.anonymous_token(&HeaderMap::new()).unwrap();
        let cookie = cookie
            .expect("a new nonce cookie")
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.contains("; HttpOnly") && cookie.contains("; Secure"),
            "{cookie}"
        );
        let pair = cookie.split(';').next().unwrap();
        let headers = with_cookie(pair);
        assert!(csrf.verify_anonymous(&headers, &token));
        // The same nonce gives the same token, and no new cookie.
        let (again, none) = csrf.anonymous_token(&headers).unwrap();
        assert_eq!((again.as_str(), none), (token.as_str(), None));

        // Another nonce, no nonce, a garbage nonce, another process's key: refused.
        let (_, other) = csrf.anonymous_token(&HeaderMap::new()).unwrap();
        let other = other
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        assert!(!csrf.verify_anonymous(&with_cookie(&other), &token));
        assert!(!csrf.verify_anonymous(&HeaderMap::new(), &token));
        assert!(!csrf.verify_anonymous(&with_cookie(&format!("{NONCE_COOKIE}=x")), &token));
        let stranger = Csrf::new(&[], &config).unwrap();
        assert!(!stranger.verify_anonymous(&headers, &token));
        for bad in ["", "x", &token[1..], &format!("{token}A")] {
            assert!(!csrf.verify_anonymous(&headers, bad), "{bad}");
        }
    }

    #[test]
    fn configured_keys_are_shared_and_survive_rotation() {
        let config = SessionConfig::default();
        let (old, new) = (random_secret("old"), random_secret("new"));
        let before = Csrf::new(std::slice::from_ref(&old), &config).unwrap();
        let (token, cookie) = before.anonymous_token(&HeaderMap::new()).unwrap();
        let headers = with_cookie(cookie.unwrap().to_str().unwrap().split(';').next().unwrap());
        // A second instance with the same key accepts it; so does the rotated ring.
        let twin = Csrf::new(std::slice::from_ref(&old), &config).unwrap();
        assert!(twin.verify_anonymous(&headers, &token));
        let old_again = SecretKey {
            id: old.id.clone(),
            secret: old.secret.clone(),
        };
        let rotated = Csrf::new(&[new, old_again], &config).unwrap();
        assert!(rotated.verify_anonymous(&headers, &token));
        let (fresh, _) = rotated.anonymous_token(&headers).unwrap();
        assert_ne!(fresh, token, "the newest key signs");
        assert!(!before.verify_anonymous(&headers, &fresh));
    }
}
