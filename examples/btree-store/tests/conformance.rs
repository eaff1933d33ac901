//! The whole conformance suite against `BTreeStore`, one test per case.

use std::sync::Arc;

use async_trait::async_trait;
use conformance_tests::{Fixture, Harness, Namespace, SetupError};
use example_btree_store::BTreeStore;
use session_core::ManualClock;

/// Every namespace gets a new, empty store on its own manual clock.
struct BTreeHarness;

#[async_trait]
impl Harness for BTreeHarness {
    fn name(&self) -> &str {
        "btree"
    }

    async fn open(&self, _namespace: &Namespace) -> Result<Fixture, SetupError> {
        let clock = ManualClock::starting_now();
        let store = BTreeStore::with_clock(clock.shared());
        Ok(Fixture::with_clock(Arc::new(store), clock))
    }
}

conformance_tests::conformance_suite!(BTreeHarness);
