//! The suite has teeth: run against deliberately broken stores, each must fail at
//! least one case. A correct reference store built the same way passes everything,
//! so the failures come from the flaws and not from the test store itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use conformance_tests::{Fixture, Harness, Namespace, Outcome, Report, SetupError, run_all};
use session_core::time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use session_core::{
    Bytes, Capabilities, Clock, Error, FIRST_VERSION, ManualClock, NewRecord, SaveMode,
    SessionInterface, StorageKey, StoredRecord, Version,
};

/// One way a store can be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// None: the reference store.
    None,
    /// `load` returns records whose deadline has passed.
    IgnoresExpiryOnLoad,
    /// `save(Create)` overwrites a live record.
    CreateIsUpsert,
    /// `save(Update)` writes whatever the stored version.
    UpdateSkipsVersionCheck,
    /// `save(Update)` of an absent or expired key inserts it.
    UpdateResurrects,
    /// `touch` rewrites the record with an empty payload.
    TouchDropsPayload,
    /// Payloads are cut to 64 KiB (a MySQL `BLOB`).
    TruncatesLargePayloads,
    /// `save(Create)` checks, yields, then inserts: concurrent creates all win.
    CreateRaceWindow,
    /// `delete_expired` removes live records too.
    DeleteExpiredDeletesLive,
    /// `touch` bumps the version.
    TouchBumpsVersion,
    /// `expire` of an absent key fails with `NotFound`.
    ExpireNotIdempotent,
    /// The key is stored by its first 32 characters only (a `CHAR(32)` column).
    KeyTruncatedTo32,
    /// The deadline's offset is dropped: its local wall-clock time is read as UTC.
    DeadlineOffsetDropped,
    /// Declares no touch capability, yet touch "works" instead of `Unsupported`.
    UndeclaredTouchWorks,
    /// `touch` reads the record, yields, and writes it back whole (racy rewrite).
    TouchReadModifyWrite,
    /// `delete_expired` purges but always reports 0.
    DeleteExpiredMiscounts,
    /// `save(Update)` writes but does not bump the version.
    UpdateKeepsVersion,
    /// `save` panics on payloads over 4 MiB (a store bug must fail a case, not the run).
    PanicsOnHugePayload,
    /// A record counts as live until its deadline inclusive (`now <= expires_at`).
    DeadlineInclusive,
}

#[derive(Debug, Clone)]
struct Entry {
    payload: Bytes,
    expires_at: OffsetDateTime,
    version: Version,
}

#[derive(Debug)]
struct TestStore {
    flaw: Flaw,
    clock: ManualClock,
    map: Mutex<HashMap<String, Entry>>,
}

impl TestStore {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn id(&self, key: &StorageKey) -> String {
        if self.flaw == Flaw::KeyTruncatedTo32 {
            key.as_str()[..32].to_owned()
        } else {
            key.as_str().to_owned()
        }
    }

    fn deadline(&self, d: OffsetDateTime) -> OffsetDateTime {
        if self.flaw == Flaw::DeadlineOffsetDropped {
            PrimitiveDateTime::new(d.date(), d.time()).assume_offset(UtcOffset::UTC)
        } else {
            d
        }
    }

    fn payload(&self, p: &Bytes) -> Bytes {
        if self.flaw == Flaw::TruncatesLargePayloads && p.len() > 65_535 {
            p.slice(..65_535)
        } else {
            p.clone()
        }
    }

    fn live(&self, e: &Entry) -> bool {
        self.flaw == Flaw::IgnoresExpiryOnLoad || self.alive(self.clock.now(), e.expires_at)
    }

    /// The contract: live while `now < expires_at`.
    fn alive(&self, now: OffsetDateTime, expires_at: OffsetDateTime) -> bool {
        if self.flaw == Flaw::DeadlineInclusive {
            now <= expires_at
        } else {
            now < expires_at
        }
    }

    fn entry(&self, record: &NewRecord, version: Version) -> Entry {
        Entry {
            payload: self.payload(&record.payload),
            expires_at: self.deadline(record.expires_at),
            version,
        }
    }
}

