//! MySQL / MariaDB-specific behaviour: schema, pooling, faults, bulk purge — the tests
//! session-postgres runs too (`session_sql_testing::integration`), with the
//! MySQL statements they send behind the store's back (valid on MySQL 8 and MariaDB).

use std::future::Future;

use session_core::StorageKey;
use session_core::time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use session_mysql::MySqlDialect;
use session_mysql::sqlx::mysql::MySqlConnectOptions;
use session_mysql::sqlx::{self, AssertSqlSafe, Connection, MySqlConnection};
use session_sql_common::{Dialect, expiry_bucket};
use session_sql_testing::contract::key;
use session_sql_testing::integration::TestServer;

struct MySql;

async fn connect(url: &str) -> MySqlConnection {
    MySqlConnection::connect(url).await.unwrap()
}

impl TestServer for MySql {
    type Dialect = MySqlDialect;
    /// A database of the store's own, so that only its connections have it as their
    /// default database.
    type Isolation = String;

    const BACKEND: &'static str = "mysql";
    const URL_VAR: &'static str = "SESSION_TEST_MYSQL_URL";
    const RESTART_CMD_VAR: &'static str = "SESSION_TEST_MYSQL_RESTART_CMD";
    const UNREACHABLE_URL: &'static str = "mysql://nobody@127.0.0.1:1/none";
    /// Offsets (a server without its time zone tables knows no names); MariaDB's
    /// range ends at +13:00.
    const FAR_TIME_ZONES: [(&'static str, i64); 2] =
        [("+13:00", 13 * 3600), ("-09:30", -(9 * 3600 + 1800))];
    const TIME_ZONE_OFFSET_QUERY: &'static str =
        "SELECT CAST(TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW()) AS SIGNED)";

    fn set_time_zone(zone: &str) -> String {
        format!("SET time_zone = '{zone}'")
    }

    async fn assert_schema(url: &str, table: &str) {
        let mut conn = connect(url).await;
        let cols: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(COLLATION_NAME AS CHAR) \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let cols: Vec<(&str, &str, Option<&str>)> = cols
            .iter()
            // MariaDB shows a display width on BIGINT, MySQL 8 does not.
            .map(|(a, b, c)| (a.as_str(), b.trim_end_matches("(20)"), c.as_deref()))
            .collect();
        assert_eq!(
            cols,
            [
                ("key", "char(64)", Some("ascii_bin")),
                ("payload", "longblob", None),
                ("expires_at", "datetime(6)", None),
                ("version", "bigint", None),
                ("expires_bucket", "bigint", None)
            ]
        );
        let indexed: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY COLUMN_NAME",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(indexed, ["expires_bucket", "key"]);
    }

    async fn migration_log(url: &str, table: &str) -> Vec<(i64, String)> {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT version, description FROM `{table}_migrations`"
        )))
        .fetch_all(&mut connect(url).await)
        .await
        .unwrap()
    }

    async fn insert_unreadable_row(
        url: &str,
        table: &str,
        key: &StorageKey,
        expires_at: OffsetDateTime,
    ) {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO `{table}` (`key`, payload, expires_at, expires_bucket, version) \
             VALUES (?, x'00', ?, ?, -5)"
        )))
        .bind(key.as_str())
        .bind(expires_at)
        .bind(expiry_bucket(expires_at))
        .execute(&mut connect(url).await)
        .await
        .unwrap();
    }

    /// 10^5 rows from a cross join of digits (valid on MySQL 8 and MariaDB).
    async fn insert_expiring_rows(url: &str, table: &str, expires_at: OffsetDateTime) {
        let digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                      UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
                      UNION ALL SELECT 8 UNION ALL SELECT 9)";
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO `{table}` (`key`, payload, expires_at, expires_bucket, version) \
             SELECT SHA2(CONCAT(a.d, b.d, c.d, e.d, f.d), 256), x'00', ?, ?, 1 \
             FROM {digits} a, {digits} b, {digits} c, {digits} e, {digits} f"
        )))
        .bind(expires_at)
        .bind(expiry_bucket(expires_at))
        .execute(&mut connect(url).await)
        .await
        .unwrap();
    }

    async fn stored_buckets(url: &str, table: &str) -> Vec<(String, OffsetDateTime, i64)> {
        let rows: Vec<(String, PrimitiveDateTime, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT CAST(`key` AS CHAR), expires_at, expires_bucket FROM `{table}` ORDER BY `key`"
        )))
        .fetch_all(&mut connect(url).await)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(key, at, bucket)| (key, at.assume_utc(), bucket))
            .collect()
    }

    async fn insert_version_1_rows(url: &str, table: &str, rows: &[(StorageKey, OffsetDateTime)]) {
        let mut conn = connect(url).await;
        for (key, expires_at) in rows {
            let utc = expires_at.to_offset(UtcOffset::UTC);
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO `{table}` (`key`, payload, expires_at, version) VALUES (?, ?, ?, 1)"
            )))
            .bind(key.as_str())
            .bind(key.as_str().as_bytes())
            .bind(PrimitiveDateTime::new(utc.date(), utc.time()))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }

    async fn purge_plan(url: &str, table: &str, now: OffsetDateTime, batch: i64) -> String {
        let mut conn = connect(url).await;
        sqlx::query(AssertSqlSafe(format!("ANALYZE TABLE `{table}`")))
            .execute(&mut conn)
            .await
            .unwrap();
        let sql = MySqlDialect::statements(&session_sql_common::TableName::new(table).unwrap());
        let utc = now.to_offset(UtcOffset::UTC);
        let rows = sqlx::query(AssertSqlSafe(format!("EXPLAIN {}", sql.purge)))
            .bind(expiry_bucket(now))
            .bind(PrimitiveDateTime::new(utc.date(), utc.time()))
            .bind(batch)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                let key: Option<String> = sqlx::Row::try_get(row, "key").unwrap();
                let kind: Option<String> = sqlx::Row::try_get(row, "type").unwrap();
                format!("type {kind:?}, key {key:?}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn with_row_locked<F: Future>(
        url: &str,
        table: &str,
        key: &StorageKey,
        while_locked: F,
    ) -> F::Output {
        let mut locker = connect(url).await;
        let mut tx = locker.begin().await.unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "SELECT 1 FROM `{table}` WHERE `key` = ? FOR UPDATE"
        )))
        .bind(key.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
        let out = while_locked.await;
        tx.commit().await.unwrap();
        out
    }

    /// Creates a database for the store and makes it the connections' default.
    async fn isolate(url: &str) -> (MySqlConnectOptions, String) {
        let db = format!("sessfault_{}", &key().as_str()[..12]);
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE `{db}`")))
            .execute(&mut connect(url).await)
            .await
            .unwrap();
        let options = url.parse::<MySqlConnectOptions>().unwrap().database(&db);
        (options, db)
    }

    /// `KILL CONNECTION` for every connection whose default database is the store's.
    async fn kill_connections(url: &str, db: &String) {
        let mut admin = connect(url).await;
        let ids: Vec<u64> = sqlx::query_scalar(
            "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST WHERE DB = ?",
        )
        .bind(db)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert!(!ids.is_empty(), "no connection of the store found");
        for id in ids {
            // KILL takes no placeholder; `id` is an integer from the server.
            sqlx::query(AssertSqlSafe(format!("KILL CONNECTION {id}")))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }

    async fn release(url: &str, db: String) {
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE `{db}`")))
            .execute(&mut connect(url).await)
            .await
            .unwrap();
    }
}

