//! Issue 20, finding 10: the demo never purged expired sessions, so on the file,
//! PostgreSQL and MySQL backends every session ever created stayed on disk. It now
//! runs session-core's cleanup task every `--cleanup-interval`. Each test logs in
//! with a one-second idle lifetime and watches the record disappear from the raw
//! store: the file store's directory, the SQL table (PostgreSQL and MySQL when
//! their `SESSION_TEST_*` variable is set; they fail instead of skipping when
//! `SESSION_TEST_REQUIRE` names them).

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::{Demo, browser, login, record_files};
use session_core::SessionToken;

/// The flags that make a session expire a second after login and the purge run
/// every second.
const SHORT: &[&str] = &[
    "--idle-lifetime",
    "1s",
    "--absolute-lifetime",
    "1s",
    "--cleanup-interval",
    "1s",
];

/// Polls `count` until it is 0 (true) or 10 s have passed (false).
async fn drains<F: Future<Output = usize>>(mut count: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if count().await == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_file_sessions_are_purged() {
    let demo = Demo::start("file", SHORT)
        .await
        .expect("file is always available");
    let (client, _jar) = browser();
    login(&demo, &client, "alice").await;
    assert_eq!(record_files(demo.dir()).len(), 1, "the login's record");
    let dir = demo.dir().to_owned();
    assert!(
        drains(|| {
            let dir = dir.clone();
            async move { record_files(&dir).len() }
        })
        .await,
        "the expired record is still on disk after 10 s"
    );
}

/// A fresh table name, so parallel runs never share rows.
fn fresh_table() -> String {
    let key = SessionToken::generate().unwrap().storage_key();
    format!("demo_cleanup_{}", &key.as_str()[..10])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_postgres_sessions_are_purged() {
    use session_postgres::sqlx::{self, Connection as _};
    let table = fresh_table();
    let mut flags = SHORT.to_vec();
    flags.extend(["--sql-table", table.as_str()]);
    let Some(demo) = Demo::start("postgres", &flags).await else {
        return;
    };
    let url = std::env::var("SESSION_TEST_POSTGRES_URL").unwrap();
    let mut db = sqlx::PgConnection::connect(url.trim()).await.unwrap();
    let (client, _jar) = browser();
    login(&demo, &client, "alice").await;
    let count = format!("SELECT count(*) FROM {table}");
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone()))
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the login's row");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rows: i64 = 1;
    while rows > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rows = sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone()))
            .fetch_one(&mut db)
            .await
            .unwrap();
    }
    drop(demo);
    for suffix in ["", "_migrations"] {
        // The name is ours (fresh_table), not input.
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {table}{suffix}"
        )))
        .execute(&mut db)
        .await;
    }
    assert_eq!(rows, 0, "the expired row is still in the table after 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_mysql_sessions_are_purged() {
    use session_mysql::sqlx::{self, Connection as _};
    let table = fresh_table();
    let mut flags = SHORT.to_vec();
    flags.extend(["--sql-table", table.as_str()]);
    let Some(demo) = Demo::start("mysql", &flags).await else {
        return;
    };
    let url = std::env::var("SESSION_TEST_MYSQL_URL").unwrap();
    let mut db = sqlx::MySqlConnection::connect(url.trim()).await.unwrap();
    let (client, _jar) = browser();
    login(&demo, &client, "alice").await;
    let count = format!("SELECT count(*) FROM {table}");
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone()))
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the login's row");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rows: i64 = 1;
    while rows > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rows = sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone()))
            .fetch_one(&mut db)
            .await
            .unwrap();
    }
    drop(demo);
    for suffix in ["", "_migrations"] {
        // The name is ours (fresh_table), not input.
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {table}{suffix}"
        )))
        .execute(&mut db)
        .await;
    }
    assert_eq!(rows, 0, "the expired row is still in the table after 10 s");
}

/// `--cleanup-interval 0` turns the purge off: the expired record stays (until a
/// request for it, or a purge by someone else).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_interval_turns_the_purge_off() {
    let demo = Demo::start(
        "file",
        &[
            "--idle-lifetime",
            "1s",
            "--absolute-lifetime",
            "1s",
            "--cleanup-interval",
            "0",
        ],
    )
    .await
    .expect("file is always available");
    let (client, _jar) = browser();
    login(&demo, &client, "alice").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(record_files(demo.dir()).len(), 1);
}
