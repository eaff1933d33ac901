//! PostgreSQL-specific behaviour: schema, pooling, faults, bulk purge — the tests
//! session-mysql runs too (`session_sql_testing::integration`), with the
//! PostgreSQL statements they send behind the store's back.

use std::future::Future;

use session_core::StorageKey;
use session_core::time::OffsetDateTime;
use session_postgres::PgDialect;
use session_postgres::sqlx::postgres::PgConnectOptions;
use session_postgres::sqlx::{self, AssertSqlSafe, Connection, PgConnection};
use session_sql_common::{Dialect, TableName, expiry_bucket};
use session_sql_testing::contract::key;
use session_sql_testing::integration::TestServer;

struct Postgres;

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap()
}

impl TestServer for Postgres {
    type Dialect = PgDialect;
    /// The `application_name` of the store's connections.
    type Isolation = String;

    const BACKEND: &'static str = "postgres";
    const URL_VAR: &'static str = "SESSION_TEST_POSTGRES_URL";
    const RESTART_CMD_VAR: &'static str = "SESSION_TEST_POSTGRES_RESTART_CMD";
    const UNREACHABLE_URL: &'static str = "postgres://nobody@127.0.0.1:1/none";
    /// Named zones without daylight saving time: UTC+14:00 and UTC−09:30.
    const FAR_TIME_ZONES: [(&'static str, i64); 2] = [
        ("Pacific/Kiritimati", 14 * 3600),
        ("Pacific/Marquesas", -(9 * 3600 + 1800)),
    ];
    const TIME_ZONE_OFFSET_QUERY: &'static str =
        "SELECT CAST(EXTRACT(TIMEZONE FROM now()) AS BIGINT)";

    fn set_time_zone(zone: &str) -> String {
        format!("SET TIME ZONE '{zone}'")
    }

    async fn assert_schema(url: &str, table: &str) {
        let mut conn = connect(url).await;
        let cols: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let cols: Vec<(&str, &str)> = cols.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            cols,
            [
                ("key", "character varying"),
                ("payload", "bytea"),
                ("expires_at", "timestamp with time zone"),
                ("version", "bigint"),
                ("expires_bucket", "bigint")
            ]
        );
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let columns: Vec<&str> = indexes
            .iter()
            .filter_map(|def| {
                def.rsplit_once('(')
                    .map(|(_, cols)| cols.trim_end_matches(')'))
            })
            .collect();
        assert_eq!(columns, ["expires_bucket", "key"], "{indexes:?}");
    }

