//! [`MySqlStore`] and its builder.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use session_core::time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use session_core::{
    Bytes, Capabilities, ConfigError, Error, FIRST_VERSION, NewRecord, SaveMode, SessionInterface,
    SharedClock, StorageKey, StoredRecord, Version, system_clock,
};
use session_sql_common::error::{ErrorClass, malformed};
use session_sql_common::{ConnectionSource, DEFAULT_DELETE_BATCH, Lease, PoolSettings, TableName};
use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlRow};
use sqlx::{AssertSqlSafe, MySqlConnection, Row};
use time::macros::datetime;

use crate::migrate;
use crate::sql::Statements;

/// How often a statement the server rolled back as a deadlock victim is re-run before
/// the (retryable) error is returned.
const CONFLICT_ATTEMPTS: u32 = 5;

/// A MySQL / MariaDB [`SessionInterface`]: one row per session in a table of your choice.
///
/// Cheap to clone (clones share the pool). "Now" comes from the store's
/// [`Clock`](session_core::Clock) — the application's clock, passed to every statement
/// as a parameter — never from the database server's `now()`.
#[derive(Debug, Clone)]
pub struct MySqlStore {
    source: ConnectionSource<MySqlConnection>,
    sql: Arc<Statements>,
    table: TableName,
    clock: SharedClock,
    delete_batch: u32,
}

/// Configures a [`MySqlStore`]; from [`MySqlStore::builder`].
#[derive(Debug, Clone)]
pub struct MySqlStoreBuilder {
    table: String,
    clock: SharedClock,
    pool: PoolSettings,
    delete_batch: u32,
}

impl Default for MySqlStoreBuilder {
    fn default() -> Self {
        Self {
            table: crate::DEFAULT_TABLE.to_owned(),
            clock: system_clock(),
            pool: PoolSettings::default(),
            delete_batch: DEFAULT_DELETE_BATCH,
        }
    }
}

impl MySqlStoreBuilder {
    /// The table to keep sessions in (default `sessions`). Validated when the store is
    /// built: 1–48 characters of `[a-z0-9_]`, not starting with a digit.
    pub fn table_name(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The clock that decides expiry (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// All pool settings at once (ignored by [`with_pool`](Self::with_pool)).
    pub fn pool_settings(mut self, settings: PoolSettings) -> Self {
        self.pool = settings;
        self
    }

    /// Most connections open at once (default 16).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.pool.max_connections = n;
        self
    }

    /// How long an operation waits for a free connection before it fails with a
    /// retryable error (default 10 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.pool.acquire_timeout = Some(timeout);
        self
    }

    /// Rows one `delete_expired` statement removes at most (default 1,000; at least 1).
    pub fn delete_batch_size(mut self, rows: u32) -> Self {
        self.delete_batch = rows.max(1);
        self
    }

    /// Builds a store on its own ping-free pool for the server at `url`
    /// (`mysql://user:password@host:port/database?ssl-mode=…`). No connection is
    /// opened until the first operation; call [`MySqlStore::migrate`] first.
    pub fn connect(self, url: &str) -> Result<MySqlStore, Error> {
        let options: MySqlConnectOptions = url.parse().map_err(|e: sqlx::Error| {
            Error::Config(ConfigError::Invalid {
                setting: "database url",
                reason: e.to_string(),
            })
        })?;
        self.connect_with(options)
    }

    /// Like [`connect`](Self::connect), with sqlx connect options.
    pub fn connect_with(self, options: MySqlConnectOptions) -> Result<MySqlStore, Error> {
        let source = ConnectionSource::managed(options, self.pool)?;
        self.build(source)
    }

    /// Builds a store on a caller's `sqlx::MySqlPool`. That pool keeps its own
    /// behaviour, including sqlx's ping on every release (see the crate docs on why the
    /// built-in pool is faster).
    pub fn with_pool(self, pool: MySqlPool) -> Result<MySqlStore, Error> {
        self.build(ConnectionSource::Sqlx(pool))
    }

    fn build(self, source: ConnectionSource<MySqlConnection>) -> Result<MySqlStore, Error> {
        let table = TableName::new(&self.table)?;
        Ok(MySqlStore {
            source,
            sql: Arc::new(Statements::new(&table)),
            table,
            clock: self.clock,
            delete_batch: self.delete_batch,
        })
    }
}

impl MySqlStore {
    /// A builder with the defaults: table `sessions`, system clock, 16 connections.
    pub fn builder() -> MySqlStoreBuilder {
        MySqlStoreBuilder::default()
    }

