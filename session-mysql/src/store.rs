//! [`MySqlStore`]: the shared SQL store with MySQL / MariaDB statements.

use session_core::time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use session_core::{NewRecord, StorageKey};
use session_sql_common::error::ErrorClass;
use session_sql_common::migrate::{Migration, MigrationOutcome, MigrationSql};
use session_sql_common::{
    DbErrorHook, Dialect, RawRecord, RefreshedRow, Rerun, SqlStore, SqlStoreBuilder, Statements,
    TableName, expiry_bucket,
};
use sqlx::error::DatabaseError;
use sqlx::mysql::MySqlDatabaseError;
use sqlx::{AssertSqlSafe, MySqlConnection, Row};
use time::macros::datetime;

use crate::batch::{self, Literal};
use crate::{migrate, sql};

/// A MySQL / MariaDB [`SessionInterface`](session_core::SessionInterface): one row per
/// session in a table of your choice.
///
/// Cheap to clone (clones share the pool). "Now" comes from the store's
/// [`Clock`](session_core::Clock) — the application's clock, passed to every statement
/// as a parameter — never from the database server's `now()`. The operations are
/// `session-sql-common`'s [`SqlStore`]; this crate supplies the SQL ([`MySqlDialect`]).
pub type MySqlStore = SqlStore<MySqlDialect>;

/// Configures a [`MySqlStore`]; from [`MySqlStore::builder`].
pub type MySqlStoreBuilder = SqlStoreBuilder<MySqlDialect>;

/// MySQL / MariaDB statements and binds for [`SqlStore`]. Only a type parameter: there
/// is no value of it.
#[derive(Debug)]
pub enum MySqlDialect {}

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

/// The expiry bucket of a deadline as [`to_datetime`] stores it.
fn bucket(t: OffsetDateTime) -> i64 {
    expiry_bucket(to_datetime(t).assume_utc())
}

// The binds are written out per database rather than shared generically; see
// `session_sql_common::dialect` for why.
impl Dialect for MySqlDialect {
    type Connection = MySqlConnection;

    const STORE_NAME: &'static str = "MySqlStore";
    // InnoDB can pick any single-row write as a deadlock victim (e.g. an UPDATE racing a
    // DELETE through the `expires_at` index), not only concurrent creates.
    const RERUN: Rerun = Rerun::EveryWrite;
    const ERROR_HOOK: DbErrorHook = db_error_hook;

    const SCHEMA_VERSION: i64 = migrate::SCHEMA_VERSION;
    const MIGRATIONS: &'static [Migration] = migrate::MIGRATIONS;
    // ER_NO_SUCH_TABLE
    const UNDEFINED_TABLE: &'static str = "42S02";

    fn statements(table: &TableName) -> Statements {
        sql::statements(table)
    }

    async fn load(
        conn: &mut MySqlConnection,
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
                expires_at: row.try_get::<PrimitiveDateTime, _>(1)?.assume_utc(),
                version: row.try_get(2)?,
            })
        })
        .transpose()
    }

    async fn create(
        conn: &mut MySqlConnection,
        sql: &Statements,
        key: &StorageKey,
        record: &NewRecord,
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let now = to_datetime(now);
        let done = sqlx::query(AssertSqlSafe(sql.create.clone()))
            .bind(key.as_str())
            .bind(record.payload.as_ref())
            .bind(to_datetime(record.expires_at))
            .bind(bucket(record.expires_at))
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(now)
            .execute(conn)
            .await?;
        // LAST_INSERT_ID(1) ran only on the live-row branch (see `sql.rs`).
        Ok(done.last_insert_id() == 0)
    }

    async fn update(
        conn: &mut MySqlConnection,
        sql: &Statements,
        key: &StorageKey,
        record: &NewRecord,
        expected: i64,
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(AssertSqlSafe(sql.update.clone()))
            .bind(record.payload.as_ref())
            .bind(to_datetime(record.expires_at))
            .bind(bucket(record.expires_at))
            .bind(key.as_str())
            .bind(expected)
            .bind(to_datetime(now))
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn is_live(
        conn: &mut MySqlConnection,
        sql: &Statements,
        key: &StorageKey,
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(AssertSqlSafe(sql.is_live.clone()))
            .bind(key.as_str())
            .bind(to_datetime(now))
            .fetch_optional(conn)
            .await?;
        Ok(row.is_some())
    }

    async fn expire(
        conn: &mut MySqlConnection,
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
        conn: &mut MySqlConnection,
        sql: &Statements,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(AssertSqlSafe(sql.touch.clone()))
            .bind(to_datetime(expires_at))
            .bind(bucket(expires_at))
            .bind(key.as_str())
            .bind(to_datetime(now))
            .execute(conn)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn load_and_touch(
        conn: &mut MySqlConnection,
        sql: &Statements,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<RefreshedRow>, sqlx::Error> {
        let Some(template) = sql.load_and_touch.as_deref() else {
            return Err(sqlx::Error::Protocol("no load_and_touch statement".into()));
        };
        let new = to_datetime(expires_at);
        let text = batch::inline(
            template,
            &[
                Literal::Key(key),
                Literal::DateTime(new),
                Literal::Int(bucket(expires_at)),
                Literal::Key(key),
                Literal::DateTime(to_datetime(now)),
                Literal::DateTime(to_datetime(due_before)),
            ],
        )?;
        let answer = batch::run(conn, text).await?;
        let Some((payload, previous, version)) = answer.row else {
            return Ok(None);
        };
        let previous = previous.assume_utc();
        // The store's rule, as in `load`: a row whose deadline is not after now is no
        // session (the UPDATE, with the same now, left it alone).
        if previous <= now {
            return Ok(None);
        }
        let touched = answer.updated > 0;
        // What the UPDATE stored: the new deadline to the microsecond.
        let stored_new = new
            .replace_nanosecond(new.microsecond() * 1_000)
            .unwrap_or(new);
        Ok(Some(RefreshedRow {
            row: RawRecord {
                payload,
                expires_at: if touched {
                    stored_new.assume_utc()
                } else {
                    previous
                },
                version,
            },
            previous,
            touched,
        }))
    }

    async fn purge(
        conn: &mut MySqlConnection,
        sql: &Statements,
        now: OffsetDateTime,
        batch: i64,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(AssertSqlSafe(sql.purge.clone()))
            .bind(bucket(now))
            .bind(to_datetime(now))
            .bind(batch)
            .execute(conn)
            .await?;
        Ok(done.rows_affected())
    }

    /// The version-2 `ALTER TABLE`s found their change made (by a run that died before
    /// it recorded the version, or on a table whose log is gone): ER_DUP_FIELDNAME (the
    /// column is there), ER_DUP_KEYNAME (the index is there), ER_CANT_DROP_FIELD_OR_KEY
    /// (the old index is gone). By number: the last two share SQLSTATE 42000 with
    /// syntax errors.
    fn already_applied(e: &dyn DatabaseError) -> bool {
        e.try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|e| matches!(e.number(), 1060 | 1061 | 1091))
    }

    fn migration_sql(table: &TableName) -> MigrationSql {
        migrate::migration_sql(table)
    }

    async fn migrate(
        conn: &mut MySqlConnection,
        table: &TableName,
    ) -> Result<MigrationOutcome, sqlx::Error> {
        migrate::run(conn, table).await
    }
}
