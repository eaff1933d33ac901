//! The one-step `load_and_touch`: a batch of statements in one text query.
//!
//! A prepared statement holds one statement, and MySQL and MariaDB have no statement
//! that both reads a row and moves its deadline (`UPDATE … RETURNING`). A text query
//! may hold several statements, all answered in one round trip — but it binds no
//! parameters, so the values are written into it as literals. Only three kinds of value
//! ever are ([`Literal`]), and none of them can hold a quote or a backslash: a storage
//! key (64 lowercase hex digits, checked again here), a datetime this module formats
//! from its fields, and an integer.

use futures::TryStreamExt;
use session_core::StorageKey;
use session_core::time::PrimitiveDateTime;
use sqlx::{AssertSqlSafe, Either, MySqlConnection, Row};

/// A value to write into the batch at one `?`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Literal<'a> {
    /// A storage key, as a quoted string.
    Key(&'a StorageKey),
    /// A `DATETIME(6)` value, as a quoted `'YYYY-MM-DD hh:mm:ss.ffffff'`, truncated to
    /// the microsecond as the binary protocol sends it.
    DateTime(PrimitiveDateTime),
    /// An integer.
    Int(i64),
}

impl Literal<'_> {
    fn write_to(self, sql: &mut String) -> Result<(), sqlx::Error> {
        use std::fmt::Write as _;
        match self {
            Literal::Key(key) => {
                let key = key.as_str();
                // `StorageKey` holds only hex digits; a key that did not would be a
                // bug, never something to write into SQL.
                if !key.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(sqlx::Error::Protocol(
                        "a storage key that is not hex digits".into(),
                    ));
                }
                let _ = write!(sql, "'{key}'");
            }
            Literal::DateTime(t) => {
                // The store clamps deadlines into DATETIME's range (years 1000 to
                // 9999), so four digits hold every year it writes.
                let _ = write!(
                    sql,
                    "'{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}'",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second(),
                    t.microsecond()
                );
            }
            Literal::Int(n) => {
                let _ = write!(sql, "{n}");
            }
        }
        Ok(())
    }
}

/// `template` with each `?` replaced by the next of `values`, in order. The templates
/// (`sql.rs`) hold no `?` but the placeholders: no string literal, no comment, and a
/// table name of `[a-z0-9_]`.
pub(crate) fn inline(template: &str, values: &[Literal<'_>]) -> Result<String, sqlx::Error> {
    let mut pieces = template.split('?');
    let mut sql = String::with_capacity(template.len() + 64 * values.len());
    sql.push_str(pieces.next().unwrap_or_default());
    let mut values = values.iter();
    for piece in pieces {
        let Some(value) = values.next() else {
            return Err(sqlx::Error::Protocol(
                "the batch has more placeholders than values".into(),
            ));
        };
        value.write_to(&mut sql)?;
        sql.push_str(piece);
    }
    if values.next().is_some() {
        return Err(sqlx::Error::Protocol(
            "the batch has fewer placeholders than values".into(),
        ));
    }
    Ok(sql)
}

/// What the `load_and_touch` batch answered: the row its `SELECT` read (payload,
/// deadline, version), and how many rows its `UPDATE` matched.
pub(crate) struct Answer {
    pub(crate) row: Option<(Vec<u8>, PrimitiveDateTime, i64)>,
    pub(crate) updated: u64,
}

/// Runs the `load_and_touch` batch (`START TRANSACTION`, `SELECT … FOR UPDATE`,
/// `UPDATE`, `COMMIT`). On an error the server stops the batch at the failed statement,
/// which can leave the transaction open (a lock wait timeout rolls back only its
/// statement): it is rolled back before the error is returned, so the connection goes
/// back to the pool outside any transaction.
pub(crate) async fn run(conn: &mut MySqlConnection, sql: String) -> Result<Answer, sqlx::Error> {
    let answer = read(&mut *conn, sql).await;
    if answer.is_err() {
        // If this fails too, the connection is unusable and the pool discards it on
        // the original error's class (or the next use fails).
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    }
    answer
}

async fn read(conn: &mut MySqlConnection, sql: String) -> Result<Answer, sqlx::Error> {
    let results: Vec<_> = sqlx::raw_sql(AssertSqlSafe(sql))
        .fetch_many(conn)
        .try_collect()
        .await?;
    let mut rows = Vec::new();
    let mut done = Vec::new();
    for result in results {
        match result {
            Either::Left(d) => done.push(d.rows_affected()),
            Either::Right(r) => rows.push(r),
        }
    }
    // One result per statement: START TRANSACTION, SELECT, UPDATE, COMMIT.
    let [_, _, updated, _] = done[..] else {
        return Err(sqlx::Error::Protocol(format!(
            "the load_and_touch batch answered {} results, expected 4",
            done.len()
        )));
    };
    if rows.len() > 1 {
        return Err(sqlx::Error::Protocol(
            "the load_and_touch batch read more than one row for a key".into(),
        ));
    }
    let row = rows
        .pop()
        .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .transpose()?;
    Ok(Answer { row, updated })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn key() -> StorageKey {
        StorageKey::parse(&"0123456789abcdef".repeat(4)).unwrap()
    }

    #[test]
    fn values_replace_the_placeholders_in_order() {
        let k = key();
        let sql = inline(
            "SELECT ? , ?, ?;",
            &[
                Literal::Key(&k),
                Literal::DateTime(datetime!(1000-01-01 0:00:00.000_000_999)),
                Literal::Int(-3),
            ],
        )
        .unwrap();
        assert_eq!(
            sql,
            format!(
                "SELECT '{}' , '1000-01-01 00:00:00.000000', -3;",
                k.as_str()
            )
        );
        let sql = inline(
            "?",
            &[Literal::DateTime(
                datetime!(9999-12-31 23:59:59.123_456_789),
            )],
        )
        .unwrap();
        assert_eq!(sql, "'9999-12-31 23:59:59.123456'");
    }

    #[test]
    fn a_count_mismatch_is_an_error() {
        assert!(inline("? ?", &[Literal::Int(1)]).is_err());
        assert!(inline("?", &[Literal::Int(1), Literal::Int(2)]).is_err());
        assert_eq!(inline("no placeholder", &[]).unwrap(), "no placeholder");
    }
}
