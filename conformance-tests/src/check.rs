//! The vocabulary cases are written in: a context, failures, and checks that say
//! what was expected and what came back.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, Capabilities, Error, NewRecord, SessionInterface, SessionToken, StorageKey,
    StoredRecord, Version,
};

use crate::harness::{Fixture, Harness, Namespace};

/// How a case ends when it does not pass.
#[derive(Debug)]
pub(crate) enum CaseError {
    /// A check failed: the message says what was expected and what came back.
    Fail(String),
    /// The case does not apply to this store (a capability it does not declare, no
    /// injected clock).
    Skip(String),
}

pub(crate) type CaseResult = Result<(), CaseError>;

/// Returns early from a case with a failure message.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::check::CaseError::Fail(format!($($arg)*)))
    };
}

/// Fails the case unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            fail!($($arg)*);
        }
    };
}

/// Fails the case unless `res` is an `Err` matching `pat`.
macro_rules! expect_err {
    ($res:expr, $pat:pat, $($arg:tt)*) => {
        match $res {
            Err($pat) => {}
            Err(e) => fail!(
                "{}: expected Err({}), got Err({:?})",
                format!($($arg)*),
                stringify!($pat),
                e
            ),
            Ok(v) => fail!(
                "{}: expected Err({}), got Ok({:?})",
                format!($($arg)*),
                stringify!($pat),
                v
            ),
        }
    };
}

pub(crate) use {ensure, expect_err, fail};

/// Turns a store error into a case failure that names the operation.
pub(crate) trait OrFail<T> {
    /// `Ok(v)` passes through; `Err(e)` fails the case with `what` and the error.
    fn or_fail(self, what: &str) -> Result<T, CaseError>;
}

impl<T> OrFail<T> for Result<T, Error> {
    fn or_fail(self, what: &str) -> Result<T, CaseError> {
        self.map_err(|e| CaseError::Fail(format!("{what}: expected success, got Err({e:?})")))
    }
}

/// One line describing a loaded record, for failure messages (never the payload).
pub(crate) struct Summary<'a>(pub &'a Option<StoredRecord>);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("None"),
            Some(r) => write!(
                f,
                "Some(version {}, {} bytes, expires_at {})",
                r.version,
                r.payload.len(),
                r.expires_at
            ),
        }
    }
}

/// Where two payloads first differ, for failure messages.
pub(crate) fn payload_diff(expected: &[u8], got: &[u8]) -> Option<String> {
    if expected == got {
        return None;
    }
    let first = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let at = |p: &[u8]| {
        p.get(first)
            .map_or_else(|| "end".to_owned(), |b| format!("0x{b:02x}"))
    };
    Some(format!(
        "expected {} bytes, got {} bytes; first difference at offset {first} (expected {}, got {})",
        expected.len(),
        got.len(),
        at(expected),
        at(got)
    ))
}

/// Whether two deadlines are within one second of each other (stores must keep at
/// least one-second precision).
pub(crate) fn near(a: OffsetDateTime, b: OffsetDateTime) -> bool {
    (a - b).abs() <= Duration::seconds(1)
}

/// A payload of `len` bytes in which every aligned block of 256 bytes holds all 256
/// byte values, in an order that changes from block to block (so a truncated,
/// repeated or shifted payload never compares equal).
pub(crate) fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| {
            let block = (i / 256) as u8;
            (i % 256) as u8 ^ block.wrapping_mul(31) ^ seed
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Everything a running case has: its name, the harness, and its first fixture.
pub(crate) struct Ctx {
    pub(crate) case: &'static str,
    pub(crate) harness: Arc<dyn Harness>,
    pub(crate) fx: Fixture,
    /// Every namespace this case asked the harness for, so the runner can clean
    /// them all up afterwards.
    pub(crate) opened: Opened,
    /// Whether this is a thorough run: the ladders' expensive rungs are climbed too.
    pub(crate) thorough: bool,
}

/// The namespaces a case run has asked the harness for (shared by the runner and the
/// case's task).
#[derive(Clone, Default)]
pub(crate) struct Opened(Arc<Mutex<Vec<Namespace>>>);

impl Opened {
    /// Records `ns` (before `open` is called: a failed `open` may have created
    /// something too).
    pub(crate) fn push(&self, ns: &Namespace) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ns.clone());
    }

    /// The namespaces recorded so far.
    pub(crate) fn all(&self) -> Vec<Namespace> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Ctx {
    /// The store under test.
    pub(crate) fn store(&self) -> &Arc<dyn SessionInterface> {
        &self.fx.store
    }

    /// The store's declared capabilities.
    pub(crate) fn caps(&self) -> Capabilities {
        self.fx.store.capabilities()
    }

    /// "Now" as the store sees it: the fixture clock if any, else the system clock.
    pub(crate) fn now(&self) -> OffsetDateTime {
        now_of(&self.fx)
    }

    /// A record with `payload` whose deadline is `now + offset`.
    pub(crate) fn rec(&self, payload: impl Into<Bytes>, offset: Duration) -> NewRecord {
        NewRecord {
            payload: payload.into(),
            expires_at: self.now() + offset,
        }
    }

    /// Opens one more, separate namespace through the harness.
    pub(crate) async fn open_other(&self) -> Result<Fixture, CaseError> {
        let ns = Namespace::for_case(self.case);
        self.opened.push(&ns);
        self.harness
            .open(&ns)
            .await
            .map_err(|e| CaseError::Fail(format!("opening a second namespace `{ns}` failed: {e}")))
    }

    /// Skips the case unless the store declares `touch`.
    pub(crate) fn need_touch(&self) -> CaseResult {
        if self.caps().touch {
            Ok(())
        } else {
            Err(CaseError::Skip(
                "the store does not declare the touch capability (capabilities_touch_honest checks that touch returns Unsupported)".into(),
            ))
        }
    }

    /// Skips the case unless the store declares `delete_expired`.
    pub(crate) fn need_delete_expired(&self) -> CaseResult {
        if self.caps().delete_expired {
            Ok(())
        } else {
            Err(CaseError::Skip(
                "the store does not declare the delete_expired capability (capabilities_delete_expired_honest checks that it returns Unsupported)".into(),
            ))
        }
    }
}

