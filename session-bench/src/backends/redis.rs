//! Redis (standalone): `RedisStore` vs raw commands on one multiplexed redis-rs
//! connection vs tower-sessions-redis-store on a one-connection `fred` pool.
//!
//! Every contestant has exactly one connection to the server. Besides throughput
//! and latency, each run reads `INFO commandstats` and `INFO cpu` before and after,
//! so the report can show what every contestant sends per operation and what it
//! costs the server (meaningful only while nothing else uses the server much).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use session_redis::redis::{self, aio::MultiplexedConnection};
use session_redis::{RedisConfig, RedisStore};
use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config, Pool};

use crate::Who;
use crate::backends::redis_cas::{FairCas, WatchCas};
use crate::backends::{Contestants, Extra, RunFn, runner};
use crate::contestants::{Ours, SETUP_TASKS, Tower};
use crate::harness::{BoxError, CommandStats, Contestant, Op, Rng, ServerStats, random_hex};
use crate::manager::{ManagerCycle, TowerSessionCycle};
use crate::workload::{TTL, Workload, deadline, for_each_concurrent, storage_keys, tower_ids};

/// The limit: plain commands, one shared multiplexed connection.
pub struct RawRedis {
    conn: MultiplexedConnection,
    keys: Vec<String>,
    fresh: Vec<String>,
    payload: Bytes,
}

fn set(key: &str, value: &[u8]) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value).arg("EX").arg(TTL.whole_seconds());
    cmd
}

