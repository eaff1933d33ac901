//! The conformance suite against session-mysql at `SESSION_TEST_MYSQL_URL`: every case on its own
//! table, with a manual clock (a skip line when the variable is unset; a failure
//! instead when `SESSION_TEST_REQUIRE` names the backend).

conformance_tests::conformance_suite!(conformance_tests::backends::MysqlHarness::new(None));
