//! Mapping sqlx errors onto the core [`Error`].

use std::fmt;
use std::time::Duration;

use session_core::{DecodeError, Error};
use sqlx::error::DatabaseError;

/// What an error means for the caller and for the connection it happened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retrying will not help (bad SQL, missing table, bad credentials).
    Permanent,
    /// Retrying may help; the connection is fine (a lock wait timeout, a pool timeout,
    /// too many connections).
    Retryable,
    /// The connection is gone or unusable (I/O error, server shutdown): retryable, and
    /// the connection — and its idle siblings, which most likely died the same way —
    /// must not be reused.
    ConnectionLost,
    /// The server rolled the statement back to break a deadlock or a serialization
    /// conflict; nothing was written, so the same statement can be re-run at once.
    TransientConflict,
}

impl ErrorClass {
    /// Whether the caller may retry.
    pub fn is_retryable(self) -> bool {
        self != ErrorClass::Permanent
    }
}

/// A backend's own refinement of [`classify`] for server errors: `Some` overrides the
/// SQLSTATE-based default.
pub type DbErrorHook = fn(&dyn DatabaseError) -> Option<ErrorClass>;

/// Classifies a sqlx error. Server errors are judged by SQLSTATE class, which both
/// PostgreSQL and MySQL/MariaDB report: `08` connection exception, `40` transaction
/// rollback (deadlock / serialization), `53` insufficient resources, `57P0x` server
/// shutting down or starting, `HYT00` timeout. `hook` refines that per backend.
pub fn classify(err: &sqlx::Error, hook: DbErrorHook) -> ErrorClass {
    match err {
        #[cfg(feature = "tls-rustls")]
        sqlx::Error::Io(e) if is_certificate_failure(e) => ErrorClass::Permanent,
        #[cfg(all(
            feature = "tls-native-tls",
            not(any(target_vendor = "apple", target_os = "windows"))
        ))]
        sqlx::Error::Tls(e) if openssl_refused_certificate(e.as_ref()) => ErrorClass::Permanent,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => ErrorClass::ConnectionLost,
        sqlx::Error::PoolTimedOut => ErrorClass::Retryable,
        sqlx::Error::Database(db) => hook(db.as_ref()).unwrap_or_else(|| {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            match code.get(..2) {
                Some("08") => ErrorClass::ConnectionLost,
                Some("40") => ErrorClass::TransientConflict,
                Some("53") => ErrorClass::Retryable,
                _ if matches!(code, "57P01" | "57P02" | "57P03") => ErrorClass::ConnectionLost,
                _ if code == "HYT00" => ErrorClass::Retryable,
                _ => ErrorClass::Permanent,
            }
        }),
        _ => ErrorClass::Permanent,
    }
}

/// A TLS handshake that failed over the server's certificate — an unknown CA, a name
/// it does not cover, an expired one — fails the same way on every retry, although
/// sqlx reports it as an I/O error (rustls' error inside).
#[cfg(feature = "tls-rustls")]
fn is_certificate_failure(err: &std::io::Error) -> bool {
    use rustls::Error as Tls;

    matches!(
        err.get_ref().and_then(|inner| inner.downcast_ref::<Tls>()),
        Some(
            Tls::InvalidCertificate(_)
                | Tls::NoCertificatesPresented
                | Tls::UnsupportedNameType
                | Tls::PeerIncompatible(_)
        )
    )
}

/// Whether OpenSSL refused the server's certificate somewhere in `err`'s source
/// chain: an unknown CA, a name it does not cover, an expired one — the same on
/// every retry. With native-tls, sqlx reports every failed handshake as
/// [`sqlx::Error::Tls`] (its source chain: native-tls's error, then OpenSSL's error
/// stack), also one cut short by a server that closed or restarted, which stays a
/// lost connection; the error code tells the two apart.
#[cfg(all(
    feature = "tls-native-tls",
    not(any(target_vendor = "apple", target_os = "windows"))
))]
fn openssl_refused_certificate(err: &(dyn std::error::Error + 'static)) -> bool {
    /// `ERR_LIB_SSL` and `SSL_R_CERTIFICATE_VERIFY_FAILED` (OpenSSL 1.1 and 3: the
    /// "error:0A000086:SSL routines:…:certificate verify failed" of a refused
    /// certificate, which a host-name mismatch reports too).
    const LIB_SSL: std::ffi::c_int = 20;
    const CERTIFICATE_VERIFY_FAILED: std::ffi::c_int = 134;
    std::iter::successors(Some(err), |e| e.source())
        .filter_map(|e| e.downcast_ref::<openssl::error::ErrorStack>())
        .flat_map(openssl::error::ErrorStack::errors)
        .any(|e| e.library_code() == LIB_SSL && e.reason_code() == CERTIFICATE_VERIFY_FAILED)
}

/// Converts a sqlx error into the core [`Error`]: unreadable column values become
/// [`Error::Decode`] (a bad row is never a panic), everything else
/// [`Error::Backend`] with the retry flag from [`classify`].
pub fn to_core(err: sqlx::Error, hook: DbErrorHook) -> Error {
    match err {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            Error::Decode(DecodeError::Malformed {
                reason: "a stored column could not be decoded",
            })
        }
        other => match classify(&other, hook) {
            ErrorClass::Permanent => Error::backend(other),
            _ => Error::retryable(other),
        },
    }
}

