//! `soak`: a bounded churning loop (create, update, read, destroy, abandon to
//! expire) reporting RSS and latency per window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_core::{CookieDecision, Error, SessionManager};
use session_memory::MemoryStore;

use crate::stats::{ErrorCounts, percentile, rss_kib};
use crate::value::{KEY, Rng, Val};

/// Settings of one soak run.
#[derive(Debug, Clone)]
pub struct SoakOpts {
    /// Request cycles in total.
    pub cycles: u64,
    /// Request cycles per reporting window.
    pub window: u64,
    /// Session slots (the live working set is at most this).
    pub slots: u32,
    /// Concurrent workers.
    pub workers: u32,
    /// Idle lifetime of a session: abandoned sessions expire after it.
    pub idle: Duration,
    /// Filler bytes per value.
    pub pad: usize,
    /// Seed of the operation mix.
    pub seed: u64,
}

/// One reporting window.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Window {
    /// Index from 0.
    pub index: u32,
    /// Cycles in the window.
    pub cycles: u64,
    /// Cycles per second.
    pub rate: f64,
    /// Median cycle latency, µs.
    pub p50_us: u32,
    /// 99th percentile, µs.
    pub p99_us: u32,
    /// 99.9th percentile, µs.
    pub p999_us: u32,
    /// Worst, µs.
    pub max_us: u32,
    /// RSS after the window, KiB.
    pub rss_kib: u64,
    /// Records `delete_expired` purged after the window.
    pub swept: u64,
    /// Records the memory store holds after the sweep (memory only).
    pub store_len: Option<usize>,
    /// Errors in the window.
    pub errors: u64,
}

/// The whole soak; `violations` must stay empty.
#[derive(Debug, Default, serde::Serialize)]
pub struct SoakReport {
    /// The backend.
    pub backend: String,
    /// Per window.
    pub windows: Vec<Window>,
    /// Operation counts.
    pub created: u64,
    /// Updates.
    pub updated: u64,
    /// Read-only requests.
    pub read: u64,
    /// Logouts.
    pub destroyed: u64,
    /// Sessions left to expire.
    pub abandoned: u64,
    /// Sessions found expired on a revisit.
    pub expired_on_visit: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// Foreign data, non-retryable errors, a memory store that stays big.
    pub violations: ErrorCounts,
    /// Memory store records after the final wait and sweep, and the live slots.
    pub final_store_len: Option<usize>,
    /// Live sessions at the end.
    pub final_live_slots: u64,
    /// Records the final sweep (after one idle lifetime) purged.
    pub final_swept: u64,
    /// RSS growth from the end of the first window to the end of the last, KiB.
    pub rss_growth_kib: i64,
    /// RSS growth over the second half of the windows (steady state), KiB: a leak
    /// keeps growing here, a working set that has filled up does not.
    pub rss_growth_second_half_kib: i64,
    /// Largest record count the memory store held after a window's sweep.
    pub max_store_len: Option<usize>,
    /// RSS after the final idle wait and sweep, KiB.
    pub final_rss_kib: u64,
    /// p50 and p99 of the last window over those of the second (the first one
    /// creates every session), e.g. 1.1 = 10 % slower at the end.
    pub p50_drift: f64,
    /// See `p50_drift`.
    pub p99_drift: f64,
    /// Seconds run.
    pub seconds: f64,
}

#[derive(Debug, Clone)]
struct Slot {
    id: u32,
    cookie: Option<String>,
    n: u64,
}

#[derive(Default)]
struct WorkerOut {
    lat: Vec<u32>,
    created: u64,
    updated: u64,
    read: u64,
    destroyed: u64,
    abandoned: u64,
    expired: u64,
    errors: ErrorCounts,
    violations: ErrorCounts,
}

/// One human-readable line with the figures the soak script collects.
fn print_result(r: &SoakReport) {
    let (Some(first), Some(last)) = (r.windows.first(), r.windows.last()) else {
        return;
    };
    let cycles: u64 = r.windows.iter().map(|w| w.cycles).sum();
    let opt = |v: Option<usize>| v.map_or("-".to_owned(), |n| n.to_string());
    println!(
        "RESULT backend={} cycles={cycles} seconds={:.1} rate={:.0}/s created={} destroyed={} abandoned={} \
         rss_first={}KiB rss_last={}KiB rss_growth={}KiB rss_growth_2nd_half={}KiB final_rss={}KiB \
         p50_first={}us p50_last={}us p99_first={}us p99_last={}us p50_drift={:.2} p99_drift={:.2} \
         max_store_len={} final_store_len={} final_swept={} errors={} violations={}",
        r.backend,
        r.seconds,
        cycles as f64 / r.seconds.max(1e-9),
        r.created,
        r.destroyed,
        r.abandoned,
        first.rss_kib,
        last.rss_kib,
        r.rss_growth_kib,
        r.rss_growth_second_half_kib,
        r.final_rss_kib,
        first.p50_us,
        last.p50_us,
        first.p99_us,
        last.p99_us,
        r.p50_drift,
        r.p99_drift,
        opt(r.max_store_len),
        opt(r.final_store_len),
        r.final_swept,
        r.errors.total(),
        r.violations.total(),
    );
}