    /// Connects to `url`, keeps sessions in `table` and runs [`migrate`](Self::migrate):
    /// the one call a test harness (or a simple application) needs. `clock` defaults to
    /// the system clock.
    pub async fn open(url: &str, table: &str, clock: Option<SharedClock>) -> Result<Self, Error> {
        let mut builder = Self::builder().table_name(table);
        if let Some(clock) = clock {
            builder = builder.clock(clock);
        }
        let store = builder.connect(url)?;
        store.migrate().await?;
        Ok(store)
    }

    /// Creates or upgrades the table to [`SCHEMA_VERSION`](crate::SCHEMA_VERSION) and
    /// records the version in `<table>_migrations`. Idempotent and safe to call from
    /// several processes at once. A database already on a newer version than this
    /// build knows is a permanent [`Error::Backend`] whose source is a
    /// [`SchemaTooNew`](session_sql_common::SchemaTooNew).
    pub async fn migrate(&self) -> Result<i64, Error> {
        let mut lease = self.lease().await?;
        let r = migrate::run(lease.begin(), &self.table).await;
        match lease.finish(r)? {
            migrate::Outcome::Done(v) => Ok(v),
            migrate::Outcome::TooNew(e) => Err(Error::backend(e)),
            migrate::Outcome::LockTimeout(e) => Err(Error::retryable(e)),
        }
    }

    /// The schema version recorded for this table, `None` if it was never migrated.
    pub async fn schema_version(&self) -> Result<Option<i64>, Error> {
        let mut lease = self.lease().await?;
        let r = migrate::version(lease.begin(), &self.table).await;
        lease.finish(r)
    }

    /// Drops the table and its migration log — every session in it is gone. For
    /// tests and tear-down of per-test namespaces.
    pub async fn drop_table(&self) -> Result<(), Error> {
        let mut lease = self.lease().await?;
        let r = migrate::drop_all(lease.begin(), &self.table).await;
        lease.finish(r)
    }

    /// The table this store uses.
    pub fn table_name(&self) -> &str {
        self.table.as_str()
    }

    /// Closes the pool. Operations after this fail with a permanent backend error.
    pub async fn close(&self) {
        self.source.close().await;
    }

    async fn lease(&self) -> Result<Lease<MySqlConnection>, Error> {
        self.source.acquire(db_error_hook).await
    }

    /// Whether a live row holds `key`: tells `Conflict` from `NotFound` after an
    /// update matched no row. Read-only, so it cannot resurrect anything; if the row
    /// changes between the two statements the answer describes the later state, and
    /// either way nothing was written.
    async fn is_live(
        &self,
        lease: &mut Lease<MySqlConnection>,
        key: &StorageKey,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let r = sqlx::query(AssertSqlSafe(self.sql.is_live.clone()))
            .bind(key.as_str())
            .bind(to_datetime(now))
            .fetch_optional(lease.begin())
            .await;
        Ok(lease.finish(r)?.is_some())
    }
}

/// Runs one autocommit statement, re-running it while the server rolls it back as a
/// deadlock victim (InnoDB can pick a single-row `UPDATE` racing a `DELETE` through
/// the `expires_at` index). A rolled-back statement had no effect, so running it
/// again is exactly the same operation; after [`CONFLICT_ATTEMPTS`] the retryable
/// error is returned.
async fn execute_retrying<'q>(
    lease: &mut Lease<MySqlConnection>,
    mut query: impl FnMut() -> sqlx::query::Query<
        'q,
        sqlx::MySql,
        <sqlx::MySql as sqlx::Database>::Arguments,
    >,
) -> Result<sqlx::mysql::MySqlQueryResult, Error> {
    let mut attempt = 1;
    loop {
        let r = query().execute(lease.begin()).await;
        match r {
            Err(e) if attempt < CONFLICT_ATTEMPTS && lease.is_transient_conflict(&e) => {
                attempt += 1;
            }
            r => return lease.finish(r),
        }
    }
}

/// MySQL errors beyond the SQLSTATE classes of the shared classifier.
fn db_error_hook(e: &dyn DatabaseError) -> Option<ErrorClass> {
    let number = e.try_downcast_ref::<MySqlDatabaseError>()?.number();
    match number {
        // ER_LOCK_WAIT_TIMEOUT, ER_QUERY_INTERRUPTED, ER_STATEMENT_TIMEOUT (MariaDB),
        // ER_QUERY_TIMEOUT (MySQL)
        1205 | 1317 | 1969 | 3024 => Some(ErrorClass::Retryable),
        // ER_CONNECTION_KILLED (MariaDB), ER_CLIENT_INTERACTION_TIMEOUT (MySQL)
        1927 | 4031 => Some(ErrorClass::ConnectionLost),
        _ => None,
    }
}

