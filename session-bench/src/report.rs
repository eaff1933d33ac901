//! The Markdown report: setup, targets with verdicts, and the tables.

use std::fmt::Write as _;

use crate::backends::Backend;
use crate::harness::{Op, Sample};
use crate::workload::label;
use crate::{Args, Key, Results, Who};

/// The touch target: touch at 16 KiB at least this many times faster than update.
const TOUCH_TARGET: f64 = 3.0;
/// The manager target: CPU per request at most this share of a full decode + encode.
const MANAGER_CPU_TARGET: f64 = 1.0 / 3.0;
/// Issue 22: ours at least this share of the fair compare-and-set limit.
const FAIR_CAS_TARGET: f64 = 0.9;
/// Loads per touch in the load-and-touch pair set against the fair limit's pair.
/// With the manager's default refresh threshold (one half) a session is touched at
/// most once per half idle lifetime, so one touch per ten loads is the rate of a
/// user who sends a request every second under a 20-second idle lifetime: more
/// touches than any real setting makes.
const LOADS_PER_TOUCH: f64 = 10.0;
/// The payload the touch and manager targets are stated for.
const TARGET_SIZE: usize = 16 * 1024;

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn us(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn ratio(a: Option<&Sample>, b: Option<&Sample>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.rate > 0.0 => Some(a.rate / b.rate),
        _ => None,
    }
}

/// `a` over `b`: the median of the run-by-run ratios when the two were measured
/// together, else the ratio of their medians.
fn cell_ratio(r: &Results, a: Key, b: Key) -> Option<f64> {
    r.paired(a, b)
        .map(|p| p.median)
        .or_else(|| ratio(r.get(a), r.get(b)))
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}"))
}

