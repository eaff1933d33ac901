//! `save(Update)`, the compare-and-set: the right version writes and returns `expected + 1`;
//! a stale or future version is a `Conflict` that writes nothing; an absent or expired
//! key is `NotFound` and is never resurrected — at every payload size on the ladder.

use super::prelude::*;

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

/// A chain of updates returns 2, 3, 4, … past 256 (a one-byte version column would stop or wrap there) and the last one is loaded.
pub(crate) async fn update_chain_increments(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let mut v = s
        .save(&k, &ctx.rec(&b"0"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create)")?;
    // Versions 2 to 261: past 255 and 256. Loaded after the first few updates and
    // around the one-byte boundary (a load per update would double a slow store's
    // round trips).
    for i in 1..=260u64 {
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
        if i <= 5 || i >= 250 {
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

/// Update of an expired record → `NotFound` whatever the expected version (its own, another, 0), nothing resurrected.
pub(crate) async fn update_expired_not_found(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    s.save(&k, &ctx.rec(&b"dead"[..], -HOUR), CREATE)
        .await
        .or_fail("save(Create) with a deadline 1 h in the past")?;
    // The version check comes after the liveness check: a store that tells
    // `NotFound` from `Conflict` by the expired row's version answers these wrong.
    for expected in [FIRST_VERSION, FIRST_VERSION + 1, 0] {
        expect_err!(
            s.save(&k, &ctx.rec(&b"revived"[..], HOUR), update(expected))
                .await,
            Error::NotFound,
            "update (with a live deadline) of an expired record at version {FIRST_VERSION}, expecting version {expected}"
        );
    }
    load_none(s, &k, "load after updating an expired record").await
}

/// A payload of `rung`'s size with the `seed` pattern (every byte value, shifted per
/// 256-byte block, so a cut or an older payload never compares equal).
fn sized(rung: Rung, seed: u8) -> Bytes {
    pattern(rung.size, seed)
}

/// Creates a record of `rung`'s size; returns its key and what it holds.
async fn create_rung(
    ctx: &Ctx,
    rung: Rung,
    seed: u8,
) -> Result<(StorageKey, NewRecord), CaseError> {
    let k = key()?;
    let rec = ctx.rec(sized(rung, seed), HOUR);
    ctx.store().save(&k, &rec, CREATE).await.or_fail(&format!(
        "save(Create) of {} bytes ({})",
        rung.size, rung.why
    ))?;
    Ok((k, rec))
}

/// At every size on the ladder, an update with the current version writes the payload byte for byte and returns `expected + 1`.
pub(crate) async fn update_ladder_match_writes(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for rung in ladder::sizes(&ctx) {
        let what = format!("{} bytes ({})", rung.size, rung.why);
        let (k, _) = create_rung(&ctx, rung, 1).await?;
        let mut v = FIRST_VERSION;
        for (i, seed) in [2u8, 3].into_iter().enumerate() {
            let rec = ctx.rec(sized(rung, seed), HOUR + Duration::minutes(i as i64 + 1));
            let next = s
                .save(&k, &rec, update(v))
                .await
                .or_fail(&format!("{what}: update #{i} with the current version {v}"))?;
            ensure!(
                next == v + 1,
                "{what}: update #{i} with the current version {v} returned {next}, expected {}",
                v + 1
            );
            v = next;
            load_exact(
                s,
                &k,
                &rec.payload,
                v,
                Some(rec.expires_at),
                &format!("{what}: load after update #{i}"),
            )
            .await?;
        }
    }
    Ok(())
}

/// At every size on the ladder, an update with a stale version is a `Conflict` and leaves the record as it was.
pub(crate) async fn update_ladder_stale_conflicts(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for rung in ladder::sizes(&ctx) {
        let what = format!("{} bytes ({})", rung.size, rung.why);
        let (k, _) = create_rung(&ctx, rung, 1).await?;
        let second = ctx.rec(sized(rung, 2), HOUR * 2);
        let v2 = s
            .save(&k, &second, update(FIRST_VERSION))
            .await
            .or_fail(&format!("{what}: first update"))?;
        expect_err!(
            s.save(
                &k,
                &ctx.rec(sized(rung, 3), HOUR * 3),
                update(FIRST_VERSION)
            )
            .await,
            Error::Conflict,
            "{what}: update with the stale version {FIRST_VERSION} (current is {v2})"
        );
        load_exact(
            s,
            &k,
            &second.payload,
            v2,
            Some(second.expires_at),
            &format!("{what}: load after the stale update"),
        )
        .await?;
    }
    Ok(())
}

/// At every size on the ladder, an update with a version the record never had (ahead of it) is a `Conflict` and leaves the record as it was.
pub(crate) async fn update_ladder_future_conflicts(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for rung in ladder::sizes(&ctx) {
        let what = format!("{} bytes ({})", rung.size, rung.why);
        let (k, first) = create_rung(&ctx, rung, 1).await?;
        for bad in [FIRST_VERSION + 1, u64::MAX] {
            expect_err!(
                s.save(&k, &ctx.rec(sized(rung, 4), HOUR * 3), update(bad))
                    .await,
                Error::Conflict,
                "{what}: update with the future version {bad} (current is {FIRST_VERSION})"
            );
        }
        load_exact(
            s,
            &k,
            &first.payload,
            FIRST_VERSION,
            Some(first.expires_at),
            &format!("{what}: load after the future-version updates"),
        )
        .await?;
    }
    Ok(())
}

/// At every size on the ladder, an update of a key that was never written is `NotFound` and creates nothing.
pub(crate) async fn update_ladder_absent_not_found(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for rung in ladder::sizes(&ctx) {
        let what = format!("{} bytes ({})", rung.size, rung.why);
        let k = key()?;
        expect_err!(
            s.save(&k, &ctx.rec(sized(rung, 5), HOUR), update(FIRST_VERSION))
                .await,
            Error::NotFound,
            "{what}: update of an absent key"
        );
        load_none(s, &k, &format!("{what}: load after updating an absent key")).await?;
    }
    Ok(())
}

/// At every size on the ladder, an update of a record past its deadline, or expired by `expire`, is `NotFound` and resurrects nothing.
pub(crate) async fn update_ladder_expired_not_found(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for rung in ladder::sizes(&ctx) {
        let what = format!("{} bytes ({})", rung.size, rung.why);
        let dead = key()?;
        s.save(&dead, &ctx.rec(sized(rung, 6), -HOUR), CREATE)
            .await
            .or_fail(&format!(
                "{what}: save(Create) with a deadline 1 h in the past"
            ))?;
        expect_err!(
            s.save(&dead, &ctx.rec(sized(rung, 7), HOUR), update(FIRST_VERSION))
                .await,
            Error::NotFound,
            "{what}: update of a record past its deadline"
        );
        load_none(
            s,
            &dead,
            &format!("{what}: load after updating a record past its deadline"),
        )
        .await?;
        let (k, _) = create_rung(&ctx, rung, 8).await?;
        s.expire(&k).await.or_fail(&format!("{what}: expire"))?;
        expect_err!(
            s.save(&k, &ctx.rec(sized(rung, 9), HOUR), update(FIRST_VERSION))
                .await,
            Error::NotFound,
            "{what}: update of a record removed by expire"
        );
        load_none(
            s,
            &k,
            &format!("{what}: load after updating an expired record"),
        )
        .await?;
    }
    Ok(())
}