session_sql_testing::sql_store_tests!(MySql);

/// The statements that write one live row find it by primary key even when the table
/// holds a single live row, where MariaDB's optimizer chose the schema-1 `expires_at`
/// index for them (a range scan over every live row, "using buffer") and could choose
/// another secondary index again.
#[tokio::test]
async fn row_writes_use_the_primary_key_in_a_one_row_table() {
    use session_core::{Bytes, Clock, NewRecord, SaveMode, SessionInterface};
    use session_sql_common::{Dialect, TableName};
    use session_sql_testing::integration::{store, url};

    let Some((store, clock)) = store::<MySql>("plan").await else {
        return;
    };
    let url = url::<MySql>().expect("the store opened, so the URL is set");
    let now = clock.now();
    let k = key();
    let record = NewRecord {
        payload: Bytes::from_static(b"payload"),
        expires_at: now + time::Duration::hours(1),
    };
    store.save(&k, &record, SaveMode::Create).await.unwrap();
    let name = store.table_name().to_owned();
    let sql = MySqlDialect::statements(&TableName::new(&name).unwrap());
    let mut conn = connect(&url).await;
    sqlx::query(AssertSqlSafe(format!("ANALYZE TABLE `{name}`")))
        .execute(&mut conn)
        .await
        .unwrap();
    let at = |t: OffsetDateTime| time::PrimitiveDateTime::new(t.date(), t.time());
    let deadline = at(record.expires_at);
    let explain = |stmt: &str| format!("EXPLAIN {stmt}");
    let bucket = session_sql_common::expiry_bucket(record.expires_at);
    let update = sqlx::query(AssertSqlSafe(explain(&sql.update)))
        .bind(&b"new"[..])
        .bind(deadline)
        .bind(bucket)
        .bind(k.as_str())
        .bind(1_i64)
        .bind(at(now));
    let touch = sqlx::query(AssertSqlSafe(explain(&sql.touch)))
        .bind(deadline)
        .bind(bucket)
        .bind(k.as_str())
        .bind(at(now));
    for (what, query) in [("update", update), ("touch", touch)] {
        let plan = query.fetch_one(&mut conn).await.unwrap();
        let index: Option<String> = sqlx::Row::try_get(&plan, "key").unwrap();
        assert_eq!(index.as_deref(), Some("PRIMARY"), "{what} plan");
    }
    store.drop_table().await.unwrap();
}