fn slash<F: Fn(&Sample) -> String>(cells: &[Option<&Sample>], f: F) -> String {
    cells
        .iter()
        .map(|c| c.map_or_else(|| "—".to_owned(), &f))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// `a ÷ b` as "median (min–max)" of the run-by-run ratios, or the ratio of medians.
fn spread(r: &Results, a: Key, b: Key) -> String {
    match r.paired(a, b) {
        Some(p) if p.min < p.max => {
            format!("{:.2}× ({:.2}–{:.2})", p.median, p.min, p.max)
        }
        Some(p) => format!("{:.2}×", p.median),
        None => cell_ratio(r, a, b).map_or_else(|| "—".to_owned(), |x| format!("{x:.2}×")),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// A missed target, for the list under the verdict table.
struct Miss {
    what: String,
    cause: String,
}

/// Renders the whole report.
pub fn render(args: &Args, backends: &[Backend], r: &Results) -> String {
    let mut md = String::new();
    let sizes: Vec<usize> = args.sizes.iter().map(|k| k * 1024).collect();
    let _ = writeln!(md, "## Setup\n");
    let _ = writeln!(
        md,
        "- {} pre-created sessions per contestant, picked at random (each task owns a \
         disjoint share, so no run measures conflicts); {} s measured per run after {} s \
         of warm-up; every cell is the median of {} runs, the contestants of a cell \
         alternating run by run. A ratio between contestants of one cell is the median \
         of the run-by-run ratios (each run against the other contestant's run of the \
         same round, at most one run apart, so a busy spell on the machine slows both \
         sides); the target table adds their range.",
        args.sessions, args.duration, args.warmup, args.repeats
    );
    let _ = writeln!(
        md,
        "- Session data: values of about 240 bytes under keys `k00`, `k01`, …, {}; \
         store-level contestants move the same JSON as opaque bytes, tower-sessions \
         stores the same map its own way (MessagePack on Redis and SQL).",
        if args.strings_only {
            "all strings (`--strings-only`)"
        } else {
            "alternately strings and structured values (two cart lines with numbers, \
             strings, an array, a nested object and a null)"
        }
    );
    let _ = writeln!(
        md,
        "- One connection per contestant to Redis; {} connections per contestant to each \
         SQL server. Create runs stop early after {} MiB of payload (what they wrote is \
         removed outside the measured window).",
        args.sql_pool, args.create_budget_mib
    );
    let _ = writeln!(
        md,
        "- Latencies are per operation, µs, including the time a task waits for a \
         worker thread (2 tokio workers). \"CPU µs/op\" is this process's CPU time \
         (all threads, user + system) over the window divided by the operations: the \
         client side of the cost, which the server shares the 2 cores with."
    );
    for b in backends {
        for &s in &sizes {
            if let Some((p, e)) = r.payload_bytes.get(&(backend_index(*b), s)) {
                let _ = writeln!(
                    md,
                    "- {} {}: store-level payload {p} bytes; manager-level envelope {e} bytes.",
                    b.name(),
                    label(s)
                );
            }
        }
    }
    for (b, why) in &r.skipped {
        let _ = writeln!(md, "- **{} skipped**: {why}.", b.name());
    }
    for (b, why) in &r.failed {
        let _ = writeln!(md, "- **{} failed**: {why}.", b.name());
    }

    // A run of `--ops mix` (or `contention`) alone has no store-level cells.
    if !r.cells.is_empty() {
        store_and_manager(&mut md, args, backends, &sizes, r);
    }
    contention_table(&mut md, args, r);
    crate::mix::report::render(&mut md, args, &r.mix);
    sweep_index_table(&mut md, r);
    md
}

/// The issue-8 targets, the store-level and the manager-level tables.
fn store_and_manager(
    md: &mut String,
    args: &Args,
    backends: &[Backend],
    sizes: &[usize],
    r: &Results,
) {
    let sizes = sizes.to_vec();
    // Targets.
    let mut misses = Vec::new();
    let _ = writeln!(md, "\n## Targets (issue 8)\n");
    let _ = writeln!(
        md,
        "| target | backend | payload | tasks | measured | verdict |"
    );
    let _ = writeln!(md, "|---|---|---|---:|---:|---|");
    for &b in backends {
        for &s in &sizes {
            for &t in &args.tasks {
                let ours = (b, s, t, Op::Cycle, Who::Ours);
                let limit = (b, s, t, Op::Cycle, Who::Limit);
                let Some(x) = cell_ratio(r, ours, limit) else {
                    continue;
                };
                let spread = r
                    .paired(ours, limit)
                    .filter(|p| p.min < p.max)
                    .map_or_else(String::new, |p| format!(" ({:.2}–{:.2})", p.min, p.max));
                let target = b.cycle_target();
                let ok = x >= target;
                let _ = writeln!(
                    md,
                    "| store-level cycle ≥ {target}× the limit | {} | {} | {t} | {x:.2}×{spread} | {} |",
                    b.name(),
                    label(s),
                    verdict(ok)
                );
                if !ok {
                    misses.push(Miss {
                        what: format!(
                            "{} {} {t} task(s): store-level cycle at {x:.2}× the limit (target {target}×)",
                            b.name(),
                            label(s)
                        ),
                        cause: cycle_cause(b, s, t, r),
                    });
                }
            }
        }
    }
    for &b in backends {
        for &t in &args.tasks {
            let touch = r.get((b, TARGET_SIZE, t, Op::Touch, Who::Ours));
            let update = r.get((b, TARGET_SIZE, t, Op::Update, Who::Ours));
            let Some(x) = ratio(touch, update) else {
                continue;
            };
            let ok = x >= TOUCH_TARGET;
            let _ = writeln!(
                md,
                "| touch ≥ {TOUCH_TARGET}× as fast as a full update (ours) | {} | {} | {t} | {x:.2}× | {} |",
                b.name(),
                label(TARGET_SIZE),
                verdict(ok)
            );
            if !ok {
                misses.push(Miss {
                    what: format!(
                        "{} 16 KiB {t} task(s): touch only {x:.2}× as fast as update (target {TOUCH_TARGET}×)",
                        b.name()
                    ),
                    cause: touch_cause(b, t, r),
                });
            }
        }
    }
    for &b in backends {
        for &s in &sizes {
            for &t in &args.tasks {
                if let Some(row) = pair_row(b, s, t, r) {
                    let _ = writeln!(md, "{}", row.line);
                    if let Some(miss) = row.miss {
                        misses.push(miss);
                    }
                }
                // Load and touch alone are not compare-and-sets; their trade-off is
                // the pair above.
                for op in [Op::Cycle, Op::Update] {
                    let ours = (b, s, t, op, Who::Ours);
                    let fair = (b, s, t, op, Who::FairCas);
                    let Some(x) = cell_ratio(r, ours, fair) else {
                        continue;
                    };
                    let ok = x >= FAIR_CAS_TARGET;
                    let _ = writeln!(
                        md,
                        "| {} ≥ {FAIR_CAS_TARGET}× the fair compare-and-set limit (issue 22) | {} | {} | {t} | {} | {} |",
                        op.label(),
                        b.name(),
                        label(s),
                        spread(r, ours, fair),
                        verdict(ok)
                    );
                    if !ok {
                        misses.push(Miss {
                            what: format!(
                                "{} {} {t} task(s): {} at {x:.2}× the fair compare-and-set limit (target {FAIR_CAS_TARGET}×)",
                                b.name(),
                                label(s),
                                op.label()
                            ),
                            cause: fair_cause(b, s, t, op, r),
                        });
                    }
                }
            }
        }
    }
    let mgr = r.get((Backend::Memory, TARGET_SIZE, 1, Op::Cycle, Who::Manager));
    let full = r.get((Backend::Memory, TARGET_SIZE, 1, Op::Cycle, Who::FullCodec));
    if let (Some(m), Some(f)) = (mgr, full) {
        let x = m.cpu_us / f.cpu_us.max(1e-9);
        let ok = x <= MANAGER_CPU_TARGET;
        let _ = writeln!(
            md,
            "| manager request CPU ≤ 1/3 of a full decode + encode | memory | 16 KiB | 1 | {x:.2} ({} vs {} µs) | {} |",
            us(m.cpu_us),
            us(f.cpu_us),
            verdict(ok)
        );
        if !ok {
            misses.push(Miss {
                what: format!(
                    "manager request CPU at {x:.2} of a full decode + encode (target ≤ 0.33)"
                ),
                cause: "the request's own costs (cookie parse, SHA-256, store call, \
                        envelope scan, encode of the changed session) exceed the budget; \
                        see the codec table"
                    .to_owned(),
            });
        }
    }
    if !misses.is_empty() {
        let _ = writeln!(md, "\nMissed, with the likely cause:\n");
        for m in &misses {
            let _ = writeln!(md, "- {} — {}", m.what, m.cause);
        }
    }

    // Store level.
    for &b in backends {
        // Any operation measured (a run with `--ops load` has no cycle).
        let measured = sizes.iter().any(|&s| {
            args.tasks.iter().any(|&t| {
                Op::ALL
                    .iter()
                    .any(|&op| r.get((b, s, t, op, Who::Ours)).is_some())
            })
        });
        if !measured {
            continue;
        }
        let _ = writeln!(md, "\n## Store level: {}\n", b.name());
        let _ = writeln!(md, "- the limit: {}", b.limit_description());
        let _ = writeln!(
            md,
            "- ours: `Arc<dyn SessionInterface>` over {}",
            ours_description(b)
        );
        match b.tower_description() {
            Some(t) => {
                let _ = writeln!(
                    md,
                    "- tower-sessions: {t}; it has no touch, so its touch row is a full `save`"
                );
            }
            None => {
                let _ = writeln!(md, "- tower-sessions: no store for this backend");
            }
        }
        let _ = writeln!(
            md,
            "\n| payload | tasks | operation | limit /s | ours /s | tower /s | ours÷limit | ours÷tower | p50 µs limit / ours / tower | p99 µs limit / ours / tower | CPU µs/op limit / ours / tower |"
        );
        let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|---|---|---|");
        for &s in &sizes {
            for &t in &args.tasks {
                for op in Op::ALL {
                    let cells = [
                        r.get((b, s, t, op, Who::Limit)),
                        r.get((b, s, t, op, Who::Ours)),
                        r.get((b, s, t, op, Who::Tower)),
                    ];
                    if cells[1].is_none() {
                        continue;
                    }
                    let r_ =
                        |c: Option<&Sample>| c.map_or_else(|| "—".to_owned(), |c| rate(c.rate));
                    let _ = writeln!(
                        md,
                        "| {} | {t} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        label(s),
                        op.label(),
                        r_(cells[0]),
                        r_(cells[1]),
                        r_(cells[2]),
                        fmt_ratio(cell_ratio(
                            r,
                            (b, s, t, op, Who::Ours),
                            (b, s, t, op, Who::Limit)
                        )),
                        fmt_ratio(cell_ratio(
                            r,
                            (b, s, t, op, Who::Ours),
                            (b, s, t, op, Who::Tower)
                        )),
                        slash(&cells, |c| us(c.p50)),
                        slash(&cells, |c| us(c.p99)),
                        slash(&cells, |c| us(c.cpu_us)),
                    );
                }
            }
        }
        server_table(md, args, b, &sizes, r);
        cas_tables(md, args, b, &sizes, r);
    }

    manager_tables(md, args, backends, &sizes, r);
}

/// Ours' writes and one sweep by the table's sweep index.
fn sweep_index_table(md: &mut String, r: &Results) {
    use crate::sweep_index::SweepIndex::{Bucket, Deadline, None as NoIndex};
    if r.sweep_index.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## The sweep index: ours' writes and one sweep by index\n\n\
         The same store and statements on three tables that differ only in the index \
         `delete_expired` uses: `expires_bucket` (schema 2, what `migrate()` creates), \
         none, and `expires_at` (schema 1). Operations per second (median); the ratios \
         are paired run by run (median, with the range). `sweep`: rows purged per \
         second by one `delete_expired` of 5,000 expired rows among the live ones.\n\n\
         | backend | KiB | tasks | op | expires_bucket | none | expires_at | bucket ÷ none | expires_at ÷ none |\n\
         |---|---:|---:|---|---:|---:|---:|---:|---:|"
    );
    let ratio = |x: Option<crate::Spread>| {
        x.map_or("–".to_owned(), |p| {
            format!("{:.2} ({:.2}–{:.2})", p.median, p.min, p.max)
        })
    };
    let rate = |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{v:.0}"));
    for row in &r.sweep_index {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.backend.name(),
            row.kib,
            row.tasks,
            row.op,
            rate(row.median(Bucket)),
            rate(row.median(NoIndex)),
            rate(row.median(Deadline)),
            ratio(row.ratio(Bucket, NoIndex)),
            ratio(row.ratio(Deadline, NoIndex)),
        );
    }
}

/// The attempts concurrent changes of one session needed, in one process and two.
fn contention_table(md: &mut String, args: &Args, r: &Results) {
    if r.contention.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Contention: {} concurrent changes of one session\n\n\
         Each round starts {} requests at once that each add one value to the same \
         session, through one `SessionManager` (one process) or split {}/{} over two \
         processes (this binary started twice, each with its own manager, on the same \
         store); {} rounds. An attempt is one compare-and-set `save(Update)`; a request \
         that needed 1 met no conflict. Within one process the per-session queue \
         orders the writers; across processes the compare-and-set decides, with the \
         default `save_attempts` of 16. \"failed\" counts requests that gave up.\n\n\
         | backend | processes | requests saved | attempts p50 | p99 | max | failed |\n\
         |---|---:|---:|---:|---:|---:|---:|",
        crate::contention::ADDS,
        crate::contention::ADDS,
        crate::contention::ADDS / 2,
        crate::contention::ADDS / 2,
        args.contention_rounds
    );
    for row in &r.contention {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.backend.name(),
            row.processes,
            row.attempts.len(),
            row.quantile(0.5),
            row.quantile(0.99),
            row.quantile(1.0),
            row.failed
        );
    }
}

