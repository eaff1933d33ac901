//! Time: the injected clock and the exclusive deadline, deadline precision, far
//! deadlines, and deadlines given at any UTC offset.

use super::prelude::*;

fn need_clock(ctx: &Ctx) -> Result<session_core::ManualClock, CaseError> {
    ctx.fx.clock.clone().ok_or_else(|| {
        CaseError::Skip("the harness injects no clock (Fixture::clock is None); clock-driven expiry is covered by the 1-hour-deadline cases".into())
    })
}

/// With the injected clock: a record lives until its deadline passes, then is gone for load, update and touch, and its key is free for create.
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

/// With the injected clock, a record is live while `now < expires_at`: one second before its deadline it is there, at the deadline itself it is gone for load, load_and_touch, update, touch and `delete_expired`, and its key is free for create.
///
/// (Whole-second deadlines, which every store represents exactly.)
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
    // A refresh that is not due (the store would hand back what it read) and one
    // that is (the store would write a new deadline): neither finds a record.
    for (due_before, what) in [(deadline - HOUR, "not due"), (deadline + HOUR, "due")] {
        match s.load_and_touch(&k, deadline + HOUR * 2, due_before).await {
            Ok(None) => {}
            Ok(Some(r)) => fail!(
                "load_and_touch ({what}) at exactly the deadline returned a record (version {}, expires_at {})",
                r.record.version,
                r.record.expires_at
            ),
            Err(e) => fail!(
                "load_and_touch ({what}) at exactly the deadline: expected None, got Err({e:?})"
            ),
        }
    }
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
    // The sweep runs before anything is written at the deadline: a store may purge
    // expired records as it writes, and those are not `delete_expired`'s to count.
    if ctx.caps().delete_expired && !ctx.caps().native_ttl {
        let purged = s
            .delete_expired()
            .await
            .or_fail("delete_expired at exactly the deadline")?;
        ensure!(
            purged == 2,
            "delete_expired at exactly the deadline of two records purged {purged}, expected 2"
        );
    }
    load_none(s, &other, "load of the other record at its deadline").await?;
    // A record written with a deadline equal to now is dead at birth: create over it.
    s.save(&other, &at_deadline(b"dead at birth"), CREATE)
        .await
        .or_fail("save(Create) with a deadline equal to now")?;
    load_none(
        s,
        &other,
        "load of a record created with a deadline equal to now",
    )
    .await?;
    for key in [&k, &other] {
        let v = s
            .save(key, &ctx.rec(&b"z"[..], HOUR), CREATE)
            .await
            .or_fail("save(Create) at exactly the deadline of the old record")?;
        ensure!(
            v == FIRST_VERSION,
            "save(Create) over a record whose deadline is this instant returned {v}, expected {FIRST_VERSION}"
        );
    }
    load_exact(s, &k, b"z", FIRST_VERSION, None, "load of the new record").await
}

