//! "No lost updates, no resurrection", checked as a history: many concurrent requests
//! on one user's session — random mixes of insert, remove, clear, `cycle_id`,
//! `destroy` and read — through two `SessionManager`s over one store (two processes,
//! as far as the per-session queue knows), every response recorded. Then a search
//! looks for one serial order of the requests, consistent with real time (a request
//! that ended before another began comes first), that explains every response and
//! the final contents of the store:
//!
//! - every acknowledged change is present unless a later request removed it;
//! - nothing comes back after a `destroy`, and an id retired by `cycle_id` is dead;
//! - a request may answer "session gone" (changes dropped) only where its session
//!   was destroyed, emptied or moved to a new id before it;
//! - only the request that ends a session (destroy, emptying) removes its cookie: a
//!   request through a dead cookie, or whose session is gone, sends no `Set-Cookie`
//!   (a removal would delete the cookie a concurrent login has just set).
//!
//! Against memory and file always; against every server store whose URL is set (in
//! CI all of them: `SESSION_TEST_REQUIRE` makes a missing server fail). The seed of a
//! failing run is printed; `LIFECYCLE_SEED=<seed>` replays its choices.
//!
//! The file also holds the one-process promise: 50 concurrent additions to one
//! session through one manager all succeed with the default `save_attempts`, cost 50
//! writes and meet no conflict, on every backend.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use conformance_tests::{Harness, Namespace, SetupError};
use session_core::time::OffsetDateTime;
use session_core::{
    Capabilities, CookieDecision, Error, NewRecord, SaveMode, SessionConfig, SessionInterface,
    SessionManager, StorageKey, StoredRecord, Version,
};

type Data = BTreeMap<String, i64>;

/// What one request does to its session.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Read,
    Insert(&'static str, i64),
    Remove(&'static str),
    Clear,
    Cycle,
    Destroy,
}

impl Op {
    fn writes(&self) -> bool {
        !matches!(self, Op::Read)
    }
}

/// The cookie part of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Leave,
    Set(String),
    Remove,
}

/// One request of the history.
#[derive(Debug, Clone)]
struct Request {
    id: usize,
    /// The cookie the request carried.
    cookie: Option<String>,
    op: Op,
    /// Logical times: a request that ended before another began precedes it.
    start: u64,
    end: u64,
    answer: Answer,
    /// What a read saw.
    read: Option<Data>,
    /// The session had ended meanwhile and nothing of the request was saved
    /// (`Session::ended_meanwhile`): the one sign of "gone", whose answer is `Leave`.
    dropped: bool,
}

/// The keys requests work on: few, so sessions empty and refill often.
const KEYS: [&str; 3] = ["a", "b", "c"];

/// A small deterministic generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    match std::env::var("LIFECYCLE_SEED") {
        Ok(s) => s.parse().expect("LIFECYCLE_SEED must be a number"),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            nanos | 1
        }
    }
}

/// A random request. Removals favour `a` (every seeded session holds it) and
/// additions the other keys, so "remove the last item while another tab adds one"
/// comes up often.
fn random_op(rng: &mut Rng, value: i64) -> Op {
    let any = KEYS[rng.below(KEYS.len() as u64) as usize];
    let (removed, added) = if rng.below(3) == 0 {
        (any, any)
    } else {
        ("a", KEYS[1 + rng.below(2) as usize])
    };
    match rng.below(20) {
        0..=4 => Op::Read,
        5..=10 => Op::Insert(added, value),
        11..=14 => Op::Remove(removed),
        15..=16 => Op::Clear,
        17..=18 => Op::Cycle,
        _ => Op::Destroy,
    }
}

fn answer_of(decision: &CookieDecision) -> Answer {
    match decision {
        CookieDecision::Leave => Answer::Leave,
        CookieDecision::Set(c) => Answer::Set(c.value().to_owned()),
        CookieDecision::Remove(_) => Answer::Remove,
    }
}

