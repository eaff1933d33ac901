//! `touch`: moves the deadline and nothing else; `false` for an absent or expired key;
//! `Unsupported` when the store does not declare it.

use super::prelude::*;

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

/// At every size on the ladder, touch moves only the deadline: the payload comes back byte for byte at the same version.
pub(crate) async fn touch_ladder_keeps_payload(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    let s = ctx.store().as_ref();
    for rung in ladder::sizes(&ctx) {
        let what = format!("{} bytes ({})", rung.size, rung.why);
        let k = key()?;
        s.save(&k, &ctx.rec(pattern(rung.size, 0x51), HOUR), CREATE)
            .await
            .or_fail(&format!("save(Create) of {what}"))?;
        let rec = ctx.rec(pattern(rung.size, 0x52), HOUR);
        let v = s
            .save(&k, &rec, update(FIRST_VERSION))
            .await
            .or_fail(&format!("update of {what}"))?;
        for (label, offset) in [("+3 h", HOUR * 3), ("+30 min", Duration::minutes(30))] {
            let deadline = ctx.now() + offset;
            let existed = s
                .touch(&k, deadline)
                .await
                .or_fail(&format!("{what}: touch to {label}"))?;
            ensure!(
                existed,
                "{what}: touch to {label} of a live record returned false"
            );
            load_exact(
                s,
                &k,
                &rec.payload,
                v,
                Some(deadline),
                &format!("{what}: load after touch to {label}"),
            )
            .await?;
        }
    }
    Ok(())
}
