//! The conformance suite against `session-redis`, on a standalone server and on a
//! cluster (`SESSION_TEST_REDIS_URL`, `SESSION_TEST_REDIS_CLUSTER_URLS`; each case
//! prints a skip line when its variable is unset, and fails instead when
//! `SESSION_TEST_REQUIRE` names the backend). Every case uses its own key prefix.

mod standalone {
    conformance_tests::conformance_suite!(conformance_tests::backends::RedisHarness::standalone());
}

mod cluster {
    conformance_tests::conformance_suite!(conformance_tests::backends::RedisHarness::cluster());
}
