//! The embedded, versioned migration runner.
//!
//! The migrations are Rust constants of each store crate, not a `migrations/`
//! directory for sqlx's migrator, because the table name is configurable (sqlx
//! migrations are fixed SQL) and because sqlx's `_sqlx_migrations` table belongs to the
//! application: its migrator refuses to run when it finds versions it does not know, so
//! two migrators cannot share it. Each store table gets its own `<table>_migrations`
//! log instead.
//!
//! The runner ([`apply`]) is the same for every database; what differs — the DDL, the
//! log's SQL, and how concurrent runs are serialised (a transaction-scoped advisory lock
//! on PostgreSQL, a named lock on MySQL, where DDL commits implicitly) — comes from the
//! [`Dialect`].

use std::future::Future;

use session_core::Error;
use sqlx::database::HasStatementCache;
use sqlx::{AssertSqlSafe, Connection, Database, Encode, Executor, FromRow, IntoArguments, Type};

use crate::dialect::Dialect;
use crate::error::{MigrationLockTimeout, SchemaTooNew};
use crate::table::TableName;

/// One schema step: a version, a description and its statements.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version this step brings the schema to.
    pub version: i64,
    /// What it does, recorded in the log.
    pub description: &'static str,
    /// Its statements for a table; each must be idempotent (`IF NOT EXISTS`, or an
    /// error [`Dialect::already_applied`] accepts), so a run that died half-way can
    /// simply repeat.
    pub statements: fn(&TableName) -> Vec<String>,
}

/// A dialect's statements for the migration log `<table>_migrations` (columns
/// `version`, `description`, `applied_at`), for creating a new table directly at the
/// newest schema, and for dropping the whole schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationSql {
    /// Selects how many tables of the store's name exist in the schema the store uses
    /// (0 or 1), as a `BIGINT`; never fails for an absent table (on PostgreSQL an error
    /// would abort the migration's transaction).
    pub probe_table: String,
    /// Creates the table and its indexes at [`Dialect::SCHEMA_VERSION`] in one go, for
    /// a table that does not exist yet (the [`Dialect::MIGRATIONS`] steps upgrade an
    /// existing one; both must end in the same schema).
    pub create_table: Vec<String>,
    /// Creates the log if it does not exist.
    pub create_log: String,
    /// Selects the highest recorded version as a `BIGINT` (NULL when the log is empty).
    pub current_version: String,
    /// Records a version; binds the version, then the description.
    pub record_version: String,
    /// Drops the table and its log, if they exist.
    pub drop_all: String,
}

/// How a migration run that reached the database ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationOutcome {
    /// The schema is at this version now.
    Done(i64),
    /// The database holds a newer schema than this build knows; nothing was changed.
    TooNew(SchemaTooNew),
    /// Another process held the migration lock for too long.
    LockTimeout(MigrationLockTimeout),
}

impl MigrationOutcome {
    /// The version, or the error `migrate()` returns: [`SchemaTooNew`] is a permanent
    /// [`Error::Backend`], a lock timeout a retryable one.
    pub fn into_result(self) -> Result<i64, Error> {
        match self {
            Self::Done(v) => Ok(v),
            Self::TooNew(e) => Err(Error::backend(e)),
            Self::LockTimeout(e) => Err(Error::retryable(e)),
        }
    }
}

