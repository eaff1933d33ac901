//! `load`: bounded concurrent request cycles through the manager, with every
//! acknowledged update journaled.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use session_core::{CookieDecision, Error, SessionManager};

use crate::journal::{Entry, Journal};
use crate::stats::ErrorCounts;
use crate::value::{KEY, Val};

/// Settings of one load run.
#[derive(Debug, Clone)]
pub struct LoadOpts {
    /// Distinct sessions.
    pub sessions: u32,
    /// Concurrent workers; each owns `sessions / workers` sessions, so no two
    /// requests ever race on one session and every counter is exact.
    pub workers: u32,
    /// Stop after this many request cycles in total...
    pub cycles: u64,
    /// ...or after this long, whichever comes first.
    pub duration: Duration,
    /// Client-side deadline of one request cycle (a stalled server is not an error
    /// of the store, but we must not hang).
    pub request_timeout: Duration,
    /// Filler bytes per value.
    pub pad: usize,
    /// The journal file.
    pub journal: PathBuf,
}

/// One session as the load tracks it.
#[derive(Debug, Clone)]
struct Slot {
    id: u32,
    generation: u32,
    cookie: Option<String>,
    /// The last counter the store acknowledged.
    acked: u64,
    /// The highest counter ever sent (an update whose answer was lost may have
    /// been applied).
    attempted: u64,
}

/// What one request cycle saw.
enum Step {
    Created(String),
    Updated(u64),
    /// The cookie names no session (or the session vanished before the save).
    Missing,
    /// The value belongs to another session.
    Foreign(Val),
    /// The stored counter is lower than acknowledged, or higher than ever sent.
    Counter(u64),
    Unexpected(String),
}

/// What the load counts; `violations` must stay empty.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct LoadReport {
    /// The backend.
    pub backend: String,
    /// Whether acknowledged updates must survive restarts.
    pub durable: bool,
    /// Request cycles run.
    pub cycles: u64,
    /// Updates (and creations) the store acknowledged.
    pub acked: u64,
    /// Errors from the manager or store, by kind.
    pub errors: ErrorCounts,
    /// Cycles cut off by the client-side deadline.
    pub timeouts: u64,
    /// Sessions found missing on a non-durable server (after its restart).
    pub lost_non_durable: u64,
    /// Contract violations: panics, non-retryable errors, lost acknowledged
    /// updates on a durable backend, foreign data, impossible counters.
    pub violations: ErrorCounts,
    /// Seconds after the start of the last failed cycle (error or timeout), if any.
    pub last_failure_secs: Option<f64>,
    /// Updates acknowledged after the last failed cycle: service resumed.
    pub acked_after_last_failure: u64,
    /// Seconds run.
    pub seconds: f64,
}