/// Runs the soak.
pub async fn run(
    manager: Arc<SessionManager>,
    memory: Option<Arc<MemoryStore>>,
    backend: &str,
    opts: SoakOpts,
) -> SoakReport {
    let start = Instant::now();
    let store = manager.store().expect("server-side manager").clone();
    let workers = opts.workers.max(1);
    let mut states: Vec<(Vec<Slot>, Rng)> = (0..workers)
        .map(|w| {
            let slots = (0..opts.slots)
                .filter(|i| i % workers == w)
                .map(|id| Slot {
                    id,
                    cookie: None,
                    n: 0,
                })
                .collect();
            (slots, Rng::new(opts.seed ^ u64::from(w) << 32))
        })
        .collect();
    let mut report = SoakReport {
        backend: backend.to_owned(),
        ..SoakReport::default()
    };
    let mut done = 0u64;
    let mut index = 0u32;
    while done < opts.cycles {
        let this = opts.window.min(opts.cycles - done).max(1);
        let per = this.div_ceil(u64::from(workers));
        let t0 = Instant::now();
        let mut handles = Vec::new();
        for (slots, rng) in states.drain(..) {
            let m = manager.clone();
            let pad = opts.pad;
            handles.push(tokio::spawn(worker(m, slots, rng, per, pad)));
        }
        let mut lat = Vec::with_capacity(this as usize);
        let mut errs = 0;
        for h in handles {
            match h.await {
                Ok((slots, rng, out)) => {
                    states.push((slots, rng));
                    lat.extend_from_slice(&out.lat);
                    report.created += out.created;
                    report.updated += out.updated;
                    report.read += out.read;
                    report.destroyed += out.destroyed;
                    report.abandoned += out.abandoned;
                    report.expired_on_visit += out.expired;
                    errs += out.errors.total();
                    report.errors.merge(&out.errors);
                    report.violations.merge(&out.violations);
                }
                Err(e) => report.violations.add("panic", || e.to_string()),
            }
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let swept = match store.delete_expired().await {
            Ok(n) => n,
            Err(e) => {
                report.errors.add_error(&e);
                0
            }
        };
        lat.sort_unstable();
        let w = Window {
            index,
            cycles: lat.len() as u64,
            rate: lat.len() as f64 / elapsed.max(1e-9),
            p50_us: percentile(&lat, 0.5),
            p99_us: percentile(&lat, 0.99),
            p999_us: percentile(&lat, 0.999),
            max_us: lat.last().copied().unwrap_or(0),
            rss_kib: rss_kib().unwrap_or(0),
            swept,
            store_len: memory.as_ref().map(|m| m.len()),
            errors: errs,
        };
        println!(
            "window {:>3} cycles={} rate={:.0}/s p50={}us p99={}us p999={}us max={}us rss={}KiB swept={} store_len={} errors={}",
            w.index,
            w.cycles,
            w.rate,
            w.p50_us,
            w.p99_us,
            w.p999_us,
            w.max_us,
            w.rss_kib,
            w.swept,
            w.store_len.map_or("-".into(), |n| n.to_string()),
            w.errors
        );
        done += w.cycles.max(1);
        index += 1;
        report.windows.push(w);
    }

    let live = states
        .iter()
        .flat_map(|(s, _)| s.iter())
        .filter(|s| s.cookie.is_some())
        .count() as u64;
    report.final_live_slots = live;
    // After one idle lifetime without requests every session has expired; the final
    // sweep must leave nothing behind (the script counts what a server still holds).
    tokio::time::sleep(opts.idle + Duration::from_millis(500)).await;
    match store.delete_expired().await {
        Ok(n) => report.final_swept = n,
        Err(e) => report.errors.add_error(&e),
    }
    if let Some(m) = &memory {
        let len = m.len();
        report.final_store_len = Some(len);
        // After a full idle lifetime without requests every slot has expired too.
        if len != 0 {
            report.violations.add("memory_unbounded", || {
                format!(
                    "{len} records left after the sweep ({live} live slots before the idle wait)"
                )
            });
        }
    }
    if let (Some(first), Some(last)) = (report.windows.first(), report.windows.last()) {
        report.rss_growth_kib = last.rss_kib as i64 - first.rss_kib as i64;
        let mid = &report.windows[report.windows.len() / 2];
        report.rss_growth_second_half_kib = last.rss_kib as i64 - mid.rss_kib as i64;
        let base = report.windows.get(1).unwrap_or(first);
        let ratio = |a: u32, b: u32| f64::from(a) / f64::from(b.max(1));
        report.p50_drift = ratio(last.p50_us, base.p50_us);
        report.p99_drift = ratio(last.p99_us, base.p99_us);
    }
    report.max_store_len = report.windows.iter().filter_map(|w| w.store_len).max();
    report.final_rss_kib = rss_kib().unwrap_or(0);
    report.seconds = start.elapsed().as_secs_f64();
    print_result(&report);
    report.seconds = start.elapsed().as_secs_f64();
    report
}

async fn worker(
    manager: Arc<SessionManager>,
    mut slots: Vec<Slot>,
    mut rng: Rng,
    cycles: u64,
    pad: usize,
) -> (Vec<Slot>, Rng, WorkerOut) {
    let mut out = WorkerOut {
        lat: Vec::with_capacity(cycles as usize),
        ..WorkerOut::default()
    };
    if slots.is_empty() {
        return (slots, rng, out);
    }
    for _ in 0..cycles {
        let i = rng.below(slots.len() as u64) as usize;
        let op = rng.below(100);
        let t = Instant::now();
        let r = one(&manager, &mut slots[i], op, pad, &mut out).await;
        out.lat
            .push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        if let Err(e) = r {
            out.errors.add_error(&e);
            if !e.is_retryable() {
                out.violations
                    .add("non_retryable_error", || crate::stats::error_chain(&e));
            }
        }
    }
    (slots, rng, out)
}

/// One request on a slot: create if empty; else 70 % update, 15 % read,
/// 7 % logout, 8 % abandon (the record is left to expire).
async fn one(
    manager: &SessionManager,
    slot: &mut Slot,
    op: u64,
    pad: usize,
    out: &mut WorkerOut,
) -> Result<(), Error> {
    let Some(cookie) = slot.cookie.clone() else {
        let s = manager.session(None);
        s.insert(KEY, &Val::new(slot.id, 0, pad)).await?;
        if let CookieDecision::Set(c) = manager.finish(&s).await? {
            slot.cookie = Some(c.value().to_owned());
            slot.n = 0;
            out.created += 1;
        }
        return Ok(());
    };
    if op >= 92 {
        slot.cookie = None;
        out.abandoned += 1;
        return Ok(());
    }
    let s = manager.session(Some(&cookie));
    if op >= 85 {
        s.destroy();
        let _decision = manager.finish(&s).await?;
        slot.cookie = None;
        out.destroyed += 1;
        return Ok(());
    }
    let Some(v) = s.get::<Val>(KEY).await? else {
        out.expired += 1;
        slot.cookie = None;
        return Ok(());
    };
    if v.id != slot.id || !v.pad_ok() || v.n < slot.n {
        out.violations.add("foreign_or_stale", || {
            format!("slot {} (n {}) read {v:?}", slot.id, slot.n)
        });
    }
    if op >= 70 {
        out.read += 1;
        return Ok(());
    }
    s.insert(KEY, &Val::new(slot.id, v.n + 1, pad)).await?;
    match manager.finish(&s).await? {
        CookieDecision::Remove(_) => {
            out.expired += 1;
            slot.cookie = None;
        }
        _ => {
            slot.n = v.n + 1;
            out.updated += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::SessionConfig;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_soak_small() {
        let store = Arc::new(MemoryStore::new());
        let config = SessionConfig::builder()
            .idle_lifetime(session_core::time::Duration::milliseconds(300))
            .build()
            .unwrap();
        let manager = Arc::new(SessionManager::new(store.clone(), config));
        let opts = SoakOpts {
            cycles: 4_000,
            window: 1_000,
            slots: 50,
            workers: 4,
            idle: Duration::from_millis(300),
            pad: 16,
            seed: 1,
        };
        let r = run(manager, Some(store), "memory", opts).await;
        assert_eq!(r.windows.len(), 4);
        assert_eq!(r.violations.total(), 0, "{:?}", r.violations);
        assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
        assert_eq!(r.final_store_len, Some(0));
        assert!(r.created > 0 && r.updated > 0 && r.destroyed > 0 && r.abandoned > 0);
    }
}
