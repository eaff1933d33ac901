//! The suite through the macro against `session-memory`, twice: on an injected
//! manual clock (the clock-driven cases run) and on the system clock (the
//! real-time code paths of the cases run, the clock cases skip).

use std::sync::Arc;

use async_trait::async_trait;
use conformance_tests::{Fixture, Harness, Namespace, SetupError};
use session_core::ManualClock;
use session_memory::MemoryStore;

struct ManualClockHarness;

#[async_trait]
impl Harness for ManualClockHarness {
    fn name(&self) -> &str {
        "memory (manual clock)"
    }

    async fn open(&self, _namespace: &Namespace) -> Result<Fixture, SetupError> {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::with_clock(clock.shared());
        Ok(Fixture::with_clock(Arc::new(store), clock))
    }
}

struct SystemClockHarness;

#[async_trait]
impl Harness for SystemClockHarness {
    fn name(&self) -> &str {
        "memory (system clock)"
    }

    async fn open(&self, _namespace: &Namespace) -> Result<Fixture, SetupError> {
        Ok(Fixture::new(Arc::new(MemoryStore::new())))
    }
}

mod manual_clock {
    use super::*;
    conformance_tests::conformance_suite!(ManualClockHarness);
}

mod system_clock {
    use super::*;
    conformance_tests::conformance_suite!(SystemClockHarness);
}

/// `run_all` over the same store: every case passes except the one that needs a
/// native-TTL server, which is skipped with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_reports_every_case() {
    let report = conformance_tests::run_all(Arc::new(ManualClockHarness)).await;
    assert_eq!(report.backend, "memory (manual clock)");
    assert_eq!(report.cases.len(), conformance_tests::cases().len());
    let failures: Vec<_> = report.failures().collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(report.passed + report.skipped, report.cases.len());
    let skipped: Vec<&str> = report
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, conformance_tests::Outcome::Skipped(_)))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(skipped, ["native_ttl_evicts"]);
    assert!(report.is_success());

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["backend"], "memory (manual clock)");
    assert_eq!(json["failed"], 0);
    assert_eq!(json["cases"][0]["name"], "round_trip");
    assert_eq!(json["cases"][0]["result"], "passed");
    assert!(json["cases"][0]["duration_ms"].is_number());
    let ttl = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "native_ttl_evicts")
        .unwrap();
    assert_eq!(ttl["result"], "skipped");
    assert!(ttl["detail"].as_str().unwrap().contains("native_ttl"));
}

/// A harness whose server is missing skips every case (naming the variable); one
/// that fails to set up fails them; an unknown case name fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_errors_skip_or_fail() {
    struct Missing;
    #[async_trait]
    impl Harness for Missing {
        fn name(&self) -> &str {
            "missing"
        }
        async fn open(&self, _: &Namespace) -> Result<Fixture, SetupError> {
            Err(SetupError::Skip(
                "SESSION_TEST_EXAMPLE_URL is not set".into(),
            ))
        }
    }
    struct Broken;
    #[async_trait]
    impl Harness for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        async fn open(&self, _: &Namespace) -> Result<Fixture, SetupError> {
            Err(SetupError::failed("connection refused"))
        }
    }
    let report = conformance_tests::run_all(Arc::new(Missing)).await;
    assert_eq!(report.skipped, report.cases.len());
    assert!(report.is_success());
    let r = conformance_tests::run_case(Arc::new(Broken), "round_trip").await;
    match r.outcome {
        conformance_tests::Outcome::Failed(msg) => {
            assert!(
                msg.contains("round_trip") && msg.contains("connection refused"),
                "{msg}"
            )
        }
        other => panic!("{other:?}"),
    }
    let r = conformance_tests::run_case(Arc::new(ManualClockHarness), "no_such_case").await;
    assert!(matches!(r.outcome, conformance_tests::Outcome::Failed(_)));
}
