#![doc = include_str!("../README.md")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

mod backends;
mod contention;
mod contestants;
mod harness;
mod manager;
mod mix;
mod procfs;
mod report;
mod server_cpu;
mod sweep_index;
mod workload;

use backends::{Backend, Contestants, RunFn, runner};
use harness::{BoxError, Op, Rng, RunSpec, Sample};
use workload::Workload;

/// Benchmarks our session stores against the raw drivers and tower-sessions.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Args {
    /// Backends to measure (comma-separated): memory, file, redis, postgres, mysql.
    /// Server backends take their URL from SESSION_TEST_REDIS_URL,
    /// SESSION_TEST_POSTGRES_URL and SESSION_TEST_MYSQL_URL and are skipped (with a
    /// note in the report) when it is unset.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "memory,file,redis,postgres,mysql"
    )]
    pub backends: Vec<String>,
    /// Payload sizes in KiB.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub sizes: Vec<usize>,
    /// Numbers of concurrent tasks.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub tasks: Vec<usize>,
    /// What to measure: the store-level operations (cycle, load, update, touch,
    /// create), `manager` (the manager-level requests and the codec baseline),
    /// `contention` (concurrent changes of one session, in one process and two; not
    /// on memory, which one process owns). Not by default: `sweep-index` (PostgreSQL
    /// and MySQL only: ours' writes and one sweep on tables with the expiry-bucket
    /// index, no index, and an `expires_at` index) and `mix` (a request mix through
    /// the tower layers, ours vs tower-sessions).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cycle,load,update,touch,create,manager,contention"
    )]
    pub ops: Vec<String>,
    /// Rounds of the contention measurement.
    #[arg(long, default_value_t = 20)]
    pub contention_rounds: usize,
    /// Internal: run as the second process of the contention measurement.
    #[arg(long, hide = true)]
    pub contention_child: bool,
    /// Internal: the contention child's server URL.
    #[arg(long, hide = true, default_value = "")]
    pub contention_url: String,
    /// Internal: the session the contention child changes.
    #[arg(long, hide = true, default_value = "")]
    pub contention_cookie: String,
    /// Internal: the contention child's key prefix.
    #[arg(long, hide = true, default_value = "")]
    pub contention_tag: String,
    /// `mix`: hide the stores' one-step `load_and_touch` from our manager, which
    /// then loads with a plain `load` and touches only when a refresh is due.
    #[arg(long)]
    pub mix_two_step: bool,
    /// `mix`: our manager's `refresh_threshold` (its default is 0.5; 0 refreshes
    /// the deadline on every request that reads the session).
    #[arg(long, default_value_t = 0.5)]
    pub mix_refresh_threshold: f64,
    /// Make every session value a string instead of alternating strings and
    /// structured values.
    #[arg(long)]
    pub strings_only: bool,
    /// Pre-created sessions per contestant, picked at random.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 0.5)]
    pub duration: f64,
    /// Unmeasured warm-up seconds before each run.
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    /// Runs per cell; the report shows the median.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Connections per SQL contestant (ours' pool, the limit's dedicated
    /// connections, tower-sessions' sqlx pool).
    #[arg(long, default_value_t = 32)]
    pub sql_pool: usize,
    /// Most bytes of payload one create run may write to a server or disk (the run
    /// ends early when they are used up; what it wrote is removed after it).
    #[arg(long, default_value_t = 256)]
    pub create_budget_mib: usize,
    /// Where the file backend puts its directories (default: the temporary
    /// directory, i.e. a real disk on most systems; a tmpfs would measure no fsync).
    #[arg(long)]
    pub file_dir: Option<PathBuf>,
    /// Write the Markdown report here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A smoke run: 200 sessions, 50 ms runs, one repeat (numbers meaningless).
    #[arg(long)]
    pub quick: bool,
}

/// Who ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Who {
    /// The raw driver.
    Limit,
    /// Ours, store level.
    Ours,
    /// tower-sessions, store level.
    Tower,
    /// Ours through `SessionManager`.
    Manager,
    /// tower-sessions through its `Session`.
    ManagerTower,
    /// The full serde_json decode + encode of the envelope.
    FullCodec,
    /// Redis: `GET` + a minimal compare-and-set script (the fair limit of issue 22).
    FairCas,
    /// Redis: `WATCH` + `GETRANGE`, then `MULTI`/`SET`/`EXEC`, a connection per task.
    WatchCas,
}

