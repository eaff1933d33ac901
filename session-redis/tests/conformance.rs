//! The conformance suite against `session-redis`, on a standalone server and on a
//! cluster (`SESSION_TEST_REDIS_URL`, `SESSION_TEST_REDIS_CLUSTER_URLS`; each case
//! prints a skip line when its variable is unset, and fails instead when
//! `SESSION_TEST_REQUIRE` names the backend). Every case uses its own key prefix.
//! Each runs twice: on one connection (the default), and on several used in turn
//! (`RedisConfig::pool_size`), where consecutive operations of a case go over
//! different connections.

mod common;

use common::Server;
use conformance_tests::backends::RedisHarness;
use conformance_tests::servers::Backend;

/// The harness for `server` with `pool_size` connections, or (when the server's
/// variable is unset) the plain one, which skips or fails as the environment says.
fn pooled(server: Server, pool_size: usize) -> RedisHarness {
    let (backend, fallback): (Backend, fn() -> RedisHarness) = match server {
        Server::Standalone => (Backend::Redis, RedisHarness::standalone),
        Server::Cluster => (Backend::RedisCluster, RedisHarness::cluster),
    };
    match server.config("conformance") {
        Some(config) => RedisHarness::from_config(backend, config.pool_size(pool_size)),
        None => fallback(),
    }
}

mod standalone {
    conformance_tests::conformance_suite!(conformance_tests::backends::RedisHarness::standalone());
}

mod cluster {
    conformance_tests::conformance_suite!(conformance_tests::backends::RedisHarness::cluster());
}

mod standalone_pool_of_3 {
    conformance_tests::conformance_suite!(super::pooled(super::Server::Standalone, 3));
}

mod cluster_pool_of_2 {
    conformance_tests::conformance_suite!(super::pooled(super::Server::Cluster, 2));
}
