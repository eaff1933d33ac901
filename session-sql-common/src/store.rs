//! [`SqlStore`], the one [`SessionInterface`] implementation of the SQL stores, and its
//! builder. The SQL comes from a [`Dialect`]: `session_postgres::PostgresStore` is
//! `SqlStore<PgDialect>`, `session_mysql::MySqlStore` is `SqlStore<MySqlDialect>`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use session_core::time::OffsetDateTime;
use session_core::{
    Bytes, Capabilities, ConfigError, Error, FIRST_VERSION, NewRecord, Refreshed, SaveMode,
    SessionInterface, SharedClock, StorageKey, StoredRecord, Version, load_then_touch,
    system_clock,
};
use sqlx::Connection;

use crate::dialect::{Dialect, RawRecord, Rerun, Statements};
use crate::error::malformed;
use crate::pool::{ConnectionSource, Lease, PoolSettings, bounded};
use crate::table::TableName;
use crate::{DEFAULT_DELETE_BATCH, DEFAULT_TABLE, migrate};

/// How often a statement the server rolled back as a deadlock victim is run in all
/// before the (retryable) error is returned.
const CONFLICT_ATTEMPTS: u32 = 5;

/// The connect options of a dialect's connection type (`PgConnectOptions`, …).
pub type ConnectOptionsOf<D> = <<D as Dialect>::Connection as Connection>::Options;
/// The sqlx pool type of a dialect (`PgPool`, `MySqlPool`).
pub type SqlxPoolOf<D> = sqlx::Pool<<<D as Dialect>::Connection as Connection>::Database>;

/// A SQL [`SessionInterface`]: one row per session in a table of your choice.
///
/// Cheap to clone (clones share the pool). "Now" comes from the store's
/// [`Clock`](session_core::Clock) — the application's clock, passed to every statement
/// as a parameter — never from the database server's `now()`.
pub struct SqlStore<D: Dialect> {
    source: ConnectionSource<D::Connection>,
    sql: Arc<Statements>,
    table: TableName,
    clock: SharedClock,
    delete_batch: u32,
    /// [`PoolSettings::statement_timeout`]: bounds every statement.
    statement_timeout: Option<Duration>,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            sql: Arc::clone(&self.sql),
            table: self.table.clone(),
            clock: Arc::clone(&self.clock),
            delete_batch: self.delete_batch,
            statement_timeout: self.statement_timeout,
        }
    }
}

impl<D: Dialect> fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(D::STORE_NAME)
            .field("source", &self.source)
            .field("sql", &self.sql)
            .field("table", &self.table)
            .field("clock", &self.clock)
            .field("delete_batch", &self.delete_batch)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// Configures a [`SqlStore`]; from [`SqlStore::builder`].
pub struct SqlStoreBuilder<D> {
    table: String,
    clock: SharedClock,
    pool: PoolSettings,
    delete_batch: u32,
    dialect: PhantomData<fn() -> D>,
}

impl<D> Clone for SqlStoreBuilder<D> {
    fn clone(&self) -> Self {
        Self {
            table: self.table.clone(),
            clock: Arc::clone(&self.clock),
            pool: self.pool,
            delete_batch: self.delete_batch,
            dialect: PhantomData,
        }
    }
}

impl<D: Dialect> fmt::Debug for SqlStoreBuilder<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(&format!("{}Builder", D::STORE_NAME))
            .field("table", &self.table)
            .field("clock", &self.clock)
            .field("pool", &self.pool)
            .field("delete_batch", &self.delete_batch)
            .finish()
    }
}

impl<D> Default for SqlStoreBuilder<D> {
    fn default() -> Self {
        Self {
            table: DEFAULT_TABLE.to_owned(),
            clock: system_clock(),
            pool: PoolSettings::default(),
            delete_batch: DEFAULT_DELETE_BATCH,
            dialect: PhantomData,
        }
    }
}

impl<D: Dialect> SqlStoreBuilder<D> {
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

    /// All pool settings at once (ignored by [`with_pool`](Self::with_pool), except
    /// [`statement_timeout`](PoolSettings::statement_timeout)).
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