/// The index of a backend (for the payload-bytes map).
pub fn backend_index(b: Backend) -> usize {
    Backend::ALL.iter().position(|x| *x == b).unwrap_or(0)
}

fn ours_description(b: Backend) -> &'static str {
    match b {
        Backend::Memory => "`session_memory::MemoryStore` (64 shards)",
        Backend::File => "`session_file::FileStore` (in-place touch, the default)",
        Backend::Redis => {
            "`session_redis::RedisStore` (`RedisConfig::new(url)`, one multiplexed connection)"
        }
        Backend::Postgres => "`session_postgres::PostgresStore` (its ping-free pool)",
        Backend::MySql => "`session_mysql::MySqlStore` (its ping-free pool)",
    }
}

/// What the server did per operation, for the backends that can tell (Redis counts
/// its commands and CPU; a local PostgreSQL or MariaDB has its CPU read from /proc).
fn server_table(md: &mut String, args: &Args, b: Backend, sizes: &[usize], r: &Results) {
    let tasks = args.tasks.iter().copied().max().unwrap_or(1);
    let measured = |s: usize, op: Op, who: Who| {
        r.get((b, s, tasks, op, who))
            .and_then(|c| c.server.as_ref())
    };
    let any = sizes.iter().any(|&s| {
        Op::ALL
            .iter()
            .any(|&op| measured(s, op, Who::Ours).is_some())
    });
    if !any {
        return;
    }
    let with_commands = b == Backend::Redis;
    if with_commands {
        let _ = writeln!(
            md,
            "\nWhat the Redis server executed per operation (`INFO commandstats`, warm-up \
             included) and its CPU per operation (`INFO cpu`; other users of the shared \
             server add noise):\n"
        );
        let _ = writeln!(
            md,
            "| payload | tasks | operation | contestant | commands per operation | server CPU µs/op |"
        );
        let _ = writeln!(md, "|---|---:|---|---|---|---:|");
    } else {
        let _ = writeln!(
            md,
            "\nThe database server's CPU per operation (warm-up included): the on-CPU time \
             of the process listening on the URL's port and of its children (PostgreSQL's \
             per-connection backends; MariaDB's connection threads are its own), read \
             from `/proc` before and after each run; other users of the shared server \
             add noise:\n"
        );
        let _ = writeln!(
            md,
            "| payload | tasks | operation | contestant | server CPU µs/op |"
        );
        let _ = writeln!(md, "|---|---:|---|---|---:|");
    }
    for &s in sizes {
        for (op, who, name) in [
            (Op::Cycle, Who::Limit, "limit"),
            (Op::Cycle, Who::Ours, "ours"),
            (Op::Cycle, Who::Tower, "tower"),
            (Op::Cycle, Who::Manager, "ours, manager request"),
            (Op::Cycle, Who::ManagerTower, "tower, `Session` request"),
            (Op::Load, Who::Limit, "limit"),
            (Op::Load, Who::Ours, "ours"),
            (Op::Load, Who::Tower, "tower"),
            (Op::Update, Who::Limit, "limit"),
            (Op::Update, Who::Ours, "ours"),
            (Op::Update, Who::Tower, "tower"),
            (Op::Touch, Who::Limit, "limit"),
            (Op::Touch, Who::Ours, "ours"),
            (Op::Touch, Who::Tower, "tower (a save)"),
        ] {
            let Some(st) = measured(s, op, who) else {
                continue;
            };
            let commands = match (&st.commands, with_commands) {
                (Some(c), true) => format!(" {} ({:.2}) |", c.list, c.per_op),
                (None, true) => " — |".to_owned(),
                (_, false) => String::new(),
            };
            let _ = writeln!(
                md,
                "| {} | {tasks} | {} | {name} |{commands} {} |",
                label(s),
                op.label(),
                us(st.cpu_us)
            );
        }
    }
}

