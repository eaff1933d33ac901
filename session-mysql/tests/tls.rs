//! TLS (feature `tls-rustls`) against the real server (MariaDB here), which `scripts/services.sh`
//! starts with a certificate for 127.0.0.1 from a throwaway CA: the whole conformance
//! suite over connections that verify the certificate and the host name, and a
//! certificate the default roots do not trust. Needs `SESSION_TEST_MYSQL_URL` and
//! `SESSION_TEST_TLS_CA` (a skip line when unset; a failure instead when
//! `SESSION_TEST_REQUIRE` names `mysql-tls`).

use std::sync::Arc;

use conformance_tests::backends::MysqlHarness;
use session_mysql::MySqlStore;
use session_mysql::sqlx::{self, Connection, MySqlConnection};
use session_sql_common::testing::{error_chain, tls_server_url};

const URL_VAR: &str = "SESSION_TEST_MYSQL_URL";

fn tls_url() -> Option<String> {
    tls_server_url(URL_VAR, "mysql", |ca| {
        format!("ssl-mode=verify_identity&ssl-ca={ca}")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_over_verified_tls() {
    let Some(url) = tls_url() else { return };
    let mut conn = MySqlConnection::connect(&url)
        .await
        .expect("a verified TLS connection");
    let (_, cipher): (String, String) = sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        !cipher.is_empty(),
        "a connection from this URL is not encrypted"
    );
    conn.close().await.unwrap();

    let report = conformance_tests::run_all(Arc::new(MysqlHarness::new(Some(url)))).await;
    assert!(
        report.is_success(),
        "{:#?}",
        report.failures().collect::<Vec<_>>()
    );
    assert!(report.passed > 0);
}

/// Without the test CA the certificate is not trusted: the store fails with a
/// permanent error (a retry meets the same certificate), never a panic or an
/// unverified connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused() {
    let Some(url) = tls_server_url(URL_VAR, "mysql", |_| "ssl-mode=verify_identity".into()) else {
        return;
    };
    let err = MySqlStore::open(&url, "tls_untrusted", None)
        .await
        .expect_err("a certificate from an unknown CA must not be accepted");
    let chain = error_chain(&err);
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    assert!(!err.is_retryable(), "{chain}");
}
