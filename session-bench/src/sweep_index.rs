//! What the sweep index costs the writes (PostgreSQL and MariaDB): ours' update, touch
//! and request cycle on three tables that differ only in the index `delete_expired`
//! uses — the expiry bucket (schema version 2, what `migrate()` creates), no index at
//! all (the "index-free statements"), and `expires_at` itself (schema version 1) — and
//! what one `delete_expired` of a batch of expired rows among live ones costs with each.
//!
//! The three stores run the same statements; only the table's secondary index differs
//! (set up by hand after `migrate()`). Runs rotate through the three in every repeat,
//! and the ratios are paired run by run, so a noisy neighbour hurts all alike.

use std::sync::Arc;
use std::time::Instant;

use session_core::time::Duration as TimeDuration;
use session_core::{Clock, ManualClock, NewRecord, SaveMode, SessionInterface};
use session_mysql::MySqlDialect;
use session_mysql::sqlx::MySqlConnection;
use session_postgres::PgDialect;
use session_postgres::sqlx::{self, AssertSqlSafe, Connection as _, PgConnection};
use session_sql_common::{Dialect, SqlStore};

use crate::backends::{Backend, BoxFuture, runner};
use crate::contestants::Ours;
use crate::harness::{BoxError, Op, Rng, RunSpec, random_hex};
use crate::workload::{Workload, for_each_concurrent, storage_keys};
use crate::{Args, Spread};

/// The index a table has for the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepIndex {
    /// `expires_bucket` (schema version 2).
    Bucket,
    /// No secondary index.
    None,
    /// `expires_at` (schema version 1).
    Deadline,
}

impl SweepIndex {
    /// In report order.
    pub const ALL: [SweepIndex; 3] = [SweepIndex::Bucket, SweepIndex::None, SweepIndex::Deadline];

    /// The column header.
    pub fn label(self) -> &'static str {
        match self {
            SweepIndex::Bucket => "expires_bucket",
            SweepIndex::None => "none",
            SweepIndex::Deadline => "expires_at",
        }
    }
}

/// One cell: every run's rate per index, in run order (same order, so pairable).
#[derive(Debug, Clone)]
pub struct Row {
    /// The server.
    pub backend: Backend,
    /// Payload KiB.
    pub kib: usize,
    /// Concurrent tasks.
    pub tasks: usize,
    /// `update`, `touch`, `cycle`, or `sweep` (rows purged per second by one
    /// `delete_expired`).
    pub op: &'static str,
    /// Rates by [`SweepIndex::ALL`] position.
    pub rates: [Vec<f64>; 3],
}

impl Row {
    /// The run-by-run ratios `a ÷ b` (median and range).
    pub fn ratio(&self, a: SweepIndex, b: SweepIndex) -> Option<Spread> {
        let pos = |i| SweepIndex::ALL.iter().position(|x| *x == i).unwrap_or(0);
        Spread::paired(&self.rates[pos(a)], &self.rates[pos(b)])
    }

    /// The median rate of one index.
    pub fn median(&self, i: SweepIndex) -> Option<f64> {
        let pos = SweepIndex::ALL.iter().position(|x| *x == i)?;
        let mut v = self.rates[pos].clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }
}

/// A plain connection for the DDL that sets each table's index.
enum Admin {
    Pg(PgConnection),
    My(MySqlConnection),
}

impl Admin {
    async fn connect(backend: Backend, url: &str) -> Result<Self, BoxError> {
        Ok(match backend {
            Backend::Postgres => Admin::Pg(PgConnection::connect(url).await?),
            _ => Admin::My(MySqlConnection::connect(url).await?),
        })
    }

    async fn run(&mut self, statement: String) -> Result<(), BoxError> {
        let q = AssertSqlSafe(statement);
        match self {
            Admin::Pg(c) => sqlx::query(q).execute(&mut *c).await.map(drop)?,
            Admin::My(c) => sqlx::query(q).execute(&mut *c).await.map(drop)?,
        }
        Ok(())
    }