#[derive(Default)]
struct Progress {
    cycles: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    /// Milliseconds since the start of the last failure, plus one (0: none).
    last_failure_ms: AtomicU64,
    acked_since_failure: AtomicU64,
    violations: AtomicU64,
    /// Error kinds seen so far (errors are rare: a mutex is fine).
    kinds: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Progress {
    fn error_kind(&self, kind: &'static str) {
        let mut k = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        *k.entry(kind).or_default() += 1;
    }

    /// Prints a violation at once: a SIGKILLed load never prints its summary.
    fn violation(&self, kind: &str, what: &str) {
        self.violations.fetch_add(1, Relaxed);
        eprintln!("VIOLATION {kind}: {what}");
    }
}

/// Runs the load and returns its report.
pub async fn run(
    manager: Arc<SessionManager>,
    backend: &str,
    durable: bool,
    opts: LoadOpts,
) -> std::io::Result<LoadReport> {
    let journal = Arc::new(Journal::create(&opts.journal)?);
    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    let deadline = start + opts.duration;
    let workers = opts.workers.max(1);
    let per_worker_cycles = opts.cycles.div_ceil(u64::from(workers));

    let reporter = {
        let p = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let kinds = format!("{:?}", *p.kinds.lock().unwrap_or_else(|e| e.into_inner()));
                println!(
                    "progress t={:.0}s cycles={} acked={} errors={} violations={} kinds={}",
                    start.elapsed().as_secs_f64(),
                    p.cycles.load(Relaxed),
                    p.acked.load(Relaxed),
                    p.errors.load(Relaxed),
                    p.violations.load(Relaxed),
                    kinds.replace(' ', "")
                );
            }
        })
    };

    let mut handles = Vec::new();
    for w in 0..workers {
        let slots: Vec<Slot> = (0..opts.sessions)
            .filter(|i| i % workers == w)
            .map(|id| Slot {
                id,
                generation: 0,
                cookie: None,
                acked: 0,
                attempted: 0,
            })
            .collect();
        let ctx = Worker {
            manager: manager.clone(),
            journal: journal.clone(),
            progress: progress.clone(),
            durable,
            opts: opts.clone(),
        };
        handles.push(tokio::spawn(ctx.run(
            slots,
            per_worker_cycles,
            start,
            deadline,
        )));
    }

    let mut report = LoadReport {
        backend: backend.to_owned(),
        durable,
        ..LoadReport::default()
    };
    for h in handles {
        match h.await {
            Ok(r) => {
                report.cycles += r.cycles;
                report.acked += r.acked;
                report.timeouts += r.timeouts;
                report.lost_non_durable += r.lost_non_durable;
                report.errors.merge(&r.errors);
                report.violations.merge(&r.violations);
            }
            Err(e) => report
                .violations
                .add("panic", || format!("worker task failed: {e}")),
        }
    }
    reporter.abort();
    let journal = Arc::into_inner(journal).expect("workers are done");
    journal.close()?;
    let last = progress.last_failure_ms.load(Relaxed);
    report.last_failure_secs = (last > 0).then(|| (last - 1) as f64 / 1000.0);
    report.acked_after_last_failure = progress.acked_since_failure.load(Relaxed);
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

struct Worker {
    manager: Arc<SessionManager>,
    journal: Arc<Journal>,
    progress: Arc<Progress>,
    durable: bool,
    opts: LoadOpts,
}

