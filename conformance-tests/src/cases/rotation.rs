//! Periodic id rotation through the manager (session-core's `rotate_every`), on the
//! store under test. Rotation is built only on the storage contract — a `Create`,
//! a compare-and-set that turns the old record into a forward pointer, loads — so
//! every store must support it. The cases need the fixture's manual clock to move
//! past the rotation period and the grace window; without one they are skipped.

use std::sync::Arc;

use session_core::time::Duration;
use session_core::{
    CookieDecision, Error, ManualClock, SessionConfig, SessionManager, SessionToken, StoredRecord,
};

use crate::check::{CaseError, CaseResult, Ctx, OrFail, ensure, fail};

const PERIOD: Duration = Duration::hours(1);
const GRACE: Duration = Duration::seconds(60);

struct Rig {
    clock: ManualClock,
    manager: SessionManager,
    store: Arc<dyn session_core::SessionInterface>,
}

fn rig(ctx: &Ctx) -> Result<Rig, CaseError> {
    let clock = ctx.fx.clock.clone().ok_or_else(|| {
        CaseError::Skip(
            "rotation cases move time past the period and the grace window: the harness injects no clock".into(),
        )
    })?;
    let config = SessionConfig::builder()
        .rotate_every(Some(PERIOD))
        .rotation_grace(GRACE)
        .build()
        .map_err(|e| CaseError::Fail(format!("config: {e}")))?;
    let store = Arc::clone(ctx.store());
    let manager = SessionManager::with_clock(Arc::clone(&store), config, clock.shared());
    Ok(Rig {
        clock,
        manager,
        store,
    })
}

fn set_value(d: Result<CookieDecision, Error>, what: &str) -> Result<String, CaseError> {
    match d.or_fail(what)? {
        CookieDecision::Set(c) => Ok(c.value().to_owned()),
        other => fail!("{what}: expected a Set cookie, got {other:?}"),
    }
}

impl Rig {
    /// A new session holding `user = 1`; returns its cookie.
    async fn start(&self) -> Result<String, CaseError> {
        let s = self.manager.session(None);
        s.insert("user", &1).await.or_fail("insert")?;
        set_value(self.manager.finish(&s).await, "finish of a new session")
    }

    /// One request that reads the session; returns the cookie decision.
    async fn visit(&self, cookie: &str) -> Result<CookieDecision, CaseError> {
        let s = self.manager.session(Some(cookie));
        s.get::<i64>("user").await.or_fail("get")?;
        self.manager.finish(&s).await.or_fail("finish")
    }

    async fn raw(&self, cookie: &str) -> Result<Option<StoredRecord>, CaseError> {
        let Some(token) = SessionToken::parse(cookie) else {
            fail!("the manager issued a malformed cookie {cookie:?}");
        };
        self.store
            .load(&token.storage_key())
            .await
            .or_fail("raw load")
    }

    /// How many records the namespace holds: moves the clock ten years on and
    /// purges (so call it last). Needs the store's `delete_expired`.
    /// How many live records the store holds (None where it cannot sweep): records
    /// already dead are swept first — a store may keep a record removed by a
    /// compare-and-set removal until its next sweep — then time moves past every
    /// deadline and the sweep counts the rest.
    async fn count_all(&self) -> Result<Option<u64>, CaseError> {
        if !self.store.capabilities().delete_expired {
            return Ok(None);
        }
        self.store
            .delete_expired()
            .await
            .or_fail("delete_expired of the dead records")?;
        self.clock.advance(Duration::days(3650));
        Ok(Some(
            self.store
                .delete_expired()
                .await
                .or_fail("delete_expired")?,
        ))
    }

    async fn keys(&self, cookie: &str) -> Result<Vec<String>, CaseError> {
        self.manager
            .session(Some(cookie))
            .keys()
            .await
            .or_fail("keys")
    }
}

/// The id is rotated on the first request after the period, not before; the new id carries the data and is not rotated again at once.
pub(crate) async fn rotation_after_period_not_before(ctx: Ctx) -> CaseResult {
    let r = rig(&ctx)?;
    let old = r.start().await?;
    r.clock.advance(PERIOD - Duration::minutes(1));
    let d = r.visit(&old).await?;
    ensure!(
        d == CookieDecision::Leave,
        "rotated before the period: {d:?}"
    );
    r.clock.advance(Duration::minutes(2));
    let new = set_value(Ok(r.visit(&old).await?), "visit after the period")?;
    ensure!(new != old, "rotation kept the old id");
    ensure!(
        r.keys(&new).await? == ["user"],
        "the rotated session lost its data"
    );
    let d = r.visit(&new).await?;
    ensure!(
        d == CookieDecision::Leave,
        "a fresh id was rotated again: {d:?}"
    );
    Ok(())
}

/// A request that loaded the session before a rotation, and one that starts with the old cookie inside the grace window, both keep their changes (merged into the new record) and are handed the new cookie.
pub(crate) async fn rotation_old_cookie_in_window_merges(ctx: Ctx) -> CaseResult {
    let r = rig(&ctx)?;
    let old = r.start().await?;
    r.clock.advance(PERIOD + Duration::minutes(1));
    let in_flight = r.manager.session(Some(&old));
    in_flight.insert("a", &1).await.or_fail("insert a")?;
    let new = set_value(Ok(r.visit(&old).await?), "rotating visit")?;
    r.clock.advance(Duration::seconds(10));
    let got = set_value(r.manager.finish(&in_flight).await, "in-flight finish")?;
    ensure!(
        got == new,
        "the in-flight request got {got:?}, not the new id"
    );
    let late = r.manager.session(Some(&old));
    late.insert("b", &2).await.or_fail("insert b")?;
    let got = set_value(r.manager.finish(&late).await, "old-cookie finish")?;
    ensure!(
        got == new,
        "the old-cookie request got {got:?}, not the new id"
    );
    let keys = r.keys(&new).await?;
    ensure!(keys == ["a", "b", "user"], "merged keys: {keys:?}");
    Ok(())
}

