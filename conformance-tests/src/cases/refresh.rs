//! `load_and_touch`: the load and a due refresh in one step.
//!
//! The manager loads a session with refresh-each-request through this method,
//! asking the store to move the deadline only when it is before `due_before`. These
//! cases pin its clauses on every store — whether it overrides the method (one round
//! trip) or keeps the trait's default (`load` + `touch`): the answer is the record
//! after the call, payload byte for byte and version unchanged; an absent or expired
//! key is `None` and nothing is created; a past deadline kills the record; and racing
//! updates never see an older payload written back.

use std::sync::Arc;

use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, Error, FIRST_VERSION, NewRecord, Refreshed, SaveMode, SessionInterface, StorageKey,
};
use tokio::sync::Barrier;

use crate::check::{
    CaseError, CaseResult, Ctx, OrFail, ensure, expect_err, fail, key, load_exact, load_live,
    load_none, near, pattern, payload_diff,
};

const HOUR: Duration = Duration::hours(1);

const fn update(expected_version: u64) -> SaveMode {
    SaveMode::Update { expected_version }
}

/// A tiny record and one past the 256 KiB mark where stores switch to a
/// large-payload path (session-redis's transaction).
const SIZES: [usize; 2] = [5, 300 * 1024];

/// Creates a record of `size` bytes live for an hour and updates it once, so its
/// version is not the first one. Returns the key, payload and version.
async fn record_at_version_two(
    ctx: &Ctx,
    size: usize,
) -> Result<(StorageKey, Bytes, u64), CaseError> {
    let s = ctx.store();
    let k = key()?;
    s.save(&k, &ctx.rec(pattern(size, 1), HOUR), SaveMode::Create)
        .await
        .or_fail(&format!("save(Create) of {size} bytes"))?;
    let payload = pattern(size, 9);
    let v = s
        .save(&k, &ctx.rec(payload.clone(), HOUR), update(FIRST_VERSION))
        .await
        .or_fail(&format!("update of {size} bytes"))?;
    Ok((k, payload, v))
}

/// Calls `load_and_touch` and fails unless it answers `Some`.
async fn refreshed(
    s: &dyn SessionInterface,
    k: &StorageKey,
    expires_at: OffsetDateTime,
    due_before: OffsetDateTime,
    what: &str,
) -> Result<Refreshed, CaseError> {
    match s.load_and_touch(k, expires_at, due_before).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => fail!("{what}: load_and_touch of a live record returned None"),
        Err(e) => fail!("{what}: load_and_touch of a live record: Err({e:?})"),
    }
}

/// Fails unless `r.record` is exactly `payload` at `version`.
fn same_record(r: &Refreshed, payload: &[u8], version: u64, what: &str) -> CaseResult {
    if let Some(diff) = payload_diff(payload, &r.record.payload) {
        fail!("{what}: the returned payload differs: {diff}");
    }
    ensure!(
        r.record.version == version,
        "{what}: returned version {}, expected {version} (load_and_touch must not change it)",
        r.record.version
    );
    Ok(())
}

