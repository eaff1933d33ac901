//! Running cases and reporting on them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::check::{CaseError, CaseResult, Ctx, Opened};
use crate::harness::{Harness, Namespace, SetupError};

/// How long one case may take before it counts as failed (a hung store).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(180);

/// How long [`Harness::cleanup`] may take for one namespace before the case fails.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How many cases [`run_all`] runs at once.
pub const MAX_CONCURRENT_CASES: usize = 4;

/// The environment variable that makes [`run_all`], [`run_case`] and the tests of
/// [`conformance_suite!`](crate::conformance_suite) run [`Depth::Thorough`]: set it to
/// `1` (any value but empty, `0`, `false`, `no` or `off`).
pub const THOROUGH_ENV: &str = "SESSION_TEST_THOROUGH";

/// How far up its ladders a run climbs.
///
/// Clauses that depend on a payload size or a record count are checked over a
/// ladder of them. The default run stops at 1 MiB payloads and sweeps of a few
/// hundred records, which keeps `cargo test` fast; the thorough run adds 8 MiB
/// payloads on every size ladder and sweeps of thousands of records across several
/// SQL purge batches. CI runs it on every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Depth {
    /// The rungs that fit a fast test run.
    #[default]
    Default,
    /// Every rung.
    Thorough,
}

impl Depth {
    /// [`Depth::Thorough`] when [`THOROUGH_ENV`] is set to anything but empty, `0`,
    /// `false`, `no` or `off` (case-insensitive); [`Depth::Default`] otherwise.
    pub fn from_env() -> Self {
        Self::from_value(std::env::var(THOROUGH_ENV).ok().as_deref())
    }

    /// The depth a value of [`THOROUGH_ENV`] selects (`None`: unset).
    pub fn from_value(value: Option<&str>) -> Self {
        let off = |v: &str| {
            let v = v.trim().to_ascii_lowercase();
            ["", "0", "false", "no", "off"].contains(&v.as_str())
        };
        match value {
            Some(v) if !off(v) => Depth::Thorough,
            _ => Depth::Default,
        }
    }

    /// Whether this is [`Depth::Thorough`].
    pub fn is_thorough(self) -> bool {
        self == Depth::Thorough
    }
}

type CaseFuture = Pin<Box<dyn Future<Output = CaseResult> + Send>>;

/// One case of the suite: a name and the code that checks one clause of the contract.
#[derive(Clone, Copy)]
pub struct Case {
    name: &'static str,
    run: fn(Ctx) -> CaseFuture,
}

impl Case {
    /// The case's name, as used by [`run_case`] and as the test name the
    /// [`conformance_suite!`](crate::conformance_suite) macro generates.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Case").field(&self.name).finish()
    }
}

macro_rules! registry {
    ($($name:ident,)*) => {
        /// Every case, in the order they are reported.
        static CASES: &[Case] = &[
            $(Case {
                name: stringify!($name),
                run: |ctx| Box::pin(crate::cases::$name(ctx)),
            },)*
        ];
    };
}
crate::__with_cases!([registry]);

/// Every case of the suite, in report order.
pub fn cases() -> &'static [Case] {
    CASES
}

/// The case called `name`, if there is one.
pub fn find_case(name: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.name == name)
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// A check failed (or the store panicked, or the case timed out); the message
    /// names the case and says what was expected and what came back.
    Failed(String),
    /// The case does not apply (a capability not declared, no injected clock) or the
    /// backend is not configured; the reason says which.
    Skipped(String),
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// The case's name.
    pub name: String,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long it took (harness setup included).
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// The results of running the suite against one backend.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The backend's name ([`Harness::name`]).
    pub backend: String,
    /// Whether the run was [`Depth::Thorough`].
    pub thorough: bool,
    /// Number of passed cases.
    pub passed: usize,
    /// Number of failed cases.
    pub failed: usize,
    /// Number of skipped cases.
    pub skipped: usize,
    /// Every case's result, in registry order.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// A report over `cases` of a [`Depth::Default`] run, with the counts filled in.
    pub fn new(backend: impl Into<String>, cases: Vec<CaseReport>) -> Self {
        let count = |f: fn(&Outcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
        Self {
            backend: backend.into(),
            thorough: false,
            passed: count(|o| matches!(o, Outcome::Passed)),
            failed: count(|o| matches!(o, Outcome::Failed(_))),
            skipped: count(|o| matches!(o, Outcome::Skipped(_))),
            cases,
        }
    }

    /// Whether no case failed (skipped cases do not fail a report; a backend that
    /// is required but missing fails its cases instead of skipping them).
    pub fn is_success(&self) -> bool {
        self.failed == 0
    }

    /// The failed cases.
    pub fn failures(&self) -> impl Iterator<Item = &CaseReport> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
    }
}

/// Runs the case called `name` against a fresh namespace of `harness`, at the depth
/// [`THOROUGH_ENV`] selects ([`Depth::from_env`]).
///
/// The case runs in its own spawned task, so a store that panics fails the case
/// instead of the caller, and it is bounded by [`CASE_TIMEOUT`]. An unknown name is a
/// failed case.
pub async fn run_case(harness: Arc<dyn Harness>, name: &str) -> CaseReport {
    run_case_at(harness, name, Depth::from_env()).await
}