fn manager_tables(
    md: &mut String,
    args: &Args,
    backends: &[Backend],
    sizes: &[usize],
    r: &Results,
) {
    let _ = writeln!(md, "\n## Manager level: a whole request\n");
    let _ = writeln!(
        md,
        "Ours: `SessionManager::session(cookie)` → `get::<String>` of one key → \
         `insert` of one small key → `finish` (lazy load, then a compare-and-set \
         save), over the same store types as above. tower-sessions: the id parsed from \
         the cookie → `Session::new` → `get` → `insert` → `save` (what its layer \
         does). \"read only\" is the same request without the `insert` (ours writes \
         nothing; tower-sessions' session is not modified, so it does not save). The \
         sessions hold the same data as the store-level ones.\n"
    );
    let _ = writeln!(
        md,
        "| backend | payload | tasks | request | ours /s | tower /s | ours÷tower | ours÷store-level limit cycle | p50 µs ours / tower | p99 µs ours / tower | CPU µs/req ours / tower |"
    );
    let _ = writeln!(md, "|---|---|---:|---|---:|---:|---:|---:|---|---|---|");
    for &b in backends {
        for &s in sizes {
            for &t in &args.tasks {
                for (op, name) in [
                    (Op::Cycle, "read 1 key + change 1 key"),
                    (Op::Load, "read only"),
                ] {
                    let ours = r.get((b, s, t, op, Who::Manager));
                    let tower = r.get((b, s, t, op, Who::ManagerTower));
                    let Some(o) = ours else { continue };
                    let limit = r.get((b, s, t, Op::Cycle, Who::Limit));
                    let cells = [ours, tower];
                    let _ = writeln!(
                        md,
                        "| {} | {} | {t} | {name} | {} | {} | {} | {} | {} | {} | {} |",
                        b.name(),
                        label(s),
                        rate(o.rate),
                        tower.map_or_else(|| "—".to_owned(), |c| rate(c.rate)),
                        fmt_ratio(cell_ratio(
                            r,
                            (b, s, t, op, Who::Manager),
                            (b, s, t, op, Who::ManagerTower)
                        )),
                        if op == Op::Cycle {
                            fmt_ratio(ratio(ours, limit))
                        } else {
                            "—".to_owned()
                        },
                        slash(&cells, |c| us(c.p50)),
                        slash(&cells, |c| us(c.p99)),
                        slash(&cells, |c| us(c.cpu_us)),
                    );
                }
            }
        }
    }

    let _ = writeln!(
        md,
        "\n### CPU per request vs a full decode + encode (memory, 1 task)\n"
    );
    let _ = writeln!(
        md,
        "Over `MemoryStore` a request does no I/O, so its time is CPU. The baseline \
         decodes the stored envelope into a `serde_json::Value` tree, changes one key \
         and encodes it all again: what a codec that is not lazy pays on every request \
         that touches the session. The target: ours ≤ 1/3 of it at 16 KiB.\n"
    );
    let _ = writeln!(
        md,
        "| payload | ours: read 1 + change 1 | ours: read only | ours: store-level load+update | tower-sessions request | full decode + encode | ours ÷ full (CPU) | ours ÷ full (p50) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for &s in sizes {
        let g = |op, who| r.get((Backend::Memory, s, 1, op, who));
        let (Some(m), Some(f)) = (g(Op::Cycle, Who::Manager), g(Op::Cycle, Who::FullCodec)) else {
            continue;
        };
        let cpu = |c: Option<&Sample>| {
            c.map_or_else(|| "—".to_owned(), |c| format!("{} µs", us(c.cpu_us)))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
            label(s),
            cpu(Some(m)),
            cpu(g(Op::Load, Who::Manager)),
            cpu(g(Op::Cycle, Who::Ours)),
            cpu(g(Op::Cycle, Who::ManagerTower)),
            cpu(Some(f)),
            m.cpu_us / f.cpu_us.max(1e-9),
            m.p50 / f.p50.max(1e-9),
        );
    }
}

