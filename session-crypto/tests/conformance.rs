//! The full conformance suite over `EncryptedStore`, wrapping `session-memory` (on
//! a manual clock and on the system clock) and `session-file`. The wrapper must
//! keep every clause of the contract of the store it wraps.

use std::sync::Arc;

use async_trait::async_trait;
use conformance_tests::{Fixture, Harness, Namespace, SetupError};
use session_core::{ManualClock, SessionInterface};
use session_crypto::{EncryptedStore, Key, KeyRing};
use session_file::FileStore;
use session_memory::MemoryStore;

/// A ring of two keys, so the suite runs on a rotated ring.
fn ring() -> KeyRing {
    KeyRing::from_keys([
        Key::new("new", [0x5a; 32]).expect("valid key"),
        Key::new("old", [0xa5; 32]).expect("valid key"),
    ])
    .expect("valid ring")
}

fn encrypted(inner: Arc<dyn SessionInterface>) -> Arc<dyn SessionInterface> {
    Arc::new(EncryptedStore::new(inner, ring()))
}

struct MemoryManualClock;

#[async_trait]
impl Harness for MemoryManualClock {
    fn name(&self) -> &str {
        "encrypted memory (manual clock)"
    }

    async fn open(&self, _namespace: &Namespace) -> Result<Fixture, SetupError> {
        let clock = ManualClock::starting_now();
        let inner = Arc::new(MemoryStore::with_clock(clock.shared()));
        Ok(Fixture::with_clock(encrypted(inner), clock))
    }
}

struct MemorySystemClock;

#[async_trait]
impl Harness for MemorySystemClock {
    fn name(&self) -> &str {
        "encrypted memory (system clock)"
    }

    async fn open(&self, _namespace: &Namespace) -> Result<Fixture, SetupError> {
        Ok(Fixture::new(encrypted(Arc::new(MemoryStore::new()))))
    }
}

/// One temporary directory per test; each namespace is a sub-directory of it.
struct File {
    root: tempfile::TempDir,
}

impl File {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().expect("a temporary directory"),
        }
    }
}

#[async_trait]
impl Harness for File {
    fn name(&self) -> &str {
        "encrypted file (manual clock)"
    }

    async fn open(&self, namespace: &Namespace) -> Result<Fixture, SetupError> {
        let clock = ManualClock::starting_now();
        let inner = FileStore::builder(self.root.path().join(namespace.as_str()))
            .clock(clock.shared())
            .open()
            .await?;
        Ok(Fixture::with_clock(encrypted(Arc::new(inner)), clock))
    }
}

mod memory_manual_clock {
    use super::*;
    conformance_tests::conformance_suite!(MemoryManualClock);
}

mod memory_system_clock {
    use super::*;
    conformance_tests::conformance_suite!(MemorySystemClock);
}

mod file {
    use super::*;
    conformance_tests::conformance_suite!(File::new());
}

/// `run_all` agrees: every case passes over the encrypted memory store except the
/// one that needs a native-TTL server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes() {
    let report = conformance_tests::run_all(Arc::new(MemoryManualClock)).await;
    let failures: Vec<_> = report.failures().collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(report.passed + 1, report.cases.len(), "{report:#?}");
}
