//! The schema's versions and how they are applied on MySQL / MariaDB (the runner
//! itself is `session_sql_common::migrate`).
//!
//! MySQL commits DDL implicitly, so a migration cannot be one transaction as on
//! PostgreSQL. Instead the runner holds a named lock (`GET_LOCK`, the same on MySQL 8
//! and MariaDB) and every statement is idempotent (`IF NOT EXISTS`), so a run that
//! died half-way simply repeats.

use session_sql_common::error::MigrationLockTimeout;
use session_sql_common::migrate::{self, Migration, MigrationOutcome, MigrationSql};
use session_sql_common::{EXPIRY_BUCKET_SECONDS, TableName};
use sqlx::MySqlConnection;

use crate::store::MySqlDialect;

/// The schema version this build creates and expects.
pub const SCHEMA_VERSION: i64 = 2;

/// How long `migrate()` waits for another process's migration, in seconds — at most:
/// the store's statement timeout bounds the whole of `migrate()`, lock wait included.
const LOCK_WAIT_SECS: i64 = 60;

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
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
    },
    Migration {
        version: 2,
        description: "index a coarse expiry bucket instead of expires_at",
        statements: |t| {
            // Every update moved the deadline and so rewrote the expires_at index entry;
            // the bucket index changes only when a deadline crosses a bucket boundary
            // (session_sql_common::expiry_bucket). MySQL 8 has no `IF [NOT] EXISTS` on
            // these clauses, so each change is an ALTER of its own, and a re-run (a
            // run that died before it recorded the version, or a table whose log is
            // gone) finds each one done by its own error, which `already_applied`
            // accepts: the column there (ER_DUP_FIELDNAME), the index there
            // (ER_DUP_KEYNAME), the old index gone (ER_CANT_DROP_FIELD_OR_KEY). One
            // ALTER of all three would fail on whichever error the server checks
            // first, and MariaDB checks the dropped index first.
            vec![
                format!("ALTER TABLE `{t}` ADD COLUMN expires_bucket BIGINT NOT NULL DEFAULT 0"),
                format!(
                    "ALTER TABLE `{t}` ADD KEY `{}` (expires_bucket)",
                    t.with_suffix("_bucket_idx")
                ),
                format!(
                    "ALTER TABLE `{t}` DROP KEY `{}`",
                    t.with_suffix("_expires_at_idx")
                ),
                // Backfill the rows written before. TO_SECONDS counts whole seconds from
                // year 0 (DATETIME has no time zone: the column holds UTC).
                format!(
                    "UPDATE `{t}` SET expires_bucket = \
                 FLOOR((TO_SECONDS(expires_at) - {UNIX_EPOCH_TO_SECONDS}) / {EXPIRY_BUCKET_SECONDS})"
                ),
            ]
        },
    },
];

/// `TO_SECONDS('1970-01-01 00:00:00')`.
const UNIX_EPOCH_TO_SECONDS: i64 = 62_167_219_200;

pub(crate) fn migration_sql(table: &TableName) -> MigrationSql {
    let log = table.with_suffix("_migrations");
    MigrationSql {
        // `table` holds only [a-z0-9_], so it is safe inside the literal.
        probe_table: format!(
            "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'"
        ),
        // The schema the steps above end in, for a table that does not exist yet.
        create_table: vec![format!(
            "CREATE TABLE IF NOT EXISTS `{table}` (\
             `key` CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \
             payload LONGBLOB NOT NULL, \
             expires_at DATETIME(6) NOT NULL, \
             version BIGINT NOT NULL, \
             expires_bucket BIGINT NOT NULL DEFAULT 0, \
             PRIMARY KEY (`key`), \
             KEY `{}` (expires_bucket)\
             ) ENGINE=InnoDB",
            table.with_suffix("_bucket_idx")
        )],
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
