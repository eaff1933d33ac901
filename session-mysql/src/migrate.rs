//! Embedded, versioned schema migrations.
//!
//! The migrations live in this file, not in a `migrations/` directory for sqlx's
//! migrator, because the table name is configurable (sqlx migrations are fixed SQL)
//! and because sqlx's `_sqlx_migrations` table belongs to the application: its
//! migrator refuses to run when it finds versions it does not know, so two migrators
//! cannot share it. Each store table gets its own `<table>_migrations` table instead.
//!
//! MySQL commits DDL implicitly, so a migration cannot be one transaction as on
//! PostgreSQL. Instead the runner holds a named lock (`GET_LOCK`, the same on MySQL 8
//! and MariaDB) and every statement is idempotent (`IF NOT EXISTS`), so a run that
//! died half-way simply repeats.

use session_sql_common::error::MigrationLockTimeout;
use session_sql_common::{SchemaTooNew, TableName};
use sqlx::{AssertSqlSafe, MySqlConnection};

/// The schema version this build creates and expects.
pub const SCHEMA_VERSION: i64 = 1;

/// How long `migrate()` waits for another process's migration, in seconds.
const LOCK_WAIT_SECS: i64 = 60;

/// One schema step: a version, a description and its statements.
struct Migration {
    version: i64,
    description: &'static str,
    statements: fn(&TableName) -> Vec<String>,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "create the sessions table and its expires_at index",
    statements: |t| {
        // key: 64 hex characters, ASCII with a binary collation (the server default
        // utf8mb4 collation is case-insensitive and 4 bytes a character). LONGBLOB,
        // not BLOB (64 KiB); DATETIME(6) in UTC, not TIMESTAMP (ends in 2038).
        // The index is declared inline: MySQL 8 has no CREATE INDEX IF NOT EXISTS.
        vec![format!(
            "CREATE TABLE IF NOT EXISTS `{t}` (\
             `key` CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \
             payload LONGBLOB NOT NULL, \
             expires_at DATETIME(6) NOT NULL, \
             version BIGINT NOT NULL, \
             PRIMARY KEY (`key`), \
             KEY `{}` (expires_at)\
             ) ENGINE=InnoDB",
            t.with_suffix("_expires_at_idx")
        )]
    },
}];

/// The outcome of a migration run that reached the database.
pub(crate) enum Outcome {
    Done(i64),
    TooNew(SchemaTooNew),
    LockTimeout(MigrationLockTimeout),
}

/// Applies the pending migrations under a named lock, so concurrent `migrate()` calls
/// run them once. Returns the schema version now in force.
pub(crate) async fn run(
    conn: &mut MySqlConnection,
    table: &TableName,
) -> Result<Outcome, sqlx::Error> {
    let lock = format!("session-mysql:{table}");
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
        .bind(&lock)
        .bind(LOCK_WAIT_SECS)
        .fetch_one(&mut *conn)
        .await?;
    if got != Some(1) {
        return Ok(Outcome::LockTimeout(MigrationLockTimeout {
            table: table.to_string(),
        }));
    }
    let result = locked(conn, table).await;
    // Released on every path; if the connection died the server released it already.
    let released = sqlx::query("DO RELEASE_LOCK(?)")
        .bind(&lock)
        .execute(&mut *conn)
        .await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

async fn locked(conn: &mut MySqlConnection, table: &TableName) -> Result<Outcome, sqlx::Error> {
    let log = table.with_suffix("_migrations");
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS `{log}` (\
         version BIGINT NOT NULL PRIMARY KEY, description VARCHAR(255) NOT NULL, \
         applied_at DATETIME(6) NOT NULL) ENGINE=InnoDB"
    )))
    .persistent(false)
    .execute(&mut *conn)
    .await?;
    let found: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT CAST(COALESCE(MAX(version), 0) AS SIGNED) FROM `{log}`"
    )))
    .persistent(false)
    .fetch_one(&mut *conn)
    .await?;
    if found > SCHEMA_VERSION {
        return Ok(Outcome::TooNew(SchemaTooNew {
            table: table.to_string(),
            found,
            supported: SCHEMA_VERSION,
        }));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        for statement in (m.statements)(table) {
            sqlx::query(AssertSqlSafe(statement))
                .persistent(false)
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO `{log}` (version, description, applied_at) \
             VALUES (?, ?, UTC_TIMESTAMP(6))"
        )))
        .bind(m.version)
        .bind(m.description)
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Outcome::Done(SCHEMA_VERSION))
}

/// The recorded schema version, `None` when the table was never migrated.
pub(crate) async fn version(
    conn: &mut MySqlConnection,
    table: &TableName,
) -> Result<Option<i64>, sqlx::Error> {
    let log = table.with_suffix("_migrations");
    let sql = format!("SELECT CAST(MAX(version) AS SIGNED) FROM `{log}`");
    match sqlx::query_scalar(AssertSqlSafe(sql))
        .persistent(false)
        .fetch_one(conn)
        .await
    {
        Ok(v) => Ok(v),
        // ER_NO_SUCH_TABLE: never migrated.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42S02") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Drops the table and its migration log.
pub(crate) async fn drop_all(
    conn: &mut MySqlConnection,
    table: &TableName,
) -> Result<(), sqlx::Error> {
    let log = table.with_suffix("_migrations");
    sqlx::query(AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS `{table}`, `{log}`"
    )))
    .persistent(false)
    .execute(conn)
    .await?;
    Ok(())
}