/// A due deadline (before `due_before`, also when `due_before` is the new deadline) moves — also to an earlier one — and the answer is the record after the move: new deadline, previous deadline, same payload and version.
pub(crate) async fn load_and_touch_moves_a_due_deadline(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    let caps = ctx.caps();
    ensure!(
        !caps.load_and_touch || caps.touch,
        "the store declares load_and_touch without touch (the manager corrects deadlines with touch)"
    );
    let s = ctx.store().as_ref();
    for size in SIZES {
        let what = format!("{size}-byte record");
        let (k, payload, v) = record_at_version_two(&ctx, size).await?;
        let old = ctx.now() + HOUR;
        let new = ctx.now() + HOUR * 3;
        let r = refreshed(s, &k, new, ctx.now() + HOUR * 2, &what).await?;
        ensure!(
            r.touched,
            "{what}: a deadline 1 h away is before due_before (2 h away) but touched is false"
        );
        ensure!(
            near(r.record.expires_at, new),
            "{what}: returned expires_at {}, expected within 1 s of {new}",
            r.record.expires_at
        );
        ensure!(
            near(r.previous_expires_at, old),
            "{what}: returned previous_expires_at {}, expected within 1 s of {old}",
            r.previous_expires_at
        );
        same_record(&r, &payload, v, &what)?;
        load_exact(
            s,
            &k,
            &payload,
            v,
            Some(new),
            &format!("{what}: load after load_and_touch"),
        )
        .await?;
        // A bound at the new deadline (refresh on every request): any earlier
        // deadline is due.
        let newest = ctx.now() + HOUR * 4;
        let r = refreshed(s, &k, newest, newest, &what).await?;
        ensure!(
            r.touched && near(r.record.expires_at, newest) && near(r.previous_expires_at, new),
            "{what}: with due_before = expires_at (4 h away) over a deadline 3 h away: touched \
             {}, expires_at {}, previous {} (expected true, {newest}, {new})",
            r.touched,
            r.record.expires_at,
            r.previous_expires_at
        );
        same_record(&r, &payload, v, &what)?;
        // The version is untouched: an update with it still wins.
        let next = s
            .save(&k, &ctx.rec(&b"after"[..], HOUR), update(v))
            .await
            .or_fail(&format!(
                "{what}: update with the version from before load_and_touch"
            ))?;
        ensure!(
            next == v + 1,
            "{what}: the update after load_and_touch returned version {next}, expected {}",
            v + 1
        );
        // Due (1 h < 2 h), to a deadline earlier than the one it has: the move is
        // to `expires_at`, as `touch` would make it, not to the later of the two.
        let (old, sooner) = (ctx.now() + HOUR, ctx.now() + Duration::minutes(30));
        let r = refreshed(s, &k, sooner, ctx.now() + HOUR * 2, &what).await?;
        ensure!(
            r.touched && near(r.record.expires_at, sooner) && near(r.previous_expires_at, old),
            "{what}: a due move from 1 h to 30 min ahead: touched {}, expires_at {}, previous {} (expected true, {sooner}, {old})",
            r.touched,
            r.record.expires_at,
            r.previous_expires_at
        );
        load_exact(
            s,
            &k,
            b"after",
            next,
            Some(sooner),
            &format!("{what}: load after a due move to an earlier deadline"),
        )
        .await?;
    }
    Ok(())
}

/// A deadline not before `due_before` stays — also one exactly at it, and when `due_before` is at or after the new deadline (which would shorten it): the answer is the record as it was.
pub(crate) async fn load_and_touch_leaves_a_deadline_not_due(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let min = Duration::minutes;
    // (new deadline, due_before) from now. The first is the manager's usual bound,
    // before the new deadline. The others put the bound at and after the new
    // deadline, as the manager does with a refresh threshold of 0 (`due_before =
    // expires_at`) for a session whose own deadline lies beyond the configured idle
    // lifetime: a store that treats such a bound as "always due" — or answers it on
    // a path that never sees a record that is not due — fails them.
    let calls = [(HOUR * 3, min(30)), (min(30), min(30)), (min(10), min(30))];
    for size in SIZES {
        for (new, due) in calls {
            let what = format!("{size}-byte record, expires_at in {new}, due_before in {due}");
            let (k, payload, v) = record_at_version_two(&ctx, size).await?;
            let old = ctx.now() + HOUR;
            let r = refreshed(s, &k, ctx.now() + new, ctx.now() + due, &what).await?;
            ensure!(
                !r.touched,
                "{what}: a deadline 1 h away is not before due_before but touched is true"
            );
            ensure!(
                near(r.record.expires_at, old) && r.record.expires_at == r.previous_expires_at,
                "{what}: returned expires_at {} / previous {}, expected both within 1 s of {old}",
                r.record.expires_at,
                r.previous_expires_at
            );
            same_record(&r, &payload, v, &what)?;
            load_exact(
                s,
                &k,
                &payload,
                v,
                Some(old),
                &format!("{what}: load after an undue load_and_touch"),
            )
            .await?;
        }
    }
    // A deadline exactly at the bound is not before it, so not due (a store that
    // compares with `<=` moves it). The bound is the deadline as the store returned
    // it, so no precision is lost on the way; the new deadline is after the bound
    // (the manager's usual path) or before it (the one-step path, where a move
    // would shorten the deadline).
    for size in SIZES {
        for (label, shift) in [("2 h after", HOUR * 2), ("10 min before", -min(10))] {
            let what =
                format!("{size}-byte record, due_before its deadline, expires_at {label} it");
            let (k, payload, v) = record_at_version_two(&ctx, size).await?;
            let old = load_live(s, &k, &what).await?.expires_at;
            let r = refreshed(s, &k, old + shift, old, &what).await?;
            ensure!(
                !r.touched && near(r.record.expires_at, old) && near(r.previous_expires_at, old),
                "{what}: touched {}, expires_at {}, previous {} (expected false, {old}, {old}: a deadline at due_before is not before it)",
                r.touched,
                r.record.expires_at,
                r.previous_expires_at
            );
            same_record(&r, &payload, v, &what)?;
            load_exact(
                s,
                &k,
                &payload,
                v,
                Some(old),
                &format!("{what}: load after the undue load_and_touch"),
            )
            .await?;
        }
    }
    Ok(())
}

