//! Helpers for tests that need a database server: [`server_url`] (skip or require),
//! [`tls_server_url`] and [`error_chain`]. The SQL stores' shared integration tests
//! are in the unpublished `session-sql-testing` crate, which builds on these.

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

/// The server URL in `var` with TLS parameters appended (`with_ca` gets the path of
/// the CA certificate in `SESSION_TEST_TLS_CA` and returns the query string that
/// makes the driver verify the server's certificate and name against it).
///
/// `None` after a skip line when either variable is unset — unless
/// `SESSION_TEST_REQUIRE` names `<backend>-tls`, which makes it a failure.
///
/// # Panics
///
/// When a variable is unset but `SESSION_TEST_REQUIRE` demands `<backend>-tls`.
pub fn tls_server_url(
    var: &str,
    backend: &str,
    with_ca: impl FnOnce(&str) -> String,
) -> Option<String> {
    let required = format!("{backend}-tls");
    let url = server_url(var, &required)?;
    let ca = server_url("SESSION_TEST_TLS_CA", &required)?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}{}", with_ca(&ca)))
}

/// `err` and its sources, joined with `": "`, for assertions and failure messages.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}
