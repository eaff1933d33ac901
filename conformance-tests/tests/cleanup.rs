//! The runner calls `Harness::cleanup` for every namespace a case asked for, whatever
//! the case's outcome, and a failed cleanup fails the case.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use conformance_tests::{Fixture, Harness, Namespace, Outcome, SetupError, run_all, run_case};
use session_core::BoxError;
use session_memory::MemoryStore;

/// A memory harness that records what it was asked to open and to clean up, and can
/// be told to fail either.
#[derive(Default)]
struct Recording {
    opened: Mutex<Vec<Namespace>>,
    cleaned: Mutex<Vec<Namespace>>,
    fail_open: bool,
    fail_cleanup: bool,
}

impl Recording {
    fn opened(&self) -> Vec<Namespace> {
        let mut v = self.opened.lock().unwrap().clone();
        v.sort();
        v
    }

    fn cleaned(&self) -> Vec<Namespace> {
        let mut v = self.cleaned.lock().unwrap().clone();
        v.sort();
        v
    }
}

#[async_trait]
impl Harness for Recording {
    fn name(&self) -> &str {
        "recording"
    }

    async fn open(&self, namespace: &Namespace) -> Result<Fixture, SetupError> {
        self.opened.lock().unwrap().push(namespace.clone());
        if self.fail_open {
            return Err(SetupError::failed("open refused on purpose"));
        }
        Ok(Fixture::new(Arc::new(MemoryStore::new())))
    }

    async fn cleanup(&self, namespace: &Namespace) -> Result<(), BoxError> {
        self.cleaned.lock().unwrap().push(namespace.clone());
        if self.fail_cleanup {
            return Err("cleanup refused on purpose".into());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_opened_namespace_is_cleaned_up_once() {
    let h = Arc::new(Recording::default());
    let report = run_case(h.clone(), "namespaces_isolated").await;
    assert_eq!(report.outcome, Outcome::Passed);
    assert_eq!(h.opened().len(), 2, "the case opens a second namespace");
    assert_eq!(h.cleaned(), h.opened());

    let h = Arc::new(Recording::default());
    let report = run_all(h.clone()).await;
    assert!(
        report.is_success(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    let opened = h.opened();
    assert!(opened.len() > conformance_tests::cases().len());
    assert_eq!(h.cleaned(), opened);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cleanup_fails_a_passing_case() {
    let h = Arc::new(Recording {
        fail_cleanup: true,
        ..Recording::default()
    });
    let report = run_case(h.clone(), "round_trip").await;
    let Outcome::Failed(msg) = report.outcome else {
        panic!("expected a failure, got {:?}", report.outcome);
    };
    let ns = &h.opened()[0];
    assert!(
        msg.contains(&format!(
            "cleaning up namespace `{ns}` failed: cleanup refused on purpose"
        )),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_whose_open_failed_is_cleaned_up_too() {
    let h = Arc::new(Recording {
        fail_open: true,
        ..Recording::default()
    });
    let report = run_case(h.clone(), "round_trip").await;
    assert!(matches!(report.outcome, Outcome::Failed(_)), "{report:?}");
    assert_eq!(h.opened().len(), 1);
    assert_eq!(h.cleaned(), h.opened());
}
