//! The one error type of the workspace.

use std::error::Error as StdError;

/// A boxed error from a backend driver, kept as the `source()` of [`Error::Backend`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in a store or in the session manager.
///
/// Store authors return the first five variants from [`SessionInterface`] methods
/// (see each method's contract), wrap driver failures with [`Error::backend`] or
/// [`Error::retryable`], and report unreadable stored bytes as [`Error::Decode`].
///
/// [`SessionInterface`]: crate::SessionInterface
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `save(Create)` found a live record under the key; nothing was written.
    #[error("a live session already exists under this key")]
    Collision,
    /// `save(Update)` found a different version than expected; nothing was written.
    #[error("the session was changed concurrently (version mismatch)")]
    Conflict,
    /// `save(Update)` found no live record (absent or expired); nothing was written.
    #[error("no live session under this key")]
    NotFound,
    /// The store does not implement this operation (and did not declare it as a
    /// capability).
    #[error("operation `{operation}` is not supported by this store")]
    Unsupported {
        /// The operation's name, e.g. `"touch"`.
        operation: &'static str,
    },
    /// The backend (a server, the file system, a driver) failed.
    #[error("session backend failed{}", if *.retryable { " (retryable)" } else { "" })]
    Backend {
        /// Whether trying the same operation again may succeed (a dropped
        /// connection, a timeout), as opposed to a permanent failure (bad
        /// credentials, a missing table).
        retryable: bool,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// Bytes read back from storage (or a session envelope) could not be decoded.
    #[error("stored session could not be decoded")]
    Decode(#[from] DecodeError),
    /// The encoded session exceeds the configured payload limit; nothing was written.
    #[error("session payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Size of the encoded session.
        size: usize,
        /// The configured limit ([`SessionConfig::max_payload_bytes`](crate::SessionConfig::max_payload_bytes)).
        limit: usize,
    },
    /// A client-side session would not fit in a cookie; nothing was sent.
    #[error("session cookie of {size} bytes exceeds the limit of {limit} bytes")]
    CookieTooLarge {
        /// Size of the `Set-Cookie` value.
        size: usize,
        /// The limit browsers keep (4,096 bytes).
        limit: usize,
    },
    /// A value could not be serialized into, or deserialized out of, the session.
    #[error("session value `{key}` could not be (de)serialized as `{type_name}`")]
    Value {
        /// The session key whose value failed.
        key: String,
        /// The Rust type it was read as or written from.
        type_name: &'static str,
        /// What serde_json reported, without the value itself.
        #[source]
        source: JsonError,
    },
    /// Concurrent requests kept changing the session; the save gave up after the
    /// configured number of attempts. Nothing of this request was written.
    #[error("gave up saving the session after {attempts} conflicting attempts")]
    TooManyConflicts {
        /// How many saves were tried.
        attempts: u32,
    },
    /// The operating system's random source failed.
    #[error("the OS random source failed")]
    Randomness(#[source] BoxError),
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Error {
    /// A permanent backend failure (retrying will not help).
    pub fn backend(source: impl Into<BoxError>) -> Self {
        Error::Backend {
            retryable: false,
            source: source.into(),
        }
    }

    /// A transient backend failure (a connection loss, a timeout): retrying may help.
    pub fn retryable(source: impl Into<BoxError>) -> Self {
        Error::Backend {
            retryable: true,
            source: source.into(),
        }
    }

    /// The [`Error::Unsupported`] error for `operation`.
    pub fn unsupported(operation: &'static str) -> Self {
        Error::Unsupported { operation }
    }

    /// Whether the same call may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                retryable: true,
                ..
            } | Error::Randomness(_)
                | Error::TooManyConflicts { .. }
        )
    }
}

/// Why stored bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The record or envelope carries a format version this build does not know.
    #[error("unknown format version {0}")]
    UnknownVersion(u64),
    /// The bytes are not a well-formed record or envelope.
    #[error("malformed stored data: {reason}")]
    Malformed {
        /// What was wrong, in a few words (never containing the data itself).
        reason: &'static str,
    },
    /// The bytes are not valid JSON for the session envelope.
    #[error("malformed session envelope")]
    Json(#[source] JsonError),
}

/// What serde_json reported about a value or an envelope, without the data.
///
/// serde_json's own messages quote the offending input (`invalid type: string
/// "…", expected u64`), and error chains end up in logs; a session value may be a
/// token or personal data. This keeps what helps debugging — the kind of failure and
/// where in the JSON — and drops the rest.
///
/// ```
/// # use session_core::JsonError;
/// let serde = serde_json::from_str::<u64>(r#""secret""#).unwrap_err();
/// let err = JsonError::from(serde);
/// assert_eq!(err.to_string(), "JSON of another type than expected (line 1, column 8)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind}{}", position(*.line, *.column))]
pub struct JsonError {
    /// What went wrong.
    pub kind: JsonErrorKind,
    /// 1-based line of the failure in the input; 0 when serializing.
    pub line: usize,
    /// 1-based column of the failure in the input; 0 when serializing.
    pub column: usize,
}

