//! The SQL stores: each namespace is its own table on one shared server, and the
//! stores take "now" from the fixture's manual clock (it is a bound parameter in
//! every statement), so the clock-driven cases run too. After a case the harness
//! drops the tables it created.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use session_core::{BoxError, ManualClock};
use session_sql_common::{Dialect, SqlStore};

use crate::servers::{self, Backend};
use crate::{Fixture, Harness, Namespace, SetupError};

/// The server's URL: the one given, or the backend's variable.
async fn url(backend: Backend, given: &Option<String>) -> Result<String, SetupError> {
    match given {
        Some(url) => Ok(url.clone()),
        None => Ok(servers::resolve(backend).await?.url().to_owned()),
    }
}

/// The stores a SQL harness opened, by namespace, so that `cleanup` can drop their
/// tables through the same pool. Clones share the map.
struct Tables<D: Dialect>(Arc<Mutex<HashMap<Namespace, SqlStore<D>>>>);

impl<D: Dialect> Tables<D> {
    /// Opens the store of `namespace` on `url` and creates its table. The store is
    /// recorded before the table is created, so a failed migration is cleaned up too.
    async fn open(&self, url: &str, namespace: &Namespace) -> Result<Fixture, SetupError> {
        let clock = ManualClock::starting_now();
        let store = SqlStore::<D>::builder()
            .table_name(namespace.as_str())
            .clock(clock.shared())
            .connect(url)?;
        self.map().insert(namespace.clone(), store.clone());
        store.migrate().await?;
        Ok(Fixture::with_clock(Arc::new(store), clock))
    }

    /// Drops the table (and migration log) of `namespace`, if this harness opened it,
    /// and closes that store's pool.
    async fn drop_table(&self, namespace: &Namespace) -> Result<(), BoxError> {
        let Some(store) = self.map().remove(namespace) else {
            return Ok(());
        };
        let dropped = store.drop_table().await;
        store.close().await;
        Ok(dropped?)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Namespace, SqlStore<D>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<D: Dialect> Default for Tables<D> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<D: Dialect> Clone for Tables<D> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<D: Dialect> fmt::Debug for Tables<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.map().keys()).finish()
    }
}

/// `session-postgres`, one table per namespace (`SESSION_TEST_POSTGRES_URL`),
/// dropped after the case.
#[cfg(feature = "postgres")]
#[derive(Debug, Default, Clone)]
pub struct PostgresHarness {
    url: Option<String>,
    tables: Tables<session_postgres::PgDialect>,
}

#[cfg(feature = "postgres")]
impl PostgresHarness {
    /// A harness for the server at `url`, or at `SESSION_TEST_POSTGRES_URL` when
    /// `None` (skipped when unset, unless required).
    pub fn new(url: Option<String>) -> Self {
        Self {
            url,
            tables: Tables::default(),
        }
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl Harness for PostgresHarness {
    fn name(&self) -> &str {
        "postgres"
    }

    async fn open(&self, namespace: &Namespace) -> Result<Fixture, SetupError> {
        let url = url(Backend::Postgres, &self.url).await?;
        self.tables.open(&url, namespace).await
    }

    async fn cleanup(&self, namespace: &Namespace) -> Result<(), BoxError> {
        self.tables.drop_table(namespace).await
    }
}

/// `session-mysql` (MySQL 8 or MariaDB), one table per namespace
/// (`SESSION_TEST_MYSQL_URL`), dropped after the case.
#[cfg(feature = "mysql")]
#[derive(Debug, Default, Clone)]
pub struct MysqlHarness {
    url: Option<String>,
    tables: Tables<session_mysql::MySqlDialect>,
}

#[cfg(feature = "mysql")]
impl MysqlHarness {
    /// A harness for the server at `url`, or at `SESSION_TEST_MYSQL_URL` when `None`
    /// (skipped when unset, unless required).
    pub fn new(url: Option<String>) -> Self {
        Self {
            url,
            tables: Tables::default(),
        }
    }
}

#[cfg(feature = "mysql")]
#[async_trait]
impl Harness for MysqlHarness {
    fn name(&self) -> &str {
        "mysql"
    }

    async fn open(&self, namespace: &Namespace) -> Result<Fixture, SetupError> {
        let url = url(Backend::Mysql, &self.url).await?;
        self.tables.open(&url, namespace).await
    }

    async fn cleanup(&self, namespace: &Namespace) -> Result<(), BoxError> {
        self.tables.drop_table(namespace).await
    }
}
