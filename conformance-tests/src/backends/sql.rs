//! The SQL stores: each namespace is its own table on one shared server, and the
//! stores take "now" from the fixture's manual clock (it is a bound parameter in
//! every statement), so the clock-driven cases run too.

use std::sync::Arc;

use async_trait::async_trait;
use session_core::ManualClock;

use crate::servers::{self, Backend};
use crate::{Fixture, Harness, Namespace, SetupError};

/// The server's URL: the one given, or the backend's variable.
async fn url(backend: Backend, given: &Option<String>) -> Result<String, SetupError> {
    match given {
        Some(url) => Ok(url.clone()),
        None => Ok(servers::resolve(backend).await?.url().to_owned()),
    }
}

/// `session-postgres`, one table per namespace (`SESSION_TEST_POSTGRES_URL`).
#[cfg(feature = "postgres")]
#[derive(Debug, Default, Clone)]
pub struct PostgresHarness {
    url: Option<String>,
}

#[cfg(feature = "postgres")]
impl PostgresHarness {
    /// A harness for the server at `url`, or at `SESSION_TEST_POSTGRES_URL` when
    /// `None` (skipped when unset, unless required).
    pub fn new(url: Option<String>) -> Self {
        Self { url }
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
        let clock = ManualClock::starting_now();
        let store =
            session_postgres::PostgresStore::open(&url, namespace.as_str(), Some(clock.shared()))
                .await?;
        Ok(Fixture::with_clock(Arc::new(store), clock))
    }
}

/// `session-mysql` (MySQL 8 or MariaDB), one table per namespace
/// (`SESSION_TEST_MYSQL_URL`).
#[cfg(feature = "mysql")]
#[derive(Debug, Default, Clone)]
pub struct MysqlHarness {
    url: Option<String>,
}

#[cfg(feature = "mysql")]
impl MysqlHarness {
    /// A harness for the server at `url`, or at `SESSION_TEST_MYSQL_URL` when `None`
    /// (skipped when unset, unless required).
    pub fn new(url: Option<String>) -> Self {
        Self { url }
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
        let clock = ManualClock::starting_now();
        let store =
            session_mysql::MySqlStore::open(&url, namespace.as_str(), Some(clock.shared())).await?;
        Ok(Fixture::with_clock(Arc::new(store), clock))
    }
}
