//! PostgreSQL-specific behaviour: schema, pooling, faults, bulk purge.

mod common;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use session_core::time::Duration;
use session_core::{
    Bytes, Clock, ConfigError, Error, ManualClock, NewRecord, SaveMode, SessionInterface,
};
use session_postgres::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use session_postgres::sqlx::{self, AssertSqlSafe, Connection, PgConnection};
use session_postgres::{PostgresStore, SCHEMA_VERSION, SchemaTooNew};
use session_sql_common::contract::{self, key};

fn rec(payload: &'static [u8], expires_at: session_core::time::OffsetDateTime) -> NewRecord {
    NewRecord {
        payload: Bytes::from_static(payload),
        expires_at,
    }
}

#[test]
fn hostile_table_names_are_rejected_before_any_sql() {
    for name in ["sessions; DROP TABLE users", "a\"b", "", "Sessions", "x.y"] {
        let err = PostgresStore::builder()
            .table_name(name)
            .connect("postgres://nobody@127.0.0.1:1/none")
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config(ConfigError::Invalid {
                    setting: "table name",
                    ..
                })
            ),
            "{name:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_recorded() {
    let Some(url) = common::url() else { return };
    let table = common::table("migrate");
    // Several stores migrating one fresh table at once: the advisory lock serialises.
    let stores: Vec<_> = (0..4)
        .map(|_| {
            PostgresStore::builder()
                .table_name(&table)
                .connect(&url)
                .unwrap()
        })
        .collect();
    assert_eq!(stores[0].schema_version().await.unwrap(), None);
    let runs = futures::future::join_all(stores.iter().map(|s| s.migrate())).await;
    for r in runs {
        assert_eq!(r.unwrap(), SCHEMA_VERSION);
    }
    assert_eq!(stores[0].migrate().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(
        stores[0].schema_version().await.unwrap(),
        Some(SCHEMA_VERSION)
    );

    let mut conn = PgConnection::connect(&url).await.unwrap();
    let rows: Vec<(i64, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT version, description FROM \"{table}_migrations\""
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "each version is recorded once: {rows:?}");
    assert_eq!(rows[0].0, SCHEMA_VERSION);
    let cols: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_name = $1 ORDER BY ordinal_position",
    )
    .bind(&table)
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
            ("version", "bigint")
        ]
    );
    let indexed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE '%(expires_at)%')",
    )
    .bind(&table)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(indexed, "no index on expires_at");

    // A newer schema than this build knows is refused, permanently.
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{table}_migrations\" (version, description) VALUES (99, 'future')"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let err = stores[0].migrate().await.unwrap_err();
    assert!(!err.is_retryable());
    let Error::Backend { source, .. } = &err else {
        panic!("{err:?}")
    };
    let too_new = source
        .downcast_ref::<SchemaTooNew>()
        .expect("SchemaTooNew source");
    assert_eq!((too_new.found, too_new.supported), (99, SCHEMA_VERSION));
    stores[0].drop_table().await.unwrap();
}

#[tokio::test]
async fn unreadable_rows_are_decode_errors() {
    let Some((store, clock)) = common::store("decode").await else {
        return;
    };
    let url = common::url().unwrap();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let k = key();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{}\" VALUES ($1, '\\x00', $2, -5)",
        store.table_name()
    )))
    .bind(k.as_str())
    .bind(clock.now() + Duration::hours(1))
    .execute(&mut conn)
    .await
    .unwrap();
    let err = store.load(&k).await.unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
    store.drop_table().await.unwrap();
}

#[tokio::test]
async fn exhausted_pool_times_out_instead_of_hanging() {
    let Some(url) = common::url() else { return };
    let clock = ManualClock::starting_now();
    let store = PostgresStore::builder()
        .table_name(common::table("exhaust"))
        .clock(clock.shared())
        .max_connections(1)
        .acquire_timeout(StdDuration::from_millis(300))
        .connect(&url)
        .unwrap();
    store.migrate().await.unwrap();
    let k = key();
    let deadline = clock.now() + Duration::hours(1);
    store
        .save(&k, &rec(b"a", deadline), SaveMode::Create)
        .await
        .unwrap();

    // Another client locks the row, so the store's update holds its only connection.
    let mut locker = PgConnection::connect(&url).await.unwrap();
    let mut tx = locker.begin().await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "SELECT 1 FROM \"{}\" WHERE key = $1 FOR UPDATE",
        store.table_name()
    )))
    .bind(k.as_str())
    .execute(&mut *tx)
    .await
    .unwrap();
    let blocked = {
        let (store, k) = (store.clone(), k.clone());
        tokio::spawn(async move {
            let update = SaveMode::Update {
                expected_version: 1,
            };
            store.save(&k, &rec(b"b", deadline), update).await
        })
    };
    tokio::time::sleep(StdDuration::from_millis(200)).await;

    let started = Instant::now();
    let r = tokio::time::timeout(StdDuration::from_secs(5), store.load(&key())).await;
    let err = r.expect("an exhausted pool must not hang").unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(started.elapsed() >= StdDuration::from_millis(250));

    tx.commit().await.unwrap();
    assert_eq!(blocked.await.unwrap().unwrap(), 2);
    store.drop_table().await.unwrap();
}

