//! The full conformance suite over `EncryptedStore`, wrapping `session-memory` (on
//! a manual clock and on the system clock) and `session-file`. The wrapper must
//! keep every clause of the contract of the store it wraps.

use std::sync::Arc;

use async_trait::async_trait;
use conformance_tests::{Fixture, Harness, Namespace, SetupError};
use session_core::{ManualClock, SessionInterface};
use session_crypto::{EncryptedStore, Key, KeyRing, Migration};
use session_file::FileStore;
use session_memory::MemoryStore;
use sha2::{Digest, Sha256};

/// A fixed, high-entropy secret per label (SHA-256 of it).
fn secret(label: &str) -> [u8; 32] {
    Sha256::digest(format!("session-crypto conformance key {label}")).into()
}

/// A ring of two keys, so the suite runs on a rotated ring.
fn ring() -> KeyRing {
    KeyRing::from_keys([
        Key::new("new", secret("new")).expect("valid key"),
        Key::new("old", secret("old")).expect("valid key"),
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

/// The mode an operator runs for days while switching encryption on
/// (`Migration::ToEncrypted`) keeps the whole contract too (one `run_all`, not a
/// test per case, to keep the default run short).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes_while_migrating_to_encrypted() {
    struct Migrating;

    #[async_trait]
    impl Harness for Migrating {
        fn name(&self) -> &str {
            "encrypted memory, Migration::ToEncrypted (manual clock)"
        }

        async fn open(&self, _namespace: &Namespace) -> Result<Fixture, SetupError> {
            let clock = ManualClock::starting_now();
            let inner = Arc::new(MemoryStore::with_clock(clock.shared()));
            let store = EncryptedStore::builder(inner, ring())
                .migration(Migration::ToEncrypted)
                .build();
            Ok(Fixture::with_clock(Arc::new(store), clock))
        }
    }

    let report = conformance_tests::run_all(Arc::new(Migrating)).await;
    let failures: Vec<_> = report.failures().collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(report.passed + 1, report.cases.len(), "{report:#?}");
}
