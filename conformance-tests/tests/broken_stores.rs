//! The suite has teeth: run against deliberately broken stores, each must fail at
//! least one case. A correct reference store built the same way passes everything,
//! so the failures come from the flaws and not from the test store itself.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use conformance_tests::{
    Depth, Fixture, Harness, Namespace, Outcome, Report, SetupError, run_all_at, run_case_at,
};
use session_core::time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};
use session_core::{
    BoxError, Bytes, Capabilities, Clock, Error, FIRST_VERSION, ManualClock, NewRecord, Refreshed,
    SaveMode, SessionInterface, StorageKey, StoredRecord, Version, load_then_touch,
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
    // Thresholds: right at small sizes and counts, wrong past one.
    /// `save(Update)` of a payload over 64 KiB skips the version check (a second
    /// write path for big payloads that forgot it).
    UpdateSkipsVersionCheckAbove64K,
    /// Payloads over 256 KiB are cut to 256 KiB (a column or buffer of that size).
    TruncatesAbove256K,
    /// `save(Update)` of a payload over 64 KiB checks the version, yields, then
    /// writes (a big write path that is not atomic).
    LargeUpdateRaceWindow,
    /// `delete_expired` purges in batches of 256 and stops after the first
    /// (`n <= batch` instead of `n < batch` ends its loop).
    SweepStopsAfterFirstBatch,
    /// `delete_expired` purges in batches of 1,000 and stops after the first — only
    /// a sweep of more than 1,000 expired records (the thorough run) notices.
    SweepStopsAfterFirstThousand,
    // Near the deadline.
    /// `delete_expired` also purges records within 1 s of their deadline.
    SweepPurgesNearDeadline,
    // Isolation per operation.
    /// `touch` moves the key's deadline in every namespace.
    TouchIgnoresNamespace,
    /// `expire` removes the key from every namespace.
    ExpireIgnoresNamespace,
    /// `delete_expired` purges (and counts) expired records of every namespace.
    DeleteExpiredIgnoresNamespace,
    // Offsets per operation.
    /// `save(Update)` reads the deadline's local wall-clock time as UTC.
    UpdateDropsOffset,
    /// `touch` reads the deadline's local wall-clock time as UTC.
    TouchDropsOffset,
    // Removal.
    /// `save(Update)` with a deadline not in the future deletes the key without
    /// checking the version (a `SET … PXAT` in the past).
    RemovalSkipsVersionCheck,
    // Races with the sweep.
    /// `delete_expired` lists the expired keys, then deletes those keys without
    /// looking at their deadlines again (a `SELECT` and then `DELETE … WHERE key IN`):
    /// a record created over an expired one in between is lost.
    SweepDeletesByStaleListing,
    // Which path a refresh takes.
    /// `load_and_touch` with `due_before` at or after the new deadline moves the
    /// deadline of every live record, due or not (reading "refresh on every request"
    /// as "always due"), so a later deadline is cut short.
    LoadAndTouchAlwaysDueWithLateBound,
    /// `load_and_touch` moves a due deadline, then reads the record in a second step
    /// (an `UPDATE`, then a `SELECT`, outside one transaction): an update landing in
    /// between is answered with its own deadline while `touched` says the call moved
    /// it.
    LoadAndTouchReadsAfterTouch,
    /// `load_and_touch` with `due_before` at or after the new deadline (the one-step
    /// path) moves the key's due deadline in every namespace (a script or statement
    /// that forgot the prefix or the table).
    LoadAndTouchIgnoresNamespace,
    /// `load_and_touch` with `due_before` at or after the new deadline (the one-step
    /// path) reads both instants' local wall-clock times as UTC (a batch that formats
    /// them as literals without converting).
    LoadAndTouchDropsOffset,
    /// `save(Create)` over an expired record keeps its version (an upsert that sets
    /// payload and deadline and forgets the version column), so a stale update wins.
    CreateOverExpiredKeepsVersion,
    /// `save(Update)` of an expired record with another version than its own is a
    /// `Conflict`, not `NotFound` (an `UPDATE … WHERE version = ? AND live` that,
    /// matching nothing, tells the two apart by the row's version alone).
    UpdateExpiredWrongVersionConflicts,
    /// The version is kept in one unsigned byte that stops at 255 (a `TINYINT
    /// UNSIGNED` under MySQL's non-strict mode): the 256th update conflicts.
    VersionStopsAt255,
    /// Deadlines after 2038-01-19 03:14:07 UTC are clamped to it (32-bit Unix
    /// seconds, a SQL `TIMESTAMP` column).
    DeadlineClampedAt2038,
    /// Deadlines are rounded to the nearest whole second (a MySQL `DATETIME` without
    /// fractional seconds rounds): a deadline equal to now, more than half a second
    /// past a whole second, is stored in the future and the record lives on.
    DeadlineRoundedToNearestSecond,
    /// `touch` to a deadline in the millisecond up to now (now itself included) keeps
    /// the record one more millisecond (a TTL in whole milliseconds, `< 0` where
    /// `<= 0` should delete, then clamped to 1 because a TTL of 0 is an error).
    TouchAtNowLingers,
    /// A removing `save(Update)` with a deadline in the millisecond up to now (now
    /// itself included) keeps the record one more millisecond (the same clamped TTL).
    RemovalAtNowLingers,
    /// `load_and_touch` counts a deadline exactly at `due_before` as due (`<=` where
    /// the contract says before).
    LoadAndTouchDueAtBound,
    /// `load_and_touch` moves a due deadline to the later of the old and the new one
    /// (`GREATEST(expires_at, ?)`), never earlier — except into the past, which kills.
    LoadAndTouchNeverShortens,
    /// A bounded cache: past 2,048 records in a namespace, `save(Create)` evicts the
    /// oldest created, live or not (an acknowledged session lost without a word).
    EvictsPast2048,
    /// The same cache with room for 16,384 records: only the thorough run, with
    /// 25,000 live records, fills it.
    EvictsPast16384,
    /// `save(Create)` over an expired, unpurged record is a `Collision` (a plain
    /// `INSERT` whose unique-key violation is taken for a live record).
    CreateOverExpiredCollides,
    /// `expire` only marks the record (its version set to 0, a tombstone every
    /// write's version check rejects), and `load` does not look at the mark.
    ExpireOnlyMarks,
    /// `touch` moves the deadline of any record under the key, expired or not (an
    /// `UPDATE … SET expires_at` without the liveness condition).
    TouchRevivesExpired,
    /// An empty payload reads back as no record (stored as `NULL`, and `NULL` read
    /// as absent).
    EmptyPayloadIsAbsent,
    /// Trailing NUL bytes are cut from payloads (a C string, or a padded `BINARY`
    /// column trimmed on read).
    TrailingNulsCut,
    /// `save(Update)` of a payload over 64 KiB keeps the old deadline (the big write
    /// path forgot the column).
    LargeUpdateKeepsDeadline,
    /// `touch` never moves a deadline earlier, not even into the past
    /// (`GREATEST(expires_at, ?)`, Redis's `PEXPIREAT … GT`).
    TouchOnlyExtends,
    /// `delete_expired` purges only records a second or more past their deadline (a
    /// clock-skew margin), so records just past it stay and go uncounted.
    SweepSkipsJustExpired,
    /// Deadlines are kept as unsigned milliseconds since the Unix epoch (`as u64`):
    /// one before 1970 wraps into the far future, and the record lives on.
    DeadlineBeforeEpochWraps,
    /// `touch` answers `true` whatever it found (the reply of `PEXPIREAT`, or the
    /// affected-row count, ignored).
    TouchAlwaysTrue,
    /// `load_and_touch` answers the new deadline as `previous_expires_at` (an
    /// `UPDATE … RETURNING expires_at`, which returns the value after the write).
    RefreshReportsNewAsPrevious,
}

