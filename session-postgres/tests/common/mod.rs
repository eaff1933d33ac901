//! Shared setup of the integration tests: a fresh table per test on the server named
//! by `SESSION_TEST_POSTGRES_URL`, so tests run in parallel against one server.
#![allow(dead_code)] // each test binary uses a different part

use session_core::ManualClock;
use session_postgres::PostgresStore;
use session_sql_common::contract::key;
use session_sql_common::testing::server_url;

/// The server URL, or `None` (after printing a skip line) when unset.
pub fn url() -> Option<String> {
    server_url("SESSION_TEST_POSTGRES_URL", "postgres")
}

/// A table name unique to this test run.
pub fn table(tag: &str) -> String {
    format!("t_{tag}_{}", &key().as_str()[..12])
}

/// A migrated store on a fresh table with a manual clock.
pub async fn store(tag: &str) -> Option<(PostgresStore, ManualClock)> {
    let url = url()?;
    let clock = ManualClock::starting_now();
    let store = PostgresStore::open(&url, &table(tag), Some(clock.shared()))
        .await
        .expect("open store");
    Some((store, clock))
}
