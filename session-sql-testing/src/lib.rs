//! Test support of the sqlx session stores, used only by the tests of
//! `session-postgres` and `session-mysql` (a path-only dev-dependency; this crate is
//! not published).
//!
//! - [`integration`]: the integration tests both stores run (schema and migrations,
//!   pooling, faults, bulk purge), generic over a [`TestServer`](integration::TestServer)
//!   that supplies the per-database SQL, and expanded into test functions by
//!   [`sql_store_tests!`].
//! - [`contract`]: the store-agnostic checks among them that the shared conformance
//!   suite does not make (microsecond deadlines, more than one purge batch, …).
//! - [`round_trips`]: a TCP proxy that counts a client's round trips to its server,
//!   for the tests of what one store operation costs on the wire. It parses no
//!   protocol, so session-redis's tests use it too (a path-only dev-dependency; a
//!   crate of its own could not be a dependency here, as `cargo package` resolves an
//!   unpublished crate's dependencies among the published ones).
//!
//! Whether a test runs, skips or fails without its server follows
//! `session_sql_common::testing::server_url`.

pub mod contract;
pub mod integration;
pub mod round_trips;