/// With the injected clock at a sub-second instant, a deadline equal to now — given to create, a removing update, touch or load_and_touch — leaves no live record (a store that rounds it up, to the second or the microsecond, or keeps it a moment longer, does).
///
/// Just past half a second (rounding to the nearest second goes up) and a
/// nanosecond before a whole second (rounding to the microsecond or millisecond
/// goes up).
pub(crate) async fn clock_deadline_at_now_is_dead(ctx: Ctx) -> CaseResult {
    let clock = need_clock(&ctx)?;
    let s = ctx.store().as_ref();
    let whole = (ctx.now() + Duration::minutes(10))
        .replace_nanosecond(0)
        .map_err(|e| CaseError::Fail(format!("a whole-second instant: {e}")))?;
    for nanos in [500_000_001, 999_999_999] {
        let now = whole + Duration::nanoseconds(nanos);
        clock.set(now);
        let at_now = |payload: &'static [u8]| NewRecord {
            payload: Bytes::from_static(payload),
            expires_at: now,
        };
        let what = |op: &str| format!("{op} with a deadline equal to now ({now})");
        let live = |payload: &'static [u8]| NewRecord {
            payload: Bytes::from_static(payload),
            expires_at: now + HOUR,
        };

        let k = key()?;
        s.save(&k, &at_now(b"dead at birth"), CREATE)
            .await
            .or_fail(&what("save(Create)"))?;
        load_none(s, &k, &what("load after save(Create)")).await?;
        let v = s
            .save(&k, &live(b"new"), CREATE)
            .await
            .or_fail(&what("save(Create) over a record created"))?;
        ensure!(
            v == FIRST_VERSION,
            "{}: returned {v}, expected {FIRST_VERSION}",
            what("save(Create) over a record created")
        );

        let k = key()?;
        s.save(&k, &live(b"x"), CREATE)
            .await
            .or_fail("save(Create) 1 h ahead")?;
        let v = s
            .save(&k, &at_now(b"removed"), update(FIRST_VERSION))
            .await
            .or_fail(&what("removing save(Update)"))?;
        ensure!(
            v == FIRST_VERSION + 1,
            "{}: returned {v}, expected {}",
            what("removing save(Update)"),
            FIRST_VERSION + 1
        );
        load_none(s, &k, &what("load after a removing save(Update)")).await?;

        if !ctx.caps().touch {
            continue;
        }
        let k = key()?;
        s.save(&k, &live(b"x"), CREATE)
            .await
            .or_fail("save(Create) 1 h ahead")?;
        let existed = s.touch(&k, now).await.or_fail(&what("touch"))?;
        ensure!(
            existed,
            "{}: returned false",
            what("touch of a live record")
        );
        load_none(s, &k, &what("load after touch")).await?;
        let again = s
            .touch(&k, now + HOUR)
            .await
            .or_fail(&what("touch 1 h ahead after a touch"))?;
        ensure!(
            !again,
            "{}: returned true",
            what("touch 1 h ahead after a touch")
        );

        let k = key()?;
        s.save(&k, &live(b"x"), CREATE)
            .await
            .or_fail("save(Create) 1 h ahead")?;
        match s.load_and_touch(&k, now, now + HOUR * 2).await {
            Ok(Some(r)) if r.touched => {}
            Ok(other) => fail!(
                "{}: expected a touched record, got {:?}",
                what("a due load_and_touch"),
                other.map(|r| (r.touched, r.record.expires_at))
            ),
            Err(e) => fail!("{}: Err({e:?})", what("a due load_and_touch")),
        }
        load_none(s, &k, &what("load after a due load_and_touch")).await?;
    }
    Ok(())
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

/// Deadlines with sub-second parts come back within one second, after create and after update.
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