/// A stored value that decoded but breaks the schema's invariants (e.g. a negative
/// version).
pub fn malformed(reason: &'static str) -> Error {
    Error::Decode(DecodeError::Malformed { reason })
}

/// The database holds a schema newer than this build knows: the source of the
/// (permanent) [`Error::Backend`] that `migrate()` returns then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaTooNew {
    /// The table whose schema is too new.
    pub table: String,
    /// The version recorded in the database.
    pub found: i64,
    /// The newest version this build can run against.
    pub supported: i64,
}

impl fmt::Display for SchemaTooNew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {:?} has schema version {}, newer than the {} this build supports",
            self.table, self.found, self.supported
        )
    }
}

impl std::error::Error for SchemaTooNew {}

/// A pool that could not hand out a connection in time, as the source of a retryable
/// [`Error::Backend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolTimeout;

impl fmt::Display for PoolTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out waiting for a database connection from the pool")
    }
}

impl std::error::Error for PoolTimeout {}

/// A statement that did not complete within the store's statement timeout
/// ([`PoolSettings::statement_timeout`](crate::PoolSettings::statement_timeout)), as
/// the source of a retryable [`Error::Backend`].
///
/// The client gave up waiting; whether the server applied a write it had already
/// received is unknown (as after any connection loss). The connection it ran on is
/// discarded, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementTimeout {
    /// The timeout that elapsed.
    pub limit: Duration,
}

impl fmt::Display for StatementTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "statement timeout: the database did not answer within {:?}",
            self.limit
        )
    }
}

impl std::error::Error for StatementTimeout {}

impl StatementTimeout {
    /// The sqlx error a timed-out statement is reported as until the lease has seen
    /// it: an I/O error of kind `TimedOut`, which [`classify`] treats as a lost
    /// connection (its state is unknown, so it must not be reused).
    pub fn into_sqlx(self) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, self))
    }

    /// The timeout inside `err`, if `err` is one made by [`into_sqlx`](Self::into_sqlx).
    pub fn from_sqlx(err: &sqlx::Error) -> Option<Self> {
        match err {
            sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                io.get_ref()?.downcast_ref::<Self>().copied()
            }
            _ => None,
        }
    }
}

/// Another process held the schema-migration lock for too long: the source of a
/// retryable [`Error::Backend`] from `migrate()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationLockTimeout {
    /// The table being migrated.
    pub table: String,
}

impl fmt::Display for MigrationLockTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out waiting for the migration lock of table {:?}",
            self.table
        )
    }
}

impl std::error::Error for MigrationLockTimeout {}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_hook(_: &dyn DatabaseError) -> Option<ErrorClass> {
        None
    }

    #[cfg(feature = "tls-rustls")]
    #[test]
    fn certificate_failures_are_permanent_other_tls_io_errors_are_not() {
        use rustls::{CertificateError, Error as Tls};

        let io = |e: Tls| sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        for e in [
            Tls::InvalidCertificate(CertificateError::UnknownIssuer),
            Tls::InvalidCertificate(CertificateError::NotValidForName),
            Tls::NoCertificatesPresented,
        ] {
            assert_eq!(classify(&io(e), no_hook), ErrorClass::Permanent);
        }
        // Cut mid-handshake: a network failure like any other.
        assert_eq!(
            classify(&io(Tls::HandshakeNotComplete), no_hook),
            ErrorClass::ConnectionLost
        );
    }

    #[test]
    fn other_tls_failures_are_lost_connections() {
        // What sqlx reports when a native-tls handshake ends early (no certificate
        // was refused): the server may be restarting.
        let eof = sqlx::Error::Tls("unexpected EOF during handshake".into());
        assert_eq!(classify(&eof, no_hook), ErrorClass::ConnectionLost);
        let reset = sqlx::Error::Tls(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(classify(&reset, no_hook), ErrorClass::ConnectionLost);
    }

    #[test]
    fn io_and_timeouts_are_retryable_decode_is_decode() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&io, no_hook), ErrorClass::ConnectionLost);
        assert!(to_core(io, no_hook).is_retryable());
        assert!(to_core(sqlx::Error::PoolTimedOut, no_hook).is_retryable());
        assert!(!to_core(sqlx::Error::RowNotFound, no_hook).is_retryable());
        assert!(matches!(
            to_core(sqlx::Error::Decode("bad".into()), no_hook),
            Error::Decode(_)
        ));
    }

    #[test]
    fn a_statement_timeout_is_a_lost_connection_and_retryable() {
        let timeout = StatementTimeout {
            limit: Duration::from_millis(300),
        };
        let err = timeout.into_sqlx();
        assert_eq!(classify(&err, no_hook), ErrorClass::ConnectionLost);
        assert_eq!(StatementTimeout::from_sqlx(&err), Some(timeout));
        let other = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert_eq!(StatementTimeout::from_sqlx(&other), None);
        assert!(to_core(err, no_hook).is_retryable());
        assert!(timeout.to_string().contains("statement timeout"));
    }
}
