//! The statement texts, built once per store from the validated table name.
//!
//! Every statement that writes a deadline writes its expiry bucket beside it
//! (`session_sql_common::expiry_bucket`, bound by the dialect), which is what the sweep
//! index holds.
//!
//! Every statement is sent as a persistent (server-side prepared, per-connection
//! cached) statement by sqlx, so after a connection's first use each operation is a
//! single Bind/Execute round trip.

use session_sql_common::{Statements, TableName};

pub(crate) fn statements(table: &TableName) -> Statements {
    // `table` holds only [a-z0-9_], so quoting cannot be broken out of.
    let t = format!("\"{table}\"");
    Statements {
        // By key alone, as on MySQL: the store drops a row whose deadline has passed
        // (one place for that rule, every dialect), so the server runs the bare
        // primary-key lookup the benchmark's limit runs.
        load: format!("SELECT payload, expires_at, version FROM {t} WHERE key = $1").into(),
        // One statement: inserts, or replaces a row whose deadline has passed; a
        // live row makes the WHERE false, so no row is affected → Collision.
        // Concurrent creates serialise on the primary key and the loser re-checks
        // the WHERE against the winner's (live) row.
        create: format!(
            "INSERT INTO {t} AS s (key, payload, expires_at, expires_bucket, version) \
             VALUES ($1, $2, $3, $5, 1) \
             ON CONFLICT (key) DO UPDATE SET payload = EXCLUDED.payload, \
             expires_at = EXCLUDED.expires_at, expires_bucket = EXCLUDED.expires_bucket, \
             version = 1 WHERE s.expires_at <= $4"
        )
        .into(),
        // Compare-and-set on a live row only: a dead or deleted row is never
        // written, so an update can never resurrect a session.
        update: format!(
            "UPDATE {t} SET payload = $1, expires_at = $2, expires_bucket = $6, \
             version = version + 1 WHERE key = $3 AND version = $4 AND expires_at > $5"
        )
        .into(),
        is_live: format!("SELECT version FROM {t} WHERE key = $1 AND expires_at > $2").into(),
        expire: format!("DELETE FROM {t} WHERE key = $1").into(),
        touch: format!(
            "UPDATE {t} SET expires_at = $1, expires_bucket = $4 \
             WHERE key = $2 AND expires_at > $3"
        )
        .into(),
        // Found through the bucket index ($3 = the bucket of now: every expired row's
        // bucket is at most that), the exact deadline checked on each. The outer
        // `expires_at <= $1` is re-checked on the current row version if a
        // concurrent create replaced the row meanwhile, so a freshly created live
        // session is never purged.
        purge: format!(
            "DELETE FROM {t} WHERE key IN \
             (SELECT key FROM {t} WHERE expires_bucket <= $3 AND expires_at <= $1 LIMIT $2) \
             AND expires_at <= $1"
        )
        .into(),
        // The load and a due touch in one statement ($1 key, $2 new deadline, $3
        // due-before bound, $4 now, $5 the new deadline's bucket). `upd` moves the deadline only when it is due,
        // so an undue refresh writes no row version; when it wrote, its RETURNING
        // is the row after the write (on a row updated concurrently, READ COMMITTED
        // re-checks the WHERE on the newest version, so payload and version are
        // that version's, a consistent pair) and `cur` the deadline before.
        // Otherwise the second branch reads the live row as `load` would. Only
        // `upd` carries a payload through a CTE, so a large one is not copied
        // twice.
        load_and_touch: Some(
            format!(
                "WITH cur AS (SELECT expires_at FROM {t} WHERE key = $1 AND expires_at > $4), \
                 upd AS (UPDATE {t} SET expires_at = $2, expires_bucket = $5 \
                 WHERE key = $1 AND expires_at > $4 AND expires_at < $3 \
                 RETURNING payload, expires_at, version) \
                 SELECT upd.payload, upd.expires_at, upd.version, \
                 COALESCE((SELECT expires_at FROM cur), upd.expires_at), TRUE FROM upd \
                 UNION ALL \
                 SELECT payload, expires_at, version, expires_at, FALSE FROM {t} \
                 WHERE key = $1 AND expires_at > $4 AND NOT EXISTS (SELECT 1 FROM upd)"
            )
            .into(),
        ),
    }
}
