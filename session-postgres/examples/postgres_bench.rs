//! Throughput of the store against the limit: the same `SELECT` + `UPDATE` statements
//! the store sends, by key, on dedicated connections that are never pinged, in the
//! same run. The difference is what the pool and the store add.
//!
//! ```sh
//! SESSION_TEST_POSTGRES_URL=postgres://sess:sess@127.0.0.1:15432/sess \
//!   cargo run --release -p session-postgres --example postgres_bench [seconds per case]
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use session_core::time::{Duration as TDuration, OffsetDateTime};
use session_core::{Bytes, NewRecord, SaveMode, SessionInterface, SessionToken, StorageKey};
use session_postgres::PostgresStore;
use session_postgres::sqlx::postgres::PgPoolOptions;
use session_postgres::sqlx::{self, AssertSqlSafe, Connection, PgConnection};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url =
        std::env::var("SESSION_TEST_POSTGRES_URL").map_err(|_| "set SESSION_TEST_POSTGRES_URL")?;
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let run_for = Duration::from_secs(secs);
    let table = "bench_sessions";
    let store = PostgresStore::builder()
        .table_name(table)
        .max_connections(32)
        .connect(&url)?;
    store.drop_table().await?;
    store.migrate().await?;
    let sqlx_pool = PgPoolOptions::new()
        .max_connections(32)
        .connect(&url)
        .await?;
    let via_sqlx = PostgresStore::builder()
        .table_name(table)
        .with_pool(sqlx_pool)?;

    println!(
        "| payload | tasks | raw SELECT+UPDATE | store load+update | ratio | store on sqlx::Pool | touch | create |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for size in [1024usize, 16 * 1024] {
        for tasks in [1usize, 32] {
            let keys = seed(&store, tasks, size).await?;
            let raw = raw_cycles(&url, table, &keys, size, run_for).await?;
            let ours = cycles(&store, &keys, size, run_for).await;
            let theirs = cycles(&via_sqlx, &keys, size, run_for).await;
            let s = store.clone();
            let touch = measure(&keys, run_for, move |k| {
                let store = s.clone();
                async move {
                    let deadline = OffsetDateTime::now_utc() + TDuration::hours(1);
                    store
                        .touch(&k, deadline)
                        .await
                        .map(drop)
                        .map_err(Into::into)
                }
            })
            .await;
            let s = store.clone();
            let create = measure(&keys, run_for, move |_| {
                let store = s.clone();
                async move {
                    let k = SessionToken::generate()?.storage_key();
                    store
                        .save(&k, &record(size), SaveMode::Create)
                        .await
                        .map(drop)?;
                    Ok(())
                }
            })
            .await;
            println!(
                "| {} KiB | {tasks} | {raw:.0} | {ours:.0} | {:.2} | {theirs:.0} | {touch:.0} | {create:.0} |",
                size / 1024,
                ours / raw
            );
        }
    }
    store.drop_table().await?;
    Ok(())
}

fn record(size: usize) -> NewRecord {
    NewRecord {
        payload: Bytes::from(vec![0x5a; size]),
        expires_at: OffsetDateTime::now_utc() + TDuration::hours(1),
    }
}

/// One session per task.
async fn seed(
    store: &PostgresStore,
    tasks: usize,
    size: usize,
) -> Result<Vec<StorageKey>, BoxError> {
    let mut keys = Vec::new();
    for _ in 0..tasks {
        let k = SessionToken::generate()?.storage_key();
        store.save(&k, &record(size), SaveMode::Create).await?;
        keys.push(k);
    }
    Ok(keys)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs `op` in a loop on one task per key for `run_for`; returns operations per second.
async fn measure<F, Fut>(keys: &[StorageKey], run_for: Duration, op: F) -> f64
where
    F: Fn(StorageKey) -> Fut + Send + Sync + 'static + Clone,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = keys
        .iter()
        .cloned()
        .map(|k| {
            let (op, done) = (op.clone(), done.clone());
            tokio::spawn(async move {
                while start.elapsed() < run_for {
                    op(k.clone()).await.expect("benchmark operation failed");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("benchmark task panicked");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The request cycle through the store: load, then compare-and-set the same payload.
async fn cycles(store: &PostgresStore, keys: &[StorageKey], size: usize, run_for: Duration) -> f64 {
    let store = store.clone();
    measure(keys, run_for, move |k| {
        let store = store.clone();
        async move {
            let got = store.load(&k).await?.ok_or("session vanished")?;
            let mode = SaveMode::Update {
                expected_version: got.version,
            };
            store.save(&k, &record(size), mode).await?;
            Ok(())
        }
    })
    .await
}

/// The limit: the same two round trips on a dedicated connection per task, no pool.
async fn raw_cycles(
    url: &str,
    table: &str,
    keys: &[StorageKey],
    size: usize,
    run_for: Duration,
) -> Result<f64, BoxError> {
    let select = format!("SELECT payload, expires_at, version FROM \"{table}\" WHERE key = $1");
    let update = format!(
        "UPDATE \"{table}\" SET payload = $1, expires_at = $2, version = version + 1 WHERE key = $3 AND version = $4 AND expires_at > $5"
    );
    let done = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::new();
    for _ in keys {
        conns.push(PgConnection::connect(url).await?);
    }
    let start = Instant::now();
    let tasks: Vec<_> = keys
        .iter()
        .cloned()
        .zip(conns)
        .map(|(k, mut conn)| {
            let (select, update, done) = (select.clone(), update.clone(), done.clone());
            let payload = vec![0x5au8; size];
            tokio::spawn(async move {
                while start.elapsed() < run_for {
                    let now = OffsetDateTime::now_utc();
                    let (_, _, version): (Vec<u8>, OffsetDateTime, i64) =
                        sqlx::query_as(AssertSqlSafe(select.as_str()))
                            .bind(k.as_str())
                            .fetch_one(&mut conn)
                            .await
                            .expect("select");
                    sqlx::query(AssertSqlSafe(update.as_str()))
                        .bind(&payload[..])
                        .bind(now + TDuration::hours(1))
                        .bind(k.as_str())
                        .bind(version)
                        .bind(now)
                        .execute(&mut conn)
                        .await
                        .expect("update");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}