#[tokio::test]
async fn accepts_a_callers_sqlx_pool() {
    let Some(url) = common::url() else { return };
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .unwrap();
    let clock = ManualClock::starting_now();
    let store = PostgresStore::builder()
        .table_name(common::table("sqlxpool"))
        .clock(clock.shared())
        .with_pool(pool)
        .unwrap();
    store.migrate().await.unwrap();
    contract::update_cas(&store, &clock).await;
    let shared: Arc<dyn SessionInterface> = Arc::new(store.clone());
    contract::concurrent_creates(shared, &clock, 16).await;
    store.drop_table().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_expired_purges_100k_rows_in_batches() {
    let Some((store, clock)) = common::store("bulk").await else {
        return;
    };
    let url = common::url().unwrap();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    // Bulk setup in one statement; the purge is the subject.
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{}\" SELECT encode(sha256(i::text::bytea), 'hex'), '\\x00', $1, 1 \
         FROM generate_series(1, 100000) AS i",
        store.table_name()
    )))
    .bind(clock.now() + Duration::minutes(1))
    .execute(&mut conn)
    .await
    .unwrap();
    let live: Vec<_> = (0..5).map(|_| key()).collect();
    for k in &live {
        let rec = rec(b"live", clock.now() + Duration::hours(1));
        store.save(k, &rec, SaveMode::Create).await.unwrap();
    }
    clock.advance(Duration::minutes(2));
    assert_eq!(store.delete_expired().await.unwrap(), 100_000);
    for k in &live {
        assert!(store.load(k).await.unwrap().is_some());
    }
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    store.drop_table().await.unwrap();
}

/// Connection loss mid-loop: by default every server connection of this store is
/// terminated (`pg_terminate_backend`, what a server restart does to clients); with
/// `SESSION_TEST_POSTGRES_RESTART_CMD` set, that shell command runs instead (e.g. a
/// real `pg_ctl restart`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_loss_gives_retryable_errors_then_recovers() {
    let Some(url) = common::url() else { return };
    let app = format!("fault_{}", &key().as_str()[..12]);
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()
        .unwrap()
        .application_name(&app);
    let clock = ManualClock::starting_now();
    let store = PostgresStore::builder()
        .table_name(common::table("fault"))
        .clock(clock.shared())
        .max_connections(4)
        .connect_with(options)
        .unwrap();
    store.migrate().await.unwrap();
    let keys: Vec<_> = (0..8).map(|_| key()).collect();
    let deadline = clock.now() + Duration::hours(1);
    let mut last_ok = vec![0u64; keys.len()];
    for (i, k) in keys.iter().enumerate() {
        last_ok[i] = store
            .save(k, &rec(b"v", deadline), SaveMode::Create)
            .await
            .unwrap();
    }
    let mut errors = 0;
    for round in 0..200 {
        if round == 100 {
            inject_fault(&url, &app).await;
        }
        let i = round % keys.len();
        let mode = SaveMode::Update {
            expected_version: last_ok[i],
        };
        match store.save(&keys[i], &rec(b"v", deadline), mode).await {
            Ok(v) => last_ok[i] = v,
            Err(e) => {
                assert!(e.is_retryable(), "round {round}: {e:?}");
                errors += 1;
                // The failed update may or may not have committed: resync the version.
                tokio::time::sleep(StdDuration::from_millis(50)).await;
                if let Ok(Some(r)) = store.load(&keys[i]).await {
                    last_ok[i] = r.version;
                }
            }
        }
    }
    assert!(errors > 0, "the fault was not noticed");
    assert!(errors < 100, "the store did not recover: {errors} errors");
    for (i, k) in keys.iter().enumerate() {
        let got = store
            .load(k)
            .await
            .unwrap()
            .expect("acknowledged record lost");
        assert!(got.version >= last_ok[i], "acknowledged update lost");
    }
    store.drop_table().await.unwrap();
}

async fn inject_fault(url: &str, app: &str) {
    if let Ok(cmd) = std::env::var("SESSION_TEST_POSTGRES_RESTART_CMD") {
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .status()
            .await
            .unwrap();
        assert!(status.success(), "{cmd} failed");
        return;
    }
    let mut admin = PgConnection::connect(url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(app)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "no connection of the store found");
}