/// DATETIME holds 1000-01-01 to 9999-12-31 (and no offset): deadlines are stored in
/// UTC, and one before year 1000 is stored as 1000-01-01 (it is dead either way).
fn to_datetime(t: OffsetDateTime) -> PrimitiveDateTime {
    const MIN: PrimitiveDateTime = datetime!(1000-01-01 0:00);
    let utc = t.to_offset(UtcOffset::UTC);
    PrimitiveDateTime::new(utc.date(), utc.time()).max(MIN)
}

fn decode_row(row: &MySqlRow) -> Result<StoredRecord, Error> {
    let payload: Vec<u8> = row.try_get(0).map_err(decode_err)?;
    let expires_at = row
        .try_get::<PrimitiveDateTime, _>(1)
        .map_err(decode_err)?
        .assume_utc();
    let version: i64 = row.try_get(2).map_err(decode_err)?;
    let version = u64::try_from(version).map_err(|_| malformed("negative version"))?;
    Ok(StoredRecord {
        payload: Bytes::from(payload),
        expires_at,
        version,
    })
}

fn decode_err(e: sqlx::Error) -> Error {
    session_sql_common::error::to_core(e, db_error_hook)
}

#[async_trait]
impl SessionInterface for MySqlStore {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        let now = self.clock.now();
        let mut lease = self.lease().await?;
        let r = sqlx::query(AssertSqlSafe(self.sql.load.clone()))
            .bind(key.as_str())
            .bind(to_datetime(now))
            .fetch_optional(lease.begin())
            .await;
        lease.finish(r)?.as_ref().map(decode_row).transpose()
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        let now = self.clock.now();
        let mut lease = self.lease().await?;
        match mode {
            SaveMode::Create => {
                let now = to_datetime(now);
                let done = execute_retrying(&mut lease, || {
                    sqlx::query(AssertSqlSafe(self.sql.create.clone()))
                        .bind(key.as_str())
                        .bind(record.payload.as_ref())
                        .bind(to_datetime(record.expires_at))
                        .bind(now)
                        .bind(now)
                        .bind(now)
                })
                .await?;
                // LAST_INSERT_ID(1) ran only on the live-row branch (see `sql.rs`).
                if done.last_insert_id() == 0 {
                    Ok(FIRST_VERSION)
                } else {
                    Err(Error::Collision)
                }
            }
            SaveMode::Update { expected_version } => {
                // A version beyond BIGINT cannot be stored, so it matches no row.
                if let Ok(expected) = i64::try_from(expected_version) {
                    let done = execute_retrying(&mut lease, || {
                        sqlx::query(AssertSqlSafe(self.sql.update.clone()))
                            .bind(record.payload.as_ref())
                            .bind(to_datetime(record.expires_at))
                            .bind(key.as_str())
                            .bind(expected)
                            .bind(to_datetime(now))
                    })
                    .await?;
                    if done.rows_affected() == 1 {
                        return Ok(expected_version + 1);
                    }
                }
                if self.is_live(&mut lease, key, now).await? {
                    Err(Error::Conflict)
                } else {
                    Err(Error::NotFound)
                }
            }
        }
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        let mut lease = self.lease().await?;
        execute_retrying(&mut lease, || {
            sqlx::query(AssertSqlSafe(self.sql.expire.clone())).bind(key.as_str())
        })
        .await
        .map(drop)
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        let now = self.clock.now();
        let mut lease = self.lease().await?;
        let done = execute_retrying(&mut lease, || {
            sqlx::query(AssertSqlSafe(self.sql.touch.clone()))
                .bind(to_datetime(expires_at))
                .bind(key.as_str())
                .bind(to_datetime(now))
        })
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        // One "now" for the whole purge, so sessions expiring while it runs cannot
        // keep it going forever.
        let now = self.clock.now();
        let batch = i64::from(self.delete_batch);
        let mut lease = self.lease().await?;
        let mut total = 0;
        loop {
            let n = execute_retrying(&mut lease, || {
                sqlx::query(AssertSqlSafe(self.sql.purge.clone()))
                    .bind(to_datetime(now))
                    .bind(batch)
            })
            .await?
            .rows_affected();
            total += n;
            if n < self.delete_batch.into() {
                return Ok(total);
            }
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full().with_durable(true)
    }
}