/// Which operation a deadline is given to (offset flaws hit one each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
    Touch,
}

const KIB: usize = 1024;

/// 2038-01-19 03:14:07 UTC, the last second 32-bit Unix time can hold.
fn end_of_i32_seconds() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(i64::from(i32::MAX)).expect("in range")
}

#[derive(Debug, Clone)]
struct Entry {
    payload: Bytes,
    expires_at: OffsetDateTime,
    version: Version,
}

/// Records by (namespace, key): every namespace of one harness shares the map, as
/// tables or key prefixes share a server, so a flaw can reach across namespaces.
type Shared = Arc<Mutex<HashMap<(String, String), Entry>>>;

#[derive(Debug)]
struct TestStore {
    flaw: Flaw,
    clock: ManualClock,
    namespace: String,
    map: Shared,
    /// The keys this store created, oldest first (for the bounded caches).
    created: Mutex<VecDeque<(String, String)>>,
}

impl TestStore {
    fn map(&self) -> MutexGuard<'_, HashMap<(String, String), Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn id(&self, key: &StorageKey) -> (String, String) {
        let key = if self.flaw == Flaw::KeyTruncatedTo32 {
            key.as_str()[..32].to_owned()
        } else {
            key.as_str().to_owned()
        };
        (self.namespace.clone(), key)
    }

    /// Whether `id` is this namespace's — or, with `ignores`, any namespace's.
    fn mine(&self, id: &(String, String), ignores: Flaw) -> bool {
        self.flaw == ignores || id.0 == self.namespace
    }

    fn deadline(&self, d: OffsetDateTime, op: Op) -> OffsetDateTime {
        let drops = match op {
            Op::Create => self.flaw == Flaw::DeadlineOffsetDropped,
            Op::Update => {
                matches!(
                    self.flaw,
                    Flaw::DeadlineOffsetDropped | Flaw::UpdateDropsOffset
                )
            }
            Op::Touch => matches!(
                self.flaw,
                Flaw::DeadlineOffsetDropped | Flaw::TouchDropsOffset
            ),
        };
        let d = if drops {
            PrimitiveDateTime::new(d.date(), d.time()).assume_offset(UtcOffset::UTC)
        } else {
            d
        };
        match self.flaw {
            Flaw::DeadlineClampedAt2038 => d.min(end_of_i32_seconds()),
            // Unsigned milliseconds: before the epoch wraps to the far future
            // (past the year 9999 `time` can hold; the end of 9999 here).
            Flaw::DeadlineBeforeEpochWraps if d < OffsetDateTime::UNIX_EPOCH => {
                OffsetDateTime::from_unix_timestamp(253_402_300_799).expect("in range")
            }
            Flaw::DeadlineRoundedToNearestSecond => {
                let whole = d - Duration::nanoseconds(i64::from(d.nanosecond()));
                if d.nanosecond() >= 500_000_000 {
                    whole + Duration::SECOND
                } else {
                    whole
                }
            }
            _ => d,
        }
    }

    fn payload(&self, p: &Bytes) -> Bytes {
        if self.flaw == Flaw::TrailingNulsCut {
            let end = p.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            p.slice(..end)
        } else if self.flaw == Flaw::TruncatesLargePayloads && p.len() > 65_535 {
            p.slice(..65_535)
        } else if self.flaw == Flaw::TruncatesAbove256K && p.len() > 256 * KIB {
            p.slice(..256 * KIB)
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

    /// `load_and_touch` in one step under the map's lock, with the flaws below.
    fn refresh_in_one_step(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Option<Refreshed> {
        let id = self.id(key);
        let now = self.clock.now();
        let mut map = self.map();
        let e = map.get_mut(&id).filter(|e| self.alive(now, e.expires_at))?;
        let previous_expires_at = e.expires_at;
        let touched = if self.flaw == Flaw::LoadAndTouchDueAtBound {
            previous_expires_at <= due_before
        } else {
            previous_expires_at < due_before
        };
        if touched {
            e.expires_at = if self.flaw == Flaw::LoadAndTouchNeverShortens && expires_at > now {
                previous_expires_at.max(expires_at)
            } else {
                expires_at
            };
        }
        Some(Refreshed {
            record: StoredRecord {
                payload: e.payload.clone(),
                expires_at: e.expires_at,
                version: e.version,
            },
            previous_expires_at,
            touched,
        })
    }

    /// The bounded caches: past their capacity, a create evicts the oldest created
    /// record of the namespace.
    fn evict(&self, map: &mut HashMap<(String, String), Entry>, id: (String, String)) {
        let capacity = match self.flaw {
            Flaw::EvictsPast2048 => 2048,
            Flaw::EvictsPast16384 => 16_384,
            _ => return,
        };
        let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        created.push_back(id);
        while created.len() > capacity {
            if let Some(oldest) = created.pop_front() {
                map.remove(&oldest);
            }
        }
    }

    fn entry(&self, record: &NewRecord, version: Version, op: Op) -> Entry {
        Entry {
            payload: self.payload(&record.payload),
            expires_at: self.deadline(record.expires_at, op),
            version: if self.flaw == Flaw::VersionStopsAt255 {
                version.min(255)
            } else {
                version
            },
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
            .filter(|e| !(self.flaw == Flaw::EmptyPayloadIsAbsent && e.payload.is_empty()))
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
                    self.map()
                        .insert(id, self.entry(record, FIRST_VERSION, Op::Create));
                    return Ok(FIRST_VERSION);
                }
                let mut map = self.map();
                if self.flaw != Flaw::CreateIsUpsert
                    && map.get(&id).is_some_and(|e| {
                        self.alive(now, e.expires_at)
                            || self.flaw == Flaw::CreateOverExpiredCollides
                    })
                {
                    return Err(Error::Collision);
                }
                let version = match map.get(&id) {
                    Some(old) if self.flaw == Flaw::CreateOverExpiredKeepsVersion => old.version,
                    _ => FIRST_VERSION,
                };
                map.insert(id.clone(), self.entry(record, version, Op::Create));
                self.evict(&mut map, id);
                Ok(FIRST_VERSION)
            }
            SaveMode::Update { expected_version } => {
                let large = record.payload.len() > 64 * KIB;
                if self.flaw == Flaw::RemovalSkipsVersionCheck && record.expires_at <= now {
                    let mut map = self.map();
                    let live = map.get(&id).is_some_and(|e| self.alive(now, e.expires_at));
                    if !live {
                        return Err(Error::NotFound);
                    }
                    map.remove(&id);
                    return Ok(expected_version + 1);
                }
                if self.flaw == Flaw::LargeUpdateRaceWindow && large {
                    let current = self
                        .map()
                        .get(&id)
                        .filter(|e| self.alive(now, e.expires_at))
                        .map(|e| e.version);
                    match current {
                        None => return Err(Error::NotFound),
                        Some(v) if v != expected_version => return Err(Error::Conflict),
                        Some(_) => {}
                    }
                    tokio::task::yield_now().await;
                    let entry = self.entry(record, expected_version + 1, Op::Update);
                    self.map().insert(id, entry);
                    return Ok(expected_version + 1);
                }
                let skips_check = self.flaw == Flaw::UpdateSkipsVersionCheck
                    || (self.flaw == Flaw::UpdateSkipsVersionCheckAbove64K && large);
                let mut map = self.map();
                let current = map
                    .get(&id)
                    .filter(|e| self.alive(now, e.expires_at))
                    .map(|e| e.version);
                let new_version = match current {
                    None if self.flaw == Flaw::UpdateResurrects => expected_version + 1,
                    None if self.flaw == Flaw::UpdateExpiredWrongVersionConflicts
                        && map.get(&id).is_some_and(|e| e.version != expected_version) =>
                    {
                        return Err(Error::Conflict);
                    }
                    None => return Err(Error::NotFound),
                    Some(v) if v != expected_version && !skips_check => {
                        return Err(Error::Conflict);
                    }
                    Some(v) if self.flaw == Flaw::UpdateKeepsVersion => v,
                    Some(v) => v + 1,
                };
                let mut entry = self.entry(record, new_version, Op::Update);
                if self.flaw == Flaw::RemovalAtNowLingers && within_last_ms(entry.expires_at, now) {
                    entry.expires_at = now + Duration::MILLISECOND;
                }
                if self.flaw == Flaw::LargeUpdateKeepsDeadline && large {
                    entry.expires_at = map[&id].expires_at;
                }
                map.insert(id, entry);
                Ok(if self.flaw == Flaw::UpdateKeepsVersion {
                    expected_version + 1
                } else {
                    new_version
                })
            }
        }
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        let id = self.id(key);
        let mut map = self.map();
        if self.flaw == Flaw::ExpireOnlyMarks {
            if let Some(e) = map.get_mut(&id) {
                e.version = 0;
            }
            return Ok(());
        }
        let removed = map.remove(&id);
        if self.flaw == Flaw::ExpireIgnoresNamespace {
            map.retain(|other, _| other.1 != id.1);
        }
        drop(map);
        if removed.is_none() && self.flaw == Flaw::ExpireNotIdempotent {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        let id = self.id(key);
        let now = self.clock.now();
        let mut expires_at = self.deadline(expires_at, Op::Touch);
        if self.flaw == Flaw::TouchAtNowLingers && within_last_ms(expires_at, now) {
            expires_at = now + Duration::MILLISECOND;
        }
        if self.flaw == Flaw::TouchRevivesExpired {
            return Ok(self
                .map()
                .get_mut(&id)
                .map(|e| e.expires_at = expires_at)
                .is_some());
        }
        if self.flaw == Flaw::TouchOnlyExtends {
            if let Some(e) = self
                .map()
                .get_mut(&id)
                .filter(|e| self.alive(now, e.expires_at))
            {
                e.expires_at = e.expires_at.max(expires_at);
                return Ok(true);
            }
            return Ok(false);
        }
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
        if self.flaw == Flaw::TouchIgnoresNamespace {
            let mut found = false;
            for (other, e) in map.iter_mut() {
                if other.1 == id.1 && self.alive(now, e.expires_at) {
                    e.expires_at = expires_at;
                    found = true;
                }
            }
            return Ok(found);
        }
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
            _ => Ok(self.flaw == Flaw::TouchAlwaysTrue),
        }
    }

    async fn load_and_touch(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Result<Option<Refreshed>, Error> {
        if self.flaw == Flaw::LoadAndTouchAlwaysDueWithLateBound && due_before >= expires_at {
            let Some(mut record) = self.load(key).await? else {
                return Ok(None);
            };
            let previous_expires_at = record.expires_at;
            if !self.touch(key, expires_at).await? {
                return Ok(None);
            }
            record.expires_at = expires_at;
            return Ok(Some(Refreshed {
                record,
                previous_expires_at,
                touched: true,
            }));
        }
        if self.flaw == Flaw::LoadAndTouchDropsOffset && due_before >= expires_at {
            let wall = |t: OffsetDateTime| PrimitiveDateTime::new(t.date(), t.time()).assume_utc();
            return load_then_touch(self, key, wall(expires_at), wall(due_before)).await;
        }
        if self.flaw == Flaw::LoadAndTouchIgnoresNamespace && due_before >= expires_at {
            let now = self.clock.now();
            let own = self.id(key);
            let mut map = self.map();
            let mut answer = None;
            for (id, e) in map.iter_mut() {
                if id.1 != own.1 || !self.alive(now, e.expires_at) {
                    continue;
                }
                let previous_expires_at = e.expires_at;
                let touched = previous_expires_at < due_before;
                if touched {
                    e.expires_at = expires_at;
                }
                if *id == own {
                    answer = Some(Refreshed {
                        record: StoredRecord {
                            payload: e.payload.clone(),
                            expires_at: e.expires_at,
                            version: e.version,
                        },
                        previous_expires_at,
                        touched,
                    });
                }
            }
            return Ok(answer);
        }
        if matches!(
            self.flaw,
            Flaw::LoadAndTouchDueAtBound | Flaw::LoadAndTouchNeverShortens
        ) {
            return Ok(self.refresh_in_one_step(key, expires_at, due_before));
        }
        if self.flaw == Flaw::LoadAndTouchReadsAfterTouch {
            let id = self.id(key);
            let (previous_expires_at, touched) = {
                let mut map = self.map();
                let now = self.clock.now();
                match map.get_mut(&id) {
                    Some(e) if self.alive(now, e.expires_at) => {
                        let previous = e.expires_at;
                        let due = previous < due_before;
                        if due {
                            e.expires_at = expires_at;
                        }
                        (previous, due)
                    }
                    _ => return Ok(None),
                }
            };
            tokio::task::yield_now().await;
            let Some(record) = self.load(key).await? else {
                return Ok(None);
            };
            return Ok(Some(Refreshed {
                record,
                previous_expires_at,
                touched,
            }));
        }
        let answer = load_then_touch(self, key, expires_at, due_before).await?;
        if self.flaw == Flaw::RefreshReportsNewAsPrevious {
            return Ok(answer.map(|r| Refreshed {
                previous_expires_at: r.record.expires_at,
                ..r
            }));
        }
        Ok(answer)
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        let now = self.clock.now();
        if self.flaw == Flaw::SweepDeletesByStaleListing {
            let doomed: Vec<(String, String)> = self
                .map()
                .iter()
                .filter(|(id, e)| id.0 == self.namespace && !self.alive(now, e.expires_at))
                .map(|(id, _)| id.clone())
                .collect();
            // The listing goes stale while the deletes are on their way.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            let mut map = self.map();
            for id in &doomed {
                map.remove(id);
            }
            return Ok(doomed.len() as u64);
        }
        let mut map = self.map();
        let mine = |id: &(String, String)| self.mine(id, Flaw::DeleteExpiredIgnoresNamespace);
        let purge = |e: &Entry| match self.flaw {
            // Purges everything that expires within the next two hours.
            Flaw::DeleteExpiredDeletesLive => e.expires_at <= now + Duration::hours(2),
            Flaw::SweepPurgesNearDeadline => e.expires_at <= now + Duration::seconds(1),
            // A clock-skew margin: only records a second or more past their deadline.
            Flaw::SweepSkipsJustExpired => e.expires_at + Duration::SECOND <= now,
            _ => !self.alive(now, e.expires_at),
        };
        let mut doomed: Vec<(String, String)> = map
            .iter()
            .filter(|(id, e)| mine(id) && purge(e))
            .map(|(id, _)| id.clone())
            .collect();
        doomed.sort();
        let batch = match self.flaw {
            Flaw::SweepStopsAfterFirstBatch => 256,
            Flaw::SweepStopsAfterFirstThousand => 1000,
            _ => usize::MAX,
        };
        // Only the first batch: the flawed loops stop after one full batch.
        doomed.truncate(batch);
        for id in &doomed {
            map.remove(id);
        }
        let n = doomed.len() as u64;
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

/// Whether `deadline` lies in the millisecond up to `now` (a TTL of 0 whole ms).
fn within_last_ms(deadline: OffsetDateTime, now: OffsetDateTime) -> bool {
    deadline <= now && deadline > now - Duration::MILLISECOND
}

/// Every namespace of one harness shares one map.
struct FlawHarness(Flaw, Shared);

impl FlawHarness {
    fn new(flaw: Flaw) -> Arc<Self> {
        Arc::new(Self(flaw, Shared::default()))
    }
}

#[async_trait]
impl Harness for FlawHarness {
    fn name(&self) -> &str {
        "broken"
    }

    async fn open(&self, namespace: &Namespace) -> Result<Fixture, SetupError> {
        let clock = ManualClock::starting_now();
        let store = TestStore {
            flaw: self.0,
            clock: clock.clone(),
            namespace: namespace.as_str().to_owned(),
            map: Arc::clone(&self.1),
            created: Mutex::default(),
        };
        Ok(Fixture::with_clock(Arc::new(store), clock))
    }

    async fn cleanup(&self, namespace: &Namespace) -> Result<(), BoxError> {
        let mut map = self.1.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|id, _| id.0 != namespace.as_str());
        Ok(())
    }
}

/// The default run (whatever `SESSION_TEST_THOROUGH` says), which must catch every
/// flaw but the thorough-only ones.
async fn run(flaw: Flaw) -> Report {
    run_all_at(FlawHarness::new(flaw), Depth::Default).await
}

/// Every flaw the default run must catch.
const CAUGHT_BY_DEFAULT: &[Flaw] = &[
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
    Flaw::UpdateSkipsVersionCheckAbove64K,
    Flaw::TruncatesAbove256K,
    Flaw::LargeUpdateRaceWindow,
    Flaw::SweepStopsAfterFirstBatch,
    Flaw::SweepPurgesNearDeadline,
    Flaw::TouchIgnoresNamespace,
    Flaw::ExpireIgnoresNamespace,
    Flaw::DeleteExpiredIgnoresNamespace,
    Flaw::UpdateDropsOffset,
    Flaw::TouchDropsOffset,
    Flaw::RemovalSkipsVersionCheck,
    Flaw::SweepDeletesByStaleListing,
    Flaw::LoadAndTouchAlwaysDueWithLateBound,
    Flaw::LoadAndTouchReadsAfterTouch,
    Flaw::LoadAndTouchIgnoresNamespace,
    Flaw::LoadAndTouchDropsOffset,
    Flaw::CreateOverExpiredKeepsVersion,
    Flaw::UpdateExpiredWrongVersionConflicts,
    Flaw::VersionStopsAt255,
    Flaw::DeadlineClampedAt2038,
    Flaw::DeadlineRoundedToNearestSecond,
    Flaw::TouchAtNowLingers,
    Flaw::RemovalAtNowLingers,
    Flaw::LoadAndTouchDueAtBound,
    Flaw::LoadAndTouchNeverShortens,
    Flaw::EvictsPast2048,
    Flaw::CreateOverExpiredCollides,
    Flaw::ExpireOnlyMarks,
    Flaw::TouchRevivesExpired,
    Flaw::EmptyPayloadIsAbsent,
    Flaw::TrailingNulsCut,
    Flaw::LargeUpdateKeepsDeadline,
    Flaw::TouchOnlyExtends,
    Flaw::SweepSkipsJustExpired,
    Flaw::DeadlineBeforeEpochWraps,
    Flaw::TouchAlwaysTrue,
    Flaw::RefreshReportsNewAsPrevious,
];

/// The flaws only the thorough run catches.
/// The flaws only the thorough run catches, each with the case that catches it and
/// a part of that case's message.
const CAUGHT_BY_THOROUGH: &[(Flaw, &str, &str)] = &[
    (
        Flaw::SweepStopsAfterFirstThousand,
        "sweep_crosses_batch_boundaries",
        "delete_expired returned 1000",
    ),
    (
        Flaw::EvictsPast16384,
        "many_live_records_all_kept",
        "of 25000 (all created 1 h ahead): got None",
    ),
];

/// The README's count of broken stores is the zoo's.
#[test]
fn readme_counts_the_zoo() {
    let n = CAUGHT_BY_DEFAULT.len() + CAUGHT_BY_THOROUGH.len();
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&format!("against {n} deliberately broken")),
        "README.md should say the suite runs against {n} deliberately broken stores"
    );
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
    let mut uncaught = Vec::new();
    for &flaw in CAUGHT_BY_DEFAULT {
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
        (
            Flaw::UpdateSkipsVersionCheckAbove64K,
            "update_ladder_stale_conflicts",
        ),
        (
            Flaw::UpdateSkipsVersionCheckAbove64K,
            "update_ladder_future_conflicts",
        ),
        (Flaw::TruncatesAbove256K, "update_ladder_match_writes"),
        (Flaw::LargeUpdateRaceWindow, "concurrent_updates_one_winner"),
        (
            Flaw::SweepStopsAfterFirstBatch,
            "sweep_crosses_batch_boundaries",
        ),
        (
            Flaw::SweepPurgesNearDeadline,
            "sweep_spares_records_near_their_deadline",
        ),
        (Flaw::TouchIgnoresNamespace, "namespace_isolated_on_touch"),
        (Flaw::ExpireIgnoresNamespace, "namespace_isolated_on_expire"),
        (
            Flaw::DeleteExpiredIgnoresNamespace,
            "namespace_isolated_on_delete_expired",
        ),
        (Flaw::UpdateDropsOffset, "deadline_with_offset_on_update"),
        (Flaw::TouchDropsOffset, "deadline_with_offset_on_touch"),
        (
            Flaw::RemovalSkipsVersionCheck,
            "update_into_past_wrong_version_conflicts",
        ),
        (
            Flaw::SweepDeletesByStaleListing,
            "sweep_racing_creates_keeps_new_records",
        ),
        (
            Flaw::LoadAndTouchAlwaysDueWithLateBound,
            "load_and_touch_leaves_a_deadline_not_due",
        ),
        (
            Flaw::LoadAndTouchReadsAfterTouch,
            "load_and_touch_racing_updates_keeps_payload",
        ),
        (
            Flaw::LoadAndTouchIgnoresNamespace,
            "namespace_isolated_on_load_and_touch",
        ),
        (
            Flaw::LoadAndTouchDropsOffset,
            "deadline_with_offset_on_load_and_touch",
        ),
        (
            Flaw::CreateOverExpiredKeepsVersion,
            "create_over_expired_succeeds",
        ),
        (
            Flaw::UpdateExpiredWrongVersionConflicts,
            "update_expired_not_found",
        ),
        (Flaw::VersionStopsAt255, "update_chain_increments"),
        (Flaw::DeadlineClampedAt2038, "deadline_far_future"),
        (
            Flaw::DeadlineRoundedToNearestSecond,
            "clock_deadline_at_now_is_dead",
        ),
        (Flaw::TouchAtNowLingers, "clock_deadline_at_now_is_dead"),
        (
            Flaw::RemovalAtNowLingers,
            "update_into_past_removes_on_match",
        ),
        (
            Flaw::LoadAndTouchDueAtBound,
            "load_and_touch_leaves_a_deadline_not_due",
        ),
        (
            Flaw::LoadAndTouchNeverShortens,
            "load_and_touch_moves_a_due_deadline",
        ),
        (Flaw::EvictsPast2048, "many_live_records_all_kept"),
        (
            Flaw::CreateOverExpiredCollides,
            "create_over_expired_succeeds",
        ),
        (Flaw::ExpireOnlyMarks, "expire_then_load_none"),
        (Flaw::TouchRevivesExpired, "touch_expired_returns_false"),
        (Flaw::EmptyPayloadIsAbsent, "payload_empty"),
        (Flaw::TrailingNulsCut, "payload_all_byte_values"),
        (Flaw::LargeUpdateKeepsDeadline, "update_ladder_match_writes"),
        (Flaw::TouchOnlyExtends, "touch_moves_deadline"),
        (
            Flaw::SweepSkipsJustExpired,
            "sweep_spares_records_near_their_deadline",
        ),
        (Flaw::DeadlineBeforeEpochWraps, "deadline_far_past"),
        (Flaw::TouchAlwaysTrue, "touch_absent_returns_false"),
        (
            Flaw::RefreshReportsNewAsPrevious,
            "load_and_touch_moves_a_due_deadline",
        ),
    ];
    let mut missed = Vec::new();
    for (flaw, case) in expected {
        let r = run_case_at(FlawHarness::new(flaw), case, Depth::Default).await;
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

/// A flaw past a rung only the thorough run climbs: the default run of its case
/// passes it (so the switch is what catches it), the thorough run fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thorough_only_flaws_need_the_thorough_run() {
    for &(flaw, case, message) in CAUGHT_BY_THOROUGH {
        let default = run_case_at(FlawHarness::new(flaw), case, Depth::Default).await;
        assert_eq!(
            default.outcome,
            Outcome::Passed,
            "{flaw:?} / {case} (default)"
        );
        let thorough = run_case_at(FlawHarness::new(flaw), case, Depth::Thorough).await;
        match thorough.outcome {
            Outcome::Failed(msg) => assert!(msg.contains(message), "{flaw:?} / {case}: {msg}"),
            other => panic!("{flaw:?} / {case} (thorough): {other:?}"),
        }
    }
}