/// Deadlines far ahead (400 days, 10 years, 30 years: past 2038, where 32-bit Unix seconds and SQL `TIMESTAMP` end) are kept, not overflowed or clamped.
pub(crate) async fn deadline_far_future(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for (label, offset) in [
        ("400 days", Duration::days(400)),
        ("10 years", Duration::days(3653)),
        ("30 years", Duration::days(10_958)),
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

/// Deadlines long past (the Unix epoch, half a second before it, 1900) are dead for create, a removing update and touch, not wrapped or clamped into the future.
pub(crate) async fn deadline_far_past(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let epoch = OffsetDateTime::UNIX_EPOCH;
    for (label, deadline) in [
        ("the Unix epoch", epoch),
        (
            "half a second before the Unix epoch",
            epoch - Duration::milliseconds(500),
        ),
        ("1900-01-01", epoch - Duration::days(25_567)),
    ] {
        let at = |payload: &'static [u8]| NewRecord {
            payload: Bytes::from_static(payload),
            expires_at: deadline,
        };
        let k = key()?;
        s.save(&k, &at(b"dead at birth"), CREATE)
            .await
            .or_fail(&format!("save(Create) with a deadline at {label}"))?;
        load_none(
            s,
            &k,
            &format!("load of a record created with a deadline at {label}"),
        )
        .await?;
        s.save(&k, &ctx.rec(&b"new"[..], HOUR), CREATE)
            .await
            .or_fail(&format!(
                "save(Create) over a record created with a deadline at {label}"
            ))?;

        let k = key()?;
        s.save(&k, &ctx.rec(&b"x"[..], HOUR), CREATE)
            .await
            .or_fail("save(Create) 1 h ahead")?;
        let v = s
            .save(&k, &at(b"removed"), update(FIRST_VERSION))
            .await
            .or_fail(&format!("removing save(Update) with a deadline at {label}"))?;
        ensure!(
            v == FIRST_VERSION + 1,
            "removing save(Update) with a deadline at {label} returned {v}, expected {}",
            FIRST_VERSION + 1
        );
        load_none(
            s,
            &k,
            &format!("load after a removing save(Update) with a deadline at {label}"),
        )
        .await?;

        if ctx.caps().touch {
            let k = key()?;
            s.save(&k, &ctx.rec(&b"x"[..], HOUR), CREATE)
                .await
                .or_fail("save(Create) 1 h ahead")?;
            let existed = s
                .touch(&k, deadline)
                .await
                .or_fail(&format!("touch to {label}"))?;
            ensure!(existed, "touch of a live record to {label} returned false");
            load_none(s, &k, &format!("load after touch to {label}")).await?;
        }
    }
    Ok(())
}

/// The offsets a deadline is given at: the extremes of real time zones (+14:00,
/// -12:00), quarter- and half-hour zones (+05:45, -03:30, +09:30), and offsets with
/// seconds (`time` allows them; historic local mean times had them), also negative.
fn offsets() -> Result<Vec<UtcOffset>, CaseError> {
    [
        (14, 0, 0),
        (-12, 0, 0),
        (5, 45, 0),
        (-3, -30, 0),
        (9, 30, 0),
        (0, 0, -30),
        (-4, -56, -2),
        (0, 19, 32),
    ]
    .into_iter()
    .map(|(h, m, s)| {
        UtcOffset::from_hms(h, m, s)
            .map_err(|e| CaseError::Fail(format!("internal: offset {h}:{m}:{s}: {e}")))
    })
    .collect()
}

/// `save(Create)` with a deadline given at any UTC offset means the same instant.
pub(crate) async fn deadline_with_offset(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for offset in offsets()? {
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
        let dead = key()?;
        s.save(
            &dead,
            &NewRecord {
                payload: Bytes::from_static(b"tz"),
                expires_at: (ctx.now() - HOUR).to_offset(offset),
            },
            CREATE,
        )
        .await
        .or_fail(&format!(
            "save(Create) with a deadline 1 h in the past written at offset {offset}"
        ))?;
        load_none(
            s,
            &dead,
            &format!(
                "load of a record whose deadline (1 h in the past) was given at offset {offset}"
            ),
        )
        .await?;
    }
    Ok(())
}

/// `save(Update)` with a deadline given at any UTC offset means the same instant, at small and large payloads.
pub(crate) async fn deadline_with_offset_on_update(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for offset in offsets()? {
        for size in [2, 300 << 10] {
            let what = format!("{size}-byte update with a deadline given at offset {offset}");
            let k = key()?;
            s.save(&k, &ctx.rec(&b"utc"[..], HOUR * 3), CREATE)
                .await
                .or_fail(&format!("{what}: save(Create)"))?;
            let deadline = (ctx.now() + HOUR).to_offset(offset);
            let payload = pattern(size, 21);
            let v = s
                .save(
                    &k,
                    &NewRecord {
                        payload: payload.clone(),
                        expires_at: deadline,
                    },
                    update(FIRST_VERSION),
                )
                .await
                .or_fail(&what)?;
            load_exact(
                s,
                &k,
                &payload,
                v,
                Some(deadline),
                &format!("{what}: load (deadline 1 h ahead)"),
            )
            .await?;
        }
    }
    Ok(())
}

/// `touch` to a deadline given at any UTC offset means the same instant: ahead it moves the deadline there, in the past it ends the record.
pub(crate) async fn deadline_with_offset_on_touch(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    let s = ctx.store().as_ref();
    for offset in offsets()? {
        let what = format!("touch to a deadline given at offset {offset}");
        let k = key()?;
        s.save(&k, &ctx.rec(&b"utc"[..], HOUR * 3), CREATE)
            .await
            .or_fail(&format!("{what}: save(Create)"))?;
        let deadline = (ctx.now() + HOUR).to_offset(offset);
        let existed = s
            .touch(&k, deadline)
            .await
            .or_fail(&format!("{what} 1 h ahead"))?;
        ensure!(
            existed,
            "{what} 1 h ahead: touch of a live record returned false"
        );
        load_exact(
            s,
            &k,
            b"utc",
            FIRST_VERSION,
            Some(deadline),
            &format!("load after {what} 1 h ahead"),
        )
        .await?;
        let existed = s
            .touch(&k, (ctx.now() - HOUR).to_offset(offset))
            .await
            .or_fail(&format!("{what} 1 h in the past"))?;
        ensure!(
            existed,
            "{what} 1 h in the past: touch of a live record returned false"
        );
        load_none(s, &k, &format!("load after {what} 1 h in the past")).await?;
    }
    Ok(())
}

/// `load_and_touch` with its new deadline and its bound given at any UTC offset means the same instants, on both paths (the bound before the new deadline and at it): a bound 30 min ahead leaves a deadline 1 h ahead alone, a bound 2 h ahead moves it to the new deadline, and a new deadline in the past ends the record.
pub(crate) async fn deadline_with_offset_on_load_and_touch(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    let s = ctx.store().as_ref();
    let min = Duration::minutes;
    for offset in offsets()? {
        let at = |t: OffsetDateTime| t.to_offset(offset);
        // (new deadline, bound) from now: (not due) a bound the record's deadline (1 h
        // ahead) is not before, on each path; (due) a bound it is before.
        let calls = [
            (HOUR * 3, min(30), false),
            (min(30), min(30), false),
            (HOUR * 3, HOUR * 2, true),
            (HOUR * 2, HOUR * 2, true),
        ];
        for (new, due, moves) in calls {
            let what = format!(
                "load_and_touch to {new} ahead with the bound {due} ahead, both given at offset {offset}"
            );
            let k = key()?;
            s.save(&k, &ctx.rec(&b"utc"[..], HOUR), CREATE)
                .await
                .or_fail(&format!("{what}: save(Create)"))?;
            let old = ctx.now() + HOUR;
            let target = at(ctx.now() + new);
            let r = match s.load_and_touch(&k, target, at(ctx.now() + due)).await {
                Ok(Some(r)) => r,
                Ok(None) => fail!("{what}: None for a live record"),
                Err(e) => fail!("{what}: Err({e:?})"),
            };
            let expected = if moves { target } else { old };
            ensure!(
                r.touched == moves && near(r.record.expires_at, expected),
                "{what}: touched {} with expires_at {}, expected {moves} with {expected}",
                r.touched,
                r.record.expires_at
            );
            load_exact(
                s,
                &k,
                b"utc",
                FIRST_VERSION,
                Some(expected),
                &format!("load after {what}"),
            )
            .await?;
        }
        let k = key()?;
        s.save(&k, &ctx.rec(&b"utc"[..], HOUR), CREATE)
            .await
            .or_fail("save(Create)")?;
        let past = at(ctx.now() - HOUR);
        s.load_and_touch(&k, past, at(ctx.now() + HOUR * 2))
            .await
            .or_fail(&format!(
                "load_and_touch to 1 h in the past given at offset {offset}"
            ))?;
        load_none(
            s,
            &k,
            &format!("load after load_and_touch to 1 h in the past given at offset {offset}"),
        )
        .await?;
    }
    Ok(())
}

/// A compare-and-set removal (`save(Update)` with a past deadline) given at any UTC offset removes the record on a version match and is a `Conflict` otherwise.
pub(crate) async fn deadline_with_offset_on_removal(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    for offset in offsets()? {
        let what = format!("removal with a deadline 1 h in the past given at offset {offset}");
        let k = key()?;
        let rec = ctx.rec(&b"utc"[..], HOUR * 3);
        s.save(&k, &rec, CREATE)
            .await
            .or_fail(&format!("{what}: save(Create)"))?;
        let removal = NewRecord {
            payload: Bytes::new(),
            expires_at: (ctx.now() - HOUR).to_offset(offset),
        };
        expect_err!(
            s.save(&k, &removal, update(FIRST_VERSION + 1)).await,
            Error::Conflict,
            "{what}, with a future version"
        );
        load_exact(
            s,
            &k,
            b"utc",
            FIRST_VERSION,
            Some(rec.expires_at),
            &format!("{what}: load after the refused removal"),
        )
        .await?;
        s.save(&k, &removal, update(FIRST_VERSION))
            .await
            .or_fail(&format!("{what}, with the current version"))?;
        load_none(s, &k, &format!("{what}: load after the removal")).await?;
    }
    Ok(())
}