/// One cell's coordinates.
pub type Key = (Backend, usize, usize, Op, Who);

/// Every median measured, and what the run was.
#[derive(Default)]
pub struct Results {
    /// Medians by cell.
    pub cells: BTreeMap<KeyOrd, Sample>,
    /// Every run's rate by cell, in run order, with the number of the measurement
    /// (one `measure_cell` call) it belongs to: runs of the same measurement and
    /// index ran in the same round and can be paired.
    pub runs: BTreeMap<KeyOrd, (usize, Vec<f64>)>,
    /// Measurements so far (numbers them for [`Results::runs`]).
    pub measurements: usize,
    /// Actual payload bytes: (backend, size) → (store-level payload, manager envelope).
    pub payload_bytes: BTreeMap<(usize, usize), (usize, usize)>,
    /// Backends skipped, with the reason.
    pub skipped: Vec<(Backend, String)>,
    /// Backends that failed while measuring, with the error.
    pub failed: Vec<(Backend, String)>,
    /// The contention rows.
    pub contention: Vec<contention::Row>,
    /// The sweep-index rows.
    pub sweep_index: Vec<sweep_index::Row>,
    /// The request-mix rows.
    pub mix: Vec<mix::Row>,
}

/// [`Key`] with an order (the report iterates in a stable order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyOrd(pub usize, pub usize, pub usize, pub usize, pub Who);

impl KeyOrd {
    /// The ordered form of `k`.
    pub fn of(k: Key) -> Self {
        let b = Backend::ALL.iter().position(|x| *x == k.0).unwrap_or(0);
        let o = Op::ALL.iter().position(|x| *x == k.3).unwrap_or(0);
        KeyOrd(b, k.1, k.2, o, k.4)
    }
}

impl Results {
    /// The median sample of a cell, if it ran.
    pub fn get(&self, k: Key) -> Option<&Sample> {
        self.cells.get(&KeyOrd::of(k))
    }

    /// `a`'s rate over `b`'s, run by run, when both were measured together (same
    /// measurement, same number of runs): each run of `a` is divided by `b`'s run of
    /// the same round (at most one other run between them), so a neighbour that
    /// slows the machine for a while moves both sides of a ratio. `None` for cells
    /// measured apart, and when no run of `b` measured anything.
    pub fn paired(&self, a: Key, b: Key) -> Option<Spread> {
        let (ma, ra) = self.runs.get(&KeyOrd::of(a))?;
        let (mb, rb) = self.runs.get(&KeyOrd::of(b))?;
        if ma != mb {
            return None;
        }
        Spread::paired(ra, rb)
    }
}

/// The median of a set of ratios and their range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The middle value (the mean of the two middle ones for an even count, so two
    /// runs do not give the better one as the verdict).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The ratios `a[i] ÷ b[i]` of runs measured in the same rounds; `None` when the
    /// run counts differ or no run of `b` measured anything (a run of `b` that
    /// measured nothing leaves its round without a ratio).
    pub fn paired(a: &[f64], b: &[f64]) -> Option<Self> {
        if a.len() != b.len() {
            return None;
        }
        let mut ratios: Vec<f64> = a
            .iter()
            .zip(b)
            .filter(|(_, y)| **y > 0.0)
            .map(|(x, y)| x / y)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let n = ratios.len();
        let (&min, &max) = (ratios.first()?, ratios.last()?);
        Some(Spread {
            median: (ratios[(n - 1) / 2] + ratios[n / 2]) / 2.0,
            min,
            max,
        })
    }
}