/// A data-driven explanation of a missed cycle target.
fn cycle_cause(b: Backend, s: usize, t: usize, r: &Results) -> String {
    let ours = r.get((b, s, t, Op::Cycle, Who::Ours));
    let limit = r.get((b, s, t, Op::Cycle, Who::Limit));
    let (Some(o), Some(l)) = (ours, limit) else {
        return String::new();
    };
    let mut why = costs(o, l, "cycle", "the limit");
    let tail = match b {
        Backend::Memory => {
            "; the limit is a bare map, so every nanosecond of the contract (version \
             check, expiry check, key type, `async_trait` box) shows"
        }
        Backend::File => {
            "; ours also takes the per-key lock file (`flock`) and reads the header \
             under it before every write, and checksums the record"
        }
        Backend::Redis => {
            "; a compare-and-set with expiry on Redis needs a Lua script (and, for \
             large payloads, a transaction) where the limit sends one plain `SET`; \
             client and server share the 2 cores, so server CPU lowers client \
             throughput too"
        }
        Backend::Postgres | Backend::MySql => {
            "; ours' statements carry the contract's conditions (the update's version \
             and deadline check, the touch's deadline), which the server evaluates, \
             and every operation checks a connection out of the pool (no ping)"
        }
    };
    why.push_str(tail);
    if t == 1 && !matches!(b, Backend::Memory) {
        why.push_str(
            "; at 1 task a cycle is two round trips on both sides, so the gap is \
             latency per operation",
        );
    }
    why
}