impl Contestant for RawRedis {
    async fn op(&self, op: Op, slot: usize, _task: usize) -> Result<(), BoxError> {
        let mut conn = self.conn.clone();
        match op {
            Op::Cycle => {
                let key = &self.keys[slot];
                let got: Option<Vec<u8>> =
                    redis::cmd("GET").arg(key).query_async(&mut conn).await?;
                let got = got.ok_or("vanished")?;
                let () = set(key, &got).query_async(&mut conn).await?;
            }
            Op::Load => {
                let got: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&self.keys[slot])
                    .query_async(&mut conn)
                    .await?;
                got.ok_or("vanished")?;
            }
            Op::Update => {
                let () = set(&self.keys[slot], &self.payload)
                    .query_async(&mut conn)
                    .await?;
            }
            Op::Touch => {
                let at = deadline().unix_timestamp() * 1000;
                let found: i64 = redis::cmd("PEXPIREAT")
                    .arg(&self.keys[slot])
                    .arg(at)
                    .query_async(&mut conn)
                    .await?;
                if found != 1 {
                    return Err("vanished".into());
                }
            }
            Op::Create => {
                let mut cmd = set(&self.fresh[slot], &self.payload);
                cmd.arg("NX");
                let _: Option<String> = cmd.query_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    async fn remove_created(&self, n: usize) -> Result<(), BoxError> {
        unlink(&self.conn, &self.fresh[..n.min(self.fresh.len())]).await
    }
}

/// Removes `keys` in batches.
async fn unlink(conn: &MultiplexedConnection, keys: &[String]) -> Result<(), BoxError> {
    let mut conn = conn.clone();
    for chunk in keys.chunks(1000) {
        let _: i64 = redis::cmd("UNLINK")
            .arg(chunk)
            .query_async(&mut conn)
            .await?;
    }
    Ok(())
}

/// Command calls by name and the server's CPU seconds.
type Snapshot = (BTreeMap<String, u64>, f64);

async fn snapshot(conn: &MultiplexedConnection) -> Result<Snapshot, BoxError> {
    let mut conn = conn.clone();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .arg("cpu")
        .query_async(&mut conn)
        .await?;
    let mut calls = BTreeMap::new();
    let mut cpu = 0.0;
    for line in info.lines() {
        if let Some(rest) = line.strip_prefix("cmdstat_") {
            // cmdstat_get:calls=12,usec=…
            if let Some((name, stats)) = rest.split_once(':') {
                let n = stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                calls.insert(name.to_owned(), n);
            }
        } else if let Some(v) = line
            .strip_prefix("used_cpu_user:")
            .or_else(|| line.strip_prefix("used_cpu_sys:"))
        {
            cpu += v.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    Ok((calls, cpu))
}

/// Wraps `run` so every run but a create (whose cleanup would count) also reports
/// the server's commands and CPU per operation.
fn probed(run: RunFn, conn: MultiplexedConnection) -> RunFn {
    Arc::new(move |op, spec, seed| {
        let (run, conn) = (run.clone(), conn.clone());
        Box::pin(async move {
            if op == Op::Create {
                return run(op, spec, seed).await;
            }
            let (calls0, cpu0) = snapshot(&conn).await?;
            let mut sample = run(op, spec, seed).await?;
            let (calls1, cpu1) = snapshot(&conn).await?;
            let n = sample.total_ops.max(1) as f64;
            let mut per_op: Vec<(String, f64)> = calls1
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        (v - calls0.get(k).copied().unwrap_or(0)) as f64 / n,
                    )
                })
                // Our own two INFO calls and stray traffic of others round to nothing.
                .filter(|(k, x)| *x >= 0.05 && k != "info")
                .collect();
            per_op.sort_by(|a, b| b.1.total_cmp(&a.1));
            sample.server = Some(ServerStats {
                cpu_us: (cpu1 - cpu0) * 1e6 / n,
                commands: Some(CommandStats {
                    per_op: per_op.iter().map(|(_, x)| x).sum(),
                    list: per_op
                        .iter()
                        .map(|(k, x)| format!("{} {x:.2}", k.to_uppercase()))
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            });
            Ok(sample)
        })
    })
}

/// Builds the Redis contestants for `workload` on the server at `url`.
pub async fn contestants(
    url: &str,
    workload: &Workload,
    sessions: usize,
    fresh: usize,
    max_tasks: usize,
    rng: &mut Rng,
) -> Result<Contestants, BoxError> {
    let prefix = format!("bench:{}:{}:", std::process::id(), random_hex(rng, 4));
    let conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;

    let raw = Arc::new(RawRedis {
        conn: conn.clone(),
        keys: (0..sessions)
            .map(|_| format!("{prefix}raw:{}", random_hex(rng, 32)))
            .collect(),
        fresh: (0..fresh)
            .map(|_| format!("{prefix}raw:{}", random_hex(rng, 32)))
            .collect(),
        payload: workload.payload.clone(),
    });
    let r = raw.clone();
    for_each_concurrent(sessions, SETUP_TASKS, move |i| {
        let r = r.clone();
        async move {
            let mut conn = r.conn.clone();
            let () = set(&r.keys[i], &r.payload).query_async(&mut conn).await?;
            Ok(())
        }
    })
    .await?;

    let store =
        RedisStore::connect(RedisConfig::new(url).key_prefix(format!("{prefix}ours:"))).await?;
    let ours = Ours::setup(
        Arc::new(store.clone()),
        storage_keys(sessions, rng),
        storage_keys(fresh, rng),
        workload,
    )
    .await?;

    // tower-sessions-redis-store keys records by the bare session id (no prefix);
    // ids are random 128-bit numbers, and everything is deleted at the end.
    let pool = Pool::new(Config::from_url(url)?, None, None, None, 1)?;
    pool.init().await?;
    let tower_store = tower_sessions_redis_store::RedisStore::new(pool.clone());
    let tower = Tower::setup(
        tower_store.clone(),
        tower_ids(sessions, rng),
        tower_ids(fresh, rng),
        workload,
    )
    .await?;

    let fair = FairCas::setup(
        conn.clone(),
        &format!("{prefix}fair:"),
        sessions,
        workload.payload.clone(),
        rng,
    )
    .await?;
    let watch = WatchCas::setup(
        url,
        max_tasks,
        &format!("{prefix}watch:"),
        sessions,
        workload.payload.clone(),
        rng,
    )
    .await?;

    let manager_store = store.with_key_prefix(&format!("{prefix}mgr:"))?;
    let manager = ManagerCycle::setup(Arc::new(manager_store), sessions, workload).await?;
    let manager_tower = TowerSessionCycle::setup(tower_store, sessions, workload, rng).await?;

    let (o, t, m, mt, r) = (
        ours.clone(),
        tower.clone(),
        manager.clone(),
        manager_tower.clone(),
        raw.clone(),
    );
    let (f, w) = (fair.clone(), watch.clone());
    Ok(Contestants {
        limit: probed(runner(raw), conn.clone()),
        ours: probed(runner(ours), conn.clone()),
        tower: Some(probed(runner(tower), conn.clone())),
        extra: vec![
            Extra {
                who: Who::FairCas,
                ops: &[Op::Cycle, Op::Load, Op::Update, Op::Touch],
                run: probed(runner(fair), conn.clone()),
            },
            Extra {
                who: Who::WatchCas,
                ops: &[Op::Cycle, Op::Update],
                run: probed(runner(watch), conn.clone()),
            },
        ],
        envelope: manager.envelope().await?,
        manager: probed(runner(manager), conn.clone()),
        manager_tower: Some(probed(runner(manager_tower), conn.clone())),
        teardown: Box::pin(async move {
            o.teardown().await?;
            t.teardown().await?;
            m.teardown().await?;
            mt.teardown().await?;
            unlink(&r.conn, &r.keys).await?;
            f.teardown().await?;
            w.teardown().await?;
            pool.quit().await?;
            Ok(())
        }),
    })
}
