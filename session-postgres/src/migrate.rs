//! The schema's versions and how they are applied on PostgreSQL: in one transaction
//! under an advisory lock (the runner itself is `session_sql_common::migrate`).

use session_sql_common::migrate::{self, Migration, MigrationOutcome, MigrationSql};
use session_sql_common::{EXPIRY_BUCKET_SECONDS, TableName};
use sqlx::{Connection, PgConnection};

use crate::store::PgDialect;

/// The schema version this build creates and expects.
pub const SCHEMA_VERSION: i64 = 2;

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
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
    },
    Migration {
        version: 2,
        description: "index a coarse expiry bucket instead of expires_at",
        statements: |t| {
            let bucket = bucket_of("expires_at");
            vec![
                // Every update moved the deadline and so rewrote the expires_at index entry
                // (and lost the heap-only-tuple path); the bucket index changes only when
                // a deadline crosses a bucket boundary (session_sql_common::expiry_bucket).
                format!(
                    "DROP INDEX IF EXISTS \"{}\"",
                    t.with_suffix("_expires_at_idx")
                ),
                // A constant default is a catalogue change only, no table rewrite.
                format!(
                    "ALTER TABLE \"{t}\" ADD COLUMN IF NOT EXISTS expires_bucket BIGINT NOT NULL DEFAULT 0"
                ),
                // Backfill the rows written before: the one rewrite of the table.
                format!(
                    "UPDATE \"{t}\" SET expires_bucket = {bucket} WHERE expires_bucket <> {bucket}"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS \"{}\" ON \"{t}\" (expires_bucket)",
                    t.with_suffix("_bucket_idx")
                ),
            ]
        },
    },
];

/// `expiry_bucket` of a `TIMESTAMPTZ` column in SQL: `extract(epoch …)` is exact
/// (numeric), so the floor matches the Rust rule to the microsecond.
fn bucket_of(column: &str) -> String {
    format!("floor(extract(epoch FROM {column}) / {EXPIRY_BUCKET_SECONDS})::bigint")
}

pub(crate) fn migration_sql(table: &TableName) -> MigrationSql {
    let log = table.with_suffix("_migrations");
    MigrationSql {
        // `table` holds only [a-z0-9_]: safe inside the literal, and resolved on the
        // search path as the unqualified name in every statement is.
        probe_table: format!(
            "SELECT CASE WHEN to_regclass('\"{table}\"') IS NULL THEN 0 ELSE 1 END::bigint"
        ),
        // The schema the steps above end in, for a table that does not exist yet.
        create_table: vec![
            format!(
                "CREATE TABLE IF NOT EXISTS \"{table}\" (\
                 key VARCHAR(64) COLLATE \"C\" PRIMARY KEY, \
                 payload BYTEA NOT NULL, \
                 expires_at TIMESTAMPTZ NOT NULL, \
                 version BIGINT NOT NULL, \
                 expires_bucket BIGINT NOT NULL DEFAULT 0)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS \"{}\" ON \"{table}\" (expires_bucket)",
                table.with_suffix("_bucket_idx")
            ),
        ],
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The advisory-lock key is shared by every process that migrates the table, also
    /// by processes of different builds during a rolling deploy: it must stay FNV-1a
    /// of "session-postgres:" and the table name, or an old and a new process could
    /// migrate the same table at once. (The values were computed outside this crate
    /// with a separate FNV-1a implementation.) Different tables lock different keys,
    /// so migrating one never waits for another.
    #[test]
    fn lock_key_is_fnv1a_of_the_table_name() {
        let key = |name: &str| lock_key(&TableName::new(name).unwrap());
        assert_eq!(key("sessions"), 2_459_551_494_861_366_424);
        assert_eq!(key("tower_sessions"), -1_520_732_148_794_788_438);
        assert_ne!(key("sessions"), key("sessions2"));
    }
}