fn url_var(backend: Backend) -> Option<&'static str> {
    match backend {
        Backend::Memory | Backend::File => None,
        Backend::Redis => Some("SESSION_TEST_REDIS_URL"),
        Backend::Postgres => Some("SESSION_TEST_POSTGRES_URL"),
        Backend::MySql => Some("SESSION_TEST_MYSQL_URL"),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = Args::parse();
    if args.contention_child {
        let backend = args
            .backends
            .first()
            .and_then(|b| Backend::parse(b))
            .ok_or("--contention-child needs one --backends")?;
        let dir = args
            .file_dir
            .clone()
            .ok_or("--contention-child needs --file-dir")?;
        return contention::child(
            backend,
            &args.contention_url,
            dir,
            &args.contention_cookie,
            &args.contention_tag,
        )
        .await;
    }
    if args.quick {
        args.contention_rounds = args.contention_rounds.min(2);
        args.sessions = args.sessions.min(200);
        args.duration = 0.05;
        args.warmup = 0.02;
        args.repeats = 1;
    }
    for op in &args.ops {
        let extra = ["manager", "contention", "sweep-index", "mix"];
        if !extra.contains(&op.as_str()) && !Op::ALL.iter().any(|o| o.name() == op) {
            return Err(format!("unknown operation {op}").into());
        }
    }
    let mut backends = Vec::new();
    for name in &args.backends {
        backends.push(Backend::parse(name).ok_or_else(|| format!("unknown backend {name}"))?);
    }
    let started = Instant::now();
    let mut results = Results::default();
    let mut rng = Rng::new(0x5e55_1015);
    for &backend in &backends {
        let url = match url_var(backend) {
            None => String::new(),
            Some(var) => match std::env::var(var) {
                Ok(u) if !u.is_empty() => u,
                _ => {
                    eprintln!("[bench] {}: {var} is unset; skipped", backend.name());
                    results
                        .skipped
                        .push((backend, format!("{var} was not set")));
                    continue;
                }
            },
        };
        let store_ops = args
            .ops
            .iter()
            .any(|o| !["contention", "sweep-index", "mix"].contains(&o.as_str()));
        for &kib in args.sizes.iter().filter(|_| store_ops) {
            if let Err(e) = measure_backend(&args, backend, &url, kib, &mut rng, &mut results).await
            {
                eprintln!("[bench] {} {kib} KiB failed: {e}", backend.name());
                results.failed.push((backend, format!("{kib} KiB: {e}")));
            }
        }
        let sql = matches!(backend, Backend::Postgres | Backend::MySql);
        for &kib in args.sizes.iter().filter(|_| sql) {
            if !args.ops.iter().any(|o| o == "sweep-index") {
                break;
            }
            match sweep_index::measure(&args, backend, &url, kib, &mut rng).await {
                Ok(rows) => results.sweep_index.extend(rows),
                Err(e) => {
                    eprintln!("[bench] {} sweep index failed: {e}", backend.name());
                    results.failed.push((backend, format!("sweep index: {e}")));
                }
            }
        }
        if args.ops.iter().any(|o| o == "contention") && backend != Backend::Memory {
            eprintln!("[bench] {}: contention…", backend.name());
            let base = args.file_dir.clone().unwrap_or_else(std::env::temp_dir);
            match contention::measure(backend, &url, &base, args.contention_rounds).await {
                Ok(rows) => results.contention.extend(rows),
                Err(e) => {
                    eprintln!("[bench] {} contention failed: {e}", backend.name());
                    results.failed.push((backend, format!("contention: {e}")));
                }
            }
        }
        for &kib in args
            .sizes
            .iter()
            .filter(|_| args.ops.iter().any(|o| o == "mix"))
        {
            eprintln!("[bench] {}: request mix, {kib} KiB logins…", backend.name());
            if let Err(e) =
                mix::measure(&args, backend, &url, kib, &mut rng, &mut results.mix).await
            {
                eprintln!("[bench] {} mix failed: {e}", backend.name());
                results
                    .failed
                    .push((backend, format!("mix {kib} KiB: {e}")));
            }
        }
    }
    eprintln!("[bench] done in {:.0} s", started.elapsed().as_secs_f64());
    let md = report::render(&args, &backends, &results);
    match &args.out {
        Some(path) => std::fs::write(path, md)?,
        None => print!("{md}"),
    }
    if results.failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} backend run(s) failed (see the report)",
            results.failed.len()
        )
        .into())
    }
}

/// How many fresh keys a create run may use.
fn fresh_keys(args: &Args, backend: Backend, size: usize) -> usize {
    let n = match backend {
        // Ours and the limit share one payload buffer between all records, so
        // memory is bounded by the keys; tower-sessions copies every record, but is
        // slow enough never to get far.
        Backend::Memory => 2_000_000,
        _ => (args.create_budget_mib << 20) / size.max(1),
    };
    if args.quick { n.min(2_000) } else { n }
}

