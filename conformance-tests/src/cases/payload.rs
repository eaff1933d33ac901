//! Payloads come back byte for byte: every byte value, from 0 bytes to 8 MiB.

use super::prelude::*;

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

/// At every size on the ladder, a created payload comes back byte for byte, at `FIRST_VERSION`, with its deadline.
pub(crate) async fn payload_ladder_round_trip(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for rung in ladder::sizes(&ctx) {
        let what = format!("{} bytes ({})", rung.size, rung.why);
        let k = key()?;
        let rec = ctx.rec(pattern(rung.size, 0x42), HOUR);
        let v = s
            .save(&k, &rec, CREATE)
            .await
            .or_fail(&format!("save(Create) of {what}"))?;
        ensure!(
            v == FIRST_VERSION,
            "save(Create) of {what} returned {v}, expected {FIRST_VERSION}"
        );
        load_exact(
            s,
            &k,
            &rec.payload,
            FIRST_VERSION,
            Some(rec.expires_at),
            &format!("load of {what}"),
        )
        .await?;
    }
    Ok(())
}
