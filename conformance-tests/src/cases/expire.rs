//! `expire` and expiry by deadline: an expired record is gone for every operation,
//! `expire` is idempotent and frees the key.

use super::prelude::*;

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