    async fn migration_log(url: &str, table: &str) -> Vec<(i64, String)> {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT version, description FROM \"{table}_migrations\""
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
            "INSERT INTO \"{table}\" (key, payload, expires_at, expires_bucket, version) \
             VALUES ($1, '\\x00', $2, $3, -5)"
        )))
        .bind(key.as_str())
        .bind(expires_at)
        .bind(expiry_bucket(expires_at))
        .execute(&mut connect(url).await)
        .await
        .unwrap();
    }

    async fn insert_expiring_rows(url: &str, table: &str, expires_at: OffsetDateTime) {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO \"{table}\" (key, payload, expires_at, expires_bucket, version) \
             SELECT encode(sha256(i::text::bytea), 'hex'), '\\x00', $1, $2, 1 \
             FROM generate_series(1, 100000) AS i"
        )))
        .bind(expires_at)
        .bind(expiry_bucket(expires_at))
        .execute(&mut connect(url).await)
        .await
        .unwrap();
    }

    async fn stored_buckets(url: &str, table: &str) -> Vec<(String, OffsetDateTime, i64)> {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT key::text, expires_at, expires_bucket FROM \"{table}\" ORDER BY key"
        )))
        .fetch_all(&mut connect(url).await)
        .await
        .unwrap()
    }

    async fn insert_version_1_rows(url: &str, table: &str, rows: &[(StorageKey, OffsetDateTime)]) {
        let mut conn = connect(url).await;
        for (key, expires_at) in rows {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO \"{table}\" (key, payload, expires_at, version) VALUES ($1, $2, $3, 1)"
            )))
            .bind(key.as_str())
            .bind(key.as_str().as_bytes())
            .bind(expires_at)
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }

    async fn purge_plan(url: &str, table: &str, now: OffsetDateTime, batch: i64) -> String {
        let mut conn = connect(url).await;
        sqlx::query(AssertSqlSafe(format!("ANALYZE \"{table}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        let sql = PgDialect::statements(&TableName::new(table).unwrap());
        let lines: Vec<String> =
            sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN {}", sql.purge)))
                .bind(now)
                .bind(batch)
                .bind(expiry_bucket(now))
                .fetch_all(&mut conn)
                .await
                .unwrap();
        lines.join("\n")
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
            "SELECT 1 FROM \"{table}\" WHERE key = $1 FOR UPDATE"
        )))
        .bind(key.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
        let out = while_locked.await;
        tx.commit().await.unwrap();
        out
    }

    /// Tags the store's connections with an `application_name` of their own.
    async fn isolate(url: &str) -> (PgConnectOptions, String) {
        let app = format!("fault_{}", &key().as_str()[..12]);
        let options = url
            .parse::<PgConnectOptions>()
            .unwrap()
            .application_name(&app);
        (options, app)
    }

    /// `pg_terminate_backend` on every connection with the store's `application_name`.
    async fn kill_connections(url: &str, app: &String) {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(app)
        .fetch_all(&mut connect(url).await)
        .await
        .unwrap();
        assert!(!killed.is_empty(), "no connection of the store found");
    }

    async fn release(_: &str, _: String) {}
}

session_sql_testing::sql_store_tests!(Postgres);

/// A deployment may bound statements on the server (`lock_timeout`,
/// `statement_timeout` in the role's or database's settings): a statement stopped by
/// either (SQLSTATE 55P03 lock_not_available, 57014 query_canceled) is a retryable
/// backend error with the server's error as its source, as the store's own statement
/// timeout is — the shared classifier alone would call both permanent.
#[tokio::test]
async fn server_side_lock_and_statement_timeouts_are_retryable() {
    use session_core::{Bytes, Clock, Error, NewRecord, SaveMode, SessionInterface};
    use session_postgres::PostgresStore;
    use session_sql_testing::integration::store;

    let Some((plain, clock)) = store::<Postgres>("server_timeout").await else {
        return;
    };
    let url = std::env::var(Postgres::URL_VAR).unwrap();
    let name = plain.table_name().to_owned();
    let deadline = clock.now() + session_core::time::Duration::hours(1);
    for (setting, code) in [("lock_timeout", "55P03"), ("statement_timeout", "57014")] {
        let k = key();
        let record = NewRecord {
            payload: Bytes::from_static(b"v"),
            expires_at: deadline,
        };
        plain.save(&k, &record, SaveMode::Create).await.unwrap();
        let before = plain.load(&k).await.unwrap().unwrap().expires_at;
        let options = url
            .parse::<PgConnectOptions>()
            .unwrap()
            .options([(setting, "100ms")]);
        // The same table (already migrated), with the server-side bound set.
        let bounded = PostgresStore::builder()
            .table_name(&name)
            .clock(clock.shared())
            .connect_with(options)
            .unwrap();
        let err = Postgres::with_row_locked(&url, &name, &k, async {
            bounded
                .touch(&k, deadline + session_core::time::Duration::hours(1))
                .await
        })
        .await
        .unwrap_err();
        assert!(err.is_retryable(), "{setting}: {err:?}");
        let Error::Backend { source, .. } = &err else {
            panic!("{setting}: not a backend error: {err:?}")
        };
        let server = source
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|e| e.code())
            .unwrap_or_else(|| panic!("{setting}: not a server error: {source:?}"))
            .into_owned();
        assert_eq!(server, code, "{setting}");
        // Nothing moved: the stopped touch wrote nothing.
        assert_eq!(plain.load(&k).await.unwrap().unwrap().expires_at, before);
    }
    plain.drop_table().await.unwrap();
}
