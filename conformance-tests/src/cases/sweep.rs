//! `delete_expired` and native TTL: a sweep removes exactly the expired records and
//! counts them — also next to records a millisecond from their deadline, and across
//! the batch boundaries stores sweep in.

use super::prelude::*;

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
    // Exact only with a clock, where every record was written live: on real time the
    // expired records are written expired, and a store may purge expired records as
    // it writes (those are not `delete_expired`'s to count).
    if ctx.caps().native_ttl || ctx.fx.clock.is_none() {
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

/// `delete_expired` racing creates over expired keys never removes a record a create wrote.
///
/// A sweep that lists the expired keys and then deletes them by key, without
/// checking each deadline again where it deletes, loses what a create wrote over
/// such a key in between: an acknowledged write, gone. 64 expired records; four
/// tasks create over every key while another sweeps again and again.
pub(crate) async fn sweep_racing_creates_keeps_new_records(ctx: Ctx) -> CaseResult {
    ctx.need_delete_expired()?;
    const KEYS: usize = 64;
    const CREATORS: usize = 4;
    let s = ctx.store();
    let mut keys = Vec::with_capacity(KEYS);
    for _ in 0..KEYS {
        keys.push(key()?);
    }
    // An expired record under every key: written live and then overtaken by the
    // clock, or (on real time) written an hour past its deadline.
    let life = if ctx.fx.clock.is_some() {
        Duration::minutes(10)
    } else {
        -HOUR
    };
    for (i, k) in keys.iter().enumerate() {
        s.save(k, &ctx.rec(format!("old {i}"), life), CREATE)
            .await
            .or_fail("save(Create) of a record that will be expired")?;
    }
    if let Some(clock) = &ctx.fx.clock {
        clock.advance(HOUR);
    }
    let keys = Arc::new(keys);
    let deadline = ctx.now() + HOUR;
    let creating = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let barrier = Arc::new(Barrier::new(CREATORS + 1));
    let sweeper = {
        let (store, barrier, creating) =
            (Arc::clone(s), Arc::clone(&barrier), Arc::clone(&creating));
        tokio::spawn(async move {
            barrier.wait().await;
            let (mut sweeps, mut removed) = (0u64, 0u64);
            // At least once more after the last create has returned.
            loop {
                let last = !creating.load(std::sync::atomic::Ordering::Acquire);
                match store.delete_expired().await {
                    Ok(n) => removed += n,
                    Err(e) => return Err(format!("delete_expired #{sweeps}: Err({e:?})")),
                }
                sweeps += 1;
                if last {
                    return Ok((sweeps, removed));
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut set = JoinSet::new();
    for t in 0..CREATORS {
        let (store, barrier, keys) = (Arc::clone(s), Arc::clone(&barrier), Arc::clone(&keys));
        set.spawn(async move {
            barrier.wait().await;
            for i in (t..KEYS).step_by(CREATORS) {
                let rec = NewRecord {
                    payload: Bytes::from(format!("new {i}")),
                    expires_at: deadline,
                };
                match store.save(&keys[i], &rec, CREATE).await {
                    Ok(v) if v == FIRST_VERSION => {}
                    Ok(v) => {
                        return Err(format!(
                            "save(Create) over expired record #{i} returned version {v}, expected {FIRST_VERSION}"
                        ));
                    }
                    Err(e) => {
                        return Err(format!(
                            "save(Create) over expired record #{i}, racing sweeps: expected Ok, got Err({e:?})"
                        ));
                    }
                }
                tokio::task::yield_now().await;
            }
            Ok(())
        });
    }
    let created = join_all(set, "creators").await;
    creating.store(false, std::sync::atomic::Ordering::Release);
    let swept = sweeper.await;
    for r in created? {
        if let Err(msg) = r {
            fail!("{msg}");
        }
    }
    let (sweeps, removed) = match swept {
        Ok(Ok(v)) => v,
        Ok(Err(msg)) => fail!("{msg}"),
        Err(e) => fail!("the sweeping task failed: {e}"),
    };
    ensure!(
        removed <= KEYS as u64,
        "{sweeps} sweeps racing creates removed {removed} records; only {KEYS} had expired"
    );
    for (i, k) in keys.iter().enumerate() {
        load_exact(
            s.as_ref(),
            k,
            format!("new {i}").as_bytes(),
            FIRST_VERSION,
            Some(deadline),
            &format!("load of record #{i}, created over an expired one while {sweeps} sweeps ran"),
        )
        .await?;
    }
    Ok(())
}

/// Native TTL: a record written with a 1.5 s deadline disappears by itself, in real time, within about 6 s.
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

/// Without the delete_expired capability, delete_expired returns `Unsupported`; with it, never.
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

/// Without an injected clock, how far from "now" the sweep cases put deadlines: a
/// live record must outlast the whole case, which the runner cuts off after
/// `CASE_TIMEOUT` (3 min), so the nearest is 4 min ahead; an expired one must be
/// past on a server whose clock is behind ours, so the nearest is 1 h back (the
/// margin every other real-time case uses).
const REAL_TIME_LIVE: [Duration; 3] = [
    Duration::minutes(4),
    Duration::minutes(10),
    Duration::hours(1),
];
const REAL_TIME_EXPIRED: [Duration; 2] = [Duration::hours(-1), Duration::hours(-2)];

/// With an injected clock, the deadlines around a round's instant `w` (a whole
/// second, which every store represents exactly): the clock is then set to
/// `w - 1 ms`, so the live records are 1 ms, 1.001 s and 60.001 s from their
/// deadline, the expired ones 0.999 s, 59.999 s and 1 h past it.
const LIVE_AFTER_W: [Duration; 3] = [Duration::ZERO, Duration::seconds(1), Duration::minutes(1)];
const EXPIRED_BEFORE_W: [Duration; 3] = [
    Duration::seconds(-1),
    Duration::minutes(-1),
    Duration::hours(-1),
];

/// How many tasks write a round's records (file and SQL stores write faster in
/// parallel).
const WRITERS: usize = 8;

/// Writes every `(key, record)` with `save(Create)`, from [`WRITERS`] tasks.
async fn write_all(ctx: &Ctx, records: &[(StorageKey, NewRecord)], what: &str) -> CaseResult {
    let records = Arc::new(records.to_vec());
    let mut set = JoinSet::new();
    for t in 0..WRITERS {
        let (store, records) = (Arc::clone(ctx.store()), Arc::clone(&records));
        set.spawn(async move {
            for i in (t..records.len()).step_by(WRITERS) {
                let (k, rec) = &records[i];
                if let Err(e) = store.save(k, rec, CREATE).await {
                    return Err(format!("save(Create) of record #{i}: got Err({e:?})"));
                }
            }
            Ok(())
        });
    }
    for r in join_all(set, what).await? {
        if let Err(msg) = r {
            fail!("{what}: {msg}");
        }
    }
    Ok(())
}

/// A record a sweep round wrote and expects to find again.
struct Live {
    key: StorageKey,
    record: NewRecord,
    /// How far from its deadline it is when the sweep runs, for messages.
    margin: &'static str,
}

/// Runs `rounds` of: write `expired` records that will be past their deadline and
/// `live` ones that will not, interleaved and (three in four) crowded into one
/// shard; move to the round's instant; `delete_expired` must count exactly the
/// expired records (with the previous round's live ones, which have expired since)
/// and leave every live one as it was; a second sweep finds nothing.
async fn sweep_rounds(ctx: &Ctx, rounds: &[ladder::SweepRound], label: &str) -> CaseResult {
    ctx.need_delete_expired()?;
    let s = ctx.store().as_ref();
    let native = ctx.caps().native_ttl;
    let crowd = key()?;
    // Without a clock the live records stay live to the end of the case, so the
    // rounds cannot follow one another: they are written as one round of them all.
    let merged = [ladder::SweepRound {
        expired: rounds.iter().map(|r| r.expired).sum(),
        live: rounds.iter().map(|r| r.live).sum(),
    }];
    let rounds = if ctx.fx.clock.is_some() {
        rounds
    } else {
        &merged[..]
    };
    let mut carried = 0usize;
    for (r, round) in rounds.iter().enumerate() {
        let what = format!(
            "{label}, round {r} ({} expired, {} live, {carried} live from the round before)",
            round.expired, round.live
        );
        // With a clock: the round's instant, far enough ahead that every record is
        // live while it is written (so nothing is purged early) and that the
        // previous round's live records are past their deadlines.
        let w: Option<OffsetDateTime> = match &ctx.fx.clock {
            Some(_) => Some(
                (ctx.now() + Duration::hours(2))
                    .replace_nanosecond(0)
                    .map_err(|e| CaseError::Fail(format!("a whole-second instant: {e}")))?,
            ),
            None => None,
        };
        let mut records = Vec::with_capacity(round.expired + round.live);
        let mut live = Vec::with_capacity(round.live);
        for i in 0..round.expired.max(round.live) {
            for (is_live, n) in [(false, round.expired), (true, round.live)] {
                if i >= n {
                    continue;
                }
                let k = if records.len() % 4 == 3 {
                    key()?
                } else {
                    ladder::crowded_key(&crowd)?
                };
                let (expires_at, margin) = match (w, is_live) {
                    (Some(w), true) => (
                        w + LIVE_AFTER_W[i % 3],
                        ["1 ms", "1.001 s", "60.001 s"][i % 3],
                    ),
                    (Some(w), false) => (w + EXPIRED_BEFORE_W[i % 3], "expired"),
                    (None, true) => (
                        ctx.now() + REAL_TIME_LIVE[i % 3],
                        ["4 min", "10 min", "1 h"][i % 3],
                    ),
                    (None, false) => (ctx.now() + REAL_TIME_EXPIRED[i % 2], "expired"),
                };
                let record = NewRecord {
                    payload: Bytes::from(format!(
                        "round {r} {} record {i}",
                        if is_live { "live" } else { "expired" }
                    )),
                    expires_at,
                };
                if is_live {
                    live.push(Live {
                        key: k.clone(),
                        record: record.clone(),
                        margin,
                    });
                }
                records.push((k, record));
            }
        }
        write_all(ctx, &records, &format!("{what}: writing")).await?;
        if let (Some(clock), Some(w)) = (&ctx.fx.clock, w) {
            clock.set(w - Duration::milliseconds(1));
        }
        let expected = (round.expired + carried) as u64;
        let n = s
            .delete_expired()
            .await
            .or_fail(&format!("{what}: delete_expired"))?;
        // The count is exact only where every record was live while anything was
        // written: a store may purge expired records as it writes (session-memory
        // does, past a size), and those are not `delete_expired`'s to count. With a
        // clock that always holds; on real time the expired records are written
        // expired, so only an upper bound is checked there (and native-TTL stores
        // may return 0).
        if native || w.is_none() {
            ensure!(
                n <= expected,
                "{what}: delete_expired returned {n}; only {expected} records had expired"
            );
        } else {
            ensure!(
                n == expected,
                "{what}: delete_expired returned {n}, expected {expected} (the number of expired records)"
            );
        }
        for (i, l) in live.iter().enumerate() {
            let r = s
                .load(&l.key)
                .await
                .or_fail(&format!("{what}: load of live record #{i}"))?;
            match r {
                None => fail!(
                    "{what}: live record #{i}, {} before its deadline, was gone after delete_expired",
                    l.margin
                ),
                Some(got) => {
                    if let Some(diff) = payload_diff(&l.record.payload, &got.payload) {
                        fail!(
                            "{what}: live record #{i} after delete_expired: payload differs: {diff}"
                        );
                    }
                    ensure!(
                        got.version == FIRST_VERSION && near(got.expires_at, l.record.expires_at),
                        "{what}: live record #{i} after delete_expired: expected version {FIRST_VERSION} and expires_at {}, got {}",
                        l.record.expires_at,
                        Summary(&Some(got.clone()))
                    );
                }
            }
        }
        let again = s
            .delete_expired()
            .await
            .or_fail(&format!("{what}: second delete_expired"))?;
        ensure!(
            again == 0,
            "{what}: a second delete_expired returned {again}, expected 0"
        );
        carried = round.live;
    }
    if let (Some(clock), true) = (&ctx.fx.clock, carried > 0) {
        clock.advance(HOUR);
        let n = s
            .delete_expired()
            .await
            .or_fail(&format!("{label}: last delete_expired"))?;
        if !native {
            ensure!(
                n == carried as u64,
                "{label}: after every record's deadline delete_expired returned {n}, expected the last round's {carried}"
            );
        }
    }
    Ok(())
}

/// `delete_expired` never purges a live record however near its deadline (1 ms, 1 s, 1 min with an injected clock), and purges every expired one.
pub(crate) async fn sweep_spares_records_near_their_deadline(ctx: Ctx) -> CaseResult {
    let round = ladder::SweepRound {
        expired: 6,
        live: 6,
    };
    sweep_rounds(&ctx, &[round], "records near their deadline").await
}

/// `delete_expired` removes and counts exactly the expired records among hundreds (thorough: thousands) crowded into one shard, across the batches stores sweep in.
pub(crate) async fn sweep_crosses_batch_boundaries(ctx: Ctx) -> CaseResult {
    let rounds = ladder::sweep_rounds(&ctx);
    sweep_rounds(&ctx, &rounds, "sweep over batch boundaries").await
}