    /// Replaces the bucket index that `migrate()` made with `index`.
    async fn set_index(&mut self, table: &str, index: SweepIndex) -> Result<(), BoxError> {
        if index == SweepIndex::Bucket {
            return Ok(());
        }
        let pg = matches!(self, Admin::Pg(_));
        self.run(if pg {
            format!("DROP INDEX \"{table}_bucket_idx\"")
        } else {
            format!("ALTER TABLE `{table}` DROP KEY `{table}_bucket_idx`")
        })
        .await?;
        if index == SweepIndex::Deadline {
            self.run(if pg {
                format!("CREATE INDEX \"{table}_expires_at_idx\" ON \"{table}\" (expires_at)")
            } else {
                format!("ALTER TABLE `{table}` ADD KEY `{table}_expires_at_idx` (expires_at)")
            })
            .await?;
        }
        Ok(())
    }

    async fn analyze(&mut self, table: &str) -> Result<(), BoxError> {
        let pg = matches!(self, Admin::Pg(_));
        self.run(if pg {
            format!("ANALYZE \"{table}\"")
        } else {
            format!("ANALYZE TABLE `{table}`")
        })
        .await
    }
}

/// A migrated store on `table` with `clock`, on a pool of `pool` connections; its
/// tear-down (drop the table, close the pool) goes into `drops`.
async fn open<D: Dialect>(
    url: &str,
    table: &str,
    pool: usize,
    clock: &ManualClock,
    drops: &mut Vec<BoxFuture<()>>,
) -> Result<Arc<dyn SessionInterface>, BoxError> {
    // A long statement timeout: a sweep of 5,000 16-KiB rows on a busy machine can
    // take longer than the default 2 s, and what is measured here is time, not a limit.
    let store = SqlStore::<D>::builder()
        .table_name(table)
        .max_connections(pool)
        .clock(clock.shared())
        .statement_timeout(std::time::Duration::from_secs(60))
        .connect(url)?;
    store.migrate().await?;
    let s = store.clone();
    drops.push(Box::pin(async move {
        let _ = s.drop_table().await;
        s.close().await;
    }));
    Ok(Arc::new(store))
}

/// One table per index, each with its store.
struct Tables {
    names: Vec<String>,
    stores: Vec<Arc<dyn SessionInterface>>,
    drops: Vec<BoxFuture<()>>,
}

async fn tables(
    backend: Backend,
    url: &str,
    pool: usize,
    tag: &str,
    clock: &ManualClock,
    admin: &mut Admin,
) -> Result<Tables, BoxError> {
    let mut t = Tables {
        names: Vec::new(),
        stores: Vec::new(),
        drops: Vec::new(),
    };
    for (i, index) in SweepIndex::ALL.into_iter().enumerate() {
        let name = format!("{tag}_{i}");
        let store = match backend {
            Backend::Postgres => open::<PgDialect>(url, &name, pool, clock, &mut t.drops).await?,
            _ => open::<MySqlDialect>(url, &name, pool, clock, &mut t.drops).await?,
        };
        admin.set_index(&name, index).await?;
        t.names.push(name);
        t.stores.push(store);
    }
    Ok(t)
}

/// Measures every cell of one backend at one payload size.
pub async fn measure(
    args: &Args,
    backend: Backend,
    url: &str,
    kib: usize,
    rng: &mut Rng,
) -> Result<Vec<Row>, BoxError> {
    let workload = Workload::new(kib * 1024, args.strings_only, rng);
    let tag = format!("bench_sweep_{}_{}", std::process::id(), random_hex(rng, 3));
    let mut admin = Admin::connect(backend, url).await?;
    // The writes use the real clock (through `deadline()`), so the store's clock is
    // the real time too, except in the sweep, which moves it.
    let clock = ManualClock::starting_now();
    let t = tables(backend, url, args.sql_pool, &tag, &clock, &mut admin).await?;
    let outcome = measure_tables(args, backend, kib, &workload, &t, &clock, &mut admin, rng).await;
    for d in t.drops {
        d.await;
    }
    outcome.map_err(with_sources)
}

