//! The rate-limited API (`GET /api/ping`): a per-session budget of
//! `--api-rate-limit` calls per `--api-rate-window`, kept in the session.
//!
//! The concurrency test sends 200 calls at once from one session to two demo
//! instances (each with its own `SessionManager`) over one server store, PostgreSQL
//! and Redis (each when its `SESSION_TEST_*` variable is set; failing instead of
//! skipping when `SESSION_TEST_REQUIRE` names it), and checks that exactly N are
//! admitted, each with its own call number 1..=N: every admission is one stored
//! compare-and-set change.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use common::{Demo, browser, login, raw_client, session_cookie};
use reqwest::header::{RETRY_AFTER, SET_COOKIE};
use serde_json::Value;
use session_core::time::OffsetDateTime;
use session_core::{
    Capabilities, Error, NewRecord, SaveMode, SessionInterface, SessionManager, StorageKey,
    StoredRecord, Version,
};

/// GETs `/api/ping`; the status, the `Retry-After` header and the JSON body.
async fn ping(client: &reqwest::Client, demo: &Demo) -> (u16, Option<i64>, Value) {
    let response = client.get(demo.at("/api/ping")).send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.parse().expect("Retry-After in seconds"));
    (
        status,
        retry_after,
        response.json().await.expect("a JSON body"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_admits_n_calls_then_says_when_to_retry() {
    let demo = Demo::start(
        "memory",
        &["--api-rate-limit", "3", "--api-rate-window", "2s"],
    )
    .await
    .expect("memory is always available");

    // Anonymous: 401, and no session is created.
    let (anonymous, jar) = browser();
    let (status, _, body) = ping(&anonymous, &demo).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(session_cookie(&jar, &demo.url), None);

    let (client, _jar) = browser();
    login(&demo, &client, "alice").await;
    for call in 1..=3 {
        let (status, _, body) = ping(&client, &demo).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["call"], call);
        assert_eq!(body["remaining"], 3 - call);
    }
    let (status, retry_after, body) = ping(&client, &demo).await;
    assert_eq!(status, 429, "{body}");
    let retry_after = retry_after.expect("a Retry-After header");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(body["retry_after_seconds"], retry_after);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("Retry in {retry_after} s (at ")),
        "{message}"
    );
    let retry_at = body["retry_at"].as_str().unwrap();
    assert!(
        retry_at.contains('T') && message.contains(retry_at),
        "{body}"
    );

    // After the window, a new budget.
    tokio::time::sleep(std::time::Duration::from_millis(
        u64::try_from(retry_after).unwrap() * 1000 + 100,
    ))
    .await;
    let (status, _, body) = ping(&client, &demo).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["call"], 1);
}

/// 200 concurrent calls of one session over two instances on `backend`.
async fn two_hundred_concurrent_calls_admit_exactly_n(backend: &str) {
    const N: u64 = 25;
    const CALLS: usize = 200;
    let limit = N.to_string();
    let Some(first) = Demo::start(
        backend,
        &["--api-rate-limit", &limit, "--api-rate-window", "10m"],
    )
    .await
    else {
        return;
    };
    let second = first.twin().await;
    let (client, jar) = browser();
    login(&first, &client, "alice").await;
    let caller = raw_client(jar.clone());
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let url = if i % 2 == 0 { &first } else { &second }.at("/api/ping");
            let caller = caller.clone();
            tokio::spawn(async move {
                let response = caller.get(url).send().await.expect("the demo answers");
                let status = response.status().as_u16();
                let body: Value = response.json().await.expect("a JSON body");
                (status, body)
            })
        })
        .collect();
    let mut admitted = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => admitted.push(body["call"].as_u64().expect("a call number")),
            429 => refused += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    admitted.sort_unstable();
    assert_eq!(
        admitted,
        (1..=N).collect::<Vec<_>>(),
        "exactly {N} admitted, each a stored change"
    );
    assert_eq!(refused, CALLS - admitted.len());
    // The budget is spent on both instances.
    for demo in [&first, &second] {
        let (status, retry_after, body) = ping(&caller, demo).await;
        assert_eq!(status, 429, "{body}");
        assert!(retry_after.is_some_and(|s| (1..=600).contains(&s)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_calls_admit_exactly_n_on_postgres() {
    two_hundred_concurrent_calls_admit_exactly_n("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_calls_admit_exactly_n_on_redis() {
    two_hundred_concurrent_calls_admit_exactly_n("redis").await;
}

/// A memory store whose updates fail while `failing` is set.
struct FailingUpdates {
    inner: session_memory::MemoryStore,
    failing: AtomicBool,
}

#[async_trait]
impl SessionInterface for FailingUpdates {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        self.inner.load(key).await
    }
    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        if self.failing.load(Ordering::SeqCst) && matches!(mode, SaveMode::Update { .. }) {
            return Err(Error::retryable("the store is down"));
        }
        self.inner.save(key, record, mode).await
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

/// The router refuses a manager built with another configuration than the options
/// (the API's strict manager copies the options' configuration).
#[test]
fn the_router_refuses_a_manager_that_disagrees_with_the_options() {
    let options = session_demo::Options::parse_args(["--backend", "memory"]).unwrap();
    let other = session_demo::Options::parse_args(["--backend", "memory", "--idle-lifetime", "5m"])
        .unwrap();
    let manager = SessionManager::new(
        Arc::new(session_memory::MemoryStore::new()),
        other.session_config().unwrap(),
    );
    let csrf = session_demo::csrf::Csrf::new(&[], manager.config()).unwrap();
    assert!(matches!(
        session_demo::router(manager, &options, csrf),
        Err(session_demo::DemoError::ManagerConfig)
    ));
}

/// A call whose save fails is not admitted (not a 200), and is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_save_fails_is_not_admitted() {
    let store = Arc::new(FailingUpdates {
        inner: session_memory::MemoryStore::new(),
        failing: AtomicBool::new(false),
    });
    let options =
        session_demo::Options::parse_args(["--backend", "memory", "--api-rate-limit", "5"])
            .unwrap();
    let manager = SessionManager::new(store.clone(), options.session_config().unwrap());
    let csrf = session_demo::csrf::Csrf::new(&[], manager.config()).unwrap();
    let app = session_demo::router(manager, &options, csrf).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = reqwest::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let (client, jar) = browser();
    let (_, page) = common::get(&client, url.join("/login").unwrap()).await;
    let token = common::csrf_token(&page);
    let (status, _) = common::post(
        &client,
        url.join("/login").unwrap(),
        &[("csrf", token.as_str()), ("username", "alice")],
    )
    .await;
    assert_eq!(status, 200);
    let raw = raw_client(jar);
    store.failing.store(true, Ordering::SeqCst);
    let response = raw
        .get(url.join("/api/ping").unwrap())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error(), "{}", response.status());
    assert!(response.headers().get(SET_COOKIE).is_none());
    store.failing.store(false, Ordering::SeqCst);
    let response = raw
        .get(url.join("/api/ping").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["call"], 1, "the failed call was not counted: {body}");
    server.abort();
}