    /// The longest one statement may take once it has a connection (default
    /// [`DEFAULT_STATEMENT_TIMEOUT`](crate::DEFAULT_STATEMENT_TIMEOUT), 2 s, like the
    /// Redis store's command timeout). A statement that takes longer — a paused or
    /// unreachable server, a long lock wait — fails with a retryable
    /// [`Error::Backend`] whose source is a
    /// [`StatementTimeout`](crate::error::StatementTimeout), and its connection is
    /// discarded. Each `delete_expired` batch is bounded on its own; `migrate()` as a
    /// whole (raise the timeout for a migration of a large table). Also applies to a
    /// store built [`with_pool`](Self::with_pool). Zero is a configuration error when
    /// the store is built; [`pool_settings`](Self::pool_settings) with
    /// `statement_timeout: None` disables the bound.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.pool.statement_timeout = Some(timeout);
        self
    }

    /// Rows one `delete_expired` statement removes at most (default 1,000; at least 1).
    pub fn delete_batch_size(mut self, rows: u32) -> Self {
        self.delete_batch = rows.max(1);
        self
    }

    /// Builds a store on its own ping-free pool for the server at `url`
    /// (`postgres://user:password@host:port/database?sslmode=…`,
    /// `mysql://user:password@host:port/database?ssl-mode=…`). No connection is opened
    /// until the first operation; call [`SqlStore::migrate`] first.
    pub fn connect(self, url: &str) -> Result<SqlStore<D>, Error> {
        let options: ConnectOptionsOf<D> = url.parse().map_err(|e: sqlx::Error| {
            Error::Config(ConfigError::Invalid {
                setting: "database url",
                reason: e.to_string(),
            })
        })?;
        self.connect_with(options)
    }

    /// Like [`connect`](Self::connect), with sqlx connect options.
    pub fn connect_with(self, options: ConnectOptionsOf<D>) -> Result<SqlStore<D>, Error> {
        self.validate()?;
        let source = ConnectionSource::managed(options, self.pool)?;
        self.build(source)
    }

    /// Builds a store on a caller's `sqlx::Pool` (`PgPool`, `MySqlPool`). That pool
    /// keeps its own behaviour, including sqlx's ping on every release (see the crate
    /// docs on why the built-in pool is faster).
    pub fn with_pool(self, pool: SqlxPoolOf<D>) -> Result<SqlStore<D>, Error> {
        self.validate()?;
        self.build(ConnectionSource::Sqlx(pool))
    }

    /// Checks the settings that have no safe meaning: a zero statement timeout would
    /// fail every operation.
    fn validate(&self) -> Result<(), Error> {
        if self.pool.statement_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::Config(ConfigError::Invalid {
                setting: "statement timeout",
                reason: "must be positive".to_owned(),
            }));
        }
        Ok(())
    }

    fn build(self, source: ConnectionSource<D::Connection>) -> Result<SqlStore<D>, Error> {
        let table = TableName::new(&self.table)?;
        Ok(SqlStore {
            source,
            sql: Arc::new(D::statements(&table)),
            table,
            clock: self.clock,
            delete_batch: self.delete_batch,
            statement_timeout: self.pool.statement_timeout,
        })
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Whether writes other than the create are re-run after a deadlock.
    const RERUN_WRITES: bool = matches!(D::RERUN, Rerun::EveryWrite);

    /// A builder with the defaults: table `sessions`, system clock, 16 connections.
    pub fn builder() -> SqlStoreBuilder<D> {
        SqlStoreBuilder::default()
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

    /// Creates or upgrades the table to the dialect's schema version (the store crate's
    /// `SCHEMA_VERSION`) and records the version in `<table>_migrations`. Idempotent and
    /// safe to call from several processes at once. A database already on a newer
    /// version than this build knows is a permanent [`Error::Backend`] whose source is
    /// a [`SchemaTooNew`](crate::SchemaTooNew).
    pub async fn migrate(&self) -> Result<i64, Error> {
        let mut lease = self.lease().await?;
        let r = bounded(
            self.statement_timeout,
            D::migrate(lease.begin(), &self.table),
        )
        .await;
        lease.finish(r)?.into_result()
    }

    /// The schema version recorded for this table, `None` if it was never migrated.
    pub async fn schema_version(&self) -> Result<Option<i64>, Error> {
        let mut lease = self.lease().await?;
        let r = bounded(
            self.statement_timeout,
            migrate::version::<D>(lease.begin(), &self.table),
        )
        .await;
        lease.finish(r)
    }

    /// Drops the table and its migration log — every session in it is gone. For
    /// tests and tear-down of per-test namespaces.
    pub async fn drop_table(&self) -> Result<(), Error> {
        let mut lease = self.lease().await?;
        let r = bounded(
            self.statement_timeout,
            migrate::drop_all::<D>(lease.begin(), &self.table),
        )
        .await;
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

    async fn lease(&self) -> Result<Lease<D::Connection>, Error> {
        self.source.acquire(D::ERROR_HOOK).await
    }
}

/// Runs one statement on a lease's connection, bounded by `$limit` (the statement
/// timeout; each re-run has its own), and records its outcome there; while
/// the server rolls a statement that `$rerun` allows back as a deadlock victim, runs
/// it again (it had no effect, so that is exactly the same operation), up to
/// [`CONFLICT_ATTEMPTS`] times in all.
///
/// A macro rather than a function taking an async closure: on stable Rust an
/// `AsyncFnMut` bound cannot require the closure's futures to be `Send`, which
/// `async_trait` needs.
macro_rules! run {
    ($lease:ident, $limit:expr, $rerun:expr, |$conn:ident| $statement:expr) => {{
        let rerun: bool = $rerun;
        let mut attempt = 1;
        loop {
            let $conn = $lease.begin();
            match bounded($limit, $statement).await {
                Err(e)
                    if rerun && attempt < CONFLICT_ATTEMPTS && $lease.is_transient_conflict(&e) =>
                {
                    attempt += 1;
                }
                r => break $lease.finish(r),
            }
        }
    }};
}

fn decode(raw: RawRecord) -> Result<StoredRecord, Error> {
    let version = u64::try_from(raw.version).map_err(|_| malformed("negative version"))?;
    Ok(StoredRecord {
        payload: Bytes::from(raw.payload),
        expires_at: raw.expires_at,
        version,
    })
}

#[async_trait]
impl<D: Dialect> SessionInterface for SqlStore<D> {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        let now = self.clock.now();
        let mut lease = self.lease().await?;
        let r = bounded(
            self.statement_timeout,
            D::load(lease.begin(), &self.sql, key),
        )
        .await;
        // The rule lives here, whatever the dialect's statement filters: a row whose
        // deadline is not after `now` is no session.
        lease
            .finish(r)?
            .filter(|row| now < row.expires_at)
            .map(decode)
            .transpose()
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        let now = self.clock.now();
        let mut lease = self.lease().await?;
        let sql = &*self.sql;
        let limit = self.statement_timeout;
        match mode {
            SaveMode::Create => {
                if run!(lease, limit, true, |conn| D::create(
                    conn, sql, key, record, now
                ))? {
                    Ok(FIRST_VERSION)
                } else {
                    Err(Error::Collision)
                }
            }
            SaveMode::Update { expected_version } => {
                // A version beyond BIGINT cannot be stored, so it matches no row.
                if let Ok(expected) = i64::try_from(expected_version) {
                    let written = run!(lease, limit, Self::RERUN_WRITES, |conn| D::update(
                        conn, sql, key, record, expected, now
                    ))?;
                    if written {
                        return Ok(expected_version + 1);
                    }
                }
                // The update matched no row: tell Conflict from NotFound with a
                // read-only statement, so nothing can be resurrected; if the row changes
                // in between, the answer describes the later state, and either way
                // nothing was written.
                let r = bounded(limit, D::is_live(lease.begin(), sql, key, now)).await;
                if lease.finish(r)? {
                    Err(Error::Conflict)
                } else {
                    Err(Error::NotFound)
                }
            }
        }
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        let mut lease = self.lease().await?;
        let sql = &*self.sql;
        let limit = self.statement_timeout;
        run!(lease, limit, Self::RERUN_WRITES, |conn| D::expire(
            conn, sql, key
        ))
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        let now = self.clock.now();
        let mut lease = self.lease().await?;
        let sql = &*self.sql;
        let limit = self.statement_timeout;
        run!(lease, limit, Self::RERUN_WRITES, |conn| D::touch(
            conn, sql, key, expires_at, now
        ))
    }

    async fn load_and_touch(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Result<Option<Refreshed>, Error> {
        // A bound before the new deadline means a refresh is due only now and then
        // (with the manager's default threshold, once per half an idle lifetime): a
        // plain load, with a touch when due, costs the server less than the one-step
        // statement on every read (a prepared CTE with an UPDATE on PostgreSQL, a text
        // batch MariaDB parses on every call): in the request mix at the default
        // threshold, ours ÷ tower-sessions rose from 2.2–2.3 to 2.8–2.9 at 1 user on
        // PostgreSQL and from 1.1–1.2 to 3.0–3.2 at 32 users on MariaDB (BENCHMARKS.md,
        // "The one-step refresh on the SQL stores"). A bound at or after the new
        // deadline (refresh on every request) makes nearly every read due: then one
        // round trip does both, which is faster on both servers at 1 user.
        if self.sql.load_and_touch.is_none() || due_before < expires_at {
            return load_then_touch(self, key, expires_at, due_before).await;
        }
        let now = self.clock.now();
        let mut lease = self.lease().await?;
        let sql = &*self.sql;
        let limit = self.statement_timeout;
        let answer = run!(lease, limit, Self::RERUN_WRITES, |conn| D::load_and_touch(
            conn, sql, key, expires_at, due_before, now
        ))?;
        answer
            .map(|r| {
                Ok(Refreshed {
                    record: decode(r.row)?,
                    previous_expires_at: r.previous,
                    touched: r.touched,
                })
            })
            .transpose()
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        // One "now" for the whole purge, so sessions expiring while it runs cannot
        // keep it going forever.
        let now = self.clock.now();
        let batch = i64::from(self.delete_batch);
        let mut lease = self.lease().await?;
        let sql = &*self.sql;
        let limit = self.statement_timeout;
        let mut total = 0;
        loop {
            let n = run!(lease, limit, Self::RERUN_WRITES, |conn| D::purge(
                conn, sql, now, batch
            ))?;
            total += n;
            if n < self.delete_batch.into() {
                return Ok(total);
            }
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
            .with_durable(true)
            .with_load_and_touch(self.sql.load_and_touch.is_some())
    }
}