/// An absent or expired key is `None`, and the call creates or revives nothing.
pub(crate) async fn load_and_touch_absent_or_expired_is_none(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let absent = key()?;
    let expired = key()?;
    s.save(&expired, &ctx.rec(&b"dead"[..], -HOUR), SaveMode::Create)
        .await
        .or_fail("save(Create) with a deadline 1 h in the past")?;
    for (label, k) in [("an absent key", &absent), ("an expired record", &expired)] {
        match s
            .load_and_touch(k, ctx.now() + HOUR, ctx.now() + HOUR * 2)
            .await
        {
            Ok(None) => {}
            Ok(Some(r)) => fail!(
                "load_and_touch of {label} returned a record (version {}, {} bytes), expected None",
                r.record.version,
                r.record.payload.len()
            ),
            Err(e) => fail!("load_and_touch of {label}: Err({e:?}), expected Ok(None)"),
        }
        load_none(s, k, &format!("load after load_and_touch of {label}")).await?;
        expect_err!(
            s.save(k, &ctx.rec(&b"y"[..], HOUR), update(FIRST_VERSION))
                .await,
            Error::NotFound,
            "update after load_and_touch of {label}"
        );
        let v = s
            .save(k, &ctx.rec(&b"new"[..], HOUR), SaveMode::Create)
            .await
            .or_fail(&format!("save(Create) after load_and_touch of {label}"))?;
        ensure!(
            v == FIRST_VERSION,
            "save(Create) after load_and_touch of {label} returned {v}, expected {FIRST_VERSION}"
        );
    }
    Ok(())
}

/// A due move to a deadline in the past kills the record at once, as `touch` does.
pub(crate) async fn load_and_touch_into_past_kills_record(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    let s = ctx.store().as_ref();
    for size in SIZES {
        let what = format!("{size}-byte record");
        let (k, payload, v) = record_at_version_two(&ctx, size).await?;
        let r = refreshed(s, &k, ctx.now() - HOUR, ctx.now() + HOUR * 2, &what).await?;
        ensure!(
            r.touched,
            "{what}: a due load_and_touch to the past reported touched = false"
        );
        same_record(&r, &payload, v, &what)?;
        load_none(
            s,
            &k,
            &format!("{what}: load after load_and_touch into the past"),
        )
        .await?;
        expect_err!(
            s.save(&k, &ctx.rec(&b"y"[..], HOUR), update(v)).await,
            Error::NotFound,
            "{what}: update after load_and_touch into the past"
        );
        match s
            .load_and_touch(&k, ctx.now() + HOUR, ctx.now() + HOUR * 2)
            .await
        {
            Ok(None) => {}
            Ok(Some(_)) => {
                fail!("{what}: load_and_touch revived a record killed by a past deadline")
            }
            Err(e) => fail!("{what}: load_and_touch of the killed record: Err({e:?})"),
        }
    }
    Ok(())
}