/// A data-driven explanation of a missed touch target.
fn touch_cause(b: Backend, t: usize, r: &Results) -> String {
    let touch = r.get((b, TARGET_SIZE, t, Op::Touch, Who::Ours));
    let update = r.get((b, TARGET_SIZE, t, Op::Update, Who::Ours));
    let limit_touch = r.get((b, TARGET_SIZE, t, Op::Touch, Who::Limit));
    let limit_update = r.get((b, TARGET_SIZE, t, Op::Update, Who::Limit));
    let mut why = String::new();
    if let (Some(tc), Some(u)) = (touch, update) {
        let _ = write!(
            why,
            "p50 {} µs for touch vs {} µs for update",
            us(tc.p50),
            us(u.p50)
        );
    }
    if let Some(x) = ratio(limit_touch, limit_update) {
        if x < TOUCH_TARGET {
            let _ = write!(
                why,
                "; the raw driver's own touch is only {x:.2}× as fast as its full write \
                 here, so the backend itself leaves no 3× to win: {}",
                match b {
                    Backend::Memory => {
                        "an update only swaps a pointer to a shared buffer, no bytes are \
                         copied, so there is nothing for touch to save"
                    }
                    Backend::File => {
                        "both wait for a flush to disk (an update: data, rename and \
                         directory; a touch: one block), and the flush dominates"
                    }
                    Backend::Redis => {
                        "both are one round trip, which costs more than moving 16 KiB \
                         on loopback"
                    }
                    Backend::Postgres | Backend::MySql => {
                        "both are one statement and one round trip, and the server's \
                         row update and commit cost more than the 16 KiB"
                    }
                }
            );
        } else {
            let _ = write!(
                why,
                "; the raw driver's touch is {x:.2}× as fast as its write, so the \
                 missing factor is in ours' touch path"
            );
            if let (Some(o), Some(l)) = (touch, limit_touch) {
                why.push_str(&touch_path_cost(b, o, l));
            }
        }
    }
    why
}

/// Ours' and `other`'s cost per `op`: client CPU, and where the server can tell,
/// its commands and CPU.
fn costs(ours: &Sample, other: &Sample, op: &str, other_name: &str) -> String {
    let mut why = format!(
        "client CPU {} µs per {op} vs {} µs for {other_name}",
        us(ours.cpu_us),
        us(other.cpu_us)
    );
    if let (Some(os), Some(ls)) = (ours.server.as_ref(), other.server.as_ref()) {
        if let (Some(oc), Some(lc)) = (&os.commands, &ls.commands) {
            let _ = write!(
                why,
                "; the server ran {:.2} commands per {op} for ours ({}) vs {:.2} ({})",
                oc.per_op, oc.list, lc.per_op, lc.list,
            );
        }
        let _ = write!(
            why,
            "; the server spent {} µs of CPU per {op} for ours vs {} µs for {other_name}",
            us(os.cpu_us),
            us(ls.cpu_us)
        );
    }
    why
}

/// What ours' touch does beyond the raw one, with the measured costs.
fn touch_path_cost(b: Backend, ours: &Sample, raw: &Sample) -> String {
    let mut why = format!(": {}", costs(ours, raw, "touch", "the raw touch"));
    why.push_str(match b {
        Backend::Memory => {
            "; ours also reads the clock, checks the record's deadline and converts the \
             new one to nanoseconds (a calendar computation)"
        }
        Backend::File => {
            "; ours also takes the per-key lock file and reads and checks the header \
             before it writes the deadline slot"
        }
        Backend::Redis => {
            "; ours' touch is a Lua script (read the header, rewrite the deadline \
             bytes, move the TTL — a plain `SETRANGE` would recreate a key a logout \
             just deleted) where the raw touch is one `PEXPIREAT`"
        }
        Backend::Postgres | Backend::MySql => {
            "; ours' `UPDATE` also checks that the record has not expired, and ours \
             checks a connection out of the pool (no ping) where the raw touch uses a \
             dedicated one"
        }
    });
    why
}