/// Sets up one backend at one payload size, measures every cell, tears down.
async fn measure_backend(
    args: &Args,
    backend: Backend,
    url: &str,
    kib: usize,
    rng: &mut Rng,
    results: &mut Results,
) -> Result<(), BoxError> {
    let size = kib * 1024;
    let workload = Workload::new(size, args.strings_only, rng);
    let fresh = fresh_keys(args, backend, size);
    let t0 = Instant::now();
    eprintln!(
        "[bench] {} {}: pre-creating {} sessions per contestant…",
        backend.name(),
        workload.label(),
        args.sessions
    );
    let c: Contestants = match backend {
        Backend::Memory => {
            backends::memory::contestants(&workload, args.sessions, fresh, rng).await?
        }
        Backend::File => {
            let base = args.file_dir.clone().unwrap_or_else(std::env::temp_dir);
            backends::file::contestants(&base, &workload, args.sessions, fresh, rng).await?
        }
        Backend::Redis => {
            let tasks = args.tasks.iter().copied().max().unwrap_or(1);
            backends::redis::contestants(url, &workload, args.sessions, fresh, tasks, rng).await?
        }
        Backend::Postgres | Backend::MySql => {
            backends::sql::contestants(
                backend,
                url,
                args.sql_pool,
                &workload,
                args.sessions,
                fresh,
                rng,
            )
            .await?
        }
    };
    eprintln!("[bench]   set up in {:.1} s", t0.elapsed().as_secs_f64());
    results.payload_bytes.insert(
        (report::backend_index(backend), size),
        (workload.payload.len(), c.envelope.len()),
    );

    let outcome = measure_cells(args, backend, size, &c, rng, results).await;
    let t1 = Instant::now();
    let teardown = c.teardown.await;
    eprintln!("[bench]   torn down in {:.1} s", t1.elapsed().as_secs_f64());
    outcome.and(teardown)
}

async fn measure_cells(
    args: &Args,
    backend: Backend,
    size: usize,
    c: &Contestants,
    rng: &mut Rng,
    results: &mut Results,
) -> Result<(), BoxError> {
    let fresh = fresh_keys(args, backend, size);
    let spec = |tasks| RunSpec {
        tasks,
        sessions: args.sessions,
        fresh,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
    };
    let mut store_level: Vec<(Who, &RunFn)> = vec![(Who::Limit, &c.limit), (Who::Ours, &c.ours)];
    if let Some(t) = &c.tower {
        store_level.push((Who::Tower, t));
    }
    let mut manager_level: Vec<(Who, &RunFn)> = vec![(Who::Manager, &c.manager)];
    if let Some(t) = &c.manager_tower {
        manager_level.push((Who::ManagerTower, t));
    }
    // The codec baseline runs on the memory backend only (it does no I/O).
    let codec = (backend == Backend::Memory).then(|| {
        runner(Arc::new(manager::FullCodec {
            envelope: c.envelope.clone(),
        }))
    });
    if let Some(f) = &codec {
        manager_level.push((Who::FullCodec, f));
    }
    let wanted = |name: &str| args.ops.iter().any(|o| o == name);
    for &tasks in &args.tasks {
        for op in Op::ALL.into_iter().filter(|op| wanted(op.name())) {
            let mut who = store_level.clone();
            who.extend(
                c.extra
                    .iter()
                    .filter(|e| e.ops.contains(&op))
                    .map(|e| (e.who, &e.run)),
            );
            measure_cell(
                args,
                backend,
                size,
                tasks,
                op,
                &who,
                spec(tasks),
                rng,
                results,
            )
            .await?;
        }
        if !wanted("manager") {
            continue;
        }
        for op in [Op::Cycle, Op::Load] {
            // The codec baseline is CPU only: one task says all.
            let who: Vec<(Who, &RunFn)> = manager_level
                .iter()
                .copied()
                .filter(|(w, _)| *w != Who::FullCodec || (tasks == 1 && op == Op::Cycle))
                .collect();
            measure_cell(
                args,
                backend,
                size,
                tasks,
                op,
                &who,
                spec(tasks),
                rng,
                results,
            )
            .await?;
        }
    }
    Ok(())
}

