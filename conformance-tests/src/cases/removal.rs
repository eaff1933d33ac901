//! Compare-and-set removal: `save(Update)` with a deadline that is not in the future.
//!
//! The manager removes a session it loaded (emptied, cleared, its id cycled) with an
//! `Update` whose deadline has passed, so the removal is conditional on the version it
//! loaded: a change another request saved meanwhile makes it a `Conflict`, which the
//! manager merges, instead of being thrown away by a blind `expire`. These cases pin
//! that clause on every store, at every size on the payload ladder (the record
//! removed and the removing update both of that size), so a store's large-payload
//! path keeps the version check too.

use std::sync::Arc;

use session_core::time::Duration;
use session_core::{Bytes, Error, FIRST_VERSION, NewRecord, SaveMode, StorageKey};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::ladder;
use crate::check::{
    CaseError, CaseResult, Ctx, OrFail, ensure, expect_err, fail, key, load_exact, load_none,
    pattern,
};

const HOUR: Duration = Duration::hours(1);

const fn update(expected_version: u64) -> SaveMode {
    SaveMode::Update { expected_version }
}

/// The deadlines that make an `Update` a removal: an hour ago, and — where the
/// fixture injects a clock, so "now" is exact — now itself (a record is live only
/// while `now < expires_at`).
/// The removing record carries `payload`.
fn removal_deadlines(ctx: &Ctx, payload: Bytes) -> Vec<(NewRecord, &'static str)> {
    let mut out = vec![(
        NewRecord {
            payload: payload.clone(),
            expires_at: ctx.now() - HOUR,
        },
        "a deadline 1 h in the past",
    )];
    if ctx.fx.clock.is_some() {
        out.push((
            NewRecord {
                payload,
                expires_at: ctx.now(),
            },
            "a deadline equal to now",
        ));
    }
    out
}

async fn create_sized(ctx: &Ctx, size: usize) -> Result<(StorageKey, Bytes), CaseError> {
    let k = key()?;
    let payload = pattern(size, 7);
    ctx.store()
        .save(
            &k,
            &NewRecord {
                payload: payload.clone(),
                expires_at: ctx.now() + HOUR,
            },
            SaveMode::Create,
        )
        .await
        .or_fail(&format!("save(Create) of {size} bytes"))?;
    Ok((k, payload))
}

/// At every size on the ladder, an `Update` with the loaded version and a deadline that is not in the future removes the record: no load sees it, no `Update` or `touch` finds it, and a `Create` may take the key again.
pub(crate) async fn update_into_past_removes_on_match(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for size in ladder::sizes(&ctx).into_iter().map(|r| r.size) {
        for (removal, label) in removal_deadlines(&ctx, pattern(size, 13)) {
            let what = format!("{size}-byte record, removal with {label}");
            let (k, _) = create_sized(&ctx, size).await?;
            let v = s
                .save(&k, &removal, update(FIRST_VERSION))
                .await
                .or_fail(&format!("{what}: update with the current version"))?;
            ensure!(
                v == FIRST_VERSION + 1,
                "{what}: the removing update returned version {v}, expected {}",
                FIRST_VERSION + 1
            );
            load_none(s, &k, &format!("{what}: load after the removal")).await?;
            expect_err!(
                s.save(&k, &ctx.rec(&b"back"[..], HOUR), update(v)).await,
                Error::NotFound,
                "{what}: update with the version the removal returned"
            );
            if ctx.store().capabilities().touch {
                let alive = s
                    .touch(&k, ctx.now() + HOUR)
                    .await
                    .or_fail(&format!("{what}: touch after the removal"))?;
                ensure!(!alive, "{what}: touch after the removal returned true");
                load_none(s, &k, &format!("{what}: load after the touch")).await?;
            }
            let again = s
                .save(&k, &ctx.rec(&b"new"[..], HOUR), SaveMode::Create)
                .await
                .or_fail(&format!("{what}: save(Create) after the removal"))?;
            ensure!(
                again == FIRST_VERSION,
                "{what}: save(Create) after the removal returned {again}, expected {FIRST_VERSION}"
            );
        }
    }
    Ok(())
}

