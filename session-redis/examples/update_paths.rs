//! The two compare-and-set paths side by side, per payload size: the store's
//! `load` + `save(Update)` cycle through the Lua script (threshold `usize::MAX`) and
//! through the `MULTI`/`EXEC` transaction (threshold 0), against raw `GET` + `SET`,
//! with the server's CPU per cycle.
//!
//! ```text
//! cargo run -p session-redis --release --example update_paths -- [SECONDS] [ROUNDS] [TASKS] [KIB,KIB,…]
//! ```
//!
//! Uses `SESSION_TEST_REDIS_URL` (default `redis://127.0.0.1:16379/0`); point it at a
//! server nobody else uses, since the server-side numbers are read from `INFO`. Each
//! task works on its own key under `bench-paths:<pid>:` (one-hour TTL, deleted at the
//! end). Throughput: best of `ROUNDS` alternating runs. Server CPU per cycle: the
//! process's `used_cpu_user` + `used_cpu_sys` (everything: network, parsing,
//! commands), and `INFO commandstats` time of everything but `GET` (the update alone).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use session_core::time::OffsetDateTime;
use session_core::{Bytes, NewRecord, SaveMode, SessionInterface, SessionToken};
use session_redis::{RedisConfig, RedisStore};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    Raw,
    Script,
    Transaction,
}

/// What one run measured.
#[derive(Default, Clone, Copy)]
struct Run {
    per_sec: f64,
    /// Server process CPU per cycle, µs.
    cpu_us: f64,
    /// `commandstats` time of the write side per cycle, µs.
    cmd_us: f64,
}

fn deadline() -> OffsetDateTime {
    OffsetDateTime::now_utc() + session_core::time::Duration::hours(1)
}

/// `(used_cpu_user + used_cpu_sys in µs, commandstats µs of every command but GET)`.
async fn server_cpu(con: &mut redis::aio::MultiplexedConnection) -> Result<(f64, f64), BoxError> {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .arg("commandstats")
        .query_async(con)
        .await?;
    let (mut cpu, mut cmd) = (0f64, 0f64);
    for line in info.lines() {
        if let Some(v) = line
            .strip_prefix("used_cpu_user:")
            .or_else(|| line.strip_prefix("used_cpu_sys:"))
        {
            cpu += v.trim().parse::<f64>()? * 1e6;
        } else if let Some(rest) = line.strip_prefix("cmdstat_") {
            let (name, stats) = rest.split_once(':').ok_or("commandstats line")?;
            if name == "get" || name == "info" {
                continue;
            }
            let usec = stats
                .split(',')
                .find_map(|f| f.strip_prefix("usec="))
                .ok_or("usec")?;
            cmd += usec.parse::<f64>()?;
        }
    }
    Ok((cpu, cmd))
}

async fn task(
    store: RedisStore,
    mut raw: redis::aio::MultiplexedConnection,
    path: Path,
    payload: Bytes,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Result<(), BoxError> {
    let key = SessionToken::generate()?.storage_key();
    let rkey = store.redis_key(&key);
    let rec = NewRecord {
        payload,
        expires_at: deadline(),
    };
    if path == Path::Raw {
        let _: () = raw.set_ex(&rkey, &rec.payload[..], 3600).await?;
    } else {
        store.save(&key, &rec, SaveMode::Create).await?;
    }
    while !stop.load(Ordering::Relaxed) {
        if path == Path::Raw {
            let got: Option<Vec<u8>> = raw.get(&rkey).await?;
            let got = got.ok_or("raw key vanished")?;
            let _: () = raw.set_ex(&rkey, &got[..], 3600).await?;
        } else {
            let got = store.load(&key).await?.ok_or("record vanished")?;
            let rec = NewRecord {
                payload: got.payload,
                expires_at: deadline(),
            };
            let mode = SaveMode::Update {
                expected_version: got.version,
            };
            store.save(&key, &rec, mode).await?;
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    let _: () = raw.del(&rkey).await?;
    Ok(())
}

async fn run(
    store: &RedisStore,
    raw: &redis::aio::MultiplexedConnection,
    path: Path,
    payload: &Bytes,
    tasks: usize,
    secs: f64,
) -> Result<Run, BoxError> {
    let store = match path {
        Path::Script => store.clone().with_large_update_threshold(usize::MAX),
        _ => store.clone().with_large_update_threshold(0),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            tokio::spawn(task(
                store.clone(),
                raw.clone(),
                path,
                payload.clone(),
                stop.clone(),
                done.clone(),
            ))
        })
        .collect();
    let mut info = raw.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (cpu0, cmd0) = server_cpu(&mut info).await?;
    let (n0, start) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let n = (done.load(Ordering::Relaxed) - n0) as f64;
    let elapsed = start.elapsed().as_secs_f64();
    let (cpu1, cmd1) = server_cpu(&mut info).await?;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await??;
    }
    Ok(Run {
        per_sec: n / elapsed,
        cpu_us: (cpu1 - cpu0) / n,
        cmd_us: (cmd1 - cmd0) / n,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2.0);
    let rounds: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2);
    let tasks: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(32);
    let sizes: Vec<usize> = match args.next() {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![1, 2, 3, 4, 8, 16, 64],
    };
    let url = std::env::var("SESSION_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:16379/0".into());
    let raw = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let store = RedisStore::connect(
        RedisConfig::new(url).key_prefix(format!("bench-paths:{}:", std::process::id())),
    )
    .await?;
    println!("{tasks} tasks; server CPU / cycle = process CPU (commandstats of the write), µs");
    println!();
    println!(
        "| payload | raw GET+SET /s | script /s | transaction /s | script ratio | transaction ratio | raw CPU | script CPU | transaction CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for kib in sizes {
        let payload: Bytes = (0..kib * 1024)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        let mut best = [Run::default(); 3];
        for _ in 0..rounds {
            for (i, path) in [Path::Raw, Path::Script, Path::Transaction]
                .into_iter()
                .enumerate()
            {
                let r = run(&store, &raw, path, &payload, tasks, secs).await?;
                if r.per_sec > best[i].per_sec {
                    best[i] = r;
                }
            }
        }
        let [r, s, t] = best;
        println!(
            "| {kib} KiB | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} ({:.1}) | {:.1} ({:.1}) | {:.1} ({:.1}) |",
            r.per_sec,
            s.per_sec,
            t.per_sec,
            s.per_sec / r.per_sec,
            t.per_sec / r.per_sec,
            r.cpu_us,
            r.cmd_us,
            s.cpu_us,
            s.cmd_us,
            t.cpu_us,
            t.cmd_us,
        );
    }
    Ok(())
}
