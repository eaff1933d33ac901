//! The measuring loop shared by every table: N tasks hammer one contestant with one
//! operation for a fixed window, each recording the latency of every operation.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::procfs;

/// The error type of the benchmark (never part of a measured path's cost).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One kind of operation the tables measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The request cycle: load a session, then write it back changed.
    Cycle,
    /// Load alone.
    Load,
    /// A full rewrite alone (ours: compare-and-set).
    Update,
    /// Move the deadline (ours: `touch`; the limit: the driver's expiry command;
    /// tower-sessions has no touch, so its column is a full `save`).
    Touch,
    /// Create a fresh session.
    Create,
}

impl Op {
    /// Every store-level operation, in the order the tables show them.
    pub const ALL: [Op; 5] = [Op::Cycle, Op::Load, Op::Update, Op::Touch, Op::Create];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Op::Cycle => "cycle",
            Op::Load => "load",
            Op::Update => "update",
            Op::Touch => "touch",
            Op::Create => "create",
        }
    }

    /// The name used in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Op::Cycle => "cycle (load+update)",
            Op::Load => "load",
            Op::Update => "update",
            Op::Touch => "touch",
            Op::Create => "create",
        }
    }
}

/// Something the harness can measure.
///
/// `slot` names a pre-created session (for [`Op::Create`]: a fresh key, never used
/// before in this run). Slots are partitioned between tasks, so no two tasks ever
/// work on one session at the same time: the numbers measure round trips and CPU,
/// never conflicts. `task` is the calling task's index (0 ≤ task < tasks), for a
/// contestant that gives each task a resource of its own (the SQL limit's
/// connection).
pub trait Contestant: Send + Sync + 'static {
    /// Performs `op` once.
    fn op(
        &self,
        op: Op,
        slot: usize,
        task: usize,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Removes what `op(Create, i)` wrote for every `i < n` (outside the measured
    /// window), so the next create run can use the same fresh keys again.
    fn remove_created(&self, n: usize) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// The knobs of one measured run.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec {
    /// Concurrent tasks.
    pub tasks: usize,
    /// Pre-created sessions to pick from.
    pub sessions: usize,
    /// Fresh keys available to [`Op::Create`] (the run stops early when they are
    /// used up).
    pub fresh: usize,
    /// Unmeasured time before the window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// What the server reported about a run (Redis: `INFO commandstats` and `INFO cpu`;
/// PostgreSQL and MariaDB: their processes' CPU from `/proc`).
#[derive(Debug, Clone, Default)]
pub struct ServerStats {
    /// Server CPU µs per operation.
    pub cpu_us: f64,
    /// The commands the server executed, where it counts them (Redis).
    pub commands: Option<CommandStats>,
}

/// Commands a server executed during a run, per operation.
#[derive(Debug, Clone, Default)]
pub struct CommandStats {
    /// Commands per operation, all kinds together.
    pub per_op: f64,
    /// Per kind, most frequent first ("GET 1.00, SET 1.00").
    pub list: String,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Operations per second in the window.
    pub rate: f64,
    /// Median latency (µs).
    pub p50: f64,
    /// 99th-percentile latency (µs).
    pub p99: f64,
    /// CPU time of this whole process per operation in the window (µs), user +
    /// system, all threads.
    pub cpu_us: f64,
    /// Operations counted in the window.
    pub ops: u64,
    /// Operations including the warm-up (for per-operation server statistics).
    pub total_ops: u64,
    /// What the server reported, where the backend can tell.
    pub server: Option<ServerStats>,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// How often a task yields to the scheduler. Operations that never wait (the
/// in-memory ones) would otherwise keep a worker thread for the whole window and
/// starve the other tasks; every 32 operations costs next to nothing.
const YIELD_EVERY: u64 = 32;

/// A small, fast PRNG (SplitMix64) for picking sessions: no dependency, no shared
/// state between tasks.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Lowercase hex of `bytes` random bytes from `rng` (storage keys and names).
pub fn random_hex(rng: &mut Rng, bytes: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let b = rng.next_u64() as u8;
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

/// CPU seconds used by this process so far (user + system, all threads), from
/// `/proc/self/stat` (Linux; 0 elsewhere).
pub fn process_cpu_seconds() -> f64 {
    procfs::stat_fields(Path::new("/proc/self/stat"))
        .and_then(|f| procfs::cpu_ticks(&f))
        .map_or(0.0, |ticks| ticks as f64 / procfs::TICKS_PER_SECOND as f64)
}

struct TaskResult {
    latencies: Vec<u32>,
    ops: u64,
    total_ops: u64,
    last_end: Option<Instant>,
    /// The highest fresh index handed out + 1 (create runs).
    fresh_used: usize,
}

/// Measures `op` on `contestant` once.
pub async fn run<C: Contestant>(
    contestant: &Arc<C>,
    op: Op,
    spec: RunSpec,
    seed: u64,
) -> Result<Sample, BoxError> {
    let tasks = spec.tasks.max(1);
    if spec.sessions < tasks {
        return Err(format!("{} sessions cannot serve {tasks} tasks", spec.sessions).into());
    }
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let contestant = contestant.clone();
        let phase = phase.clone();
        handles.push(tokio::spawn(async move {
            task(contestant, op, spec, tasks, t, seed, phase).await
        }));
    }
    // A create run has no warm-up: the fresh keys would be spent on it, and the
    // runs before it have warmed the connections already.
    if op != Op::Create {
        tokio::time::sleep(spec.warmup).await;
    }
    let cpu0 = process_cpu_seconds();
    let start = Instant::now();
    phase.store(MEASURE, Ordering::Relaxed);
    // Poll so that a create run which used up its fresh keys ends early.
    while start.elapsed() < spec.duration && !handles.iter().all(|h| h.is_finished()) {
        let left = spec.duration.saturating_sub(start.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(20))).await;
    }
    phase.store(STOP, Ordering::Relaxed);
    let mut end = Instant::now();
    let cpu1 = process_cpu_seconds();
    let mut latencies = Vec::new();
    let (mut ops, mut total_ops, mut fresh_used) = (0, 0, 0);
    let mut last_end: Option<Instant> = None;
    for h in handles {
        let r = h.await??;
        latencies.extend_from_slice(&r.latencies);
        ops += r.ops;
        total_ops += r.total_ops;
        fresh_used = fresh_used.max(r.fresh_used);
        last_end = last_end.max(r.last_end);
    }
    if op == Op::Create {
        if let Some(last) = last_end {
            end = end.min(last);
        }
        contestant.remove_created(fresh_used).await?;
    }
    let window = end.saturating_duration_since(start).as_secs_f64().max(1e-9);
    Ok(Sample {
        rate: ops as f64 / window,
        p50: percentile(&mut latencies, 0.50),
        p99: percentile(&mut latencies, 0.99),
        cpu_us: (cpu1 - cpu0) * 1e6 / (ops.max(1) as f64),
        ops,
        total_ops,
        server: None,
    })
}

async fn task<C: Contestant>(
    contestant: Arc<C>,
    op: Op,
    spec: RunSpec,
    tasks: usize,
    t: usize,
    seed: u64,
    phase: Arc<AtomicU8>,
) -> Result<TaskResult, BoxError> {
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(t as u64));
    // This task's sessions: t, t + tasks, t + 2·tasks, …
    let mine = (spec.sessions - t).div_ceil(tasks);
    let mut latencies = Vec::with_capacity(1 << 14);
    let (mut ops, mut total_ops, mut next_fresh) = (0u64, 0u64, 0usize);
    let mut last_end = None;
    let mut fresh_used = 0;
    let mut started = Instant::now();
    loop {
        let state = phase.load(Ordering::Relaxed);
        if state == STOP {
            break;
        }
        let slot = if op == Op::Create {
            let i = t + next_fresh * tasks;
            if i >= spec.fresh {
                break;
            }
            next_fresh += 1;
            fresh_used = i + 1;
            i
        } else {
            t + rng.below(mine) * tasks
        };
        contestant.op(op, slot, t).await?;
        let now = Instant::now();
        total_ops += 1;
        if state == MEASURE {
            let ns = now.saturating_duration_since(started).as_nanos();
            latencies.push(u32::try_from(ns).unwrap_or(u32::MAX));
            ops += 1;
            last_end = Some(now);
        }
        started = now;
        if total_ops.is_multiple_of(YIELD_EVERY) {
            tokio::task::yield_now().await;
            started = Instant::now();
        }
    }
    Ok(TaskResult {
        latencies,
        ops,
        total_ops,
        last_end,
        fresh_used,
    })
}

/// The `q` quantile of `ns` in µs (0 for no samples).
fn percentile(ns: &mut [u32], q: f64) -> f64 {
    if ns.is_empty() {
        return 0.0;
    }
    let i = ((ns.len() - 1) as f64 * q).round() as usize;
    let (_, v, _) = ns.select_nth_unstable(i);
    f64::from(*v) / 1000.0
}

/// The median of several runs, field by field.
pub fn median(samples: &[Sample]) -> Sample {
    let pick = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() { 0.0 } else { v[v.len() / 2] }
    };
    let rate = pick(|s| s.rate);
    Sample {
        rate,
        p50: pick(|s| s.p50),
        p99: pick(|s| s.p99),
        cpu_us: pick(|s| s.cpu_us),
        ops: samples.iter().map(|s| s.ops).sum(),
        total_ops: samples.iter().map(|s| s.total_ops).sum(),
        // The server's view of the run whose rate is the median.
        server: samples
            .iter()
            .find(|s| s.rate == rate)
            .and_then(|s| s.server.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&mut v, 0.5), 51.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        let s = |rate| Sample {
            rate,
            ..Sample::default()
        };
        assert_eq!(median(&[s(3.0), s(1.0), s(2.0)]).rate, 2.0);
    }

    #[test]
    fn rng_stays_in_range() {
        let mut r = Rng::new(7);
        assert!((0..10_000).all(|_| r.below(13) < 13));
        assert_eq!(random_hex(&mut r, 32).len(), 64);
    }
}
