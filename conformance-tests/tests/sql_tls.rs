//! The SQL stores over TLS with their `tls-rustls` features (this crate's `tls`
//! feature) against the real servers, which `scripts/services.sh` starts with a
//! certificate for 127.0.0.1 from a throwaway CA: a connection from the verifying URL
//! is encrypted, the whole conformance suite passes over it, and without the CA the
//! certificate is refused with a permanent error. `sql_native_tls.rs` runs the same
//! tests with native-tls. Needs the servers' variables and `SESSION_TEST_TLS_CA` (a
//! skip line when unset; a failure instead when `SESSION_TEST_REQUIRE` names
//! `postgres-tls` / `mysql-tls`).

mod sql_over_tls;