/// [`run_case`] at the given depth.
pub async fn run_case_at(harness: Arc<dyn Harness>, name: &str, depth: Depth) -> CaseReport {
    let start = Instant::now();
    let outcome = match find_case(name) {
        None => Outcome::Failed(format!("there is no conformance case named `{name}`")),
        Some(case) => run_found(harness, case, depth).await,
    };
    CaseReport {
        name: name.to_owned(),
        outcome,
        duration: start.elapsed(),
    }
}

async fn run_found(harness: Arc<dyn Harness>, case: &'static Case, depth: Depth) -> Outcome {
    let backend = harness.name().to_owned();
    let prefix = format!("case `{}` on backend `{backend}`", case.name);
    let opened = Opened::default();
    let outcome = run_task(Arc::clone(&harness), case, &prefix, opened.clone(), depth).await;
    let mut problems = Vec::new();
    for namespace in opened.all() {
        match tokio::time::timeout(CLEANUP_TIMEOUT, harness.cleanup(&namespace)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(format!("cleaning up namespace `{namespace}` failed: {e}")),
            Err(_) => problems.push(format!(
                "cleaning up namespace `{namespace}` did not finish within {} s",
                CLEANUP_TIMEOUT.as_secs()
            )),
        }
    }
    if problems.is_empty() {
        return outcome;
    }
    let problems = problems.join("; ");
    match outcome {
        Outcome::Failed(msg) => Outcome::Failed(format!("{msg}; {problems}")),
        Outcome::Passed | Outcome::Skipped(_) => Outcome::Failed(format!("{prefix}: {problems}")),
    }
}

/// Opens the case's first namespace and runs the case in its own task, bounded by
/// [`CASE_TIMEOUT`].
async fn run_task(
    harness: Arc<dyn Harness>,
    case: &'static Case,
    prefix: &str,
    opened: Opened,
    depth: Depth,
) -> Outcome {
    let task = tokio::spawn(async move {
        let namespace = Namespace::for_case(case.name);
        opened.push(&namespace);
        let fx = match harness.open(&namespace).await {
            Ok(fx) => fx,
            Err(SetupError::Skip(reason)) => return Err(CaseError::Skip(reason)),
            Err(e @ SetupError::Failed(_)) => {
                return Err(CaseError::Fail(format!(
                    "harness could not open namespace `{namespace}`: {e}"
                )));
            }
        };
        (case.run)(Ctx {
            case: case.name,
            harness,
            fx,
            opened,
            thorough: depth.is_thorough(),
        })
        .await
    });
    let abort = task.abort_handle();
    match tokio::time::timeout(CASE_TIMEOUT, task).await {
        Ok(Ok(Ok(()))) => Outcome::Passed,
        Ok(Ok(Err(CaseError::Fail(msg)))) => Outcome::Failed(format!("{prefix}: {msg}")),
        Ok(Ok(Err(CaseError::Skip(reason)))) => Outcome::Skipped(reason),
        Ok(Err(join)) => Outcome::Failed(format!("{prefix}: panicked: {}", panic_message(join))),
        Err(_) => {
            abort.abort();
            Outcome::Failed(format!(
                "{prefix}: timed out after {} s",
                CASE_TIMEOUT.as_secs()
            ))
        }
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

/// Runs every case against `harness` (at most [`MAX_CONCURRENT_CASES`] at once, each
/// in its own namespace and task) at the depth [`THOROUGH_ENV`] selects
/// ([`Depth::from_env`]), and returns the report.
pub async fn run_all(harness: Arc<dyn Harness>) -> Report {
    run_all_at(harness, Depth::from_env()).await
}

/// [`run_all`] at the given depth.
pub async fn run_all_at(harness: Arc<dyn Harness>, depth: Depth) -> Report {
    let backend = harness.name().to_owned();
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_CASES));
    let handles: Vec<_> = CASES
        .iter()
        .map(|case| {
            let (harness, permits) = (Arc::clone(&harness), Arc::clone(&permits));
            tokio::spawn(async move {
                // The semaphore is never closed, so acquiring cannot fail.
                let _permit = permits.acquire_owned().await.ok();
                run_case_at(harness, case.name, depth).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for (case, handle) in CASES.iter().zip(handles) {
        results.push(handle.await.unwrap_or_else(|e| CaseReport {
            name: case.name.to_owned(),
            outcome: Outcome::Failed(format!("case `{}`: runner task failed: {e}", case.name)),
            duration: Duration::ZERO,
        }));
    }
    Report {
        thorough: depth.is_thorough(),
        ..Report::new(backend, results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_from_the_environment_value() {
        for on in ["1", "true", "TRUE", "yes", "on", " 1 ", "2"] {
            assert_eq!(Depth::from_value(Some(on)), Depth::Thorough, "{on:?}");
        }
        for off in ["", "0", "false", "False", "no", "off", " 0 "] {
            assert_eq!(Depth::from_value(Some(off)), Depth::Default, "{off:?}");
        }
        assert_eq!(Depth::from_value(None), Depth::Default);
        assert!(Depth::Thorough.is_thorough() && !Depth::Default.is_thorough());
    }
}