/// A one-step `load_and_touch` that fails inside its batch — the server gives up
/// waiting for the row lock, which rolls back only the `SELECT … FOR UPDATE`, not the
/// transaction the batch started — is a retryable error, and the connection goes back
/// to the pool outside any transaction: the next write on it is committed, visible to
/// every other client, instead of waiting in a transaction nobody ends.
#[tokio::test]
async fn a_failed_load_and_touch_leaves_no_transaction_open() {
    use session_core::{Bytes, Clock, ManualClock, NewRecord, SaveMode, SessionInterface};
    use session_mysql::MySqlStore;
    use session_sql_testing::integration::{table, url};

    let Some(url) = url::<MySql>() else { return };
    // One connection, so the write after the failure runs on the connection the
    // failure left; a lock wait of 1 s, so the server fails the batch long before the
    // store's 2 s statement timeout would discard the connection.
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET SESSION innodb_lock_wait_timeout = 1")
                    .execute(conn)
                    .await
                    .map(drop)
            })
        })
        .connect(&url)
        .await
        .unwrap();
    let clock = ManualClock::starting_now();
    let store = MySqlStore::builder()
        .table_name(table("txopen"))
        .clock(clock.shared())
        .with_pool(pool)
        .unwrap();
    store.migrate().await.unwrap();
    let record = |payload: &'static [u8]| NewRecord {
        payload: Bytes::from_static(payload),
        expires_at: clock.now() + time::Duration::hours(1),
    };
    let (locked, later) = (key(), key());
    store
        .save(&locked, &record(b"locked"), SaveMode::Create)
        .await
        .unwrap();
    let due = clock.now() + time::Duration::hours(2);
    let err = MySql::with_row_locked(&url, store.table_name(), &locked, async {
        store
            .load_and_touch(&locked, due, due)
            .await
            .expect_err("the row is locked by another client")
    })
    .await;
    assert!(err.is_retryable(), "{err:?}");

    store
        .save(&later, &record(b"later"), SaveMode::Create)
        .await
        .unwrap();
    let seen: Option<Vec<u8>> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT payload FROM `{}` WHERE `key` = ?",
        store.table_name()
    )))
    .bind(later.as_str())
    .fetch_optional(&mut connect(&url).await)
    .await
    .unwrap();
    assert_eq!(
        seen.as_deref(),
        Some(&b"later"[..]),
        "a write after the failed batch is not visible to another client: it is inside \
         the transaction the batch left open"
    );
    // And the locked record is as it was: the failed batch moved nothing.
    let r = store.load(&locked).await.unwrap().unwrap();
    assert!(r.expires_at < due, "the failed batch moved the deadline");
    store.drop_table().await.unwrap();
}