/// At every size on the ladder, a removing `Update` with a stale or a future version is a `Conflict` and leaves the record byte for byte as it was, version and deadline included.
pub(crate) async fn update_into_past_wrong_version_conflicts(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for size in ladder::sizes(&ctx).into_iter().map(|r| r.size) {
        for (removal, label) in removal_deadlines(&ctx, pattern(size, 13)) {
            let what = format!("{size}-byte record, removal with {label}");
            let (k, _) = create_sized(&ctx, size).await?;
            let second = NewRecord {
                payload: pattern(size, 11),
                expires_at: ctx.now() + HOUR * 2,
            };
            let v2 = s
                .save(&k, &second, update(FIRST_VERSION))
                .await
                .or_fail(&format!("{what}: first update"))?;
            for (expected, which) in [(FIRST_VERSION, "stale"), (v2 + 1, "future")] {
                expect_err!(
                    s.save(&k, &removal, update(expected)).await,
                    Error::Conflict,
                    "{what}: removal with the {which} version {expected}"
                );
                load_exact(
                    s,
                    &k,
                    &second.payload,
                    v2,
                    Some(second.expires_at),
                    &format!("{what}: load after the {which} removal"),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// A removing `Update` of an absent or expired key is `NotFound` and creates nothing.
pub(crate) async fn update_into_past_absent_not_found(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for (removal, label) in removal_deadlines(&ctx, Bytes::new()) {
        let absent = key()?;
        expect_err!(
            s.save(&absent, &removal, update(FIRST_VERSION)).await,
            Error::NotFound,
            "removal with {label} of an absent key"
        );
        load_none(
            s,
            &absent,
            &format!("load after removing an absent key ({label})"),
        )
        .await?;
        let expired = key()?;
        s.save(&expired, &ctx.rec(&b"dead"[..], -HOUR), SaveMode::Create)
            .await
            .or_fail("save(Create) with a deadline 1 h in the past")?;
        expect_err!(
            s.save(&expired, &removal, update(FIRST_VERSION)).await,
            Error::NotFound,
            "removal with {label} of an expired record"
        );
        let v = s
            .save(&expired, &ctx.rec(&b"x"[..], HOUR), SaveMode::Create)
            .await
            .or_fail(&format!(
                "save(Create) after removing an expired key ({label})"
            ))?;
        ensure!(
            v == FIRST_VERSION,
            "save(Create) after a removal of an expired key returned {v}, expected {FIRST_VERSION}"
        );
    }
    Ok(())
}

/// At every size on the ladder, of removals and updates racing with the same expected version exactly one succeeds, and the record is what that one wrote (gone, or its payload).
pub(crate) async fn update_into_past_racing_updates_one_winner(ctx: Ctx) -> CaseResult {
    const TASKS: usize = 16;
    const ROUNDS: usize = 4;
    for size in ladder::sizes(&ctx).into_iter().map(|r| r.size) {
        // The updates carry payloads of the rung's size (so a store's large-payload
        // path races the removals); four rounds on the small rungs, one on each
        // larger one, which keeps the default run fast.
        let base = pattern(size, 17);
        let rounds = if size <= 1 { ROUNDS } else { 1 };
        for round in 0..rounds {
            let what = format!("{size}-byte record, round {round}");
            let (k, _) = create_sized(&ctx, size).await?;
            let barrier = Arc::new(Barrier::new(TASKS));
            let (live, dead) = (ctx.now() + HOUR, ctx.now() - HOUR);
            let mut set = JoinSet::new();
            for t in 0..TASKS {
                let (store, barrier, k) =
                    (Arc::clone(ctx.store()), Arc::clone(&barrier), k.clone());
                // Even tasks remove, odd ones update; who starts first varies by round.
                let removes = (t + round) % 2 == 0;
                let rec = if removes {
                    NewRecord {
                        payload: Bytes::new(),
                        expires_at: dead,
                    }
                } else {
                    NewRecord {
                        payload: ladder::marked(&base, t),
                        expires_at: live,
                    }
                };
                set.spawn(async move {
                    barrier.wait().await;
                    let outcome = store.save(&k, &rec, update(FIRST_VERSION)).await;
                    (t, removes, rec, outcome)
                });
            }
            let mut winners = Vec::new();
            let mut not_found = Vec::new();
            while let Some(joined) = set.join_next().await {
                let (t, removes, rec, r) = match joined {
                    Ok(v) => v,
                    Err(e) => fail!("{what}: a spawned task failed: {e}"),
                };
                match r {
                    Ok(v) if v == FIRST_VERSION + 1 => winners.push((t, removes, rec)),
                    Ok(v) => fail!(
                        "{what}: task {t} returned version {v}, expected {}",
                        FIRST_VERSION + 1
                    ),
                    Err(Error::Conflict) => {}
                    // Once a removal has won, the record is gone: a later update
                    // finds nothing.
                    Err(Error::NotFound) => not_found.push(t),
                    Err(e) => fail!(
                        "{what}: task {t}: expected Ok, Err(Conflict) or Err(NotFound), got Err({e:?})"
                    ),
                }
            }
            ensure!(
                winners.len() == 1,
                "{what}: {TASKS} racing removals and updates with one expected version: expected exactly 1 to succeed, {} did",
                winners.len()
            );
            let (t, removes, rec) = &winners[0];
            ensure!(
                *removes || not_found.is_empty(),
                "{what}: update by task {t} won, yet tasks {not_found:?} got NotFound for a live record"
            );
            if *removes {
                load_none(
                    ctx.store().as_ref(),
                    &k,
                    &format!("{what}: load after removal by task {t} won"),
                )
                .await?;
            } else {
                load_exact(
                    ctx.store().as_ref(),
                    &k,
                    &rec.payload,
                    FIRST_VERSION + 1,
                    Some(rec.expires_at),
                    &format!("{what}: load after update by task {t} won"),
                )
                .await?;
            }
        }
    }
    Ok(())
}