/// `load_and_touch` racing a stream of updates: every answer is a consistent (payload, version) pair, moved (every call is due) and showing its own new deadline, and no older payload is ever written back.
pub(crate) async fn load_and_touch_racing_updates_keeps_payload(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    const UPDATES: u64 = 100;
    let deadline = ctx.now() + HOUR;
    let touch_deadline = ctx.now() + HOUR * 2;
    // Always due: every call moves the deadline.
    let due_before = ctx.now() + HOUR * 10;
    let s = ctx.store();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"update 0"[..], HOUR), SaveMode::Create)
        .await
        .or_fail("save(Create)")?;
    let barrier = Arc::new(Barrier::new(3));
    let (store, b, kk) = (Arc::clone(s), Arc::clone(&barrier), k.clone());
    let updater = tokio::spawn(async move {
        b.wait().await;
        let mut v = FIRST_VERSION;
        for i in 1..=UPDATES {
            let rec = NewRecord {
                payload: Bytes::from(format!("update {i}")),
                expires_at: deadline,
            };
            match store.save(&kk, &rec, update(v)).await {
                Ok(next) => v = next,
                Err(e) => {
                    return Err(format!(
                        "update #{i} with expected version {v} (load_and_touch is the only other caller): Err({e:?})"
                    ));
                }
            }
            tokio::task::yield_now().await;
        }
        Ok(v)
    });
    let mut refreshers = Vec::new();
    for t in 0..2 {
        let (store, b, kk) = (Arc::clone(s), Arc::clone(&barrier), k.clone());
        refreshers.push(tokio::spawn(async move {
            b.wait().await;
            for i in 0..UPDATES {
                match store.load_and_touch(&kk, touch_deadline, due_before).await {
                    Ok(Some(r)) => {
                        let expected = format!("update {}", r.record.version - FIRST_VERSION);
                        if r.record.payload != expected.as_bytes() {
                            return Err(format!("call #{i} by refresher {t}: version {} came with payload {:?}, expected {expected:?}", r.record.version, String::from_utf8_lossy(&r.record.payload)));
                        }
                        // Every deadline the record ever has (the updates', a refresh's)
                        // is before the bound, so every call is due; the answer is the
                        // record right after its own move — not one an update rewrote
                        // between a move and a read.
                        if !r.touched || !near(r.record.expires_at, touch_deadline) {
                            return Err(format!("call #{i} by refresher {t}: touched {} with expires_at {}, expected true with {touch_deadline} (a due call answers the record as its own move left it)", r.touched, r.record.expires_at));
                        }
                        if !near(r.previous_expires_at, deadline) && !near(r.previous_expires_at, touch_deadline) {
                            return Err(format!("call #{i} by refresher {t}: previous_expires_at {} is neither an update's {deadline} nor a refresh's {touch_deadline}", r.previous_expires_at));
                        }
                    }
                    Ok(None) => return Err(format!("call #{i} by refresher {t} of a live record returned None")),
                    Err(e) => return Err(format!("call #{i} by refresher {t}: Err({e:?})")),
                }
                tokio::task::yield_now().await;
            }
            Ok(())
        }));
    }
    let last = match updater.await {
        Ok(Ok(v)) => v,
        Ok(Err(msg)) => fail!("load_and_touch racing updates: {msg}"),
        Err(e) => fail!("load_and_touch racing updates: the updater task failed: {e}"),
    };
    for r in refreshers {
        match r.await {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => fail!("load_and_touch racing updates: {msg}"),
            Err(e) => fail!("load_and_touch racing updates: a refresher task failed: {e}"),
        }
    }
    ensure!(
        last == FIRST_VERSION + UPDATES,
        "after {UPDATES} updates the version is {last}, expected {}",
        FIRST_VERSION + UPDATES
    );
    let r = load_live(s.as_ref(), &k, "load after load_and_touch racing updates").await?;
    let expected = format!("update {UPDATES}");
    if let Some(diff) = payload_diff(expected.as_bytes(), &r.payload) {
        fail!(
            "load after load_and_touch racing updates: expected the last update's payload: {diff} (an older payload written back?)"
        );
    }
    ensure!(
        r.version == last,
        "load after load_and_touch racing updates: version {}, expected {last}",
        r.version
    );
    ensure!(
        near(r.expires_at, deadline) || near(r.expires_at, touch_deadline),
        "load after load_and_touch racing updates: expires_at {} is neither the update's {deadline} nor the refresh's {touch_deadline}",
        r.expires_at
    );
    Ok(())
}

/// Counts the store calls a manager makes, forwarding every one.
struct Counting {
    inner: Arc<dyn SessionInterface>,
    calls: std::sync::Mutex<Vec<&'static str>>,
}

