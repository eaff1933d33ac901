//! The tests of `sql_tls.rs` with the SQL stores' `tls-native-tls` features (this
//! crate's `tls-native-tls` feature; OpenSSL on Linux) instead of rustls: the whole
//! conformance suite over a verified connection, and a refused certificate is a
//! permanent error.

mod sql_over_tls;
