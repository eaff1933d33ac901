//! The cases. Each function is one case; its name is the case name. The list that
//! registers them (and that the `conformance_suite!` macro expands) is
//! `__with_cases!` in `lib.rs`.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use session_core::time::{Duration, OffsetDateTime, UtcOffset};
use session_core::{
    Bytes, Error, FIRST_VERSION, NewRecord, SaveMode, SessionInterface, StorageKey,
};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::check::{
    CaseError, CaseResult, Ctx, OrFail, Summary, ensure, expect_err, fail, key, key_from,
    load_exact, load_live, load_none, near, now_of, pattern, payload_diff,
};

const HOUR: Duration = Duration::hours(1);
const CREATE: SaveMode = SaveMode::Create;

const fn update(expected_version: u64) -> SaveMode {
    SaveMode::Update { expected_version }
}

/// Joins every task of `set`; a panicking task fails the case.
async fn join_all<T: 'static>(mut set: JoinSet<T>, what: &str) -> Result<Vec<T>, CaseError> {
    let mut out = Vec::with_capacity(set.len());
    while let Some(r) = set.join_next().await {
        match r {
            Ok(v) => out.push(v),
            Err(e) => fail!("{what}: a spawned task failed: {e}"),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- basics

/// Create then load returns the payload, version and deadline as written.
pub(crate) async fn round_trip(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let rec = ctx.rec(&b"hello \x00\xff session"[..], HOUR);
    let v = s
        .save(&k, &rec, CREATE)
        .await
        .or_fail("save(Create) of a fresh key")?;
    load_exact(
        s,
        &k,
        &rec.payload,
        v,
        Some(rec.expires_at),
        "load after create",
    )
    .await?;
    // Loading does not consume or change anything.
    load_exact(s, &k, &rec.payload, v, Some(rec.expires_at), "second load").await
}

/// `save(Create)` returns `FIRST_VERSION`, and the loaded record carries it.
pub(crate) async fn create_returns_first_version(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let v = s
        .save(&k, &ctx.rec(&b"a"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    ensure!(
        v == FIRST_VERSION,
        "save(Create) returned version {v}, expected {FIRST_VERSION}"
    );
    let r = load_live(s, &k, "load after create").await?;
    ensure!(
        r.version == FIRST_VERSION,
        "load after create: expected version {FIRST_VERSION}, got {}",
        r.version
    );
    Ok(())
}

/// Loading a key nobody wrote returns `None`, also when other keys exist.
pub(crate) async fn load_absent_key(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    load_none(
        s,
        &key()?,
        "load of a never-written key in an empty namespace",
    )
    .await?;
    s.save(&key()?, &ctx.rec(&b"other"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) of another key")?;
    load_none(
        s,
        &key()?,
        "load of a never-written key next to another record",
    )
    .await
}

/// A record whose deadline lies an hour in the past is never returned.
pub(crate) async fn expired_record_invisible(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"dead"[..], -HOUR), CREATE)
        .await
        .or_fail("save(Create) with a deadline 1 h in the past")?;
    load_none(s, &k, "load of a record whose deadline is 1 h in the past").await?;
    load_none(s, &k, "second load of the expired record").await
}

/// A record whose deadline lies an hour ahead is returned.
pub(crate) async fn live_record_visible(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let rec = ctx.rec(&b"alive"[..], HOUR);
    s.save(&k, &rec, CREATE)
        .await
        .or_fail("save(Create) with a deadline 1 h ahead")?;
    load_exact(
        s,
        &k,
        b"alive",
        FIRST_VERSION,
        Some(rec.expires_at),
        "load of a live record",
    )
    .await
}

// ---------------------------------------------------------------- create

/// Create on a live key → `Collision`; the old record stays intact.
pub(crate) async fn create_on_live_key_collides(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let first = ctx.rec(&b"first"[..], HOUR);
    s.save(&k, &first, CREATE)
        .await
        .or_fail("first save(Create)")?;
    expect_err!(
        s.save(&k, &ctx.rec(&b"second"[..], HOUR * 2), CREATE).await,
        Error::Collision,
        "second save(Create) of a live key"
    );
    load_exact(
        s,
        &k,
        b"first",
        FIRST_VERSION,
        Some(first.expires_at),
        "load after the collision",
    )
    .await
}

/// Create over an expired (unpurged) record succeeds and starts at `FIRST_VERSION`.
pub(crate) async fn create_over_expired_succeeds(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"old"[..], -HOUR), CREATE)
        .await
        .or_fail("save(Create) with a deadline 1 h in the past")?;
    let rec = ctx.rec(&b"new"[..], HOUR);
    let v = s
        .save(&k, &rec, CREATE)
        .await
        .or_fail("save(Create) over an expired record")?;
    ensure!(
        v == FIRST_VERSION,
        "save(Create) over an expired record returned version {v}, expected {FIRST_VERSION}"
    );
    load_exact(
        s,
        &k,
        b"new",
        FIRST_VERSION,
        Some(rec.expires_at),
        "load after create over expired",
    )
    .await
}

// ---------------------------------------------------------------- update

/// Update with the right version writes, returns expected + 1, and load shows it.
pub(crate) async fn update_bumps_version(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"v1"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let rec = ctx.rec(&b"v2"[..], HOUR);
    let v = s
        .save(&k, &rec, update(FIRST_VERSION))
        .await
        .or_fail("save(Update { expected_version: 1 })")?;
    ensure!(
        v == FIRST_VERSION + 1,
        "save(Update {{ expected_version: 1 }}) returned version {v}, expected {}",
        FIRST_VERSION + 1
    );
    load_exact(s, &k, b"v2", v, Some(rec.expires_at), "load after update").await
}

/// A chain of updates returns 2, 3, 4, … and the last one is loaded.
pub(crate) async fn update_chain_increments(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let mut v = s
        .save(&k, &ctx.rec(&b"0"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    for i in 1..=5u64 {
        let payload = format!("update {i}");
        let next = s
            .save(&k, &ctx.rec(payload.clone(), HOUR), update(v))
            .await
            .or_fail(&format!("update #{i} with expected version {v}"))?;
        ensure!(
            next == v + 1,
            "update #{i} with expected version {v} returned {next}, expected {}",
            v + 1
        );
        v = next;
        load_exact(
            s,
            &k,
            payload.as_bytes(),
            v,
            None,
            &format!("load after update #{i}"),
        )
        .await?;
    }
    Ok(())
}

/// An update replaces the deadline too, later or earlier.
pub(crate) async fn update_replaces_deadline(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"x"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let later = ctx.rec(&b"x"[..], HOUR * 3);
    let v = s
        .save(&k, &later, update(FIRST_VERSION))
        .await
        .or_fail("update to a later deadline")?;
    load_exact(
        s,
        &k,
        b"x",
        v,
        Some(later.expires_at),
        "load after moving the deadline to +3 h",
    )
    .await?;
    let sooner = ctx.rec(&b"x"[..], Duration::minutes(30));
    let v = s
        .save(&k, &sooner, update(v))
        .await
        .or_fail("update to an earlier deadline")?;
    load_exact(
        s,
        &k,
        b"x",
        v,
        Some(sooner.expires_at),
        "load after moving the deadline to +30 min",
    )
    .await
}

/// Update with a stale version → `Conflict`, nothing written.
pub(crate) async fn update_stale_version_conflicts(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"v1"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let rec2 = ctx.rec(&b"v2"[..], HOUR);
    let v2 = s
        .save(&k, &rec2, update(FIRST_VERSION))
        .await
        .or_fail("first update")?;
    expect_err!(
        s.save(&k, &ctx.rec(&b"stale"[..], HOUR * 5), update(FIRST_VERSION))
            .await,
        Error::Conflict,
        "update with the stale version {FIRST_VERSION} (current is {v2})"
    );
    load_exact(
        s,
        &k,
        b"v2",
        v2,
        Some(rec2.expires_at),
        "load after the conflicting update",
    )
    .await
}

/// Every compare-and-set outcome holds for a large payload too (256 KiB): stores may
/// take another path above some size (session-redis does, above 4 KiB), and that
/// path must write on the right version only, refuse a stale or future one with
/// `Conflict` and leave the record as it was, and never resurrect an expired or
/// absent key.
pub(crate) async fn update_large_payload_keeps_the_rules(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let (big, other) = (pattern(256 << 10, 7), pattern(256 << 10, 99));
    let k = key()?;
    s.save(&k, &ctx.rec(&b"small"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let rec = ctx.rec(big.clone(), HOUR);
    let v2 = s
        .save(&k, &rec, update(FIRST_VERSION))
        .await
        .or_fail("update to a 256 KiB payload")?;
    ensure!(
        v2 == FIRST_VERSION + 1,
        "update to a 256 KiB payload returned version {v2}, expected {}",
        FIRST_VERSION + 1
    );
    for (bad, what) in [(FIRST_VERSION, "stale"), (v2 + 1, "future")] {
        expect_err!(
            s.save(&k, &ctx.rec(other.clone(), HOUR * 2), update(bad))
                .await,
            Error::Conflict,
            "256 KiB update with the {what} version {bad} (current is {v2})"
        );
    }
    load_exact(
        s,
        &k,
        &big,
        v2,
        Some(rec.expires_at),
        "load after the refused 256 KiB updates",
    )
    .await?;
    s.expire(&k).await.or_fail("expire")?;
    expect_err!(
        s.save(&k, &ctx.rec(other.clone(), HOUR), update(v2)).await,
        Error::NotFound,
        "256 KiB update of an expired record"
    );
    load_none(s, &k, "load after the 256 KiB update of the expired record").await?;
    let never = key()?;
    expect_err!(
        s.save(&never, &ctx.rec(other, HOUR), update(FIRST_VERSION))
            .await,
        Error::NotFound,
        "256 KiB update of a key that never existed"
    );
    load_none(s, &never, "load after the 256 KiB update of an absent key").await
}

/// Update with a version the record never had (ahead of it, or 0) → `Conflict`.
pub(crate) async fn update_future_version_conflicts(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let rec = ctx.rec(&b"v1"[..], HOUR);
    s.save(&k, &rec, CREATE).await.or_fail("save(Create)")?;
    for bad in [FIRST_VERSION + 1, FIRST_VERSION + 100, 0, u64::MAX] {
        expect_err!(
            s.save(&k, &ctx.rec(&b"wrong"[..], HOUR), update(bad)).await,
            Error::Conflict,
            "update with expected version {bad} of a record at version {FIRST_VERSION}"
        );
    }
    load_exact(
        s,
        &k,
        b"v1",
        FIRST_VERSION,
        Some(rec.expires_at),
        "load after the rejected updates",
    )
    .await
}

/// Update of a key that was never written → `NotFound`, nothing created.
pub(crate) async fn update_absent_not_found(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    expect_err!(
        s.save(&k, &ctx.rec(&b"ghost"[..], HOUR), update(FIRST_VERSION))
            .await,
        Error::NotFound,
        "update of an absent key"
    );
    load_none(s, &k, "load after updating an absent key").await?;
    let v = s
        .save(&k, &ctx.rec(&b"real"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) after the failed update")?;
    ensure!(
        v == FIRST_VERSION,
        "save(Create) after a failed update returned {v}, expected {FIRST_VERSION} (did the update leave something behind?)"
    );
    Ok(())
}

/// Update of an expired record → `NotFound`, nothing resurrected.
pub(crate) async fn update_expired_not_found(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"dead"[..], -HOUR), CREATE)
        .await
        .or_fail("save(Create) with a deadline 1 h in the past")?;
    expect_err!(
        s.save(&k, &ctx.rec(&b"revived"[..], HOUR), update(FIRST_VERSION))
            .await,
        Error::NotFound,
        "update (with a live deadline) of an expired record"
    );
    load_none(s, &k, "load after updating an expired record").await
}

// ---------------------------------------------------------------- expire

/// Expire is idempotent: absent key, live key, twice.
pub(crate) async fn expire_idempotent(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.expire(&k).await.or_fail("expire of an absent key")?;
    s.save(&k, &ctx.rec(&b"x"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    s.expire(&k).await.or_fail("expire of a live key")?;
    s.expire(&k)
        .await
        .or_fail("second expire of the same key")?;
    load_none(s, &k, "load after expiring twice").await?;
    let dead = key()?;
    s.save(&dead, &ctx.rec(&b"y"[..], -HOUR), CREATE)
        .await
        .or_fail("save(Create) expired")?;
    s.expire(&dead).await.or_fail("expire of an expired key")?;
    load_none(s, &dead, "load of an expired key after expire").await
}

/// After expire, load returns nothing.
pub(crate) async fn expire_then_load_none(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"x"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    load_live(s, &k, "load before expire").await?;
    s.expire(&k).await.or_fail("expire")?;
    load_none(s, &k, "load after expire").await
}

/// After expire, `save(Update)` → `NotFound` and the session stays gone.
pub(crate) async fn update_after_expire_not_found(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"x"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    s.expire(&k).await.or_fail("expire")?;
    expect_err!(
        s.save(
            &k,
            &ctx.rec(&b"resurrected"[..], HOUR),
            update(FIRST_VERSION)
        )
        .await,
        Error::NotFound,
        "update after expire"
    );
    load_none(s, &k, "load after update-after-expire").await
}

/// Expire frees the key: create starts over at `FIRST_VERSION`, old versions conflict.
pub(crate) async fn create_after_expire_restarts_version(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"a"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let v2 = s
        .save(&k, &ctx.rec(&b"b"[..], HOUR), update(FIRST_VERSION))
        .await
        .or_fail("update")?;
    s.expire(&k).await.or_fail("expire")?;
    let v = s
        .save(&k, &ctx.rec(&b"c"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) after expire")?;
    ensure!(
        v == FIRST_VERSION,
        "save(Create) after expire returned version {v}, expected {FIRST_VERSION}"
    );
    load_exact(
        s,
        &k,
        b"c",
        FIRST_VERSION,
        None,
        "load of the re-created record",
    )
    .await?;
    expect_err!(
        s.save(&k, &ctx.rec(&b"d"[..], HOUR), update(v2)).await,
        Error::Conflict,
        "update with the previous incarnation's version {v2}"
    );
    load_exact(
        s,
        &k,
        b"c",
        FIRST_VERSION,
        None,
        "load after the rejected update",
    )
    .await
}

/// Expiring one key leaves the others alone.
pub(crate) async fn expire_leaves_other_keys(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let (a, b) = (key()?, key()?);
    s.save(&a, &ctx.rec(&b"a"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) a")?;
    s.save(&b, &ctx.rec(&b"b"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) b")?;
    s.expire(&a).await.or_fail("expire a")?;
    load_none(s, &a, "load of the expired key").await?;
    load_exact(s, &b, b"b", FIRST_VERSION, None, "load of the other key").await
}

// ---------------------------------------------------------------- touch

/// Touch moves the deadline (later and earlier) and keeps payload and version.
pub(crate) async fn touch_moves_deadline(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    let s = ctx.store().as_ref();
    let k = key()?;
    let payload = pattern(4096, 3);
    s.save(&k, &ctx.rec(payload.clone(), HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let v = s
        .save(&k, &ctx.rec(payload.clone(), HOUR), update(FIRST_VERSION))
        .await
        .or_fail("update")?;
    for (label, offset) in [("+3 h", HOUR * 3), ("+30 min", Duration::minutes(30))] {
        let deadline = ctx.now() + offset;
        let existed = s
            .touch(&k, deadline)
            .await
            .or_fail(&format!("touch to {label}"))?;
        ensure!(
            existed,
            "touch to {label} of a live record returned false, expected true"
        );
        load_exact(
            s,
            &k,
            &payload,
            v,
            Some(deadline),
            &format!("load after touch to {label}"),
        )
        .await?;
    }
    Ok(())
}

/// Touch of an absent key returns false and creates nothing.
pub(crate) async fn touch_absent_returns_false(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    let s = ctx.store().as_ref();
    let k = key()?;
    let existed = s
        .touch(&k, ctx.now() + HOUR)
        .await
        .or_fail("touch of an absent key")?;
    ensure!(
        !existed,
        "touch of an absent key returned true, expected false"
    );
    load_none(s, &k, "load after touching an absent key").await?;
    let v = s
        .save(&k, &ctx.rec(&b"x"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) after the touch")?;
    ensure!(
        v == FIRST_VERSION,
        "save(Create) after touching an absent key returned {v}, expected {FIRST_VERSION}"
    );
    Ok(())
}

/// Touch of an expired record returns false and does not revive it.
pub(crate) async fn touch_expired_returns_false(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"dead"[..], -HOUR), CREATE)
        .await
        .or_fail("save(Create) with a deadline 1 h in the past")?;
    let existed = s
        .touch(&k, ctx.now() + HOUR)
        .await
        .or_fail("touch of an expired record")?;
    ensure!(
        !existed,
        "touch of an expired record returned true, expected false"
    );
    load_none(s, &k, "load after touching an expired record").await
}

/// Touch to a deadline in the past kills the record at once.
pub(crate) async fn touch_into_past_kills_record(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"x"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let existed = s
        .touch(&k, ctx.now() - HOUR)
        .await
        .or_fail("touch to 1 h in the past")?;
    ensure!(
        existed,
        "touch to the past of a live record returned false, expected true"
    );
    load_none(s, &k, "load after touching into the past").await?;
    expect_err!(
        s.save(&k, &ctx.rec(&b"y"[..], HOUR), update(FIRST_VERSION))
            .await,
        Error::NotFound,
        "update after touching into the past"
    );
    let again = s
        .touch(&k, ctx.now() + HOUR)
        .await
        .or_fail("touch of the killed record")?;
    ensure!(
        !again,
        "touch of a record killed by a past deadline returned true, expected false"
    );
    load_none(s, &k, "load after touching the killed record").await
}

/// Touch does not change the version: an update with the old version still wins.
pub(crate) async fn touch_then_update_same_version(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"a"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    for i in 0..3 {
        let existed = s
            .touch(&k, ctx.now() + HOUR * 2)
            .await
            .or_fail(&format!("touch #{i}"))?;
        ensure!(existed, "touch #{i} of a live record returned false");
    }
    let v = s
        .save(&k, &ctx.rec(&b"b"[..], HOUR), update(FIRST_VERSION))
        .await
        .or_fail("update with the version loaded before three touches")?;
    ensure!(
        v == FIRST_VERSION + 1,
        "update after touches returned {v}, expected {}",
        FIRST_VERSION + 1
    );
    load_exact(s, &k, b"b", v, None, "load after touch + update").await
}

// ---------------------------------------------------------------- delete_expired

/// delete_expired removes exactly the expired records and counts them.
pub(crate) async fn delete_expired_counts_exactly(ctx: Ctx) -> CaseResult {
    ctx.need_delete_expired()?;
    let s = ctx.store().as_ref();
    const N: usize = 5;
    let mut dead = Vec::new();
    let mut live = Vec::new();
    match &ctx.fx.clock {
        Some(clock) => {
            // Short-lived and long-lived records, then move time past the short ones.
            for i in 0..N {
                let k = key()?;
                s.save(
                    &k,
                    &ctx.rec(format!("dead {i}"), Duration::minutes(10)),
                    CREATE,
                )
                .await
                .or_fail("save(Create) of a 10-minute record")?;
                dead.push(k);
                let k = key()?;
                s.save(&k, &ctx.rec(format!("live {i}"), HOUR * 3), CREATE)
                    .await
                    .or_fail("save(Create) of a 3-hour record")?;
                live.push(k);
            }
            clock.advance(HOUR);
        }
        None => {
            for i in 0..N {
                let k = key()?;
                s.save(&k, &ctx.rec(format!("dead {i}"), -HOUR), CREATE)
                    .await
                    .or_fail("save(Create) with a deadline 1 h in the past")?;
                dead.push(k);
                let k = key()?;
                s.save(&k, &ctx.rec(format!("live {i}"), HOUR), CREATE)
                    .await
                    .or_fail("save(Create) with a deadline 1 h ahead")?;
                live.push(k);
            }
        }
    }
    let n = s.delete_expired().await.or_fail("delete_expired")?;
    if ctx.caps().native_ttl {
        ensure!(
            n <= N as u64,
            "delete_expired returned {n}; only {N} records had expired"
        );
    } else {
        ensure!(
            n == N as u64,
            "delete_expired returned {n}, expected {N} (the number of expired records)"
        );
    }
    for (i, k) in live.iter().enumerate() {
        let payload = format!("live {i}");
        load_exact(
            s,
            k,
            payload.as_bytes(),
            FIRST_VERSION,
            None,
            &format!("load of live record {i} after delete_expired"),
        )
        .await?;
    }
    for (i, k) in dead.iter().enumerate() {
        load_none(
            s,
            k,
            &format!("load of expired record {i} after delete_expired"),
        )
        .await?;
    }
    let again = s.delete_expired().await.or_fail("second delete_expired")?;
    ensure!(
        again == 0,
        "second delete_expired returned {again}, expected 0 (nothing left to purge)"
    );
    Ok(())
}

/// delete_expired on a namespace with nothing expired returns 0 and removes nothing.
pub(crate) async fn delete_expired_empty_returns_zero(ctx: Ctx) -> CaseResult {
    ctx.need_delete_expired()?;
    let s = ctx.store().as_ref();
    let n = s
        .delete_expired()
        .await
        .or_fail("delete_expired on an empty namespace")?;
    ensure!(
        n == 0,
        "delete_expired on an empty namespace returned {n}, expected 0"
    );
    let k = key()?;
    s.save(&k, &ctx.rec(&b"live"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let n = s
        .delete_expired()
        .await
        .or_fail("delete_expired with one live record")?;
    ensure!(
        n == 0,
        "delete_expired with only live records returned {n}, expected 0"
    );
    load_exact(
        s,
        &k,
        b"live",
        FIRST_VERSION,
        None,
        "load after delete_expired",
    )
    .await
}

// ---------------------------------------------------------------- payloads

async fn payload_round_trip(ctx: &Ctx, payload: Bytes, label: &str) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let v = s
        .save(&k, &ctx.rec(payload.clone(), HOUR), CREATE)
        .await
        .or_fail(&format!("save(Create) of a {label} payload"))?;
    load_exact(
        s,
        &k,
        &payload,
        v,
        None,
        &format!("load of a {label} payload"),
    )
    .await
}

/// An empty payload comes back empty (not absent), also after an update.
pub(crate) async fn payload_empty(ctx: Ctx) -> CaseResult {
    payload_round_trip(&ctx, Bytes::new(), "0-byte").await?;
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"not empty"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let v = s
        .save(&k, &ctx.rec(Bytes::new(), HOUR), update(FIRST_VERSION))
        .await
        .or_fail("update to an empty payload")?;
    load_exact(
        s,
        &k,
        b"",
        v,
        None,
        "load after updating to an empty payload",
    )
    .await
}

/// Every single-byte payload (all 256 values) comes back identical.
pub(crate) async fn payload_single_bytes(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let mut keys = Vec::with_capacity(256);
    for b in 0..=255u8 {
        let k = key()?;
        s.save(&k, &ctx.rec(vec![b], HOUR), CREATE)
            .await
            .or_fail(&format!("save(Create) of the 1-byte payload 0x{b:02x}"))?;
        keys.push(k);
    }
    for (b, k) in (0..=255u8).zip(&keys) {
        load_exact(
            s,
            k,
            &[b],
            FIRST_VERSION,
            None,
            &format!("load of the 1-byte payload 0x{b:02x}"),
        )
        .await?;
    }
    Ok(())
}

/// 256 bytes holding every byte value (NUL, invalid UTF-8, …) come back identical.
pub(crate) async fn payload_all_byte_values(ctx: Ctx) -> CaseResult {
    let up: Vec<u8> = (0..=255u8).collect();
    let down: Vec<u8> = (0..=255u8).rev().collect();
    payload_round_trip(&ctx, up.into(), "256-byte ascending").await?;
    payload_round_trip(&ctx, down.into(), "256-byte descending").await?;
    // Shapes that text-based stores mangle: trailing NUL and whitespace, CRLF, a BOM.
    payload_round_trip(
        &ctx,
        Bytes::from_static(b"\xef\xbb\xbfa\r\nb\0 \t\n\0"),
        "text-like",
    )
    .await
}

/// A 1 MiB payload with every byte value comes back identical.
pub(crate) async fn payload_1_mib(ctx: Ctx) -> CaseResult {
    payload_round_trip(&ctx, pattern(1 << 20, 0x5a), "1 MiB").await
}

/// An 8 MiB payload with every byte value comes back identical.
pub(crate) async fn payload_8_mib(ctx: Ctx) -> CaseResult {
    payload_round_trip(&ctx, pattern(8 << 20, 0xa5), "8 MiB").await
}

/// Updates that grow a payload to 1 MiB and shrink it back leave no stale bytes.
pub(crate) async fn payload_grow_and_shrink_on_update(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let mut v = s
        .save(&k, &ctx.rec(&b"small"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let steps = [
        pattern(1 << 20, 1),
        pattern(3000, 2),
        Bytes::from_static(b"z"),
        pattern(70_000, 4),
    ];
    for (i, p) in steps.into_iter().enumerate() {
        v = s
            .save(&k, &ctx.rec(p.clone(), HOUR), update(v))
            .await
            .or_fail(&format!("update #{i} to a {}-byte payload", p.len()))?;
        load_exact(
            s,
            &k,
            &p,
            v,
            None,
            &format!("load after update #{i} to {} bytes", p.len()),
        )
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- isolation

/// 1,000 keys: each holds its own record through creates, updates and expires.
pub(crate) async fn thousand_keys_isolated(ctx: Ctx) -> CaseResult {
    const N: usize = 1000;
    const TASKS: usize = 8;
    let keys: Arc<Vec<StorageKey>> = Arc::new((0..N).map(|_| key()).collect::<Result<_, _>>()?);
    let deadline = ctx.now() + HOUR;
    let payload = |i: usize, generation: &str| Bytes::from(format!("{generation} record {i}"));

    // Phase 1: create all, from several tasks. Phase 2: update i%3==1, expire i%3==0.
    for phase in 0..2 {
        let mut set = JoinSet::new();
        for t in 0..TASKS {
            let store = Arc::clone(ctx.store());
            let keys = Arc::clone(&keys);
            set.spawn(async move {
                for i in (t..N).step_by(TASKS) {
                    let k = &keys[i];
                    let res = match (phase, i % 3) {
                        (0, _) => store
                            .save(
                                k,
                                &NewRecord {
                                    payload: payload(i, "first"),
                                    expires_at: deadline,
                                },
                                CREATE,
                            )
                            .await
                            .map(drop),
                        (_, 0) => store.expire(k).await,
                        (_, 1) => store
                            .save(
                                k,
                                &NewRecord {
                                    payload: payload(i, "second"),
                                    expires_at: deadline,
                                },
                                update(FIRST_VERSION),
                            )
                            .await
                            .map(drop),
                        _ => Ok(()),
                    };
                    if let Err(e) = res {
                        return Err(format!("phase {phase}, key #{i}: got Err({e:?})"));
                    }
                }
                Ok(())
            });
        }
        for r in join_all(set, "writing 1,000 keys").await? {
            if let Err(msg) = r {
                fail!("writing 1,000 keys: {msg}");
            }
        }
    }
    let s = ctx.store().as_ref();
    for (i, k) in keys.iter().enumerate() {
        let what = format!("load of key #{i} of {N}");
        match i % 3 {
            0 => load_none(s, k, &what).await?,
            1 => {
                load_exact(
                    s,
                    k,
                    &payload(i, "second"),
                    FIRST_VERSION + 1,
                    Some(deadline),
                    &what,
                )
                .await?
            }
            _ => {
                load_exact(
                    s,
                    k,
                    &payload(i, "first"),
                    FIRST_VERSION,
                    Some(deadline),
                    &what,
                )
                .await?
            }
        }
    }
    Ok(())
}

/// Two namespaces of one backend never see each other's records.
pub(crate) async fn namespaces_isolated(ctx: Ctx) -> CaseResult {
    let a = ctx.store().as_ref();
    let other = ctx.open_other().await?;
    let b = other.store.as_ref();
    let k = key()?;
    let deadline_b = now_of(&other) + HOUR;
    a.save(&k, &ctx.rec(&b"in a"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) in namespace A")?;
    load_none(b, &k, "load in namespace B of a key written only in A").await?;
    let v = b
        .save(
            &k,
            &NewRecord {
                payload: Bytes::from_static(b"in b"),
                expires_at: deadline_b,
            },
            CREATE,
        )
        .await
        .or_fail("save(Create) in namespace B of a key live in A (must not collide)")?;
    ensure!(
        v == FIRST_VERSION,
        "save(Create) in B returned {v}, expected {FIRST_VERSION}"
    );
    a.save(&k, &ctx.rec(&b"a again"[..], HOUR), update(FIRST_VERSION))
        .await
        .or_fail("update in A")?;
    load_exact(
        b,
        &k,
        b"in b",
        FIRST_VERSION,
        None,
        "load in B after an update in A",
    )
    .await?;
    a.expire(&k).await.or_fail("expire in A")?;
    load_exact(
        b,
        &k,
        b"in b",
        FIRST_VERSION,
        None,
        "load in B after expire in A",
    )
    .await?;
    if b.capabilities().touch {
        let existed = b.touch(&key()?, deadline_b).await.or_fail("touch in B")?;
        ensure!(!existed, "touch in B of a key never written reported true");
    }
    if a.capabilities().delete_expired {
        // An expired record in B must not be purged (or counted) through A.
        let dead = key()?;
        b.save(
            &dead,
            &NewRecord {
                payload: Bytes::from_static(b"dead"),
                expires_at: now_of(&other) - HOUR,
            },
            CREATE,
        )
        .await
        .or_fail("save(Create) of an expired record in B")?;
        let n = a.delete_expired().await.or_fail("delete_expired in A")?;
        ensure!(
            n == 0,
            "delete_expired in A (holding nothing expired) returned {n}: it counted another namespace's records"
        );
    }
    load_exact(b, &k, b"in b", FIRST_VERSION, None, "final load in B").await?;
    load_none(a, &k, "final load in A").await
}

/// Keys that differ in a single hex digit (first, middle, last …) are distinct.
pub(crate) async fn hex_neighbour_keys_isolated(ctx: Ctx) -> CaseResult {
    let base = key()?;
    let mut keys = vec![base.clone()];
    for pos in [0, 1, 7, 8, 31, 32, 62, 63] {
        let mut chars: Vec<u8> = base.as_str().as_bytes().to_vec();
        chars[pos] = next_hex(chars[pos]);
        keys.push(key_from(&String::from_utf8_lossy(&chars))?);
    }
    distinct_keys(&ctx, &keys, "hex neighbour").await
}

/// Keys of the same shape that differ only in their letters (the part a
/// case-folding collation or normaliser would touch), or only in their digits.
pub(crate) async fn case_like_neighbour_keys_isolated(ctx: Ctx) -> CaseResult {
    let base = key()?;
    let letters_changed: String = base
        .as_str()
        .bytes()
        .map(|b| {
            char::from(if b.is_ascii_digit() {
                b
            } else {
                b'a' + (b - b'a' + 1) % 6
            })
        })
        .collect();
    let digits_changed: String = base
        .as_str()
        .bytes()
        .map(|b| {
            char::from(if b.is_ascii_digit() {
                b'0' + (b - b'0' + 1) % 10
            } else {
                b
            })
        })
        .collect();
    let mut keys = vec![base];
    for s in [
        letters_changed,
        digits_changed,
        "a".repeat(64),
        "b".repeat(64),
        "1".repeat(64),
        "ab".repeat(32),
        "ba".repeat(32),
        "0".repeat(64),
    ] {
        let k = key_from(&s)?;
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    distinct_keys(&ctx, &keys, "case-like neighbour").await
}

/// Keys sharing a long prefix or suffix (a store that truncates or hashes part of
/// the key would merge them) are distinct.
pub(crate) async fn prefix_sharing_keys_isolated(ctx: Ctx) -> CaseResult {
    let a = key()?;
    let b = key()?;
    let mut candidates = Vec::new();
    for shared in [8, 16, 32, 48, 63] {
        // `a`'s first `shared` characters, then one that surely differs, then `b`'s.
        let diverging = char::from(next_hex(a.as_str().as_bytes()[shared]));
        candidates.push(format!(
            "{}{diverging}{}",
            &a.as_str()[..shared],
            &b.as_str()[shared + 1..]
        ));
    }
    // Same last 32 characters as `a`.
    let diverging = char::from(next_hex(a.as_str().as_bytes()[31]));
    candidates.push(format!(
        "{}{diverging}{}",
        &b.as_str()[..31],
        &a.as_str()[32..]
    ));
    let mut keys = vec![a];
    for c in candidates {
        let k = key_from(&c)?;
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    distinct_keys(&ctx, &keys, "prefix/suffix-sharing").await
}

fn next_hex(b: u8) -> u8 {
    match b {
        b'9' => b'a',
        b'f' => b'0',
        _ => b + 1,
    }
}

/// Writes a distinct record under each key, checks each, then expires and updates
/// some and checks the others are untouched.
async fn distinct_keys(ctx: &Ctx, keys: &[StorageKey], label: &str) -> CaseResult {
    let s = ctx.store().as_ref();
    for (i, k) in keys.iter().enumerate() {
        s.save(k, &ctx.rec(format!("{label} {i} {k}"), HOUR), CREATE)
            .await
            .or_fail(&format!("save(Create) of {label} key #{i} {k}"))?;
    }
    for (i, k) in keys.iter().enumerate() {
        let p = format!("{label} {i} {k}");
        load_exact(
            s,
            k,
            p.as_bytes(),
            FIRST_VERSION,
            None,
            &format!("load of {label} key #{i} {k}"),
        )
        .await?;
    }
    // Expire the even keys, update the odd ones.
    for (i, k) in keys.iter().enumerate() {
        if i % 2 == 0 {
            s.expire(k)
                .await
                .or_fail(&format!("expire of {label} key #{i}"))?;
        } else {
            s.save(
                k,
                &ctx.rec(format!("updated {i}"), HOUR),
                update(FIRST_VERSION),
            )
            .await
            .or_fail(&format!("update of {label} key #{i} {k}"))?;
        }
    }
    for (i, k) in keys.iter().enumerate() {
        let what = format!(
            "load of {label} key #{i} {k} after expiring the even keys and updating the odd ones"
        );
        if i % 2 == 0 {
            load_none(s, k, &what).await?;
        } else {
            load_exact(
                s,
                k,
                format!("updated {i}").as_bytes(),
                FIRST_VERSION + 1,
                None,
                &what,
            )
            .await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- concurrency

const TASKS: usize = 32;
const ROUNDS: usize = 4;

/// 32 concurrent creates of one key: exactly one succeeds, the rest `Collision`.
pub(crate) async fn concurrent_creates_one_winner(ctx: Ctx) -> CaseResult {
    for round in 0..ROUNDS {
        let k = key()?;
        let barrier = Arc::new(Barrier::new(TASKS));
        let deadline = ctx.now() + HOUR;
        let mut set = JoinSet::new();
        for t in 0..TASKS {
            let (store, barrier, k) = (Arc::clone(ctx.store()), Arc::clone(&barrier), k.clone());
            set.spawn(async move {
                barrier.wait().await;
                let rec = NewRecord {
                    payload: Bytes::from(format!("task {t}")),
                    expires_at: deadline,
                };
                (t, store.save(&k, &rec, CREATE).await)
            });
        }
        let results = join_all(set, "concurrent creates").await?;
        let mut winners = Vec::new();
        for (t, r) in results {
            match r {
                Ok(v) if v == FIRST_VERSION => winners.push(t),
                Ok(v) => fail!(
                    "round {round}: create by task {t} returned version {v}, expected {FIRST_VERSION}"
                ),
                Err(Error::Collision) => {}
                Err(e) => fail!(
                    "round {round}: create by task {t}: expected Ok or Err(Collision), got Err({e:?})"
                ),
            }
        }
        ensure!(
            winners.len() == 1,
            "round {round}: {TASKS} concurrent creates of one key: expected exactly 1 to succeed, {} succeeded (tasks {winners:?})",
            winners.len()
        );
        let p = format!("task {}", winners[0]);
        load_exact(
            ctx.store().as_ref(),
            &k,
            p.as_bytes(),
            FIRST_VERSION,
            None,
            &format!(
                "round {round}: load after the concurrent creates (winner task {})",
                winners[0]
            ),
        )
        .await?;
    }
    Ok(())
}

/// 32 concurrent updates with the same expected version: exactly one succeeds, the
/// rest `Conflict`.
pub(crate) async fn concurrent_updates_one_winner(ctx: Ctx) -> CaseResult {
    for round in 0..ROUNDS {
        let k = key()?;
        let s = ctx.store();
        s.save(&k, &ctx.rec(&b"start"[..], HOUR), CREATE)
            .await
            .or_fail("save(Create)")?;
        let barrier = Arc::new(Barrier::new(TASKS));
        let deadline = ctx.now() + HOUR;
        let mut set = JoinSet::new();
        for t in 0..TASKS {
            let (store, barrier, k) = (Arc::clone(s), Arc::clone(&barrier), k.clone());
            set.spawn(async move {
                barrier.wait().await;
                let rec = NewRecord {
                    payload: Bytes::from(format!("task {t}")),
                    expires_at: deadline,
                };
                (t, store.save(&k, &rec, update(FIRST_VERSION)).await)
            });
        }
        let mut winners = Vec::new();
        for (t, r) in join_all(set, "concurrent updates").await? {
            match r {
                Ok(v) if v == FIRST_VERSION + 1 => winners.push(t),
                Ok(v) => fail!(
                    "round {round}: update by task {t} returned version {v}, expected {}",
                    FIRST_VERSION + 1
                ),
                Err(Error::Conflict) => {}
                Err(e) => fail!(
                    "round {round}: update by task {t}: expected Ok or Err(Conflict), got Err({e:?})"
                ),
            }
        }
        ensure!(
            winners.len() == 1,
            "round {round}: {TASKS} concurrent updates with expected version {FIRST_VERSION}: expected exactly 1 to succeed, {} succeeded (tasks {winners:?})",
            winners.len()
        );
        let p = format!("task {}", winners[0]);
        load_exact(
            s.as_ref(),
            &k,
            p.as_bytes(),
            FIRST_VERSION + 1,
            None,
            &format!(
                "round {round}: load after the concurrent updates (winner task {})",
                winners[0]
            ),
        )
        .await?;
    }
    Ok(())
}

/// Expire racing a stream of updates: once expire has returned the session stays
/// gone, whatever order the operations ran in.
pub(crate) async fn expire_racing_update_stays_gone(ctx: Ctx) -> CaseResult {
    const UPDATERS: usize = 8;
    for round in 0..ROUNDS * 2 {
        let k = key()?;
        let s = ctx.store();
        s.save(&k, &ctx.rec(&b"start"[..], HOUR), CREATE)
            .await
            .or_fail("save(Create)")?;
        let barrier = Arc::new(Barrier::new(UPDATERS + 1));
        let deadline = ctx.now() + HOUR;
        let mut set = JoinSet::new();
        for t in 0..UPDATERS {
            let (store, barrier, k) = (Arc::clone(s), Arc::clone(&barrier), k.clone());
            set.spawn(async move {
                barrier.wait().await;
                // Keep updating (reloading on conflict) until the record is gone.
                for _ in 0..500 {
                    let version = match store.load(&k).await {
                        Ok(Some(r)) => r.version,
                        Ok(None) => return Ok(()),
                        Err(e) => return Err(format!("load by updater {t}: Err({e:?})")),
                    };
                    let rec = NewRecord { payload: Bytes::from(format!("updater {t}")), expires_at: deadline };
                    match store.save(&k, &rec, update(version)).await {
                        Ok(_) | Err(Error::Conflict) => tokio::task::yield_now().await,
                        Err(Error::NotFound) => return Ok(()),
                        Err(e) => return Err(format!("update by updater {t}: expected Ok, Conflict or NotFound, got Err({e:?})")),
                    }
                }
                Ok(())
            });
        }
        let (store, barrier2, k2) = (Arc::clone(s), Arc::clone(&barrier), k.clone());
        let expirer = tokio::spawn(async move {
            barrier2.wait().await;
            for _ in 0..round {
                tokio::task::yield_now().await;
            }
            store.expire(&k2).await
        });
        match expirer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                fail!("round {round}: expire racing updates: expected Ok, got Err({e:?})")
            }
            Err(e) => fail!("round {round}: the expire task failed: {e}"),
        }
        // The session must already be gone, and stay gone while updaters finish.
        load_none(
            s.as_ref(),
            &k,
            &format!("round {round}: load right after expire returned (updaters still running)"),
        )
        .await?;
        for r in join_all(set, "updaters").await? {
            if let Err(msg) = r {
                fail!("round {round}: {msg}");
            }
        }
        load_none(
            s.as_ref(),
            &k,
            &format!("round {round}: load after expire and all racing updates"),
        )
        .await?;
        for v in [FIRST_VERSION, FIRST_VERSION + 1, FIRST_VERSION + 10] {
            expect_err!(
                s.save(&k, &ctx.rec(&b"late"[..], HOUR), update(v)).await,
                Error::NotFound,
                "round {round}: update with version {v} after the race"
            );
        }
        load_none(s.as_ref(), &k, &format!("round {round}: final load")).await?;
    }
    Ok(())
}

/// Touch racing updates never brings back an older payload: the record ends with
/// the payload of the update that returned the highest version. Runs twice: with
/// spawned tasks (real parallelism), and with the updater and touchers polled in
/// one task (so every `.await` inside the store interleaves with the others).
pub(crate) async fn touch_racing_update_keeps_payload(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    const UPDATES: u64 = 100;
    let deadline = ctx.now() + HOUR;
    let touch_deadline = ctx.now() + HOUR * 2;
    for phase in ["spawned tasks", "one task, interleaved"] {
        let k = key()?;
        let s = ctx.store();
        s.save(&k, &ctx.rec(&b"update 0"[..], HOUR), CREATE)
            .await
            .or_fail("save(Create)")?;
        let (last, touched) = if phase == "spawned tasks" {
            let barrier = Arc::new(Barrier::new(3));
            let (store, b, kk) = (Arc::clone(s), Arc::clone(&barrier), k.clone());
            let updater = tokio::spawn(async move {
                b.wait().await;
                updates(store, kk, UPDATES, deadline).await
            });
            let mut touchers = JoinSet::new();
            for t in 0..2 {
                let (store, b, kk) = (Arc::clone(s), Arc::clone(&barrier), k.clone());
                touchers.spawn(async move {
                    b.wait().await;
                    touches(store, kk, UPDATES, touch_deadline, t).await
                });
            }
            let last = match updater.await {
                Ok(r) => r,
                Err(e) => fail!("{phase}: the updater task failed: {e}"),
            };
            let touched = join_all(touchers, "touchers")
                .await?
                .into_iter()
                .collect::<Result<Vec<()>, String>>();
            (last, touched.map(drop))
        } else {
            let (last, t0, t1) = tokio::join!(
                updates(Arc::clone(s), k.clone(), UPDATES, deadline),
                touches(Arc::clone(s), k.clone(), UPDATES, touch_deadline, 0),
                touches(Arc::clone(s), k.clone(), UPDATES, touch_deadline, 1),
            );
            (last, t0.and(t1))
        };
        let last = match (last, touched) {
            (Ok(v), Ok(())) => v,
            (Err(msg), _) | (_, Err(msg)) => fail!("touch racing updates ({phase}): {msg}"),
        };
        ensure!(
            last == FIRST_VERSION + UPDATES,
            "touch racing updates ({phase}): after {UPDATES} updates the version is {last}, expected {}",
            FIRST_VERSION + UPDATES
        );
        let r = load_live(
            s.as_ref(),
            &k,
            &format!("load after touch racing updates ({phase})"),
        )
        .await?;
        let expected = format!("update {UPDATES}");
        if let Some(diff) = payload_diff(expected.as_bytes(), &r.payload) {
            fail!(
                "load after touch racing updates ({phase}): expected the last update's payload {expected:?}: {diff} (touch wrote back an older payload?)"
            );
        }
        ensure!(
            r.version == last,
            "load after touch racing updates ({phase}): expected version {last}, got {}",
            r.version
        );
        ensure!(
            near(r.expires_at, deadline) || near(r.expires_at, touch_deadline),
            "load after touch racing updates ({phase}): expires_at {} is neither the update's {deadline} nor the touch's {touch_deadline}",
            r.expires_at
        );
    }
    Ok(())
}

/// `n` updates in a row (the only writer of payloads), returning the last version.
async fn updates(
    store: Arc<dyn SessionInterface>,
    k: StorageKey,
    n: u64,
    deadline: OffsetDateTime,
) -> Result<u64, String> {
    let mut v = FIRST_VERSION;
    for i in 1..=n {
        let rec = NewRecord {
            payload: Bytes::from(format!("update {i}")),
            expires_at: deadline,
        };
        match store.save(&k, &rec, update(v)).await {
            Ok(next) => v = next,
            Err(e) => {
                return Err(format!(
                    "update #{i} with expected version {v} (touch is the only other writer): Err({e:?})"
                ));
            }
        }
        tokio::task::yield_now().await;
    }
    Ok(v)
}

/// `n` touches of a record that stays live throughout.
async fn touches(
    store: Arc<dyn SessionInterface>,
    k: StorageKey,
    n: u64,
    deadline: OffsetDateTime,
    t: usize,
) -> Result<(), String> {
    for i in 0..n {
        match store.touch(&k, deadline).await {
            Ok(true) => tokio::task::yield_now().await,
            Ok(false) => {
                return Err(format!(
                    "touch #{i} by toucher {t} of a live record returned false"
                ));
            }
            Err(e) => return Err(format!("touch #{i} by toucher {t}: Err({e:?})")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- time

fn need_clock(ctx: &Ctx) -> Result<session_core::ManualClock, CaseError> {
    ctx.fx.clock.clone().ok_or_else(|| {
        CaseError::Skip("the harness injects no clock (Fixture::clock is None); clock-driven expiry is covered by the 1-hour-deadline cases".into())
    })
}

/// With the injected clock: a record lives until its deadline passes, then is gone
/// for load, update and touch, and its key is free for create.
pub(crate) async fn clock_advanced_expiry(ctx: Ctx) -> CaseResult {
    let clock = need_clock(&ctx)?;
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"x"[..], Duration::minutes(10)), CREATE)
        .await
        .or_fail("save(Create) with a 10-minute deadline")?;
    clock.advance(Duration::minutes(9));
    load_live(s, &k, "load 9 minutes into a 10-minute lifetime").await?;
    clock.advance(Duration::minutes(2));
    load_none(s, &k, "load 11 minutes into a 10-minute lifetime").await?;
    expect_err!(
        s.save(&k, &ctx.rec(&b"y"[..], HOUR), update(FIRST_VERSION))
            .await,
        Error::NotFound,
        "update after the clock passed the deadline"
    );
    if ctx.caps().touch {
        let existed = s
            .touch(&k, ctx.now() + HOUR)
            .await
            .or_fail("touch after the deadline")?;
        ensure!(
            !existed,
            "touch after the clock passed the deadline returned true"
        );
    }
    load_none(s, &k, "load after update/touch of the expired record").await?;
    let v = s
        .save(&k, &ctx.rec(&b"z"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) after the deadline passed")?;
    ensure!(
        v == FIRST_VERSION,
        "save(Create) over the clock-expired record returned {v}, expected {FIRST_VERSION}"
    );
    load_exact(s, &k, b"z", FIRST_VERSION, None, "load of the new record").await
}

/// With the injected clock: a record is live while `now < expires_at`. One second
/// before its deadline it is there; at the deadline itself it is gone for load,
/// update, touch and `delete_expired`, and its key is free for create. (Whole-second
/// deadlines, which every store represents exactly.)
pub(crate) async fn clock_deadline_is_exclusive(ctx: Ctx) -> CaseResult {
    let clock = need_clock(&ctx)?;
    let s = ctx.store().as_ref();
    let deadline = (ctx.now() + Duration::minutes(10))
        .replace_nanosecond(0)
        .map_err(|e| CaseError::Fail(format!("a whole-second deadline: {e}")))?;
    let at_deadline = |payload: &'static [u8]| NewRecord {
        payload: Bytes::from_static(payload),
        expires_at: deadline,
    };
    let (k, other) = (key()?, key()?);
    for key in [&k, &other] {
        s.save(key, &at_deadline(b"x"), CREATE)
            .await
            .or_fail("save(Create) with a whole-second deadline")?;
    }
    clock.set(deadline - Duration::seconds(1));
    load_live(s, &k, "load one second before the deadline").await?;

    clock.set(deadline);
    load_none(
        s,
        &k,
        "load at exactly the deadline (live means now < expires_at)",
    )
    .await?;
    expect_err!(
        s.save(&k, &ctx.rec(&b"y"[..], HOUR), update(FIRST_VERSION))
            .await,
        Error::NotFound,
        "update at exactly the deadline"
    );
    if ctx.caps().touch {
        let existed = s
            .touch(&k, deadline + HOUR)
            .await
            .or_fail("touch at exactly the deadline")?;
        ensure!(!existed, "touch at exactly the deadline returned true");
    }
    load_none(s, &k, "load after update/touch at the deadline").await?;
    let v = s
        .save(&k, &ctx.rec(&b"z"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) at exactly the deadline of the old record")?;
    ensure!(
        v == FIRST_VERSION,
        "save(Create) over the record that expired at this instant returned {v}, expected {FIRST_VERSION}"
    );
    if ctx.caps().delete_expired && !ctx.caps().native_ttl {
        let purged = s
            .delete_expired()
            .await
            .or_fail("delete_expired at exactly the deadline")?;
        ensure!(
            purged == 1,
            "delete_expired at exactly the deadline of one record purged {purged}, expected 1"
        );
    }
    load_none(s, &other, "load of the other record at its deadline").await?;
    load_exact(s, &k, b"z", FIRST_VERSION, None, "load of the new record").await
}

/// With the injected clock: touch extends a record's life past its old deadline.
pub(crate) async fn clock_touch_extends_life(ctx: Ctx) -> CaseResult {
    let clock = need_clock(&ctx)?;
    ctx.need_touch()?;
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"x"[..], Duration::minutes(10)), CREATE)
        .await
        .or_fail("save(Create) with a 10-minute deadline")?;
    clock.advance(Duration::minutes(5));
    let existed = s
        .touch(&k, ctx.now() + Duration::minutes(10))
        .await
        .or_fail("touch at minute 5 to minute 15")?;
    ensure!(existed, "touch of a live record returned false");
    clock.advance(Duration::minutes(7));
    load_exact(
        s,
        &k,
        b"x",
        FIRST_VERSION,
        None,
        "load at minute 12 (old deadline 10, touched to 15)",
    )
    .await?;
    clock.advance(Duration::minutes(4));
    load_none(s, &k, "load at minute 16 (touched deadline 15)").await
}

/// Native TTL: a record written with a 1.5 s deadline disappears by itself, in real
/// time, within about 6 s.
pub(crate) async fn native_ttl_evicts(ctx: Ctx) -> CaseResult {
    if !ctx.caps().native_ttl {
        return Err(CaseError::Skip(
            "the store does not declare native_ttl (no server-side eviction to observe)".into(),
        ));
    }
    let s = ctx.store().as_ref();
    let k = key()?;
    let start = std::time::Instant::now();
    let deadline = OffsetDateTime::now_utc() + Duration::milliseconds(1500);
    s.save(
        &k,
        &NewRecord {
            payload: Bytes::from_static(b"short"),
            expires_at: deadline,
        },
        CREATE,
    )
    .await
    .or_fail("save(Create) with a 1.5 s deadline")?;
    let early = s.load(&k).await.or_fail("load right after writing")?;
    if early.is_none() && start.elapsed() < StdDuration::from_millis(1000) {
        fail!(
            "a record with a 1.5 s deadline was gone after {:?} (TTL unit or clock wrong?)",
            start.elapsed()
        );
    }
    loop {
        match s.load(&k).await.or_fail("polling load")? {
            None => return Ok(()),
            Some(r) if start.elapsed() > StdDuration::from_secs(6) => {
                fail!(
                    "a record written with a 1.5 s deadline was still returned after {:?}: {}",
                    start.elapsed(),
                    Summary(&Some(r))
                )
            }
            Some(_) => tokio::time::sleep(StdDuration::from_millis(100)).await,
        }
    }
}

/// Without the touch capability, touch returns `Unsupported`; with it, never.
pub(crate) async fn capabilities_touch_honest(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"x"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let absent = key()?;
    for (label, key) in [("a live key", &k), ("an absent key", &absent)] {
        let r = s.touch(key, ctx.now() + HOUR * 2).await;
        if ctx.caps().touch {
            if let Err(e) = r {
                fail!("touch of {label}: the store declares touch, got Err({e:?})");
            }
        } else {
            expect_err!(
                r,
                Error::Unsupported { .. },
                "touch of {label} by a store that does not declare touch"
            );
        }
    }
    load_exact(
        s,
        &k,
        b"x",
        FIRST_VERSION,
        None,
        "load after the touch check",
    )
    .await?;
    load_none(s, &absent, "load of the absent key after the touch check").await
}

/// Without the delete_expired capability, delete_expired returns `Unsupported`;
/// with it, never.
pub(crate) async fn capabilities_delete_expired_honest(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"x"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    let r = s.delete_expired().await;
    if ctx.caps().delete_expired {
        if let Err(e) = r {
            fail!("delete_expired: the store declares it, got Err({e:?})");
        }
    } else {
        expect_err!(
            r,
            Error::Unsupported { .. },
            "delete_expired by a store that does not declare it"
        );
    }
    load_exact(
        s,
        &k,
        b"x",
        FIRST_VERSION,
        None,
        "load after delete_expired",
    )
    .await
}

/// Deadlines with sub-second parts come back within one second, after create and
/// after update.
pub(crate) async fn deadline_precision_round_trip(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let d1 = ctx.now() + HOUR + Duration::nanoseconds(123_456_789);
    s.save(
        &k,
        &NewRecord {
            payload: Bytes::from_static(b"p"),
            expires_at: d1,
        },
        CREATE,
    )
    .await
    .or_fail("save(Create) with a fractional deadline")?;
    load_exact(
        s,
        &k,
        b"p",
        FIRST_VERSION,
        Some(d1),
        "load after create with deadline now + 1 h + 0.123456789 s",
    )
    .await?;
    let d2 = ctx.now() + HOUR * 2 + Duration::nanoseconds(987_654_321);
    let v = s
        .save(
            &k,
            &NewRecord {
                payload: Bytes::from_static(b"q"),
                expires_at: d2,
            },
            update(FIRST_VERSION),
        )
        .await
        .or_fail("update with a fractional deadline")?;
    load_exact(
        s,
        &k,
        b"q",
        v,
        Some(d2),
        "load after update with deadline now + 2 h + 0.987654321 s",
    )
    .await
}

/// Deadlines far ahead (400 days, 10 years) are kept, not overflowed or clamped.
pub(crate) async fn deadline_far_future(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for (label, offset) in [
        ("400 days", Duration::days(400)),
        ("10 years", Duration::days(3653)),
    ] {
        let k = key()?;
        let rec = ctx.rec(&b"far"[..], offset);
        s.save(&k, &rec, CREATE)
            .await
            .or_fail(&format!("save(Create) with a deadline {label} ahead"))?;
        load_exact(
            s,
            &k,
            b"far",
            FIRST_VERSION,
            Some(rec.expires_at),
            &format!("load of a record with a deadline {label} ahead"),
        )
        .await?;
    }
    Ok(())
}

/// Deadlines given with a non-UTC offset mean the same instant.
pub(crate) async fn deadline_with_offset(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for (h, m) in [(14, 0), (5, 30), (-12, 0), (-3, -30)] {
        let offset = match UtcOffset::from_hms(h, m, 0) {
            Ok(o) => o,
            Err(e) => fail!("internal: offset {h}:{m}: {e}"),
        };
        let k = key()?;
        let deadline = (ctx.now() + HOUR).to_offset(offset);
        s.save(
            &k,
            &NewRecord {
                payload: Bytes::from_static(b"tz"),
                expires_at: deadline,
            },
            CREATE,
        )
        .await
        .or_fail(&format!(
            "save(Create) with a deadline 1 h ahead written at offset {offset}"
        ))?;
        load_exact(
            s,
            &k,
            b"tz",
            FIRST_VERSION,
            Some(deadline),
            &format!("load of a record whose deadline (1 h ahead) was given at offset {offset}"),
        )
        .await?;
    }
    Ok(())
}

mod refresh;
mod removal;
mod rotation;
pub(crate) use refresh::*;
pub(crate) use removal::*;
pub(crate) use rotation::*;