impl Counting {
    fn note(&self, call: &'static str) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait::async_trait]
impl SessionInterface for Counting {
    async fn load(&self, key: &StorageKey) -> Result<Option<session_core::StoredRecord>, Error> {
        self.note("load");
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<u64, Error> {
        self.note("save");
        self.inner.save(key, record, mode).await
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        self.note("expire");
        self.inner.expire(key).await
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        self.note("touch");
        self.inner.touch(key, expires_at).await
    }

    async fn load_and_touch(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Result<Option<Refreshed>, Error> {
        self.note("load_and_touch");
        self.inner.load_and_touch(key, expires_at, due_before).await
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        self.note("delete_expired");
        self.inner.delete_expired().await
    }

    fn capabilities(&self) -> session_core::Capabilities {
        self.inner.capabilities()
    }
}

/// Through the manager with refresh-each-request, a read-only request costs one store call on a store that declares the one-step `load_and_touch`, due or not, and otherwise one (`load`) when no refresh is due and two (`load`, `touch`) when one is.
///
/// The due refresh moves the stored deadline.
pub(crate) async fn load_and_touch_read_only_request_store_calls(ctx: Ctx) -> CaseResult {
    use session_core::{CookieDecision, SessionConfig, SessionManager, SessionToken};
    ctx.need_touch()?;
    let counting = Arc::new(Counting {
        inner: Arc::clone(ctx.store()),
        calls: std::sync::Mutex::default(),
    });
    let one_step = ctx.caps().load_and_touch;
    let clock = ctx
        .fx
        .clock
        .as_ref()
        .map_or_else(session_core::system_clock, |c| c.shared());
    // Let time pass so a threshold-0 refresh gains something the store can keep
    // (a millisecond at least).
    let pass = || async {
        match &ctx.fx.clock {
            Some(c) => c.advance(Duration::seconds(1)),
            None => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    };
    let manager = |share: f64| -> Result<SessionManager, CaseError> {
        let config = SessionConfig::builder()
            .refresh_each_request(true)
            .refresh_threshold(share)
            .build()
            .map_err(|e| CaseError::Fail(format!("config: {e}")))?;
        let store: Arc<dyn SessionInterface> = counting.clone();
        Ok(SessionManager::with_clock(
            store,
            config,
            Arc::clone(&clock),
        ))
    };
    let (undue, due) = (manager(0.5)?, manager(0.0)?);
    let s = undue.session(None);
    s.insert("n", &1).await.or_fail("insert")?;
    let cookie = match undue.finish(&s).await.or_fail("finish of a new session")? {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => fail!("finish of a new session: expected a Set cookie, got {other:?}"),
    };
    let key = SessionToken::parse(&cookie)
        .ok_or_else(|| CaseError::Fail("the manager issued an unparsable cookie".into()))?
        .storage_key();
    counting.take();
    for (label, manager, expected) in [
        ("a refresh that is not due", &undue, vec!["load"]),
        ("a due refresh", &due, vec!["load", "touch"]),
    ] {
        pass().await;
        let before = load_live(ctx.store().as_ref(), &key, label).await?;
        let s = manager.session(Some(&cookie));
        let n: Option<i64> = s.get("n").await.or_fail(label)?;
        ensure!(
            n == Some(1),
            "{label}: the session read {n:?}, expected Some(1)"
        );
        let decision = manager.finish(&s).await.or_fail(label)?;
        ensure!(
            decision == CookieDecision::Leave,
            "{label}: expected no cookie, got {decision:?}"
        );
        let calls = counting.take();
        let expected = if one_step {
            vec!["load_and_touch"]
        } else {
            expected
        };
        ensure!(
            calls == expected,
            "{label}: the request made the store calls {calls:?}, expected {expected:?} (load_and_touch declared: {one_step})"
        );
        let after = load_live(ctx.store().as_ref(), &key, label).await?;
        let moved = after.expires_at > before.expires_at;
        ensure!(
            moved == (label == "a due refresh"),
            "{label}: the deadline went from {} to {}",
            before.expires_at,
            after.expires_at
        );
        ensure!(
            (after.version, &after.payload) == (before.version, &before.payload),
            "{label}: the refresh changed the version or the payload"
        );
    }
    Ok(())
}
