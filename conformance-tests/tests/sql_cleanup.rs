//! The SQL harnesses drop every table a case created: running the suite against a
//! shared server leaves nothing behind. Against the servers in
//! `SESSION_TEST_POSTGRES_URL` / `SESSION_TEST_MYSQL_URL` (skipped when unset, unless
//! `SESSION_TEST_REQUIRE` names them).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use conformance_tests::backends::{MysqlHarness, PostgresHarness};
use conformance_tests::servers::{self, Backend};
use conformance_tests::{Fixture, Harness, Namespace, Outcome, SetupError, run_case};
use session_core::{BoxError, SessionInterface, SessionToken};
use session_sql_common::{Dialect, SqlStore};

/// Delegates to a real harness and records the namespaces it was asked to open.
struct Recording<H> {
    inner: H,
    opened: Mutex<Vec<Namespace>>,
}

#[async_trait]
impl<H: Harness> Harness for Recording<H> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn open(&self, namespace: &Namespace) -> Result<Fixture, SetupError> {
        self.opened.lock().unwrap().push(namespace.clone());
        self.inner.open(namespace).await
    }

    async fn cleanup(&self, namespace: &Namespace) -> Result<(), BoxError> {
        self.inner.cleanup(namespace).await
    }
}

async fn leaves_no_table<D: Dialect>(backend: Backend, inner: impl Harness) {
    let url = match servers::resolve(backend).await {
        Ok(urls) => urls.url().to_owned(),
        Err(SetupError::Skip(reason)) => {
            println!("skipped: {reason}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let h = Arc::new(Recording {
        inner,
        opened: Mutex::default(),
    });
    for case in ["namespaces_isolated", "round_trip"] {
        let report = run_case(h.clone(), case).await;
        assert_eq!(report.outcome, Outcome::Passed, "{case}");
    }
    let opened = h.opened.lock().unwrap().clone();
    assert_eq!(opened.len(), 3);
    let key = SessionToken::generate().unwrap().storage_key();
    for ns in opened {
        let store = SqlStore::<D>::builder()
            .table_name(ns.as_str())
            .connect(&url)
            .unwrap();
        assert_eq!(
            store.schema_version().await.unwrap(),
            None,
            "{ns}: migration log left"
        );
        assert!(store.load(&key).await.is_err(), "{ns}: table left");
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_harness_drops_its_tables() {
    leaves_no_table::<session_postgres::PgDialect>(Backend::Postgres, PostgresHarness::new(None))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_harness_drops_its_tables() {
    leaves_no_table::<session_mysql::MySqlDialect>(Backend::Mysql, MysqlHarness::new(None)).await;
}
