//! The statement texts, built once per store from the validated table name.
//!
//! Only syntax that MySQL 8 and MariaDB 10.11+ both accept: `VALUES(col)` in
//! `ON DUPLICATE KEY UPDATE` (MySQL 8.0.20+ deprecates it with a warning in favour of a
//! row alias, which MariaDB does not have), `DELETE … LIMIT ?`, `LAST_INSERT_ID(expr)`.
//! Every statement but `load_and_touch` is a persistent (server-side prepared,
//! per-connection cached) statement in sqlx; `load_and_touch` is a batch of statements
//! in one text query, its values inlined as literals.
//!
//! Every statement that writes a deadline writes its expiry bucket beside it
//! (`session_sql_common::expiry_bucket`, bound by the dialect), which is what the sweep
//! index holds.
//!
//! The statements that write one live row (`update`, `touch`) say
//! `FORCE INDEX (PRIMARY)`. Under schema version 1 their `expires_at > ?` condition let
//! the optimizer pick the `expires_at` index when the table held a single live row
//! (MariaDB 10.11 did: a range scan of that index "using buffer", which cost about four
//! times the server CPU of the key lookup in a probe); the hint keeps the key lookup
//! whatever other indexes a table has. Index hints on a single-table `UPDATE` are valid
//! on both MySQL 8 and MariaDB.

use session_sql_common::{Statements, TableName};

pub(crate) fn statements(table: &TableName) -> Statements {
    // `table` holds only [a-z0-9_], so quoting cannot be broken out of.
    let t = format!("`{table}`");
    let by_key = format!("{t} FORCE INDEX (PRIMARY)");
    Statements {
        // By key alone: the store drops a row past its deadline. A condition on
        // `expires_at` here cost MariaDB 7-12 µs more server CPU per load in a probe
        // (10,000 rows, 1 task), and nothing is gained by it: a read has no race
        // to close.
        load: format!("SELECT payload, expires_at, version FROM {t} WHERE `key` = ?").into(),
        // One statement: inserts, or replaces a row whose deadline (the `?` = now)
        // has passed. On a live row nothing changes and LAST_INSERT_ID(1) marks the
        // collision in the OK packet's insert id, which is 0 otherwise (the table
        // has no AUTO_INCREMENT). Affected-row counts cannot tell the cases apart:
        // sqlx always sets CLIENT_FOUND_ROWS, so "found, unchanged" counts 1, like
        // an insert. `expires_at` is assigned last because MySQL evaluates the
        // assignments left to right and the conditions must see the old deadline.
        create: format!(
            "INSERT INTO {t} (`key`, payload, expires_at, expires_bucket, version) \
             VALUES (?, ?, ?, ?, 1) \
             ON DUPLICATE KEY UPDATE \
             payload = IF(expires_at <= ?, VALUES(payload), payload), \
             version = IF(expires_at <= ?, 1, IF(LAST_INSERT_ID(1), version, version)), \
             expires_bucket = IF(expires_at <= ?, VALUES(expires_bucket), expires_bucket), \
             expires_at = IF(expires_at <= ?, VALUES(expires_at), expires_at)"
        )
        .into(),
        // Compare-and-set on a live row only: a dead or deleted row is never
        // written, so an update can never resurrect a session. The WHERE sees the
        // row before the SET.
        update: format!(
            "UPDATE {by_key} SET payload = ?, expires_at = ?, expires_bucket = ?, \
             version = version + 1 WHERE `key` = ? AND version = ? AND expires_at > ?"
        )
        .into(),
        is_live: format!("SELECT version FROM {t} WHERE `key` = ? AND expires_at > ?").into(),
        expire: format!("DELETE FROM {t} WHERE `key` = ?").into(),
        // With CLIENT_FOUND_ROWS the count is of matched rows, so touching with the
        // deadline a record already has still reports that it exists.
        touch: format!(
            "UPDATE {by_key} SET expires_at = ?, expires_bucket = ? \
             WHERE `key` = ? AND expires_at > ?"
        )
        .into(),
        // Found through the bucket index (the first `?` is the bucket of now: every
        // expired row's bucket is at most that), the exact deadline checked on each.
        // The condition is re-read under the row lock, so a row a concurrent create
        // just replaced with a live one is not deleted.
        purge: format!("DELETE FROM {t} WHERE expires_bucket <= ? AND expires_at <= ? LIMIT ?")
            .into(),
        // MariaDB and MySQL have no `UPDATE … RETURNING`, and an `INSERT … RETURNING`
        // would create the absent row it must not: the one-step form is a batch of
        // four statements sent as one text query (one round trip). A batch cannot
        // bind parameters through a prepared statement, so the store inlines its
        // values as literals at each `?` (`crate::batch`: a key of 64 hex digits,
        // datetimes it formats, integers). The row lock the `SELECT … FOR UPDATE`
        // takes is held to the `COMMIT`, so the row the answer shows is the one the
        // `UPDATE` sees: the two are atomic. The `SELECT` reads by key alone (the
        // store drops an expired row, as `load` does); the `UPDATE` moves a live
        // deadline before the bound, and its matched-row count says whether it did.
        load_and_touch: Some(
            format!(
                "START TRANSACTION; \
                 SELECT payload, expires_at, version FROM {t} WHERE `key` = ? FOR UPDATE; \
                 UPDATE {by_key} SET expires_at = ?, expires_bucket = ? \
                 WHERE `key` = ? AND expires_at > ? AND expires_at < ?; \
                 COMMIT"
            )
            .into(),
        ),
    }
}
