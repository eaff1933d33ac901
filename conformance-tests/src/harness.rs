//! What a store author implements: a [`Harness`] that opens a store for a namespace.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use session_core::{BoxError, ManualClock, SessionInterface, SessionToken};

/// Longest namespace the suite hands out (and [`Namespace::new`] accepts).
pub const MAX_NAMESPACE_LEN: usize = 40;

/// A fresh, unique name for the data of one case run.
///
/// Always 1 to 40 characters of `[a-z0-9_]`, starting with a letter, so it is usable
/// as a Redis key prefix, a SQL table-name suffix or a directory name without
/// escaping. The suite makes one per case run (the case name abbreviated plus random
/// hex), so cases can run in parallel against one shared server.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

/// Why a string is not a valid [`Namespace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidNamespace(pub String);

impl fmt::Display for InvalidNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid namespace {:?}: must be 1 to {MAX_NAMESPACE_LEN} characters of [a-z0-9_] starting with a letter",
            self.0
        )
    }
}

impl std::error::Error for InvalidNamespace {}

impl Namespace {
    /// Validates `s` as a namespace.
    pub fn new(s: impl Into<String>) -> Result<Self, InvalidNamespace> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= MAX_NAMESPACE_LEN
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(s))
        } else {
            Err(InvalidNamespace(s))
        }
    }

    /// A fresh namespace for a run of `case`: `c_` + up to 24 characters of the case
    /// name + `_` + 12 random hex digits. Two calls never return the same name.
    pub fn for_case(case: &str) -> Self {
        let mut abbrev: String = case
            .bytes()
            .filter(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .map(|b| char::from(b.to_ascii_lowercase()))
            .take(24)
            .collect();
        while abbrev.ends_with('_') {
            abbrev.pop();
        }
        let name = if abbrev.is_empty() {
            format!("c_{}", random_hex12())
        } else {
            format!("c_{abbrev}_{}", random_hex12())
        };
        debug_assert!(Self::new(name.clone()).is_ok(), "{name}");
        Self(name)
    }

    /// The namespace as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 12 hex digits: random from the OS where possible, otherwise unique within the
/// process (time, process id and a counter).
fn random_hex12() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    match SessionToken::generate() {
        Ok(t) => t.storage_key().as_str()[..12].to_owned(),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let mix = nanos
                ^ (u64::from(std::process::id()) << 32)
                ^ COUNTER
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15);
            format!("{:012x}", mix & 0xffff_ffff_ffff)
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Namespace({})", self.0)
    }
}

impl AsRef<str> for Namespace {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A store opened for one namespace, as a case sees it.
pub struct Fixture {
    /// The store under test, holding only this namespace's data.
    pub store: Arc<dyn SessionInterface>,
    /// `Some` when the store takes "now" from this clock (the harness creates it and
    /// hands `clock.shared()` to the store). Cases then write deadlines relative to
    /// it and advance it instead of sleeping; clock-driven cases run only then.
    /// `None` for stores on real time (e.g. server time): deadlines are then relative
    /// to the system clock and far from "now" (an hour; live records during a sweep
    /// at least 4 minutes, longer than a case may run), so skew does not matter.
    pub clock: Option<ManualClock>,
}

impl Fixture {
    /// A fixture whose store runs on real time.
    pub fn new(store: Arc<dyn SessionInterface>) -> Self {
        Self { store, clock: None }
    }

    /// A fixture whose store takes "now" from `clock`.
    pub fn with_clock(store: Arc<dyn SessionInterface>, clock: ManualClock) -> Self {
        Self {
            store,
            clock: Some(clock),
        }
    }
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("capabilities", &self.store.capabilities())
            .field("clock", &self.clock)
            .finish()
    }
}

/// Why a harness could not open a store.
#[derive(Debug)]
pub enum SetupError {
    /// The backend is not available here (e.g. no server configured); the case is
    /// skipped. The reason names what to set, e.g. the environment variable.
    Skip(String),
    /// The backend should be available but setting it up failed; the case fails.
    Failed(BoxError),
}

impl SetupError {
    /// A [`SetupError::Failed`] from any error or message.
    pub fn failed(e: impl Into<BoxError>) -> Self {
        SetupError::Failed(e.into())
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Skip(reason) => write!(f, "skipped: {reason}"),
            SetupError::Failed(e) => {
                write!(f, "setup failed: {e}")?;
                let mut source = e.source();
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SetupError {}

impl From<session_core::Error> for SetupError {
    fn from(e: session_core::Error) -> Self {
        SetupError::Failed(Box::new(e))
    }
}

/// How the suite gets stores: one per namespace.
///
/// `open` is called once at the start of every case (twice for the namespace
/// isolation cases), each time with a fresh [`Namespace`]. It must return a store that
/// sees only that namespace's data and starts empty. A harness for a server backend
/// typically resolves the server URL with [`crate::servers`], connects, and prefixes
/// keys or tables with the namespace.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// The backend's name, used in reports (e.g. `"memory"`, `"redis"`).
    fn name(&self) -> &str;

    /// Opens an empty store for `namespace`.
    async fn open(&self, namespace: &Namespace) -> Result<Fixture, SetupError>;

    /// Removes what [`open`](Self::open) left on the backend for `namespace` (a table,
    /// a directory, keys), so running the suite against a shared server leaves
    /// nothing behind.
    ///
    /// The runner calls it once for every namespace a case asked for — also when
    /// `open` failed, and after the case passed, failed, panicked or timed out — once
    /// the case's own task has ended. An error fails the case (its message is added
    /// to the case's own). The default does nothing, which is right for backends
    /// whose data goes away by itself: an in-memory store, keys that all carry a
    /// deadline, a temporary directory the harness deletes.
    async fn cleanup(&self, namespace: &Namespace) -> Result<(), BoxError> {
        let _ = namespace;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_validation() {
        assert!(Namespace::new("a").is_ok());
        assert!(Namespace::new("abc_123").is_ok());
        assert!(Namespace::new("a".repeat(40)).is_ok());
        for bad in ["", "1abc", "_abc", "Abc", "ab-c", "ab c", "ab/c", "é"] {
            assert!(Namespace::new(bad).is_err(), "{bad:?}");
        }
        assert!(Namespace::new("a".repeat(41)).is_err());
    }

    #[test]
    fn namespaces_for_cases_are_valid_and_unique() {
        let long = "a_very_long_case_name_that_goes_on_and_on_and_on_";
        let mut seen = std::collections::HashSet::new();
        for case in [long, "round_trip", "x", "", "___", "Upper-Case"] {
            for _ in 0..50 {
                let ns = Namespace::for_case(case);
                assert!(Namespace::new(ns.as_str()).is_ok(), "{ns:?}");
                assert!(seen.insert(ns.clone()), "duplicate {ns:?}");
            }
        }
        assert!(
            Namespace::for_case("round_trip")
                .as_str()
                .starts_with("c_round_trip_")
        );
    }
}
