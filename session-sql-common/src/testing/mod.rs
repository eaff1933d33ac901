//! Helpers for tests that need a database server: [`server_url`], and with the
//! `testing` feature the tests both SQL stores share ([`integration`], expanded by
//! [`sql_store_tests!`](crate::sql_store_tests)) and the store-agnostic
//! [`contract`] checks they run.

#[cfg(feature = "testing")]
pub mod contract;
#[cfg(feature = "testing")]
pub mod integration;

/// The server URL in environment variable `var` (read at run time), for a test of
/// backend `backend` (`"postgres"`, `"mysql"`, …).
///
/// When the variable is unset or empty: prints one line naming it and returns `None`
/// (the test skips) — unless `SESSION_TEST_REQUIRE`, a comma-separated list, names
/// `backend`.
///
/// # Panics
///
/// When the variable is unset but `SESSION_TEST_REQUIRE` names `backend`: a required
/// server must fail the test, not skip it.
pub fn server_url(var: &str, backend: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let required = std::env::var("SESSION_TEST_REQUIRE").unwrap_or_default();
            if required.split(',').any(|b| b.trim() == backend) {
                panic!("{var} is not set but SESSION_TEST_REQUIRE demands {backend}");
            }
            println!("skipped: {var} is not set");
            None
        }
    }
}
