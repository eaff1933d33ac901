//! Keys and namespaces never see each other's records.

use super::prelude::*;

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

/// Every acknowledged create is kept: 2,100 live records (thorough: 25,000) in one namespace all load back, none evicted to make room.
///
/// A store that bounds its records (an LRU of 1,024 or 2,048 entries, a cache
/// with a maximum size) loses acknowledged sessions without a word; the other
/// cases never hold more than about a thousand records at once.
pub(crate) async fn many_live_records_all_kept(ctx: Ctx) -> CaseResult {
    const TASKS: usize = 8;
    let n = if ctx.thorough { 25_000 } else { 2_100 };
    let keys: Arc<Vec<StorageKey>> = Arc::new((0..n).map(|_| key()).collect::<Result<_, _>>()?);
    let deadline = ctx.now() + HOUR;
    for phase in ["save(Create)", "load"] {
        let mut set = JoinSet::new();
        for t in 0..TASKS {
            let store = Arc::clone(ctx.store());
            let keys = Arc::clone(&keys);
            set.spawn(async move {
                for i in (t..n).step_by(TASKS) {
                    let payload = Bytes::from(format!("record {i}"));
                    if phase == "save(Create)" {
                        let rec = NewRecord {
                            payload,
                            expires_at: deadline,
                        };
                        if let Err(e) = store.save(&keys[i], &rec, CREATE).await {
                            return Err(format!("save(Create) of record #{i}: Err({e:?})"));
                        }
                        continue;
                    }
                    match store.load(&keys[i]).await {
                        Ok(Some(r)) if r.payload == payload && r.version == FIRST_VERSION => {}
                        Ok(r) => {
                            return Err(format!(
                                "load of record #{i} of {n} (all created 1 h ahead): got {}",
                                Summary(&r)
                            ));
                        }
                        Err(e) => return Err(format!("load of record #{i} of {n}: Err({e:?})")),
                    }
                }
                Ok(())
            });
        }
        for r in join_all(set, &format!("{phase} of {n} records")).await? {
            if let Err(msg) = r {
                fail!("{msg}");
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

/// Keys of the same shape that differ only in their letters (the part a case-folding collation or normaliser would touch), or only in their digits.
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

/// Keys sharing a long prefix or suffix (a store that truncates or hashes part of the key would merge them) are distinct.
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

/// Another namespace of the same backend, holding a record under the key `k` that
/// the case then works on in its own namespace.
struct Neighbour {
    fx: crate::Fixture,
    key: StorageKey,
    record: NewRecord,
    version: u64,
}

impl Neighbour {
    /// Opens another namespace and writes `k` there at version 2 (a create and an
    /// update), with a 4,097-byte payload (past session-redis's large-update
    /// threshold) and a deadline 2 h ahead.
    async fn open(ctx: &Ctx, k: &StorageKey) -> Result<Self, CaseError> {
        let fx = ctx.open_other().await?;
        let b = fx.store.as_ref();
        let first = NewRecord {
            payload: pattern(100, 1),
            expires_at: now_of(&fx) + HOUR * 2,
        };
        b.save(k, &first, CREATE)
            .await
            .or_fail("save(Create) in the other namespace")?;
        let record = NewRecord {
            payload: pattern(4097, 2),
            expires_at: now_of(&fx) + HOUR * 2,
        };
        let version = b
            .save(k, &record, update(FIRST_VERSION))
            .await
            .or_fail("update in the other namespace")?;
        Ok(Self {
            fx,
            key: k.clone(),
            record,
            version,
        })
    }

    /// Fails unless the other namespace's record is byte for byte as written.
    async fn intact(&self, after: &str) -> CaseResult {
        load_exact(
            self.fx.store.as_ref(),
            &self.key,
            &self.record.payload,
            self.version,
            Some(self.record.expires_at),
            &format!("load in the other namespace after {after} of the same key here"),
        )
        .await
    }
}

/// `load` never returns the record another namespace holds under the same key.
pub(crate) async fn namespace_isolated_on_load(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let other = Neighbour::open(&ctx, &k).await?;
    load_none(s, &k, "load of a key only another namespace holds").await?;
    s.save(&k, &ctx.rec(&b"here"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) here")?;
    load_exact(
        s,
        &k,
        b"here",
        FIRST_VERSION,
        None,
        "load here of a key both namespaces hold",
    )
    .await?;
    other.intact("a create and loads").await
}

/// `save(Create)` of a key another namespace holds live succeeds and leaves that record intact.
pub(crate) async fn namespace_isolated_on_create(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let other = Neighbour::open(&ctx, &k).await?;
    let v = s
        .save(&k, &ctx.rec(pattern(70_000, 3), HOUR), CREATE)
        .await
        .or_fail("save(Create) of a key another namespace holds live (must not collide)")?;
    ensure!(
        v == FIRST_VERSION,
        "save(Create) returned {v}, expected {FIRST_VERSION}"
    );
    other.intact("save(Create)").await
}

/// `save(Update)` sees only this namespace's record: `NotFound` when only another namespace holds the key, and its version check ignores the other record's version.
pub(crate) async fn namespace_isolated_on_update(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let other = Neighbour::open(&ctx, &k).await?;
    for size in [5, 300 << 10] {
        expect_err!(
            s.save(&k, &ctx.rec(pattern(size, 4), HOUR), update(other.version))
                .await,
            Error::NotFound,
            "{size}-byte update here of a key only another namespace holds (at the version given)"
        );
    }
    load_none(s, &k, "load here after the refused updates").await?;
    other.intact("refused updates").await?;
    s.save(&k, &ctx.rec(&b"here"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) here")?;
    for size in [5, 300 << 10] {
        expect_err!(
            s.save(&k, &ctx.rec(pattern(size, 5), HOUR), update(other.version))
                .await,
            Error::Conflict,
            "{size}-byte update here with the other namespace's version {} (this record is at {FIRST_VERSION})",
            other.version
        );
    }
    let rec = ctx.rec(pattern(300 << 10, 6), HOUR);
    s.save(&k, &rec, update(FIRST_VERSION))
        .await
        .or_fail("update here with this namespace's version")?;
    load_exact(
        s,
        &k,
        &rec.payload,
        FIRST_VERSION + 1,
        Some(rec.expires_at),
        "load here after the update",
    )
    .await?;
    other.intact("updates").await
}

/// `touch` of a key only another namespace holds returns false; touching this namespace's record, later or into the past, never moves the other's deadline.
pub(crate) async fn namespace_isolated_on_touch(ctx: Ctx) -> CaseResult {
    ctx.need_touch()?;
    let s = ctx.store().as_ref();
    let k = key()?;
    let other = Neighbour::open(&ctx, &k).await?;
    let existed = s
        .touch(&k, ctx.now() + HOUR * 5)
        .await
        .or_fail("touch here")?;
    ensure!(
        !existed,
        "touch of a key only another namespace holds returned true"
    );
    other.intact("touch of an absent key").await?;
    s.save(&k, &ctx.rec(&b"here"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) here")?;
    let existed = s
        .touch(&k, ctx.now() + HOUR * 5)
        .await
        .or_fail("touch here to +5 h")?;
    ensure!(existed, "touch of a live record here returned false");
    other.intact("touch to +5 h").await?;
    let existed = s
        .touch(&k, ctx.now() - HOUR)
        .await
        .or_fail("touch here into the past")?;
    ensure!(
        existed,
        "touch into the past of a live record here returned false"
    );
    load_none(s, &k, "load here after touching into the past").await?;
    other.intact("touch into the past").await
}

/// `load_and_touch` sees only this namespace's record: `None` for a key only another namespace holds, and a move here — with the bound before the new deadline or at it, into the future or the past — never moves, returns or revives the other's record.
pub(crate) async fn namespace_isolated_on_load_and_touch(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let other = Neighbour::open(&ctx, &k).await?;
    // (new deadline, due_before): the bound before the new deadline (the manager's
    // default threshold) and at it (threshold 0), which stores may answer on
    // different paths; each one due for the other namespace's record (2 h ahead).
    let calls = [(HOUR * 5, HOUR * 4), (HOUR * 6, HOUR * 6)];
    for (new, due) in calls {
        match s.load_and_touch(&k, ctx.now() + new, ctx.now() + due).await {
            Ok(None) => {}
            Ok(Some(r)) => fail!(
                "load_and_touch here (bound {due} ahead) of a key only another namespace holds returned a record (version {}, {} bytes)",
                r.record.version,
                r.record.payload.len()
            ),
            Err(e) => {
                fail!("load_and_touch here of a key only another namespace holds: Err({e:?})")
            }
        }
        other
            .intact(&format!(
                "load_and_touch (bound {due} ahead) of an absent key"
            ))
            .await?;
    }
    s.save(&k, &ctx.rec(&b"here"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) here")?;
    let calls = [(HOUR * 3, HOUR * 2), (HOUR * 4, HOUR * 4)];
    for (new, due) in calls {
        let what = format!("load_and_touch here to +{new} (bound {due} ahead)");
        match s.load_and_touch(&k, ctx.now() + new, ctx.now() + due).await {
            Ok(Some(r)) => {
                ensure!(
                    &r.record.payload[..] == b"here" && r.record.version == FIRST_VERSION,
                    "{what}: returned version {} with {} bytes, expected this namespace's record",
                    r.record.version,
                    r.record.payload.len()
                );
                ensure!(
                    r.touched || !ctx.caps().touch,
                    "{what}: a due call reported touched = false"
                );
            }
            Ok(None) => fail!("{what}: None for a live record here"),
            Err(e) => fail!("{what}: Err({e:?})"),
        }
        other.intact(&what).await?;
    }
    if ctx.caps().touch {
        // Into the past: this record dies, the other lives on.
        let newest = ctx.now() + HOUR * 5;
        s.load_and_touch(&k, ctx.now() - HOUR, newest)
            .await
            .or_fail("load_and_touch here into the past")?;
        load_none(s, &k, "load here after load_and_touch into the past").await?;
        other.intact("load_and_touch into the past").await?;
    }
    Ok(())
}

/// `expire` removes only this namespace's record: the other namespace's record under the same key stays intact.
pub(crate) async fn namespace_isolated_on_expire(ctx: Ctx) -> CaseResult {
    let s = ctx.store().as_ref();
    let k = key()?;
    let other = Neighbour::open(&ctx, &k).await?;
    s.expire(&k)
        .await
        .or_fail("expire here of a key only another namespace holds")?;
    other.intact("expire of an absent key").await?;
    s.save(&k, &ctx.rec(&b"here"[..], HOUR), CREATE)
        .await
        .or_fail("save(Create) here")?;
    s.expire(&k).await.or_fail("expire here")?;
    load_none(s, &k, "load here after expire").await?;
    other.intact("expire").await
}

/// `delete_expired` purges and counts only this namespace's expired records, never another namespace's (expired or live) under the same key.
pub(crate) async fn namespace_isolated_on_delete_expired(ctx: Ctx) -> CaseResult {
    ctx.need_delete_expired()?;
    let s = ctx.store().as_ref();
    let native = ctx.caps().native_ttl;
    let (k, k2) = (key()?, key()?);
    let other = Neighbour::open(&ctx, &k).await?;
    let b = other.fx.store.as_ref();
    // This namespace: `k` expired, `k2` live. The other: `k` live, `k2` expired.
    // Expired records are written last in each namespace: a store may purge expired
    // records when it writes (session-memory does, past a size), and what it purged
    // then is not `delete_expired`'s to count.
    let live_here = ctx.rec(&b"live here"[..], HOUR);
    s.save(&k2, &live_here, CREATE)
        .await
        .or_fail("save(Create) here")?;
    s.save(&k, &ctx.rec(&b"expired here"[..], -HOUR), CREATE)
        .await
        .or_fail("save(Create) here with a deadline 1 h in the past")?;
    b.save(
        &k2,
        &NewRecord {
            payload: Bytes::from_static(b"expired there"),
            expires_at: now_of(&other.fx) - HOUR,
        },
        CREATE,
    )
    .await
    .or_fail("save(Create) in the other namespace with a deadline 1 h in the past")?;
    let n = s.delete_expired().await.or_fail("delete_expired here")?;
    if native {
        ensure!(
            n <= 1,
            "delete_expired here returned {n}; only 1 record here had expired"
        );
    } else {
        ensure!(
            n == 1,
            "delete_expired here returned {n}, expected 1 (this namespace's only expired record)"
        );
    }
    load_exact(
        s,
        &k2,
        b"live here",
        FIRST_VERSION,
        Some(live_here.expires_at),
        "load here after delete_expired",
    )
    .await?;
    other.intact("delete_expired").await?;
    let there = b
        .delete_expired()
        .await
        .or_fail("delete_expired in the other namespace")?;
    if !native {
        ensure!(
            there == 1,
            "delete_expired in the other namespace returned {there}, expected 1: its expired record was purged (or counted) by the sweep here"
        );
    }
    other.intact("both sweeps").await
}