/// A purge that InnoDB rolls back as a deadlock victim is run again, not reported as
/// an error: `delete_expired` returns every expired row once the other transaction
/// has finished.
///
/// The deadlock is built on purpose. Two expired rows, A before B in both key and
/// bucket order, so the purge locks A first. Another client locks B, and the purge,
/// having deleted A, waits for B. The client then asks for A: a cycle. InnoDB rolls
/// back the transaction that changed fewer rows, so the client first updates rows of
/// a table of its own, which makes the purge the victim.
#[tokio::test]
async fn a_purge_picked_as_deadlock_victim_is_run_again() {
    use session_core::{Bytes, Clock, NewRecord, SaveMode, SessionInterface};
    use session_sql_testing::integration::{store, url};

    let Some((store, clock)) = store::<MySql>("deadlock").await else {
        return;
    };
    let url = url::<MySql>().expect("the store opened, so the URL is set");
    let table = store.table_name().to_owned();
    let mut keys = [key(), key()];
    keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let [a, b] = keys;
    let hour = time::Duration::hours(1);
    for (k, ago) in [(&a, hour * 2), (&b, hour)] {
        let dead = NewRecord {
            payload: Bytes::from_static(b"expired"),
            expires_at: clock.now() - ago,
        };
        store.save(k, &dead, SaveMode::Create).await.unwrap();
    }
    let weight = format!("{table}_weight");
    let mut client = connect(&url).await;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE `{weight}` (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB"
    )))
    .execute(&mut client)
    .await
    .unwrap();
    let rows: Vec<String> = (1..=200).map(|id| format!("({id}, 0)")).collect();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO `{weight}` VALUES {}",
        rows.join(", ")
    )))
    .execute(&mut client)
    .await
    .unwrap();

    let lock_row = |k: &StorageKey| {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT 1 FROM `{table}` WHERE `key` = ? FOR UPDATE"
        )))
        .bind(k.as_str().to_owned())
    };
    let mut tx = client.begin().await.unwrap();
    sqlx::query(AssertSqlSafe(format!("UPDATE `{weight}` SET n = n + 1")))
        .execute(&mut *tx)
        .await
        .unwrap();
    lock_row(&b).execute(&mut *tx).await.unwrap();
    let purge = tokio::spawn({
        let store = store.clone();
        async move { store.delete_expired().await }
    });
    // Until the purge holds A and waits for B.
    let mut watcher = connect(&url).await;
    let waiting = format!("DELETE FROM `{table}`%");
    let started = std::time::Instant::now();
    loop {
        let waits: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX \
             WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE ?",
        )
        .bind(&waiting)
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waits > 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the purge never waited for the locked row"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    lock_row(&a)
        .execute(&mut *tx)
        .await
        .expect("the server rolled back this client, not the purge: the test's weighting failed");
    tx.commit().await.unwrap();

    let purged = purge.await.unwrap();
    assert_eq!(
        purged.expect("a deadlock victim must be run again, not reported"),
        2
    );
    assert!(store.load(&a).await.unwrap().is_none());
    sqlx::query(AssertSqlSafe(format!("DROP TABLE `{weight}`")))
        .execute(&mut connect(&url).await)
        .await
        .unwrap();
    store.drop_table().await.unwrap();
}

/// A version-1 table with its migration log at version 1, as a store of schema
/// version 1 left it, and one row whose deadline is an hour from now.
async fn version_1_table(url: &str, name: &str) -> (StorageKey, OffsetDateTime) {
    let t = session_sql_common::TableName::new(name).unwrap();
    drop(session_sql_testing::integration::version_1_table::<MySql>(url, &t).await);
    // Whole microseconds, as the column stores them.
    let at = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + time::Duration::hours(1);
    let row = (key(), at);
    MySql::insert_version_1_rows(url, name, std::slice::from_ref(&row)).await;
    row
}