/// Issue 22: ours' compare-and-set and touch beside the fair limit (plain `GET` +
/// minimal `EVALSHA`) and the script-free `WATCH`/`MULTI`/`EXEC` variant.
fn cas_tables(md: &mut String, args: &Args, b: Backend, sizes: &[usize], r: &Results) {
    let ops = [Op::Cycle, Op::Load, Op::Update, Op::Touch];
    let any = sizes.iter().any(|&s| {
        args.tasks.iter().any(|&t| {
            ops.iter()
                .any(|&op| r.get((b, s, t, op, Who::FairCas)).is_some())
        })
    });
    if !any {
        return;
    }
    let _ = writeln!(
        md,
        "\nCompare-and-set against a fair limit (issue 22). **fair**: what any correct \
         compare-and-set with expiry must do on Redis 7 — a plain `GET` where the record \
         is needed (the cycle), then one minimal `EVALSHA` that compares an 8-byte version \
         and `SET`s with `PXAT`, on one shared multiplexed connection; its touch is a \
         minimal script that checks `EXISTS` and `PEXPIREAT`s, so its deadline lives in \
         the TTL only and its load is `GET` + `PEXPIRETIME`, pipelined (ours keeps the \
         deadline in the record: its load is one `GET` and its touch also rewrites 8 \
         bytes). **WATCH**: the same \
         compare-and-set without a script — `WATCH` + `GETRANGE 0 7` (the cycle: \
         `WATCH` + `GET`), then `MULTI`/`SET … PXAT`/`EXEC`, each pair pipelined, on a \
         connection per task (`WATCH` is per connection). Ratios are medians of the \
         run-by-run ratios, with their range; server CPU is `INFO cpu` per operation \
         (the median run's).\n"
    );
    let _ = writeln!(
        md,
        "| payload | tasks | operation | limit /s | fair /s | WATCH /s | ours /s | ours÷fair | ours÷limit | WATCH÷fair | WATCH÷ours | server CPU µs/op fair / ours / WATCH | client CPU µs/op fair / ours / WATCH |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    );
    for &s in sizes {
        for &t in &args.tasks {
            for op in ops {
                let k = |w| (b, s, t, op, w);
                if r.get(k(Who::FairCas)).is_none() {
                    continue;
                }
                let r_ = |w| r.get(k(w)).map_or_else(|| "—".to_owned(), |c| rate(c.rate));
                let three = [
                    r.get(k(Who::FairCas)),
                    r.get(k(Who::Ours)),
                    r.get(k(Who::WatchCas)),
                ];
                let cpu = slash(&three, |c| {
                    c.server
                        .as_ref()
                        .map_or_else(|| "—".to_owned(), |x| us(x.cpu_us))
                });
                let client = slash(&three, |c| us(c.cpu_us));
                let (watch, watch_ours) = if three[2].is_some() {
                    (
                        spread(r, k(Who::WatchCas), k(Who::FairCas)),
                        spread(r, k(Who::WatchCas), k(Who::Ours)),
                    )
                } else {
                    ("—".to_owned(), "—".to_owned())
                };
                let _ = writeln!(
                    md,
                    "| {} | {t} | {} | {} | {} | {} | {} | {} | {} | {watch} | {watch_ours} | {cpu} | {client} |",
                    label(s),
                    op.label(),
                    r_(Who::Limit),
                    r_(Who::FairCas),
                    r_(Who::WatchCas),
                    r_(Who::Ours),
                    spread(r, k(Who::Ours), k(Who::FairCas)),
                    spread(r, k(Who::Ours), k(Who::Limit)),
                );
            }
        }
    }
    let _ = writeln!(
        md,
        "\nWhat the server executed per operation for the two yardsticks (ours: the table above):\n"
    );
    let _ = writeln!(
        md,
        "| payload | tasks | operation | contestant | commands per operation |"
    );
    let _ = writeln!(md, "|---|---:|---|---|---|");
    for &s in sizes {
        for &t in &args.tasks {
            for op in ops {
                for (w, name) in [(Who::FairCas, "fair"), (Who::WatchCas, "WATCH")] {
                    let Some(c) = r
                        .get((b, s, t, op, w))
                        .and_then(|c| c.server.as_ref())
                        .and_then(|x| x.commands.as_ref())
                    else {
                        continue;
                    };
                    let _ = writeln!(
                        md,
                        "| {} | {t} | {} | {name} | {} ({:.2}) |",
                        label(s),
                        op.label(),
                        c.list,
                        c.per_op
                    );
                }
            }
        }
    }
}

/// Rates per second of ours' and the fair limit's load and touch in one cell.
struct Pair {
    ours_load: f64,
    ours_touch: f64,
    fair_load: f64,
    fair_touch: f64,
}

/// Server CPU (µs) for `loads` loads and one touch, ours and the fair limit's:
/// at 32 tasks the single-threaded server is the bottleneck, and its CPU per
/// operation moves less with a noisy neighbour than a rate does.
fn pair_server_cpu(b: Backend, s: usize, t: usize, r: &Results, loads: f64) -> Option<(f64, f64)> {
    let cpu = |op, w| r.get((b, s, t, op, w))?.server.as_ref().map(|x| x.cpu_us);
    let ours = loads * cpu(Op::Load, Who::Ours)? + cpu(Op::Touch, Who::Ours)?;
    let fair = loads * cpu(Op::Load, Who::FairCas)? + cpu(Op::Touch, Who::FairCas)?;
    Some((ours, fair))
}

impl Pair {
    fn of(b: Backend, s: usize, t: usize, r: &Results) -> Option<Self> {
        let rate = |op, w| r.get((b, s, t, op, w)).map(|c| c.rate).filter(|&x| x > 0.0);
        Some(Self {
            ours_load: rate(Op::Load, Who::Ours)?,
            ours_touch: rate(Op::Touch, Who::Ours)?,
            fair_load: rate(Op::Load, Who::FairCas)?,
            fair_touch: rate(Op::Touch, Who::FairCas)?,
        })
    }

    /// Ours ÷ fair for `loads` loads and one touch: the ratio of the time each
    /// takes for the same work, from the cells' median rates.
    fn ratio(&self, loads: f64) -> f64 {
        let fair = loads / self.fair_load + 1.0 / self.fair_touch;
        let ours = loads / self.ours_load + 1.0 / self.ours_touch;
        fair / ours
    }

    /// How many loads per touch ours needs to break even: `Some(0)` when ours is at
    /// least as fast at both, `None` when it is slower at both (never even).
    fn break_even(&self) -> Option<f64> {
        let touch_loss = 1.0 / self.ours_touch - 1.0 / self.fair_touch;
        let load_gain = 1.0 / self.fair_load - 1.0 / self.ours_load;
        match (touch_loss <= 0.0, load_gain > 0.0) {
            (true, _) => Some(0.0),
            (false, true) => Some(touch_loss / load_gain),
            (false, false) => None,
        }
    }
}

/// A target row and, when missed, its entry for the list under the table.
struct TargetRow {
    line: String,
    miss: Option<Miss>,
}

/// Issue 22 on Redis: ours keeps the deadline in the record (load: `GET`; touch
/// also rewrites 8 bytes), the fair limit keeps it in the TTL only (load: `GET` +
/// `PEXPIRETIME`; touch: `PEXPIREAT`). Neither trade can be judged by one operation,
/// so the target is on [`LOADS_PER_TOUCH`] loads and one touch.
fn pair_row(b: Backend, s: usize, t: usize, r: &Results) -> Option<TargetRow> {
    let pair = Pair::of(b, s, t, r)?;
    let x = pair.ratio(LOADS_PER_TOUCH);
    let ok = x >= FAIR_CAS_TARGET;
    let even = match pair.break_even() {
        Some(0.0) => "ahead at any mix".to_owned(),
        Some(n) => format!("even at {n:.1} loads per touch"),
        None => "behind at any mix".to_owned(),
    };
    let what = format!("{LOADS_PER_TOUCH:.0} loads + 1 touch");
    let cpu = pair_server_cpu(b, s, t, r, LOADS_PER_TOUCH).map_or_else(String::new, |(o, f)| {
        format!("; server CPU {} µs vs {} µs", us(o), us(f))
    });
    let even = format!("{even}{cpu}");
    let line = format!(
        "| {what} ≥ {FAIR_CAS_TARGET}× the fair limit's (issue 22) | {} | {} | {t} | {x:.2}× ({even}) | {} |",
        b.name(),
        label(s),
        verdict(ok)
    );
    let miss = (!ok).then(|| Miss {
        what: format!(
            "{} {} {t} task(s): {what} at {x:.2}× the fair limit's (target {FAIR_CAS_TARGET}×)",
            b.name(),
            label(s)
        ),
        cause: format!(
            "load {:.2}× and touch {:.2}× the fair limit's; {even}",
            pair.ours_load / pair.fair_load,
            pair.ours_touch / pair.fair_touch
        ),
    });
    Some(TargetRow { line, miss })
}

/// Why ours missed the fair compare-and-set limit: what each sent and what it cost.
fn fair_cause(b: Backend, s: usize, t: usize, op: Op, r: &Results) -> String {
    let (Some(ours), Some(fair)) = (
        r.get((b, s, t, op, Who::Ours)),
        r.get((b, s, t, op, Who::FairCas)),
    ) else {
        return String::new();
    };
    let mut why = format!(
        "client CPU {} µs per op vs {} µs",
        us(ours.cpu_us),
        us(fair.cpu_us)
    );
    if let (Some(o), Some(f)) = (&ours.server, &fair.server) {
        let _ = write!(
            why,
            "; server CPU {} µs vs {} µs",
            us(o.cpu_us),
            us(f.cpu_us)
        );
        if let (Some(oc), Some(fc)) = (&o.commands, &f.commands) {
            let _ = write!(why, "; ours sent {} vs {}", oc.list, fc.list);
        }
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(ours_load: f64, ours_touch: f64, fair_load: f64, fair_touch: f64) -> Pair {
        Pair {
            ours_load,
            ours_touch,
            fair_load,
            fair_touch,
        }
    }

    /// The pair ratio is time for the same work: ten loads at twice the speed and
    /// one touch at half the speed is (10 + 1) ÷ (5 + 2) faster.
    #[test]
    fn the_pair_ratio_weighs_each_operation_by_its_time() {
        let p = pair(2.0, 0.5, 1.0, 1.0);
        assert!((p.ratio(10.0) - 11.0 / 7.0).abs() < 1e-12);
        assert!((p.ratio(0.0) - 0.5).abs() < 1e-12);
    }

    /// Break-even: the loads per touch at which the faster load repays the slower
    /// touch; none when ours loses both, zero when it loses neither.
    #[test]
    fn break_even_is_where_the_load_gain_repays_the_touch_loss() {
        let p = pair(2.0, 0.5, 1.0, 1.0);
        // Touch loses 1 s per touch (2 - 1), each load gains 0.5 s (1 - 0.5).
        let n = p.break_even().unwrap();
        assert!((n - 2.0).abs() < 1e-12);
        assert!((p.ratio(n) - 1.0).abs() < 1e-12);
        assert_eq!(pair(1.0, 0.5, 2.0, 1.0).break_even(), None);
        assert_eq!(pair(2.0, 1.0, 1.0, 1.0).break_even(), Some(0.0));
    }
}
