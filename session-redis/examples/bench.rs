//! Throughput of the store against the limit: raw `GET` + `SET` on one multiplexed
//! redis-rs connection, measured in the same run on the same server.
//!
//! ```text
//! cargo run -p session-redis --release --example bench -- [SECONDS_PER_RUN] [ROUNDS]
//! ```
//!
//! Uses `SESSION_TEST_REDIS_URL` (default `redis://127.0.0.1:16379/0`). Each task works
//! on its own key, so the numbers measure round trips and server work, not conflicts.
//! Keys live under `bench:<pid>:` with a one-hour TTL and are deleted at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use session_core::time::OffsetDateTime;
use session_core::{Bytes, NewRecord, SaveMode, SessionInterface, SessionToken, StorageKey};
use session_redis::{RedisConfig, RedisStore};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Raw `GET` then `SET` of the same payload: the limit.
    RawCycle,
    /// `load` then `save(Update)`: one request of a session that changed.
    StoreCycle,
    Load,
    Update,
    Touch,
    /// `save(Create)` then `expire` of a fresh key (so the data set stays small).
    CreateExpire,
}

struct Ctx {
    raw: redis::aio::MultiplexedConnection,
    store: RedisStore,
    payload: Bytes,
}

fn deadline() -> OffsetDateTime {
    OffsetDateTime::now_utc() + session_core::time::Duration::hours(1)
}

fn new_key() -> Result<StorageKey, BoxError> {
    Ok(SessionToken::generate()?.storage_key())
}

/// One task: repeat `op` until `stop`, counting completed iterations.
async fn task(
    ctx: Arc<Ctx>,
    op: Op,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Result<(), BoxError> {
    let key = new_key()?;
    let raw_key = ctx.store.redis_key(&key);
    let mut raw = ctx.raw.clone();
    let rec = NewRecord {
        payload: ctx.payload.clone(),
        expires_at: deadline(),
    };
    if op == Op::RawCycle {
        let _: () = raw.set_ex(&raw_key, &ctx.payload[..], 3600).await?;
    } else {
        ctx.store.save(&key, &rec, SaveMode::Create).await?;
    }
    let mut version = 1;
    while !stop.load(Ordering::Relaxed) {
        match op {
            Op::RawCycle => {
                let got: Option<Vec<u8>> = raw.get(&raw_key).await?;
                let got = got.ok_or("raw key vanished")?;
                let _: () = raw.set_ex(&raw_key, &got[..], 3600).await?;
            }
            Op::StoreCycle => {
                let got = ctx.store.load(&key).await?.ok_or("record vanished")?;
                let rec = NewRecord {
                    payload: got.payload,
                    expires_at: deadline(),
                };
                version = ctx
                    .store
                    .save(
                        &key,
                        &rec,
                        SaveMode::Update {
                            expected_version: got.version,
                        },
                    )
                    .await?;
            }
            Op::Load => {
                ctx.store.load(&key).await?.ok_or("record vanished")?;
            }
            Op::Update => {
                version = ctx
                    .store
                    .save(
                        &key,
                        &rec,
                        SaveMode::Update {
                            expected_version: version,
                        },
                    )
                    .await?;
            }
            Op::Touch => {
                if !ctx.store.touch(&key, deadline()).await? {
                    return Err("record vanished".into());
                }
            }
            Op::CreateExpire => {
                let k = new_key()?;
                ctx.store.save(&k, &rec, SaveMode::Create).await?;
                ctx.store.expire(&k).await?;
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    if op == Op::RawCycle {
        let _: () = raw.del(&raw_key).await?;
    } else {
        ctx.store.expire(&key).await?;
    }
    Ok(())
}

/// Iterations per second of `op` with `tasks` concurrent tasks over `secs`.
async fn run(ctx: &Arc<Ctx>, op: Op, tasks: usize, secs: f64) -> Result<f64, BoxError> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|_| tokio::spawn(task(ctx.clone(), op, stop.clone(), done.clone())))
        .collect();
    // Warm-up, then measure a window.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (start_n, start) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let n = done.load(Ordering::Relaxed) - start_n;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await??;
    }
    Ok(n as f64 / elapsed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2.0);
    let rounds: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2);
    let url = std::env::var("SESSION_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:16379/0".into());
    let raw = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let store = RedisStore::connect(
        RedisConfig::new(url).key_prefix(format!("bench:{}:", std::process::id())),
    )
    .await?;

    println!(
        "| payload | tasks | raw GET+SET /s | load+update /s | ratio | load /s | update /s | touch /s | create+expire /s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for size in [1024, 16 * 1024] {
        let payload: Bytes = (0..size)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        let ctx = Arc::new(Ctx {
            raw: raw.clone(),
            store: store.clone(),
            payload,
        });
        for tasks in [1, 32] {
            // Alternate the pair being compared and keep the best of each, so a
            // noisy neighbour on the 2 cores hurts both sides alike.
            let (mut raw_best, mut store_best) = (0f64, 0f64);
            for _ in 0..rounds {
                raw_best = raw_best.max(run(&ctx, Op::RawCycle, tasks, secs).await?);
                store_best = store_best.max(run(&ctx, Op::StoreCycle, tasks, secs).await?);
            }
            let mut rest = Vec::new();
            for op in [Op::Load, Op::Update, Op::Touch, Op::CreateExpire] {
                rest.push(run(&ctx, op, tasks, secs).await?);
            }
            println!(
                "| {} KiB | {tasks} | {raw_best:.0} | {store_best:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |",
                size / 1024,
                store_best / raw_best,
                rest[0],
                rest[1],
                rest[2],
                rest[3],
            );
        }
    }
    Ok(())
}