/// A store on the table `name` (not migrated yet).
fn store_on(url: &str, name: &str) -> session_mysql::MySqlStore {
    session_mysql::MySqlStore::builder()
        .table_name(name)
        .clock(session_core::ManualClock::starting_now().shared())
        .connect(url)
        .unwrap()
}

/// Runs `sql` on a connection of its own.
async fn run_sql(url: &str, sql: String) {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut connect(url).await)
        .await
        .unwrap();
}

/// A version-1 table whose `expires_at` index someone dropped by hand is upgraded all
/// the same: each change of version 2 is an `ALTER` of its own, so the column and the
/// bucket index are added and the drop of the index already gone is accepted. (With
/// one `ALTER` of all three, accepting the missing index would have skipped adding
/// the column.)
#[tokio::test]
async fn a_version_1_table_without_its_index_is_upgraded() {
    use session_sql_common::TableName;
    use session_sql_testing::integration::{table, url};

    let Some(url) = url::<MySql>() else { return };
    let name = table("noidx");
    let (k, at) = version_1_table(&url, &name).await;
    let index = TableName::new(&name)
        .unwrap()
        .with_suffix("_expires_at_idx");
    run_sql(&url, format!("ALTER TABLE `{name}` DROP KEY `{index}`")).await;

    let store = store_on(&url, &name);
    assert_eq!(store.migrate().await.unwrap(), 2);
    MySql::assert_schema(&url, &name).await;
    assert_eq!(
        MySql::stored_buckets(&url, &name).await,
        [(k.as_str().to_owned(), at, expiry_bucket(at))]
    );
    store.drop_table().await.unwrap();
}

/// A migration step that fails — here the version-2 backfill, on a version-1 table
/// someone stripped of its `expires_at` column — fails `migrate()` with a permanent
/// error and records nothing, although the step's other statements end with errors
/// that read as "already applied" (the dropped column took its index with it).
/// Recording version 2 over a table the step did not finish would break every write
/// after it.
#[tokio::test]
async fn a_failing_migration_step_fails_migrate_and_is_not_recorded() {
    use session_sql_testing::integration::{table, url};

    let Some(url) = url::<MySql>() else { return };
    let name = table("failv2");
    version_1_table(&url, &name).await;
    run_sql(&url, format!("ALTER TABLE `{name}` DROP COLUMN expires_at")).await;

    let store = store_on(&url, &name);
    let err = store
        .migrate()
        .await
        .expect_err("the version-2 step failed, yet migrate() succeeded");
    assert!(!err.is_retryable(), "{err:?}");
    let log = MySql::migration_log(&url, &name).await;
    assert_eq!(
        log,
        [(1, MySqlDialect::MIGRATIONS[0].description.to_owned())],
        "a failed step was recorded"
    );
    store.drop_table().await.unwrap();
}

/// The one-step `load_and_touch` answers the record as it is after the call
/// (`Refreshed::record`): the deadline it reports for a touch is the one a `load` reads
/// next — the new deadline truncated to the microsecond, as the column stores it — not
/// the nanosecond deadline it was given, nor any other rounding of it.
#[tokio::test]
async fn the_one_step_load_and_touch_reports_the_deadline_it_stored() {
    use session_core::{Bytes, Clock, NewRecord, SaveMode, SessionInterface};
    use session_sql_testing::integration::store;

    let Some((store, clock)) = store::<MySql>("stored").await else {
        return;
    };
    let now = clock.now();
    let k = key();
    let record = NewRecord {
        payload: Bytes::from_static(b"payload"),
        expires_at: now + time::Duration::hours(1),
    };
    store.save(&k, &record, SaveMode::Create).await.unwrap();
    let new = (now + time::Duration::hours(2))
        .replace_nanosecond(123_456_789)
        .unwrap();
    // The bound at the new deadline: the store takes the one-step path.
    let refreshed = store
        .load_and_touch(&k, new, new)
        .await
        .unwrap()
        .expect("live");
    assert!(refreshed.touched);
    let stored = new.replace_nanosecond(123_456_000).unwrap();
    assert_eq!(refreshed.record.expires_at, stored);
    let loaded = store.load(&k).await.unwrap().expect("live");
    assert_eq!(loaded.expires_at, stored);
    store.drop_table().await.unwrap();
}