/// Runs every contestant `args.repeats` times on one cell, rotating the order so
/// that a noisy neighbour hurts all of them alike, and keeps the medians.
#[allow(clippy::too_many_arguments)]
async fn measure_cell(
    args: &Args,
    backend: Backend,
    size: usize,
    tasks: usize,
    op: Op,
    who: &[(Who, &RunFn)],
    spec: RunSpec,
    rng: &mut Rng,
    results: &mut Results,
) -> Result<(), BoxError> {
    let measurement = results.measurements;
    results.measurements += 1;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); who.len()];
    for rep in 0..args.repeats.max(1) {
        for i in 0..who.len() {
            let j = (i + rep) % who.len();
            let (_, run) = who[j];
            samples[j].push(run(op, spec, rng.next_u64()).await?);
        }
    }
    let mut line = format!(
        "[bench]   {} {} {tasks:>2} tasks {:<20}",
        backend.name(),
        workload::label(size),
        op.label()
    );
    for (j, (w, _)) in who.iter().enumerate() {
        let m = harness::median(&samples[j]);
        line.push_str(&format!(" {w:?} {:.0}/s", m.rate));
        let key = KeyOrd::of((backend, size, tasks, op, *w));
        let rates = samples[j].iter().map(|s| s.rate).collect();
        results.runs.insert(key, (measurement, rates));
        results.cells.insert(key, m);
    }
    eprintln!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_runs(runs: &[(Who, usize, &[f64])]) -> Results {
        let mut r = Results::default();
        for (who, measurement, rates) in runs {
            let key = KeyOrd::of((Backend::Redis, 1024, 32, Op::Cycle, *who));
            r.runs.insert(key, (*measurement, rates.to_vec()));
        }
        r
    }

    fn key(who: Who) -> Key {
        (Backend::Redis, 1024, 32, Op::Cycle, who)
    }

    #[test]
    fn ratios_pair_runs_that_ran_side_by_side() {
        // Round 2 was a busy spell for both sides. The medians (8 / 7) would say 1.14,
        // pairing ours' third run with the limit's first; run by run the ratios are
        // 0.9, 0.8 and 1.14, and the middle one is 0.9.
        let r = with_runs(&[
            (Who::Ours, 0, &[9.0, 4.0, 8.0]),
            (Who::Limit, 0, &[10.0, 5.0, 7.0]),
        ]);
        let p = r.paired(key(Who::Ours), key(Who::Limit)).unwrap();
        assert_eq!((p.median, p.min), (0.9, 0.8));
        assert!((p.max - 8.0 / 7.0).abs() < 1e-12);
        let medians = 8.0 / 7.0;
        assert!((p.median - medians).abs() > 0.2);
        let inverse = r.paired(key(Who::Limit), key(Who::Ours)).unwrap();
        assert!((inverse.median - 10.0 / 9.0).abs() < 1e-12);
        assert!((inverse.min - 7.0 / 8.0).abs() < 1e-12);
    }

    #[test]
    fn cells_measured_apart_or_unevenly_do_not_pair() {
        let apart = with_runs(&[(Who::Ours, 0, &[1.0, 2.0]), (Who::Limit, 1, &[1.0, 2.0])]);
        assert_eq!(apart.paired(key(Who::Ours), key(Who::Limit)), None);
        let uneven = with_runs(&[(Who::Ours, 0, &[1.0, 2.0]), (Who::Limit, 0, &[1.0])]);
        assert_eq!(uneven.paired(key(Who::Ours), key(Who::Limit)), None);
        let missing = with_runs(&[(Who::Ours, 0, &[1.0])]);
        assert_eq!(missing.paired(key(Who::Ours), key(Who::Limit)), None);
        // A limit that measured nothing gives no ratio, not 0, infinity or NaN.
        let zero = with_runs(&[(Who::Ours, 0, &[1.0]), (Who::Limit, 0, &[0.0])]);
        assert_eq!(zero.paired(key(Who::Ours), key(Who::Limit)), None);
        let one_zero = with_runs(&[(Who::Ours, 0, &[1.0, 3.0]), (Who::Limit, 0, &[0.0, 2.0])]);
        let p = one_zero.paired(key(Who::Ours), key(Who::Limit)).unwrap();
        assert_eq!((p.median, p.min, p.max), (1.5, 1.5, 1.5));
    }

    #[test]
    fn an_even_number_of_runs_takes_the_mean_of_the_middle_two() {
        let r = with_runs(&[(Who::Ours, 0, &[1.0, 2.0]), (Who::Limit, 0, &[2.0, 2.0])]);
        let p = r.paired(key(Who::Ours), key(Who::Limit)).unwrap();
        assert_eq!(
            p,
            Spread {
                median: 0.75,
                min: 0.5,
                max: 1.0
            }
        );
    }
}