/// After the grace window the old cookie is dead: a fresh session, never the data; the pointer's record lives exactly one grace window.
pub(crate) async fn rotation_old_cookie_dead_after_window(ctx: Ctx) -> CaseResult {
    let r = rig(&ctx)?;
    let old = r.start().await?;
    r.clock.advance(PERIOD + Duration::minutes(1));
    let rotated_at = r.clock_now();
    let new = set_value(Ok(r.visit(&old).await?), "rotating visit")?;
    let Some(pointer) = r.raw(&old).await? else {
        fail!("no pointer under the old key inside the window");
    };
    let expected = rotated_at + GRACE;
    ensure!(
        (pointer.expires_at - expected).abs() <= Duration::seconds(1),
        "the pointer expires at {}, expected {expected}",
        pointer.expires_at
    );
    let text = String::from_utf8_lossy(&pointer.payload);
    ensure!(
        !text.contains(&new),
        "the pointer holds the new cookie in clear"
    );
    r.clock.advance(GRACE + Duration::seconds(1));
    ensure!(
        r.raw(&old).await?.is_none(),
        "the pointer outlived its window"
    );
    let s = r.manager.session(Some(&old));
    ensure!(
        !s.exists().await.or_fail("exists")?,
        "the old cookie still finds a session after the window"
    );
    ensure!(
        r.manager
            .session(Some(&new))
            .exists()
            .await
            .or_fail("exists")?,
        "the new session is gone"
    );
    Ok(())
}

/// Two requests that both find the id due produce one new id, keep both changes, and leave exactly two records (the session and the pointer).
pub(crate) async fn rotation_racing_one_new_id(ctx: Ctx) -> CaseResult {
    let r = rig(&ctx)?;
    let old = r.start().await?;
    r.clock.advance(PERIOD + Duration::minutes(1));
    let a = r.manager.session(Some(&old));
    let b = r.manager.session(Some(&old));
    a.insert("a", &1).await.or_fail("insert a")?;
    b.insert("b", &2).await.or_fail("insert b")?;
    let (da, db) = tokio::join!(r.manager.finish(&a), r.manager.finish(&b));
    let (na, nb) = (set_value(da, "finish a")?, set_value(db, "finish b")?);
    ensure!(na == nb, "two rotations produced two ids");
    ensure!(na != old, "no rotation happened");
    let keys = r.keys(&na).await?;
    ensure!(keys == ["a", "b", "user"], "merged keys: {keys:?}");
    if let Some(n) = r.count_all().await? {
        ensure!(
            n == 2,
            "{n} records left, expected the session and its pointer"
        );
    }
    Ok(())
}

/// A session destroyed after rotation is not resurrected through the pointer, and logging out with the old cookie ends the rotated session too.
pub(crate) async fn rotation_destroy_not_resurrected(ctx: Ctx) -> CaseResult {
    let r = rig(&ctx)?;
    for logout_with_old in [false, true] {
        let old = r.start().await?;
        r.clock.advance(PERIOD + Duration::minutes(1));
        let new = set_value(Ok(r.visit(&old).await?), "rotating visit")?;
        let s = r
            .manager
            .session(Some(if logout_with_old { &old } else { &new }));
        s.destroy();
        let d = r.manager.finish(&s).await.or_fail("logout")?;
        ensure!(
            matches!(d, CookieDecision::Remove(_)),
            "logout did not remove the cookie: {d:?}"
        );
        ensure!(r.raw(&new).await?.is_none(), "the session survived logout");
        let s = r.manager.session(Some(&old));
        ensure!(
            !s.exists().await.or_fail("exists")?,
            "the old cookie found a session after logout"
        );
    }
    Ok(())
}

/// `cycle_id` (login) stays strict under rotation: the old id dies at once and no pointer is left, also for a request that came in through a pointer.
pub(crate) async fn rotation_cycle_id_leaves_no_pointer(ctx: Ctx) -> CaseResult {
    let r = rig(&ctx)?;
    let old = r.start().await?;
    r.clock.advance(PERIOD + Duration::minutes(1));
    let rotated = set_value(Ok(r.visit(&old).await?), "rotating visit")?;
    let s = r.manager.session(Some(&old));
    s.cycle_id().await.or_fail("cycle_id")?;
    let cycled = set_value(r.manager.finish(&s).await, "finish after cycle_id")?;
    ensure!(r.raw(&old).await?.is_none(), "cycle_id left the pointer");
    ensure!(
        r.raw(&rotated).await?.is_none(),
        "cycle_id left the old record"
    );
    ensure!(r.keys(&cycled).await? == ["user"], "cycle_id lost the data");
    if let Some(n) = r.count_all().await? {
        ensure!(n == 1, "{n} records left after cycle_id, expected 1");
    }
    Ok(())
}

impl Rig {
    fn clock_now(&self) -> session_core::time::OffsetDateTime {
        session_core::Clock::now(&self.clock)
    }
}
