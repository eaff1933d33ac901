//! The conformance suite against session-postgres at `SESSION_TEST_POSTGRES_URL`: every case on its own
//! table, with a manual clock (a skip line when the variable is unset; a failure
//! instead when `SESSION_TEST_REQUIRE` names the backend).

conformance_tests::conformance_suite!(conformance_tests::backends::PostgresHarness::new(None));