/// The error with its chain of sources (a store error's message alone says only
/// "session backend failed").
fn with_sources(e: BoxError) -> BoxError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.into()
}

#[allow(clippy::too_many_arguments)]
async fn measure_tables(
    args: &Args,
    backend: Backend,
    kib: usize,
    workload: &Workload,
    t: &Tables,
    clock: &ManualClock,
    admin: &mut Admin,
    rng: &mut Rng,
) -> Result<Vec<Row>, BoxError> {
    let mut contestants = Vec::new();
    for store in &t.stores {
        let keys = storage_keys(args.sessions, rng);
        contestants.push(runner(
            Ours::setup(store.clone(), keys, Vec::new(), workload).await?,
        ));
    }
    for name in &t.names {
        admin.analyze(name).await?;
    }
    let mut rows = Vec::new();
    for &tasks in &args.tasks {
        for op in [Op::Update, Op::Touch, Op::Cycle] {
            let spec = RunSpec {
                tasks,
                sessions: args.sessions,
                fresh: 0,
                warmup: std::time::Duration::from_secs_f64(args.warmup),
                duration: std::time::Duration::from_secs_f64(args.duration),
            };
            let mut rates: [Vec<f64>; 3] = Default::default();
            for rep in 0..args.repeats.max(1) {
                for i in 0..3 {
                    let j = (i + rep) % 3;
                    let sample = (contestants[j])(op, spec, rng.next_u64()).await?;
                    rates[j].push(sample.rate);
                }
            }
            eprintln!(
                "[bench]   sweep index: {} {kib} KiB {tasks} tasks {}",
                backend.name(),
                op.name()
            );
            rows.push(Row {
                backend,
                kib,
                tasks,
                op: op.name(),
                rates,
            });
        }
    }
    rows.push(sweep(args, backend, kib, workload, t, clock, rng).await?);
    Ok(rows)
}

/// Expired rows one sweep measurement purges (among `--sessions` live ones).
const SWEPT: usize = 5_000;

/// One `delete_expired` of [`SWEPT`] expired rows among the live ones, per index:
/// rows purged per second.
async fn sweep(
    args: &Args,
    backend: Backend,
    kib: usize,
    workload: &Workload,
    t: &Tables,
    clock: &ManualClock,
    rng: &mut Rng,
) -> Result<Row, BoxError> {
    let mut rates: [Vec<f64>; 3] = Default::default();
    let payload = workload.payload.clone();
    for rep in 0..args.repeats.max(1) {
        // Expiring a minute from the store's now; the live rows last a day.
        let now = clock.now();
        let record = NewRecord {
            payload: payload.clone(),
            expires_at: now + TimeDuration::minutes(1),
        };
        let keys = Arc::new(storage_keys(SWEPT, rng));
        for store in &t.stores {
            let (store, keys, record) = (store.clone(), keys.clone(), record.clone());
            for_each_concurrent(SWEPT, 16, move |i| {
                let (store, keys, record) = (store.clone(), keys.clone(), record.clone());
                async move {
                    store.save(&keys[i], &record, SaveMode::Create).await?;
                    Ok(())
                }
            })
            .await?;
        }
        clock.advance(TimeDuration::minutes(2));
        for i in 0..3 {
            let j = (i + rep) % 3;
            let started = Instant::now();
            let purged = t.stores[j].delete_expired().await?;
            let secs = started.elapsed().as_secs_f64();
            if purged != SWEPT as u64 {
                return Err(format!("the sweep purged {purged} rows, not {SWEPT}").into());
            }
            rates[j].push(purged as f64 / secs);
        }
        clock.set(session_core::time::OffsetDateTime::now_utc());
    }
    eprintln!("[bench]   sweep index: {} {kib} KiB sweep", backend.name());
    Ok(Row {
        backend,
        kib,
        tasks: 1,
        op: "sweep",
        rates,
    })
}
