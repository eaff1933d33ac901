//! `save(Create)` and `load`: a fresh key takes the record as written, at `FIRST_VERSION`;
//! a live key refuses it (`Collision`); an expired one does not.

use super::prelude::*;

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

/// Create over an expired (unpurged) record succeeds and starts at `FIRST_VERSION`: the old record's versions conflict.
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
    .await?;
    // An expired record that had been updated: a create that keeps its version (an
    // upsert that forgets the version column) would let a stale update win.
    let k = key()?;
    s.save(&k, &ctx.rec(&b"old 1"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) of a record to update and remove")?;
    let v2 = s
        .save(&k, &ctx.rec(&b"old 2"[..], HOUR), update(FIRST_VERSION))
        .await
        .or_fail("update of the record to remove")?;
    let v3 = s
        .save(&k, &ctx.rec(&b"old 3"[..], -HOUR), update(v2))
        .await
        .or_fail("removing update (deadline 1 h in the past) of the updated record")?;
    let rec = ctx.rec(&b"reborn"[..], HOUR);
    let v = s.save(&k, &rec, CREATE).await.or_fail(&format!(
        "save(Create) over a removed record that had version {v3}"
    ))?;
    ensure!(
        v == FIRST_VERSION,
        "save(Create) over a removed record (last version {v3}) returned version {v}, expected {FIRST_VERSION}"
    );
    load_exact(
        s,
        &k,
        b"reborn",
        FIRST_VERSION,
        Some(rec.expires_at),
        &format!("load after create over a removed record that had version {v3}"),
    )
    .await?;
    for old in [v2, v3] {
        expect_err!(
            s.save(&k, &ctx.rec(&b"stale"[..], HOUR), update(old)).await,
            Error::Conflict,
            "update with the removed record's version {old} after a create over it"
        );
    }
    load_exact(
        s,
        &k,
        b"reborn",
        FIRST_VERSION,
        Some(rec.expires_at),
        "load after the stale updates",
    )
    .await
}