/// Creates the log if needed, refuses a schema newer than
/// [`Dialect::SCHEMA_VERSION`], then either creates a table that does not exist yet
/// directly at that version ([`MigrationSql::create_table`], recorded as one step) or
/// runs and records each pending [`Dialect::MIGRATIONS`] step on the existing one.
/// Call it with the dialect's migration lock held.
pub async fn apply<D: Dialect>(
    conn: &mut D::Connection,
    table: &TableName,
) -> Result<MigrationOutcome, sqlx::Error> {
    let sql = D::migration_sql(table);
    conn.execute_unprepared(sql.create_log).await?;
    let found = conn.fetch_version(sql.current_version).await?.unwrap_or(0);
    if found > D::SCHEMA_VERSION {
        return Ok(MigrationOutcome::TooNew(SchemaTooNew {
            table: table.to_string(),
            found,
            supported: D::SCHEMA_VERSION,
        }));
    }
    if found == 0 && !table_exists::<D>(conn, sql.probe_table).await? {
        // A fresh table: one CREATE instead of every historical step (an ALTER on
        // MySQL rebuilds the table, and test suites create a table per case).
        for statement in sql.create_table {
            conn.execute_unprepared(statement).await?;
        }
        conn.record_version(sql.record_version, D::SCHEMA_VERSION, CREATED)
            .await?;
        return Ok(MigrationOutcome::Done(D::SCHEMA_VERSION));
    }
    for m in D::MIGRATIONS.iter().filter(|m| m.version > found) {
        for statement in (m.statements)(table) {
            match conn.execute_unprepared(statement).await {
                Err(sqlx::Error::Database(e)) if D::already_applied(&*e) => {}
                r => r?,
            }
        }
        conn.record_version(sql.record_version.clone(), m.version, m.description)
            .await?;
    }
    Ok(MigrationOutcome::Done(D::SCHEMA_VERSION))
}

/// The description recorded for a table created at the newest version directly.
pub const CREATED: &str = "create the sessions table at this version";

/// Whether the store's table exists, by running [`MigrationSql::probe_table`].
async fn table_exists<D: Dialect>(
    conn: &mut D::Connection,
    probe: String,
) -> Result<bool, sqlx::Error> {
    Ok(conn.fetch_version(probe).await?.unwrap_or(0) > 0)
}

/// The recorded schema version, `None` when the table was never migrated.
pub(crate) async fn version<D: Dialect>(
    conn: &mut D::Connection,
    table: &TableName,
) -> Result<Option<i64>, sqlx::Error> {
    match conn
        .fetch_version(D::migration_sql(table).current_version)
        .await
    {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(D::UNDEFINED_TABLE) => {
            Ok(None)
        }
        r => r,
    }
}

/// Drops the table and its migration log.
pub(crate) async fn drop_all<D: Dialect>(
    conn: &mut D::Connection,
    table: &TableName,
) -> Result<(), sqlx::Error> {
    conn.execute_unprepared(D::migration_sql(table).drop_all)
        .await
}

/// The statements the runner sends besides the DDL: unprepared (each runs once per
/// process, so caching it on the server would only waste a statement slot), with at
/// most two binds.
///
/// Implemented once for every sqlx connection that can run them — in practice
/// `PgConnection` and `MySqlConnection`. The bounds below are what running a query
/// generically over `sqlx::Database` takes; they are acceptable for these three
/// statements, written once, but would be noise on every operation of the store, which
/// is why the [`Dialect`] runs those concretely instead.
pub trait MigrationConnection: Connection {
    /// Runs `sql`, which takes no binds.
    fn execute_unprepared(
        &mut self,
        sql: String,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Runs [`MigrationSql::current_version`].
    fn fetch_version(
        &mut self,
        sql: String,
    ) -> impl Future<Output = Result<Option<i64>, sqlx::Error>> + Send;

    /// Runs [`MigrationSql::record_version`] with its two binds.
    fn record_version(
        &mut self,
        sql: String,
        version: i64,
        description: &'static str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

impl<C, DB> MigrationConnection for C
where
    C: Connection<Database = DB>,
    DB: Database + HasStatementCache,
    for<'c> &'c mut C: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    i64: Type<DB> + for<'q> Encode<'q, DB>,
    &'static str: Type<DB> + for<'q> Encode<'q, DB>,
    (Option<i64>,): for<'r> FromRow<'r, DB::Row>,
{
    async fn execute_unprepared(&mut self, sql: String) -> Result<(), sqlx::Error> {
        sqlx::query(AssertSqlSafe(sql))
            .persistent(false)
            .execute(self)
            .await
            .map(drop)
    }

    async fn fetch_version(&mut self, sql: String) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(AssertSqlSafe(sql))
            .persistent(false)
            .fetch_one(self)
            .await
    }

    async fn record_version(
        &mut self,
        sql: String,
        version: i64,
        description: &'static str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(AssertSqlSafe(sql))
            .bind(version)
            .bind(description)
            .persistent(false)
            .execute(self)
            .await
            .map(drop)
    }
}
