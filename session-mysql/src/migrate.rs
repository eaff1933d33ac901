//! The schema's versions and how they are applied on MySQL / MariaDB (the runner
//! itself is `session_sql_common::migrate`).
//!
//! MySQL commits DDL implicitly, so a migration cannot be one transaction as on
//! PostgreSQL. Instead the runner holds a named lock (`GET_LOCK`, the same on MySQL 8
//! and MariaDB) and every statement is idempotent (`IF NOT EXISTS`), so a run that
//! died half-way simply repeats.

use session_sql_common::TableName;
use session_sql_common::error::MigrationLockTimeout;
use session_sql_common::migrate::{self, Migration, MigrationOutcome, MigrationSql};
use sqlx::MySqlConnection;

use crate::store::MySqlDialect;

/// The schema version this build creates and expects.
pub const SCHEMA_VERSION: i64 = 1;

/// How long `migrate()` waits for another process's migration, in seconds — at most:
/// the store's statement timeout bounds the whole of `migrate()`, lock wait included.
const LOCK_WAIT_SECS: i64 = 60;

pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
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

pub(crate) fn migration_sql(table: &TableName) -> MigrationSql {
    let log = table.with_suffix("_migrations");
    MigrationSql {
        create_log: format!(
            "CREATE TABLE IF NOT EXISTS `{log}` (\
             version BIGINT NOT NULL PRIMARY KEY, description VARCHAR(255) NOT NULL, \
             applied_at DATETIME(6) NOT NULL) ENGINE=InnoDB"
        ),
        current_version: format!("SELECT CAST(MAX(version) AS SIGNED) FROM `{log}`"),
        record_version: format!(
            "INSERT INTO `{log}` (version, description, applied_at) \
             VALUES (?, ?, UTC_TIMESTAMP(6))"
        ),
        drop_all: format!("DROP TABLE IF EXISTS `{table}`, `{log}`"),
    }
}

/// Applies the pending migrations under a named lock, so concurrent `migrate()` calls
/// run them once.
pub(crate) async fn run(
    conn: &mut MySqlConnection,
    table: &TableName,
) -> Result<MigrationOutcome, sqlx::Error> {
    let lock = format!("session-mysql:{table}");
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
        .bind(&lock)
        .bind(LOCK_WAIT_SECS)
        .fetch_one(&mut *conn)
        .await?;
    if got != Some(1) {
        return Ok(MigrationOutcome::LockTimeout(MigrationLockTimeout {
            table: table.to_string(),
        }));
    }
    let result = migrate::apply::<MySqlDialect>(conn, table).await;
    // Released on every path; if the connection died the server released it already.
    let released = sqlx::query("DO RELEASE_LOCK(?)")
        .bind(&lock)
        .execute(&mut *conn)
        .await;
    let outcome = result?;
    released?;
    Ok(outcome)
}