/// Runs one request through `manager` and records it.
async fn run_request(
    manager: &SessionManager,
    clock: &AtomicU64,
    id: usize,
    cookie: Option<String>,
    op: Op,
    pause: StdDuration,
) -> Result<Request, String> {
    let start = clock.fetch_add(1, Ordering::SeqCst);
    let session = manager.session(cookie.as_deref());
    let mut read = None;
    let step = async {
        match &op {
            Op::Read => {
                let mut data = Data::new();
                for (k, v) in session.entries().await? {
                    data.insert(k, v.as_i64().unwrap_or(i64::MIN));
                }
                read = Some(data);
            }
            Op::Insert(k, v) => session.insert(k, v).await?,
            Op::Remove(k) => {
                session.remove(k).await?;
            }
            Op::Clear => session.clear().await?,
            Op::Cycle => session.cycle_id().await?,
            Op::Destroy => session.destroy(),
        }
        Ok::<(), Error>(())
    };
    step.await
        .map_err(|e| format!("request {id} ({op:?}): {e}"))?;
    // Widen the window between this request's load and its save.
    tokio::time::sleep(pause).await;
    let decision = manager
        .finish(&session)
        .await
        .map_err(|e| format!("request {id} ({op:?}) finish: {e}"))?;
    let end = clock.fetch_add(1, Ordering::SeqCst);
    Ok(Request {
        id,
        cookie,
        op,
        start,
        end,
        answer: answer_of(&decision),
        read,
        dropped: session.ended_meanwhile(),
    })
}

/// The serial model: the live sessions by token, and the tokens that were live once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Model {
    live: BTreeMap<String, Data>,
    dead: BTreeSet<String>,
}

impl Model {
    fn kill(&mut self, token: &str) {
        if self.live.remove(token).is_some() {
            self.dead.insert(token.to_owned());
        }
    }

    fn is_new(&self, token: &str) -> bool {
        !self.live.contains_key(token) && !self.dead.contains(token)
    }

    /// The states in which `r`, run alone on `self`, gives the answer it gave.
    fn step(&self, r: &Request) -> Vec<Model> {
        let mut out = Vec::new();
        let live = r.cookie.as_ref().filter(|c| self.live.contains_key(*c));
        let removal_if_cookie = if r.cookie.is_some() {
            Answer::Remove
        } else {
            Answer::Leave
        };
        match (live, &r.op) {
            (_, Op::Destroy) => {
                if r.answer == removal_if_cookie && !r.dropped {
                    let mut m = self.clone();
                    if let Some(c) = &r.cookie {
                        m.kill(c);
                    }
                    out.push(m);
                }
            }
            (Some(c), op) => {
                let data = &self.live[c];
                let mut m = self.clone();
                let fits = match op {
                    Op::Read => r.answer == Answer::Leave && r.read.as_ref() == Some(data),
                    Op::Insert(k, v) => {
                        m.live.get_mut(c).map(|d| d.insert((*k).to_owned(), *v));
                        r.answer == Answer::Leave
                    }
                    Op::Remove(k) if data.contains_key(*k) && data.len() == 1 => {
                        m.kill(c);
                        r.answer == Answer::Remove
                    }
                    Op::Remove(k) => {
                        m.live.get_mut(c).map(|d| d.remove(*k));
                        r.answer == Answer::Leave
                    }
                    Op::Clear => {
                        m.kill(c);
                        r.answer == Answer::Remove
                    }
                    Op::Cycle => match &r.answer {
                        Answer::Set(new) if self.is_new(new) => {
                            m.kill(c);
                            m.live.insert(new.clone(), data.clone());
                            true
                        }
                        _ => false,
                    },
                    Op::Destroy => unreachable!("handled above"),
                };
                if fits && !r.dropped {
                    out.push(m);
                }
            }
            (None, op) => {
                // No live session under the cookie: a fresh, empty one, and the
                // (dead) cookie left alone.
                let fits = match op {
                    Op::Read => r.answer == Answer::Leave && r.read.as_ref() == Some(&Data::new()),
                    Op::Insert(k, v) => match &r.answer {
                        Answer::Set(new) if self.is_new(new) => {
                            let mut m = self.clone();
                            m.live
                                .insert(new.clone(), Data::from([((*k).to_owned(), *v)]));
                            out.push(m);
                            false
                        }
                        _ => false,
                    },
                    _ => r.answer == Answer::Leave,
                };
                if fits && !r.dropped {
                    out.push(self.clone());
                }
                // "Session gone": the request loaded its session, which was then
                // destroyed, emptied or moved before it saved; its changes are
                // dropped and its cookie left alone.
                let gone = r.dropped
                    && r.op.writes()
                    && r.answer == Answer::Leave
                    && r.cookie.as_ref().is_some_and(|c| self.dead.contains(c));
                if gone {
                    out.push(self.clone());
                }
            }
        }
        out
    }
}