impl Worker {
    async fn run(
        self,
        mut slots: Vec<Slot>,
        cycles: u64,
        start: Instant,
        deadline: Instant,
    ) -> LoadReport {
        let mut r = LoadReport::default();
        if slots.is_empty() {
            return r;
        }
        let mut i = 0usize;
        while r.cycles < cycles && Instant::now() < deadline {
            let len = slots.len();
            let slot = &mut slots[i % len];
            i += 1;
            r.cycles += 1;
            self.progress.cycles.fetch_add(1, Relaxed);
            let violations_before = r.violations.total();
            let mut attempted = slot.attempted;
            let outcome = tokio::time::timeout(
                self.opts.request_timeout,
                cycle(&self.manager, slot, &mut attempted, self.opts.pad),
            )
            .await;
            slot.attempted = attempted;
            let failed = match outcome {
                Err(_) => {
                    r.timeouts += 1;
                    self.progress.error_kind("client_timeout");
                    true
                }
                Ok(Err(e)) => {
                    r.errors.add_error(&e);
                    self.progress.error_kind(crate::stats::error_kind(&e));
                    if !e.is_retryable() {
                        r.violations.add("non_retryable_error", || {
                            format!(
                                "{}: {}",
                                crate::stats::error_kind(&e),
                                crate::stats::error_chain(&e)
                            )
                        });
                    }
                    true
                }
                Ok(Ok(step)) => {
                    self.apply(slot, step, &mut r);
                    false
                }
            };
            let new_violations = r.violations.total() - violations_before;
            if new_violations > 0 {
                self.progress
                    .violations
                    .fetch_add(new_violations - 1, Relaxed);
                if r.violations.total() <= 20 {
                    self.progress.violation(
                        &format!("{:?}", r.violations.counts),
                        &format!("{:?}", r.violations.examples),
                    );
                } else {
                    self.progress.violations.fetch_add(1, Relaxed);
                }
            }
            if failed {
                self.progress.errors.fetch_add(1, Relaxed);
                let ms = start.elapsed().as_millis() as u64 + 1;
                self.progress.last_failure_ms.fetch_max(ms, Relaxed);
                self.progress.acked_since_failure.store(0, Relaxed);
                // Back off a little while the server is away; stay bounded.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        r
    }

    fn apply(&self, slot: &mut Slot, step: Step, r: &mut LoadReport) {
        match step {
            Step::Created(cookie) => {
                slot.cookie = Some(cookie);
                slot.acked = 0;
                slot.attempted = 0;
                self.ack(slot, r);
            }
            Step::Updated(n) => {
                slot.acked = n;
                self.ack(slot, r);
            }
            Step::Missing => {
                if self.durable {
                    r.violations.add("lost_session", || {
                        format!("session {} (acked {}) vanished", slot.id, slot.acked)
                    });
                } else {
                    r.lost_non_durable += 1;
                    self.progress.error_kind("missing_non_durable");
                }
                slot.generation += 1;
                slot.cookie = None;
            }
            Step::Foreign(v) => {
                r.violations.add("foreign_data", || {
                    format!("session {} returned {:?}", slot.id, v)
                });
                slot.generation += 1;
                slot.cookie = None;
            }
            Step::Counter(n) => {
                r.violations.add("counter", || {
                    format!(
                        "session {} holds {n}, acked {}, attempted {}",
                        slot.id, slot.acked, slot.attempted
                    )
                });
                slot.acked = n;
                slot.attempted = slot.attempted.max(n);
            }
            Step::Unexpected(what) => r.violations.add("unexpected", || what),
        }
    }

    fn ack(&self, slot: &Slot, r: &mut LoadReport) {
        r.acked += 1;
        self.progress.acked.fetch_add(1, Relaxed);
        self.progress.acked_since_failure.fetch_add(1, Relaxed);
        if let Some(cookie) = &slot.cookie {
            self.journal.append(Entry {
                id: slot.id,
                generation: slot.generation,
                counter: slot.acked,
                cookie: cookie.clone(),
            });
        }
    }
}

/// One request: create the session, or load it, check it and bump its counter.
async fn cycle(
    manager: &SessionManager,
    slot: &Slot,
    attempted: &mut u64,
    pad: usize,
) -> Result<Step, Error> {
    let Some(cookie) = &slot.cookie else {
        let s = manager.session(None);
        s.insert(KEY, &Val::new(slot.id, 0, pad)).await?;
        return Ok(match manager.finish(&s).await? {
            CookieDecision::Set(c) => Step::Created(c.value().to_owned()),
            other => Step::Unexpected(format!("creating a session answered {other:?}")),
        });
    };
    let s = manager.session(Some(cookie));
    let Some(v) = s.get::<Val>(KEY).await? else {
        return Ok(Step::Missing);
    };
    if v.id != slot.id || !v.pad_ok() {
        return Ok(Step::Foreign(v));
    }
    if v.n < slot.acked || v.n > *attempted {
        return Ok(Step::Counter(v.n));
    }
    let n = v.n + 1;
    *attempted = (*attempted).max(n);
    s.insert(KEY, &Val::new(slot.id, n, pad)).await?;
    Ok(match manager.finish(&s).await? {
        CookieDecision::Leave | CookieDecision::Set(_) => Step::Updated(n),
        CookieDecision::Remove(_) => Step::Missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::SessionConfig;
    use session_memory::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_load_is_clean_and_journaled() {
        let dir = std::env::temp_dir().join(format!("session-chaos-l-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let journal = dir.join("journal");
        let store = Arc::new(MemoryStore::new());
        let manager = Arc::new(SessionManager::new(store.clone(), SessionConfig::default()));
        let opts = LoadOpts {
            sessions: 20,
            workers: 4,
            cycles: 400,
            duration: Duration::from_secs(20),
            request_timeout: Duration::from_secs(5),
            pad: 16,
            journal: journal.clone(),
        };
        let r = run(manager.clone(), "memory", false, opts).await.unwrap();
        assert_eq!(r.cycles, 400);
        assert_eq!(r.acked, 400);
        assert_eq!(r.violations.total(), 0, "{:?}", r.violations);
        let v = crate::verify::run(&manager, true, &journal, 4)
            .await
            .unwrap();
        assert_eq!(v.checked, 20);
        assert_eq!(v.violations.total(), 0, "{:?}", v.violations);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
