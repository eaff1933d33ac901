//! [`PostgresStore`]: the shared SQL store with PostgreSQL's statements.

use session_core::time::OffsetDateTime;
use session_core::{NewRecord, StorageKey};
use session_sql_common::error::ErrorClass;
use session_sql_common::migrate::{Migration, MigrationOutcome, MigrationSql};
use session_sql_common::{
    DbErrorHook, Dialect, RawRecord, RefreshedRow, Rerun, SqlStore, SqlStoreBuilder, Statements,
    TableName, expiry_bucket,
};
use sqlx::error::DatabaseError;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::{migrate, sql};

/// A PostgreSQL [`SessionInterface`](session_core::SessionInterface): one row per
/// session in a table of your choice.
///
/// Cheap to clone (clones share the pool). "Now" comes from the store's
/// [`Clock`](session_core::Clock) — the application's clock, passed to every statement
/// as a parameter — never from the database server's `now()`. The operations are
/// `session-sql-common`'s [`SqlStore`]; this crate supplies the SQL ([`PgDialect`]).
pub type PostgresStore = SqlStore<PgDialect>;

/// Configures a [`PostgresStore`]; from [`PostgresStore::builder`].
pub type PostgresStoreBuilder = SqlStoreBuilder<PgDialect>;

/// PostgreSQL's statements and binds for [`SqlStore`]. Only a type parameter: there is
/// no value of it.
#[derive(Debug)]
pub enum PgDialect {}

/// PostgreSQL errors beyond the SQLSTATE classes of the shared classifier.
fn db_error_hook(e: &dyn DatabaseError) -> Option<ErrorClass> {
    match e.code().as_deref() {
        // query_canceled (statement_timeout), lock_not_available
        Some("57014" | "55P03") => Some(ErrorClass::Retryable),
        _ => None,
    }
}

// The binds are written out per database rather than shared generically; see
// `session_sql_common::dialect` for why.
impl Dialect for PgDialect {
    type Connection = PgConnection;

    const STORE_NAME: &'static str = "PostgresStore";
    // Only the create is re-run after a deadlock (session-mysql re-runs every write).
    const RERUN: Rerun = Rerun::Create;
    const ERROR_HOOK: DbErrorHook = db_error_hook;

    const SCHEMA_VERSION: i64 = migrate::SCHEMA_VERSION;
    const MIGRATIONS: &'static [Migration] = migrate::MIGRATIONS;
    // undefined_table
    const UNDEFINED_TABLE: &'static str = "42P01";

    fn statements(table: &TableName) -> Statements {
        sql::statements(table)
    }

    async fn load(
        conn: &mut PgConnection,
        sql: &Statements,
        key: &StorageKey,
    ) -> Result<Option<RawRecord>, sqlx::Error> {
        let row = sqlx::query(AssertSqlSafe(sql.load.clone()))
            .bind(key.as_str())
            .fetch_optional(conn)
            .await?;
        row.map(|row| {
            Ok(RawRecord {
                payload: row.try_get(0)?,
                expires_at: row.try_get(1)?,
                version: row.try_get(2)?,
            })
        })
        .transpose()
    }

    async fn create(
        conn: &mut PgConnection,
        sql: &Statements,
        key: &StorageKey,
        record: &NewRecord,
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(AssertSqlSafe(sql.create.clone()))
            .bind(key.as_str())
            .bind(record.payload.as_ref())
            .bind(record.expires_at)
            .bind(now)
            .bind(expiry_bucket(record.expires_at))
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn update(
        conn: &mut PgConnection,
        sql: &Statements,
        key: &StorageKey,
        record: &NewRecord,
        expected: i64,
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(AssertSqlSafe(sql.update.clone()))
            .bind(record.payload.as_ref())
            .bind(record.expires_at)
            .bind(key.as_str())
            .bind(expected)
            .bind(now)
            .bind(expiry_bucket(record.expires_at))
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn is_live(
        conn: &mut PgConnection,
        sql: &Statements,
        key: &StorageKey,
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(AssertSqlSafe(sql.is_live.clone()))
            .bind(key.as_str())
            .bind(now)
            .fetch_optional(conn)
            .await?;
        Ok(row.is_some())
    }

    async fn expire(
        conn: &mut PgConnection,
        sql: &Statements,
        key: &StorageKey,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(AssertSqlSafe(sql.expire.clone()))
            .bind(key.as_str())
            .execute(conn)
            .await
            .map(drop)
    }

    async fn touch(
        conn: &mut PgConnection,
        sql: &Statements,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(AssertSqlSafe(sql.touch.clone()))
            .bind(expires_at)
            .bind(key.as_str())
            .bind(now)
            .bind(expiry_bucket(expires_at))
            .execute(conn)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn load_and_touch(
        conn: &mut PgConnection,
        sql: &Statements,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<RefreshedRow>, sqlx::Error> {
        let Some(statement) = sql.load_and_touch.clone() else {
            return Err(sqlx::Error::Protocol("no load_and_touch statement".into()));
        };
        let row = sqlx::query(AssertSqlSafe(statement))
            .bind(key.as_str())
            .bind(expires_at)
            .bind(due_before)
            .bind(now)
            .bind(expiry_bucket(expires_at))
            .fetch_optional(conn)
            .await?;
        row.map(|row| {
            Ok(RefreshedRow {
                row: RawRecord {
                    payload: row.try_get(0)?,
                    expires_at: row.try_get(1)?,
                    version: row.try_get(2)?,
                },
                previous: row.try_get(3)?,
                touched: row.try_get(4)?,
            })
        })
        .transpose()
    }

    async fn purge(
        conn: &mut PgConnection,
        sql: &Statements,
        now: OffsetDateTime,
        batch: i64,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(AssertSqlSafe(sql.purge.clone()))
            .bind(now)
            .bind(batch)
            .bind(expiry_bucket(now))
            .execute(conn)
            .await?;
        Ok(done.rows_affected())
    }

    fn migration_sql(table: &TableName) -> MigrationSql {
        migrate::migration_sql(table)
    }

    async fn migrate(
        conn: &mut PgConnection,
        table: &TableName,
    ) -> Result<MigrationOutcome, sqlx::Error> {
        migrate::run(conn, table).await
    }
}