/// Searches for a serial order of `history` that explains every answer and ends in
/// `actual`. Returns the order's request ids.
fn explain(
    history: &[Request],
    start: Model,
    actual: &BTreeMap<String, Data>,
) -> Option<Vec<usize>> {
    fn search(
        history: &[Request],
        placed: u64,
        model: &Model,
        actual: &BTreeMap<String, Data>,
        failed: &mut HashSet<(u64, Model)>,
        order: &mut Vec<usize>,
    ) -> bool {
        if placed.count_ones() as usize == history.len() {
            return &model.live == actual;
        }
        if failed.contains(&(placed, model.clone())) {
            return false;
        }
        for (i, r) in history.iter().enumerate() {
            if placed & (1 << i) != 0 {
                continue;
            }
            // Real time: every request that ended before r began must come first.
            let blocked = history
                .iter()
                .enumerate()
                .any(|(j, q)| placed & (1 << j) == 0 && j != i && q.end < r.start);
            if blocked {
                continue;
            }
            for next in model.step(r) {
                order.push(r.id);
                if search(history, placed | (1 << i), &next, actual, failed, order) {
                    return true;
                }
                order.pop();
            }
        }
        failed.insert((placed, model.clone()));
        false
    }
    assert!(history.len() <= 64);
    let mut order = Vec::new();
    search(history, 0, &start, actual, &mut HashSet::new(), &mut order).then_some(order)
}

/// What the store holds for each token: the session's data where it is live.
async fn store_contents(
    reader: &SessionManager,
    tokens: &BTreeSet<String>,
) -> Result<BTreeMap<String, Data>, Error> {
    let mut out = BTreeMap::new();
    for token in tokens {
        let session = reader.session(Some(token));
        if session.exists().await? {
            let mut data = Data::new();
            for (k, v) in session.entries().await? {
                data.insert(k, v.as_i64().unwrap_or(i64::MIN));
            }
            out.insert(token.clone(), data);
        }
    }
    Ok(out)
}

/// How many rounds and requests the history check runs per backend.
const ROUNDS: usize = 80;
const REQUESTS_PER_ROUND: usize = 8;

