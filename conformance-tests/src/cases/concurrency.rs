//! Racing operations on one key: one winner, and nothing older written back.

use super::prelude::*;

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

/// At every size on the ladder, of 32 concurrent updates with the same expected version exactly one succeeds and the rest are `Conflict`.
pub(crate) async fn concurrent_updates_one_winner(ctx: Ctx) -> CaseResult {
    for rung in ladder::sizes(&ctx) {
        // Four rounds where a round is cheap, two where 32 writers each carry a
        // large payload.
        let rounds = if rung.size <= 64 << 10 {
            ROUNDS
        } else {
            ROUNDS / 2
        };
        let base = pattern(rung.size, 0x3c);
        for round in 0..rounds {
            let what = format!("{} bytes ({}), round {round}", rung.size, rung.why);
            concurrent_updates_round(&ctx, &base, &what).await?;
        }
    }
    Ok(())
}

async fn concurrent_updates_round(ctx: &Ctx, base: &Bytes, what: &str) -> CaseResult {
    let k = key()?;
    let s = ctx.store();
    s.save(&k, &ctx.rec(base.clone(), HOUR), CREATE)
        .await
        .or_fail(&format!("{what}: save(Create)"))?;
    let barrier = Arc::new(Barrier::new(TASKS));
    let deadline = ctx.now() + HOUR;
    let mut set = JoinSet::new();
    for t in 0..TASKS {
        let (store, barrier, k) = (Arc::clone(s), Arc::clone(&barrier), k.clone());
        let rec = NewRecord {
            payload: ladder::marked(base, t),
            expires_at: deadline,
        };
        set.spawn(async move {
            barrier.wait().await;
            let r = store.save(&k, &rec, update(FIRST_VERSION)).await;
            (t, rec, r)
        });
    }
    let mut winners = Vec::new();
    for (t, rec, r) in join_all(set, "concurrent updates").await? {
        match r {
            Ok(v) if v == FIRST_VERSION + 1 => winners.push((t, rec)),
            Ok(v) => fail!(
                "{what}: update by task {t} returned version {v}, expected {}",
                FIRST_VERSION + 1
            ),
            Err(Error::Conflict) => {}
            Err(e) => {
                fail!("{what}: update by task {t}: expected Ok or Err(Conflict), got Err({e:?})")
            }
        }
    }
    let tasks: Vec<usize> = winners.iter().map(|(t, _)| *t).collect();
    ensure!(
        winners.len() == 1,
        "{what}: {TASKS} concurrent updates with expected version {FIRST_VERSION}: expected exactly 1 to succeed, {} succeeded (tasks {tasks:?})",
        winners.len()
    );
    let (t, rec) = &winners[0];
    load_exact(
        s.as_ref(),
        &k,
        &rec.payload,
        FIRST_VERSION + 1,
        Some(rec.expires_at),
        &format!("{what}: load after the concurrent updates (winner task {t})"),
    )
    .await
}

/// Expire racing a stream of updates: once expire has returned the session stays gone, whatever order the operations ran in.
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

/// Touch racing updates never brings back an older payload: the record ends with the payload of the update that returned the highest version.
///
/// Runs twice: with spawned tasks (real parallelism), and with the updater and
/// touchers polled in one task (so every `.await` inside the store interleaves with
/// the others).
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