/// "Now" for a fixture: its clock if any, else the system clock.
pub(crate) fn now_of(fx: &Fixture) -> OffsetDateTime {
    match &fx.clock {
        Some(c) => session_core::Clock::now(c),
        None => OffsetDateTime::now_utc(),
    }
}

/// A fresh random storage key.
pub(crate) fn key() -> Result<StorageKey, CaseError> {
    SessionToken::generate()
        .map(|t| t.storage_key())
        .map_err(|e| CaseError::Fail(format!("the OS random source failed: {e}")))
}

/// A storage key from 64 hex characters the case built itself.
pub(crate) fn key_from(s: &str) -> Result<StorageKey, CaseError> {
    StorageKey::parse(s)
        .ok_or_else(|| CaseError::Fail(format!("internal: {s:?} is not a storage key")))
}

/// Loads `key` and fails unless a live record comes back.
pub(crate) async fn load_live(
    store: &dyn SessionInterface,
    key: &StorageKey,
    what: &str,
) -> Result<StoredRecord, CaseError> {
    match store.load(key).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => fail!("{what}: load expected a live record, got None"),
        Err(e) => fail!("{what}: load expected a live record, got Err({e:?})"),
    }
}

/// Loads `key` and fails unless nothing comes back.
pub(crate) async fn load_none(
    store: &dyn SessionInterface,
    key: &StorageKey,
    what: &str,
) -> CaseResult {
    match store.load(key).await {
        Ok(None) => Ok(()),
        Ok(r) => fail!("{what}: load expected None, got {}", Summary(&r)),
        Err(e) => fail!("{what}: load expected None, got Err({e:?})"),
    }
}

/// Loads `key` and fails unless it holds exactly `payload` at `version`, with a
/// deadline within a second of `expires_at` (when given).
pub(crate) async fn load_exact(
    store: &dyn SessionInterface,
    key: &StorageKey,
    payload: &[u8],
    version: Version,
    expires_at: Option<OffsetDateTime>,
    what: &str,
) -> CaseResult {
    let r = load_live(store, key, what).await?;
    if let Some(diff) = payload_diff(payload, &r.payload) {
        fail!("{what}: payload differs: {diff}");
    }
    ensure!(
        r.version == version,
        "{what}: expected version {version}, got version {}",
        r.version
    );
    if let Some(deadline) = expires_at {
        ensure!(
            near(r.expires_at, deadline),
            "{what}: expected expires_at within 1 s of {deadline}, got {}",
            r.expires_at
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_has_every_byte_in_every_block() {
        let p = pattern(4096, 7);
        for block in p.chunks(256) {
            let mut seen = [false; 256];
            for b in block {
                seen[usize::from(*b)] = true;
            }
            assert!(seen.iter().all(|s| *s));
        }
        // Blocks differ, so a repeated block is noticed.
        assert_ne!(p[..256], p[256..512]);
    }

    #[test]
    fn payload_diff_reports_offsets() {
        assert_eq!(payload_diff(b"abc", b"abc"), None);
        let d = payload_diff(b"abc", b"abd").unwrap();
        assert!(
            d.contains("offset 2") && d.contains("0x63") && d.contains("0x64"),
            "{d}"
        );
        let d = payload_diff(b"abc", b"ab").unwrap();
        assert!(d.contains("offset 2") && d.contains("got end"), "{d}");
    }
}