/// The kind of a [`JsonError`] (serde_json's `Category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// Not JSON.
    #[error("malformed JSON")]
    Syntax,
    /// Valid JSON of another shape than the Rust type (or a value serde cannot
    /// represent, when serializing).
    #[error("JSON of another type than expected")]
    Data,
    /// The input ended in the middle of a value.
    #[error("JSON that ends early")]
    Eof,
    /// Reading or writing failed.
    #[error("an I/O failure")]
    Io,
}

fn position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (line {line}, column {column})")
    }
}

impl From<serde_json::Error> for JsonError {
    fn from(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let kind = match e.classify() {
            Category::Syntax => JsonErrorKind::Syntax,
            Category::Data => JsonErrorKind::Data,
            Category::Eof => JsonErrorKind::Eof,
            Category::Io => JsonErrorKind::Io,
        };
        Self {
            kind,
            line: e.line(),
            column: e.column(),
        }
    }
}

/// An invalid [`SessionConfig`](crate::SessionConfig), reported when it is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is empty or contains characters not allowed in a cookie name.
    #[error("invalid cookie name {0:?}: must be a non-empty RFC 6265 token")]
    CookieName(String),
    /// The cookie path does not start with `/` or contains `;` or control characters.
    #[error("invalid cookie path {0:?}")]
    CookiePath(String),
    /// The cookie domain contains characters not allowed in a domain attribute.
    #[error("invalid cookie domain {0:?}")]
    CookieDomain(String),
    /// A lifetime or period is zero or negative.
    #[error("{which} must be positive")]
    NonPositiveLifetime {
        /// `"idle lifetime"`, `"absolute lifetime"`, `"rotation period"` or
        /// `"rotation grace"`.
        which: &'static str,
    },
    /// A lifetime, period or grace window is longer than
    /// [`SessionConfig::MAX_LIFETIME`](crate::SessionConfig::MAX_LIFETIME).
    #[error("{which} must be at most 10 years")]
    LifetimeTooLong {
        /// `"idle lifetime"`, `"absolute lifetime"`, `"rotation period"` or
        /// `"rotation grace"`.
        which: &'static str,
    },
    /// The absolute lifetime is shorter than the idle lifetime.
    #[error("absolute lifetime must not be shorter than the idle lifetime")]
    AbsoluteShorterThanIdle,
    /// `SameSite=None` requires `Secure` in current browsers.
    #[error("SameSite=None requires the Secure attribute")]
    SameSiteNoneWithoutSecure,
    /// `Partitioned` cookies must be `Secure`.
    #[error("Partitioned cookies require the Secure attribute")]
    PartitionedWithoutSecure,
    /// A `__Secure-` or `__Host-` cookie name without the attributes browsers require
    /// for it (`Secure`; for `__Host-` also `Path=/` and no `Domain`). Browsers refuse
    /// to store such a cookie, so no session would ever stick.
    #[error("a cookie named {prefix}… requires {requirement}")]
    CookiePrefix {
        /// `"__Secure-"` or `"__Host-"`.
        prefix: &'static str,
        /// What the prefix requires that the configuration lacks.
        requirement: &'static str,
    },
    /// The refresh threshold is not a share in `[0, 1)` (negative, 1 or more, or
    /// not a number).
    #[error("the refresh threshold must be at least 0 and less than 1")]
    RefreshThreshold,
    /// The payload limit is zero.
    #[error("the payload limit must be at least 1 byte")]
    ZeroPayloadLimit,
    /// The conflict retry budget is zero.
    #[error("at least one save attempt must be allowed")]
    ZeroSaveAttempts,
    /// A store-specific setting is invalid (a key prefix, a table name, a directory).
    #[error("invalid {setting}: {reason}")]
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only transient failures are retryable: a retryable backend failure, the OS random source, and a conflict budget used up; every verdict of the store contract and every configuration, decode or size error is not.
    #[test]
    fn only_transient_failures_are_retryable() {
        let json = JsonError {
            kind: JsonErrorKind::Data,
            line: 1,
            column: 1,
        };
        let retryable = [
            Error::retryable("connection reset"),
            Error::Randomness("getrandom failed".into()),
            Error::TooManyConflicts { attempts: 16 },
        ];
        let permanent = [
            Error::Collision,
            Error::Conflict,
            Error::NotFound,
            Error::unsupported("touch"),
            Error::backend("bad credentials"),
            Error::Decode(DecodeError::UnknownVersion(2)),
            Error::Decode(DecodeError::Malformed { reason: "short" }),
            Error::Decode(DecodeError::Json(json)),
            Error::PayloadTooLarge { size: 2, limit: 1 },
            Error::CookieTooLarge {
                size: 5000,
                limit: 4096,
            },
            Error::Value {
                key: "k".into(),
                type_name: "u64",
                source: json,
            },
            Error::Config(ConfigError::ZeroSaveAttempts),
        ];
        for e in &retryable {
            assert!(e.is_retryable(), "{e:?}");
        }
        for e in &permanent {
            assert!(!e.is_retryable(), "{e:?}");
        }
    }
}
