//! How Redis failures become the core [`Error`].
//!
//! The rule: anything a retry may cure (a dropped or refused connection, a timeout, a
//! cluster that is resharding or failing over, a server still loading its data set)
//! is [`Error::retryable`]; anything that will fail the same way again (bad
//! credentials, a missing permission, a protocol surprise) is [`Error::backend`]; a
//! value under one of our keys that is not one of our records is [`Error::Decode`].

use std::time::Duration;

use redis::{ErrorKind, RedisError, ServerErrorKind};
use session_core::{DecodeError, Error};

/// Failures this crate detects itself. They reach callers as the `source` of
/// [`Error::Backend`], so `err.source()?.downcast_ref::<RedisStoreError>()` tells them
/// apart from driver errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The operation did not complete within the configured command timeout
    /// (a stalled or unreachable server). Whether a write took effect is unknown:
    /// a retried create may then see `Collision`, a retried update `Conflict`.
    #[error("redis operation `{operation}` timed out after {after:?}")]
    Timeout {
        /// The store operation, e.g. `"save"`.
        operation: &'static str,
        /// The configured command timeout.
        after: Duration,
    },
    /// Connecting did not complete within the configured connect timeout.
    #[error("connecting to redis timed out after {after:?}")]
    ConnectTimeout {
        /// The configured connect timeout.
        after: Duration,
    },
    /// The server answered with a reply this store never asks for (a proxy or
    /// module in the way, or a script of another version under the same SHA).
    #[error("unexpected reply from redis to `{operation}`")]
    UnexpectedReply {
        /// The store operation, e.g. `"touch"`.
        operation: &'static str,
    },
}

/// Maps a driver error to the core enum.
pub(crate) fn from_redis(err: RedisError) -> Error {
    // `EXECABORT`: the server refused a command of a transaction while queueing it
    // (a redirect, `OOM`, `TRYAGAIN`, …) and ran none of them. The first refusal says
    // why, and whether a retry may cure it.
    if let Some(cause) = exec_abort_cause(&err) {
        return from_redis(cause);
    }
    // A script or command touching a key of another type: the key holds something
    // that is not a record of ours.
    if err.code() == Some("WRONGTYPE") {
        return Error::Decode(DecodeError::Malformed {
            reason: "the key holds a non-string redis value",
        });
    }
    if is_transient(&err) {
        Error::retryable(err)
    } else {
        Error::backend(err)
    }
}

/// The first queued command's refusal inside an aborted transaction, if `err` is one.
pub(crate) fn exec_abort_cause(err: &RedisError) -> Option<RedisError> {
    if err.kind() != ErrorKind::Server(ServerErrorKind::ExecAbort) {
        return None;
    }
    let errors = err.clone().into_server_errors()?;
    let (_, first) = errors.first()?;
    // A bare `EXECABORT` reply (no queued refusal known) stays as it is.
    (first.kind() != Some(ServerErrorKind::ExecAbort)).then(|| RedisError::from(first.clone()))
}

fn is_transient(err: &RedisError) -> bool {
    #[cfg(feature = "tls")]
    if is_certificate_failure(err) {
        return false;
    }
    if err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
    {
        return true;
    }
    matches!(
        err.kind(),
        ErrorKind::ClusterConnectionNotFound
            | ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    // A write reached a replica that was a master before a failover.
                    | ServerErrorKind::ReadOnly
                    // Redirects are followed by the cluster client; one that still
                    // surfaces means the slot map is moving under us.
                    | ServerErrorKind::Moved
                    | ServerErrorKind::Ask
            )
    )
}

/// A TLS handshake that failed over the certificates — an unknown CA, a name the
/// certificate does not cover, an expired one — fails the same way on every retry,
/// although the driver reports it as an I/O error.
#[cfg(feature = "tls")]
pub(crate) fn is_certificate_failure(err: &RedisError) -> bool {
    use std::error::Error as StdError;

    use rustls::Error as Tls;

    // The driver keeps its cause as an `Arc<dyn Error>` (so its errors can be
    // cloned), an I/O error keeps the TLS error inside: look through both.
    fn unwrap_layers<'a>(e: &'a (dyn StdError + 'static)) -> &'a (dyn StdError + 'static) {
        let e: &(dyn StdError + 'static) =
            match e.downcast_ref::<std::sync::Arc<dyn StdError + Send + Sync>>() {
                Some(shared) => &**shared,
                None => e,
            };
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => inner,
            None => e,
        }
    }

    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        let e = unwrap_layers(e);
        if e.is::<rustls::pki_types::InvalidDnsNameError>()
            || matches!(
                e.downcast_ref::<Tls>(),
                Some(
                    Tls::InvalidCertificate(_)
                        | Tls::NoCertificatesPresented
                        | Tls::UnsupportedNameType
                        | Tls::PeerIncompatible(_)
                )
            )
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Maps a `deadpool-redis` checkout failure to the core enum.
pub(crate) fn from_pool(err: deadpool_redis::PoolError) -> Error {
    use deadpool_redis::PoolError;
    match err {
        PoolError::Backend(e) => from_redis(e),
        // Every slot busy for the pool's wait timeout, or connecting timed out.
        PoolError::Timeout(_) => Error::retryable(err),
        PoolError::Closed | PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            Error::backend(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn io_err(kind: io::ErrorKind) -> RedisError {
        RedisError::from(io::Error::new(kind, "test"))
    }

    #[test]
    fn connection_failures_are_retryable() {
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::TimedOut,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert!(from_redis(io_err(kind)).is_retryable(), "{kind:?}");
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn certificate_failures_are_permanent_other_tls_io_errors_are_not() {
        use rustls::{CertificateError, Error as Tls};

        let tls_io = |e: Tls| RedisError::from(io::Error::new(io::ErrorKind::InvalidData, e));
        for e in [
            Tls::InvalidCertificate(CertificateError::UnknownIssuer),
            Tls::InvalidCertificate(CertificateError::Expired),
            Tls::InvalidCertificate(CertificateError::NotValidForName),
            Tls::NoCertificatesPresented,
        ] {
            let shown = e.to_string();
            assert!(!from_redis(tls_io(e.clone())).is_retryable(), "{shown}");
            assert!(!from_redis(RedisError::from(e)).is_retryable(), "{shown}");
        }
        // A connection cut mid-handshake is a network failure like any other.
        assert!(from_redis(tls_io(Tls::HandshakeNotComplete)).is_retryable());
        assert!(from_redis(io_err(io::ErrorKind::ConnectionReset)).is_retryable());
    }

    #[test]
    fn cluster_churn_is_retryable() {
        for kind in [
            ServerErrorKind::TryAgain,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::MasterDown,
            ServerErrorKind::BusyLoading,
            ServerErrorKind::ReadOnly,
        ] {
            let err = RedisError::from((ErrorKind::Server(kind), "test"));
            assert!(from_redis(err).is_retryable(), "{kind:?}");
        }
    }

    #[test]
    fn permanent_failures_are_not_retryable() {
        for kind in [
            ErrorKind::AuthenticationFailed,
            ErrorKind::InvalidClientConfig,
            ErrorKind::Server(ServerErrorKind::NoPerm),
            ErrorKind::Server(ServerErrorKind::ResponseError),
            ErrorKind::Server(ServerErrorKind::CrossSlot),
        ] {
            let err = RedisError::from((kind, "test"));
            let mapped = from_redis(err);
            assert!(
                matches!(
                    mapped,
                    Error::Backend {
                        retryable: false,
                        ..
                    }
                ),
                "{kind:?}: {mapped:?}"
            );
        }
    }
}
