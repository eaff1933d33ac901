//! The SQL TLS tests, shared by `sql_tls.rs` (the stores' `tls-rustls`) and
//! `sql_native_tls.rs` (their `tls-native-tls`): each builds this module with one
//! TLS stack and runs every test below over it.

use std::future::Future;
use std::sync::Arc;

use conformance_tests::Harness;
use conformance_tests::backends::{MysqlHarness, PostgresHarness};
use session_mysql::sqlx::{Connection as _, MySqlConnection};
use session_postgres::sqlx::{self, PgConnection};
use session_sql_common::testing::{error_chain, tls_server_url};
use session_sql_common::{Dialect, SqlStore};

/// One database: its URL variable, its name in `SESSION_TEST_REQUIRE` (plus `-tls`),
/// and the URL parameters that verify the certificate and the host name.
struct Db {
    var: &'static str,
    backend: &'static str,
    verify: &'static str,
    ca_param: &'static str,
}

const POSTGRES: Db = Db {
    var: "SESSION_TEST_POSTGRES_URL",
    backend: "postgres",
    verify: "sslmode=verify-full",
    ca_param: "sslrootcert",
};

const MYSQL: Db = Db {
    var: "SESSION_TEST_MYSQL_URL",
    backend: "mysql",
    verify: "ssl-mode=verify_identity",
    ca_param: "ssl-ca",
};

impl Db {
    /// The URL that verifies against the test CA (`with_ca`) or the default roots.
    fn url(&self, with_ca: bool) -> Option<String> {
        tls_server_url(self.var, self.backend, |ca| {
            if with_ca {
                format!("{}&{}={ca}", self.verify, self.ca_param)
            } else {
                self.verify.to_owned()
            }
        })
    }
}

/// A connection from the verifying URL is encrypted (`encrypted` asks the server),
/// and the whole suite passes through `harness(url)`.
async fn suite_over_tls<H, E, Fut>(db: Db, harness: fn(Option<String>) -> H, encrypted: E)
where
    H: Harness,
    E: FnOnce(String) -> Fut,
    Fut: Future<Output = bool>,
{
    let Some(url) = db.url(true) else { return };
    assert!(
        encrypted(url.clone()).await,
        "a connection from {url} is not encrypted"
    );
    let report = conformance_tests::run_all(Arc::new(harness(Some(url)))).await;
    assert!(
        report.is_success(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    assert!(report.passed > 0);
}

/// Without the test CA, the store refuses the certificate with a permanent error
/// (a retry meets the same certificate), never a panic or an unverified connection.
async fn untrusted_certificate_is_refused<D: Dialect>(db: Db) {
    let Some(url) = db.url(false) else { return };
    let err = SqlStore::<D>::open(&url, "tls_untrusted", None)
        .await
        .expect_err("a certificate from an unknown CA must not be accepted");
    let chain = error_chain(&err);
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    assert!(!err.is_retryable(), "{chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_suite_over_verified_tls() {
    suite_over_tls(POSTGRES, PostgresHarness::new, |url| async move {
        let mut conn = PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_suite_over_verified_tls() {
    suite_over_tls(MYSQL, MysqlHarness::new, |url| async move {
        let mut conn = MySqlConnection::connect(&url).await.unwrap();
        let (_, cipher): (String, String) = sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        !cipher.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_an_untrusted_certificate() {
    untrusted_certificate_is_refused::<session_postgres::PgDialect>(POSTGRES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_refuses_an_untrusted_certificate() {
    untrusted_certificate_is_refused::<session_mysql::MySqlDialect>(MYSQL).await;
}