/// Runs the history check on `store` and panics with the history when no serial
/// order explains it.
async fn check_histories(backend: &str, store: Arc<dyn SessionInterface>) {
    let seed = seed();
    let mut rng = Rng(seed);
    let config = SessionConfig::default();
    let managers = [
        SessionManager::new(Arc::clone(&store), config.clone()),
        SessionManager::new(Arc::clone(&store), config.clone()),
    ];
    let reader = SessionManager::new(Arc::clone(&store), config);
    for round in 0..ROUNDS {
        // A session with one key (two in a third of the rounds), so removals
        // empty it often.
        let seeded = managers[0].session(None);
        for k in &KEYS[..1 + usize::from(rng.below(3) == 0)] {
            seeded.insert(k, &-1i64).await.unwrap();
        }
        let CookieDecision::Set(cookie) = managers[0].finish(&seeded).await.unwrap() else {
            panic!("{backend}: a new session must set its cookie");
        };
        let first = cookie.value().to_owned();
        let start = Model {
            live: BTreeMap::from([(first.clone(), seeded_data(&seeded).await)]),
            dead: BTreeSet::new(),
        };
        drop(seeded);

        // The browser's cookie jar: each request takes what the jar holds when it
        // starts; each answer updates it as it arrives.
        let jar = Arc::new(std::sync::Mutex::new(Some(first.clone())));
        let clock = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for id in 0..REQUESTS_PER_ROUND {
            let manager = managers[rng.below(2) as usize].clone();
            let op = random_op(&mut rng, (round * REQUESTS_PER_ROUND + id) as i64);
            // Requests start within 2 ms and hold their session up to 5 ms, so most
            // of them overlap.
            let delay = StdDuration::from_micros(rng.below(2_000));
            let pause = StdDuration::from_micros(rng.below(5_000));
            let (jar, clock) = (Arc::clone(&jar), Arc::clone(&clock));
            tasks.spawn(async move {
                tokio::time::sleep(delay).await;
                let cookie = jar.lock().unwrap().clone();
                let r = run_request(&manager, &clock, id, cookie, op, pause).await?;
                match &r.answer {
                    Answer::Set(v) => *jar.lock().unwrap() = Some(v.clone()),
                    Answer::Remove => *jar.lock().unwrap() = None,
                    Answer::Leave => {}
                }
                Ok::<_, String>(r)
            });
        }
        let mut history = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined.expect("a request task panicked") {
                Ok(r) => history.push(r),
                Err(e) => panic!("{backend}, round {round} (LIFECYCLE_SEED={seed}): {e}"),
            }
        }
        history.sort_by_key(|r| r.id);
        let mut tokens: BTreeSet<String> = BTreeSet::from([first]);
        tokens.extend(history.iter().filter_map(|r| match &r.answer {
            Answer::Set(v) => Some(v.clone()),
            _ => None,
        }));
        let actual = store_contents(&reader, &tokens).await.unwrap();
        if explain(&history, start.clone(), &actual).is_none() {
            panic!(
                "{backend}, round {round} (LIFECYCLE_SEED={seed}): no serial order explains \
                 this history.\nstart: {start:#?}\nhistory: {history:#?}\nstore at the end: {actual:#?}"
            );
        }
        // Leave nothing behind for the next round.
        for token in &tokens {
            let s = reader.session(Some(token));
            s.destroy();
            let _removed = reader.finish(&s).await.unwrap();
        }
    }
}

async fn seeded_data(session: &session_core::Session) -> Data {
    let mut data = Data::new();
    for (k, v) in session.entries().await.unwrap() {
        data.insert(k, v.as_i64().unwrap());
    }
    data
}

/// A store wrapper that counts updates and the conflicts among them.
struct Counting {
    inner: Arc<dyn SessionInterface>,
    updates: AtomicU64,
    conflicts: AtomicU64,
}

