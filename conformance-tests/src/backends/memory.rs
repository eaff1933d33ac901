use std::sync::Arc;

use async_trait::async_trait;
use session_core::ManualClock;
use session_memory::MemoryStore;

use crate::{Fixture, Harness, Namespace, SetupError};

/// `session-memory` on a manual clock; every namespace is a new store.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryHarness;

#[async_trait]
impl Harness for MemoryHarness {
    fn name(&self) -> &str {
        "memory"
    }

    async fn open(&self, _namespace: &Namespace) -> Result<Fixture, SetupError> {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::with_clock(clock.shared());
        Ok(Fixture::with_clock(Arc::new(store), clock))
    }
}
