//! The schema's versions and how they are applied on PostgreSQL: in one transaction
//! under an advisory lock (the runner itself is `session_sql_common::migrate`).

use session_sql_common::TableName;
use session_sql_common::migrate::{self, Migration, MigrationOutcome, MigrationSql};
use sqlx::{Connection, PgConnection};

use crate::store::PgDialect;

/// The schema version this build creates and expects.
pub const SCHEMA_VERSION: i64 = 1;

pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "create the sessions table and its expires_at index",
    statements: |t| {
        vec![
            // key: 64 lower-case hex characters; the "C" collation compares bytes,
            // the fastest and exactly right for hex.
            format!(
                "CREATE TABLE IF NOT EXISTS \"{t}\" (\
                 key VARCHAR(64) COLLATE \"C\" PRIMARY KEY, \
                 payload BYTEA NOT NULL, \
                 expires_at TIMESTAMPTZ NOT NULL, \
                 version BIGINT NOT NULL)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS \"{}\" ON \"{t}\" (expires_at)",
                t.with_suffix("_expires_at_idx")
            ),
        ]
    },
}];

pub(crate) fn migration_sql(table: &TableName) -> MigrationSql {
    let log = table.with_suffix("_migrations");
    MigrationSql {
        create_log: format!(
            "CREATE TABLE IF NOT EXISTS \"{log}\" (\
             version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        ),
        current_version: format!("SELECT MAX(version) FROM \"{log}\""),
        record_version: format!("INSERT INTO \"{log}\" (version, description) VALUES ($1, $2)"),
        drop_all: format!("DROP TABLE IF EXISTS \"{table}\", \"{log}\""),
    }
}

/// Applies the pending migrations in one transaction under an advisory lock keyed by
/// the table name, so concurrent `migrate()` calls (several processes starting at
/// once) run them exactly once. A refused (too new) schema rolls back.
pub(crate) async fn run(
    conn: &mut PgConnection,
    table: &TableName,
) -> Result<MigrationOutcome, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(table))
        .execute(&mut *tx)
        .await?;
    let outcome = migrate::apply::<PgDialect>(&mut tx, table).await?;
    if let MigrationOutcome::Done(_) = outcome {
        tx.commit().await?;
    }
    Ok(outcome)
}

/// A stable 64-bit advisory-lock key for `table` (FNV-1a; only needs to be the same in
/// every process, and distinct between tables with high probability).
fn lock_key(table: &TableName) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"session-postgres:".iter().chain(table.as_str().as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}