#[async_trait]
impl SessionInterface for TestStore {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        Ok(self
            .map()
            .get(&self.id(key))
            .filter(|e| self.live(e))
            .map(|e| StoredRecord {
                payload: e.payload.clone(),
                expires_at: e.expires_at,
                version: e.version,
            }))
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        let id = self.id(key);
        let now = self.clock.now();
        assert!(
            !(self.flaw == Flaw::PanicsOnHugePayload && record.payload.len() > 4 << 20),
            "store bug: payload too large"
        );
        match mode {
            SaveMode::Create => {
                if self.flaw == Flaw::CreateRaceWindow {
                    let taken = self
                        .map()
                        .get(&id)
                        .is_some_and(|e| self.alive(now, e.expires_at));
                    if taken {
                        return Err(Error::Collision);
                    }
                    tokio::task::yield_now().await;
                    self.map().insert(id, self.entry(record, FIRST_VERSION));
                    return Ok(FIRST_VERSION);
                }
                let mut map = self.map();
                if self.flaw != Flaw::CreateIsUpsert
                    && map.get(&id).is_some_and(|e| self.alive(now, e.expires_at))
                {
                    return Err(Error::Collision);
                }
                map.insert(id, self.entry(record, FIRST_VERSION));
                Ok(FIRST_VERSION)
            }
            SaveMode::Update { expected_version } => {
                let mut map = self.map();
                let current = map
                    .get(&id)
                    .filter(|e| self.alive(now, e.expires_at))
                    .map(|e| e.version);
                let new_version = match current {
                    None if self.flaw == Flaw::UpdateResurrects => expected_version + 1,
                    None => return Err(Error::NotFound),
                    Some(v)
                        if v != expected_version && self.flaw != Flaw::UpdateSkipsVersionCheck =>
                    {
                        return Err(Error::Conflict);
                    }
                    Some(v) if self.flaw == Flaw::UpdateKeepsVersion => v,
                    Some(v) => v + 1,
                };
                map.insert(id, self.entry(record, new_version));
                Ok(if self.flaw == Flaw::UpdateKeepsVersion {
                    expected_version + 1
                } else {
                    new_version
                })
            }
        }
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        let removed = self.map().remove(&self.id(key));
        if removed.is_none() && self.flaw == Flaw::ExpireNotIdempotent {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        let id = self.id(key);
        let now = self.clock.now();
        let expires_at = self.deadline(expires_at);
        if self.flaw == Flaw::TouchReadModifyWrite {
            let Some(old) = self
                .map()
                .get(&id)
                .filter(|e| self.alive(now, e.expires_at))
                .cloned()
            else {
                return Ok(false);
            };
            tokio::task::yield_now().await;
            self.map().insert(id, Entry { expires_at, ..old });
            return Ok(true);
        }
        let mut map = self.map();
        match map.get_mut(&id) {
            Some(e) if self.alive(now, e.expires_at) => {
                e.expires_at = expires_at;
                match self.flaw {
                    Flaw::TouchDropsPayload => e.payload = Bytes::new(),
                    Flaw::TouchBumpsVersion => e.version += 1,
                    _ => {}
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        let now = self.clock.now();
        let mut map = self.map();
        let before = map.len();
        if self.flaw == Flaw::DeleteExpiredDeletesLive {
            // Purges everything that expires within the next two hours.
            let horizon = now + session_core::time::Duration::hours(2);
            map.retain(|_, e| horizon < e.expires_at);
        } else {
            map.retain(|_, e| self.alive(now, e.expires_at));
        }
        let n = (before - map.len()) as u64;
        Ok(if self.flaw == Flaw::DeleteExpiredMiscounts {
            0
        } else {
            n
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full().with_touch(self.flaw != Flaw::UndeclaredTouchWorks)
    }
}

struct FlawHarness(Flaw);

#[async_trait]
impl Harness for FlawHarness {
    fn name(&self) -> &str {
        "broken"
    }

    async fn open(&self, _namespace: &Namespace) -> Result<Fixture, SetupError> {
        let clock = ManualClock::starting_now();
        let store = TestStore {
            flaw: self.0,
            clock: clock.clone(),
            map: Mutex::new(HashMap::new()),
        };
        Ok(Fixture::with_clock(Arc::new(store), clock))
    }
}

async fn run(flaw: Flaw) -> Report {
    run_all(Arc::new(FlawHarness(flaw))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_store_passes_everything() {
    let report = run(Flaw::None).await;
    let failures: Vec<_> = report.failures().collect();
    assert!(
        failures.is_empty(),
        "the reference store must pass: {failures:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_store_is_caught() {
    let flaws = [
        Flaw::IgnoresExpiryOnLoad,
        Flaw::CreateIsUpsert,
        Flaw::UpdateSkipsVersionCheck,
        Flaw::UpdateResurrects,
        Flaw::TouchDropsPayload,
        Flaw::TruncatesLargePayloads,
        Flaw::CreateRaceWindow,
        Flaw::DeleteExpiredDeletesLive,
        Flaw::TouchBumpsVersion,
        Flaw::ExpireNotIdempotent,
        Flaw::KeyTruncatedTo32,
        Flaw::DeadlineOffsetDropped,
        Flaw::UndeclaredTouchWorks,
        Flaw::TouchReadModifyWrite,
        Flaw::DeleteExpiredMiscounts,
        Flaw::UpdateKeepsVersion,
        Flaw::PanicsOnHugePayload,
        Flaw::DeadlineInclusive,
    ];
    let mut uncaught = Vec::new();
    for flaw in flaws {
        let report = run(flaw).await;
        let caught: Vec<&str> = report.failures().map(|c| c.name.as_str()).collect();
        println!(
            "{flaw:?}: caught by {} case(s): {}",
            caught.len(),
            caught.join(", ")
        );
        if caught.is_empty() {
            uncaught.push(flaw);
        }
        // Every failure carries a message naming its case.
        for c in &report.cases {
            if let Outcome::Failed(msg) = &c.outcome {
                assert!(
                    msg.contains(&c.name),
                    "{flaw:?}: message without case name: {msg}"
                );
            }
        }
    }
    assert!(
        uncaught.is_empty(),
        "broken stores that passed every case: {uncaught:?}"
    );
}

/// The specific case each headline flaw must trip, so the suite cannot lose a check
/// while still catching the store somewhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headline_flaws_trip_their_cases() {
    let expected = [
        (Flaw::IgnoresExpiryOnLoad, "expired_record_invisible"),
        (Flaw::CreateIsUpsert, "create_on_live_key_collides"),
        (
            Flaw::UpdateSkipsVersionCheck,
            "update_stale_version_conflicts",
        ),
        (
            Flaw::UpdateSkipsVersionCheck,
            "concurrent_updates_one_winner",
        ),
        (Flaw::UpdateResurrects, "update_absent_not_found"),
        (Flaw::UpdateResurrects, "expire_racing_update_stays_gone"),
        (Flaw::TouchDropsPayload, "touch_moves_deadline"),
        (Flaw::TruncatesLargePayloads, "payload_1_mib"),
        (Flaw::TruncatesLargePayloads, "payload_8_mib"),
        (Flaw::CreateRaceWindow, "concurrent_creates_one_winner"),
        (
            Flaw::DeleteExpiredDeletesLive,
            "delete_expired_counts_exactly",
        ),
        (Flaw::TouchBumpsVersion, "touch_then_update_same_version"),
        (Flaw::ExpireNotIdempotent, "expire_idempotent"),
        (Flaw::KeyTruncatedTo32, "prefix_sharing_keys_isolated"),
        (Flaw::DeadlineOffsetDropped, "deadline_with_offset"),
        (Flaw::UndeclaredTouchWorks, "capabilities_touch_honest"),
        (
            Flaw::TouchReadModifyWrite,
            "touch_racing_update_keeps_payload",
        ),
        (
            Flaw::DeleteExpiredMiscounts,
            "delete_expired_counts_exactly",
        ),
        (Flaw::UpdateKeepsVersion, "update_chain_increments"),
        (Flaw::DeadlineInclusive, "clock_deadline_is_exclusive"),
    ];
    let mut missed = Vec::new();
    for (flaw, case) in expected {
        let r = conformance_tests::run_case(Arc::new(FlawHarness(flaw)), case).await;
        match r.outcome {
            Outcome::Failed(msg) => println!("{flaw:?} / {case}: {msg}"),
            other => missed.push(format!("{flaw:?} / {case}: {other:?}")),
        }
    }
    assert!(
        missed.is_empty(),
        "cases that did not catch their flaw: {missed:#?}"
    );
}

/// A store that panics fails the case it panicked in, and the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_store_fails_its_case_only() {
    let report = run(Flaw::PanicsOnHugePayload).await;
    let failed: Vec<&str> = report.failures().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["payload_8_mib"]);
    let Some(Outcome::Failed(msg)) = report
        .cases
        .iter()
        .find(|c| c.name == "payload_8_mib")
        .map(|c| &c.outcome)
    else {
        panic!("payload_8_mib did not fail");
    };
    assert!(
        msg.contains("panicked") && msg.contains("store bug: payload too large"),
        "{msg}"
    );
    assert_eq!(report.passed + report.skipped + 1, report.cases.len());
}