#[async_trait]
impl SessionInterface for Counting {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        let outcome = self.inner.save(key, record, mode).await;
        if let SaveMode::Update { .. } = mode {
            self.updates.fetch_add(1, Ordering::SeqCst);
            if matches!(outcome, Err(Error::Conflict)) {
                self.conflicts.fetch_add(1, Ordering::SeqCst);
            }
        }
        outcome
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        self.inner.expire(key).await
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        self.inner.touch(key, expires_at).await
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        self.inner.delete_expired().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

/// 50 concurrent additions to one session through one manager, with the default
/// `save_attempts`: every one succeeds, 50 updates, no conflict.
async fn fifty_concurrent_additions(backend: &str, store: Arc<dyn SessionInterface>) {
    const ADDS: usize = 50;
    let counting = Arc::new(Counting {
        inner: store,
        updates: AtomicU64::new(0),
        conflicts: AtomicU64::new(0),
    });
    let manager = SessionManager::new(counting.clone(), SessionConfig::default());
    let s = manager.session(None);
    s.insert("cart", &Vec::<u32>::new()).await.unwrap();
    let CookieDecision::Set(cookie) = manager.finish(&s).await.unwrap() else {
        panic!("{backend}: a new session must set its cookie");
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ADDS {
        let (manager, cookie) = (manager.clone(), cookie.value().to_owned());
        tasks.spawn(async move {
            let s = manager.session(Some(&cookie));
            s.insert(&format!("item{i}"), &i).await?;
            manager.finish(&s).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        let decision = r.expect("task panicked");
        assert!(
            matches!(decision, Ok(CookieDecision::Leave)),
            "{backend}: a concurrent addition answered {decision:?}"
        );
    }
    let (updates, conflicts) = (
        counting.updates.load(Ordering::SeqCst),
        counting.conflicts.load(Ordering::SeqCst),
    );
    assert_eq!(
        (updates, conflicts),
        (ADDS as u64, 0),
        "{backend}: updates and conflicts"
    );
    let check = manager.session(Some(cookie.value()));
    assert_eq!(
        check.len().await.unwrap(),
        ADDS + 1,
        "{backend}: every addition kept"
    );
    check.destroy();
    let _removed = manager.finish(&check).await.unwrap();
}

/// Opens a namespace of `harness` and runs both checks; a server that is not
/// configured is skipped with its reason (a failure when required).
async fn on(harness: impl Harness) {
    let ns = Namespace::new(format!("lifecycle_{}", harness.name().replace('-', "_")))
        .expect("a valid namespace");
    let fixture = match harness.open(&ns).await {
        Ok(f) => f,
        Err(SetupError::Skip(reason)) => {
            println!("skipped {}: {reason}", harness.name());
            return;
        }
        Err(e) => panic!("{}: {e}", harness.name()),
    };
    check_histories(harness.name(), Arc::clone(&fixture.store)).await;
    fifty_concurrent_additions(harness.name(), Arc::clone(&fixture.store)).await;
    harness.cleanup(&ns).await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    on(conformance_tests::backends::MemoryHarness).await;
}

#[cfg(feature = "file")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file() {
    on(conformance_tests::backends::FileHarness::temporary().unwrap()).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis() {
    on(conformance_tests::backends::RedisHarness::standalone()).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster() {
    on(conformance_tests::backends::RedisHarness::cluster()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    on(conformance_tests::backends::PostgresHarness::new(None)).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql() {
    on(conformance_tests::backends::MysqlHarness::new(None)).await;
}

#[cfg(test)]
mod checker {
    //! The checker itself must reject what it is there to reject.
    use super::*;

    fn req(id: usize, cookie: Option<&str>, op: Op, span: (u64, u64), answer: Answer) -> Request {
        Request {
            id,
            cookie: cookie.map(str::to_owned),
            op,
            start: span.0,
            end: span.1,
            answer,
            read: None,
            dropped: false,
        }
    }

    /// `r`, saying that its session had ended meanwhile and its changes were dropped.
    fn dropped(mut r: Request) -> Request {
        r.dropped = true;
        r
    }

    fn model(token: &str, data: &[(&str, i64)]) -> Model {
        Model {
            live: BTreeMap::from([(
                token.to_owned(),
                data.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            )]),
            dead: BTreeSet::new(),
        }
    }

    #[test]
    fn a_lost_addition_is_not_explained() {
        // A empties the session (removal cookie) while B adds and is acknowledged;
        // at the end the store holds nothing: defect 1 of issue #18.
        let history = vec![
            req(0, Some("t"), Op::Remove("a"), (0, 3), Answer::Remove),
            req(1, Some("t"), Op::Insert("b", 1), (1, 2), Answer::Leave),
        ];
        assert!(explain(&history, model("t", &[("a", 0)]), &BTreeMap::new()).is_none());
        // Had A come second, it would have kept B's addition.
        let kept = BTreeMap::from([("t".to_owned(), Data::from([("b".to_owned(), 1)]))]);
        let fine = vec![
            req(0, Some("t"), Op::Remove("a"), (0, 3), Answer::Leave),
            req(1, Some("t"), Op::Insert("b", 1), (1, 2), Answer::Leave),
        ];
        assert!(explain(&fine, model("t", &[("a", 0)]), &kept).is_some());
    }

    #[test]
    fn a_change_lost_by_cycle_id_is_not_explained() {
        // B adds and is acknowledged; A's cycle_id moved the old data only: defect 2.
        let history = vec![
            req(0, Some("t"), Op::Cycle, (0, 3), Answer::Set("u".into())),
            req(1, Some("t"), Op::Insert("b", 1), (1, 2), Answer::Leave),
        ];
        let lost = BTreeMap::from([("u".to_owned(), Data::from([("a".to_owned(), 0)]))]);
        assert!(explain(&history, model("t", &[("a", 0)]), &lost).is_none());
        let merged = BTreeMap::from([(
            "u".to_owned(),
            Data::from([("a".to_owned(), 0), ("b".to_owned(), 1)]),
        )]);
        assert!(explain(&history, model("t", &[("a", 0)]), &merged).is_some());
    }

    #[test]
    fn nothing_returns_after_a_destroy_that_ended_first() {
        let history = vec![
            req(0, Some("t"), Op::Destroy, (0, 1), Answer::Remove),
            req(1, Some("t"), Op::Insert("b", 1), (2, 3), Answer::Leave),
        ];
        let back = BTreeMap::from([(
            "t".to_owned(),
            Data::from([("a".to_owned(), 0), ("b".to_owned(), 1)]),
        )]);
        assert!(explain(&history, model("t", &[("a", 0)]), &back).is_none());
        // Gone is fine: the request's session was destroyed before it (its changes
        // dropped, its cookie left to the logout).
        let gone = vec![
            req(0, Some("t"), Op::Destroy, (0, 1), Answer::Remove),
            dropped(req(1, Some("t"), Op::Insert("b", 1), (2, 3), Answer::Leave)),
        ];
        assert!(explain(&gone, model("t", &[("a", 0)]), &BTreeMap::new()).is_some());
        // But not without a reason: a spurious "gone" on a live session fails.
        let spurious = vec![dropped(req(
            1,
            Some("t"),
            Op::Insert("b", 1),
            (2, 3),
            Answer::Leave,
        ))];
        let intact = BTreeMap::from([("t".to_owned(), Data::from([("a".to_owned(), 0)]))]);
        assert!(explain(&spurious, model("t", &[("a", 0)]), &intact).is_none());
    }

    #[test]
    fn only_the_request_that_ends_a_session_removes_its_cookie() {
        // A read through the id a login cycled away: empty, and no removal, which
        // would delete the new login cookie if it arrived after the login's answer.
        let mut login = model("t", &[("a", 0)]);
        login.kill("t");
        login
            .live
            .insert("u".into(), Data::from([("a".to_owned(), 0)]));
        let end = login.live.clone();
        let mut read = req(1, Some("t"), Op::Read, (0, 1), Answer::Leave);
        read.read = Some(Data::new());
        assert!(explain(std::slice::from_ref(&read), login.clone(), &end).is_some());
        read.answer = Answer::Remove;
        assert!(explain(&[read], login.clone(), &end).is_none());
        // Nor may a write whose session is gone remove the cookie.
        let write = req(1, Some("t"), Op::Insert("b", 1), (0, 1), Answer::Remove);
        assert!(explain(&[write], login, &end).is_none());
    }
}
