//! Embedded, versioned schema migrations.
//!
//! The migrations live in this file, not in a `migrations/` directory for sqlx's
//! migrator, because the table name is configurable (sqlx migrations are fixed SQL)
//! and because sqlx's `_sqlx_migrations` table belongs to the application: its
//! migrator refuses to run when it finds versions it does not know, so two migrators
//! cannot share it. Each store table gets its own `<table>_migrations` table instead.

use session_sql_common::{SchemaTooNew, TableName};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The schema version this build creates and expects.
pub const SCHEMA_VERSION: i64 = 1;

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

/// Applies the pending migrations in one transaction under an advisory lock keyed by
/// the table name, so concurrent `migrate()` calls (several processes starting at
/// once) run them exactly once. Returns the schema version now in force.
pub(crate) async fn run(
    conn: &mut PgConnection,
    table: &TableName,
) -> Result<Result<i64, SchemaTooNew>, sqlx::Error> {
    let log = table.with_suffix("_migrations");
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(table))
        .execute(&mut *tx)
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS \"{log}\" (\
         version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )))
    .persistent(false)
    .execute(&mut *tx)
    .await?;
    let found: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COALESCE(MAX(version), 0) FROM \"{log}\""
    )))
    .persistent(false)
    .fetch_one(&mut *tx)
    .await?;
    if found > SCHEMA_VERSION {
        return Ok(Err(SchemaTooNew {
            table: table.to_string(),
            found,
            supported: SCHEMA_VERSION,
        }));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        for statement in (m.statements)(table) {
            sqlx::query(AssertSqlSafe(statement))
                .persistent(false)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO \"{log}\" (version, description) VALUES ($1, $2)"
        )))
        .bind(m.version)
        .bind(m.description)
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Ok(SCHEMA_VERSION))
}

/// The recorded schema version, `None` when the table was never migrated.
pub(crate) async fn version(
    conn: &mut PgConnection,
    table: &TableName,
) -> Result<Option<i64>, sqlx::Error> {
    let log = table.with_suffix("_migrations");
    let sql = format!("SELECT MAX(version) FROM \"{log}\"");
    match sqlx::query_scalar(AssertSqlSafe(sql))
        .persistent(false)
        .fetch_one(conn)
        .await
    {
        Ok(v) => Ok(v),
        // 42P01 undefined_table: never migrated.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Drops the table and its migration log.
pub(crate) async fn drop_all(
    conn: &mut PgConnection,
    table: &TableName,
) -> Result<(), sqlx::Error> {
    let log = table.with_suffix("_migrations");
    sqlx::query(AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS \"{table}\", \"{log}\""
    )))
    .persistent(false)
    .execute(conn)
    .await?;
    Ok(())
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
