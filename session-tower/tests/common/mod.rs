//! A store for the layer's tests: the memory store, with counters and a switch that
//! makes writes fail like a backend outage; and the request helpers the test files
//! share.
#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, Response};
use session_core::cookie::Cookie;
use session_core::time::OffsetDateTime;
use session_core::{
    Capabilities, Error, ManualClock, NewRecord, SaveMode, Session, SessionConfig,
    SessionInterface, SessionManager, SessionToken, StorageKey, StoredRecord, Version,
};
use session_memory::MemoryStore;
use session_tower::SessionLayer;
use tower::{Layer, ServiceExt, service_fn};

#[derive(Default)]
pub struct TestStore {
    inner: MemoryStore,
    pub fail_writes: AtomicBool,
    /// Fails only `Create` saves (a new session, or the new id of a cycled one).
    pub fail_creates: AtomicBool,
    pub loads: AtomicUsize,
    pub saves: AtomicUsize,
}

impl TestStore {
    /// A test store whose records expire by `clock`.
    pub fn with_clock(clock: &ManualClock) -> Self {
        Self {
            inner: MemoryStore::with_clock(clock.shared()),
            ..Self::default()
        }
    }

    pub fn records(&self) -> usize {
        self.inner.len()
    }

    /// The live record a `name=value` cookie pair names, read without counting.
    pub async fn record(&self, pair: &str) -> Option<StoredRecord> {
        let token = SessionToken::parse(pair.split_once('=')?.1)?;
        self.inner.load(&token.storage_key()).await.unwrap()
    }

    fn write_gate(&self) -> Result<(), Error> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(Error::Backend {
                retryable: true,
                source: "the test switched writes off".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl SessionInterface for TestStore {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        self.write_gate()?;
        if mode == SaveMode::Create && self.fail_creates.load(Ordering::SeqCst) {
            return Err(Error::Backend {
                retryable: true,
                source: "the test switched creates off".into(),
            });
        }
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.save(key, record, mode).await
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        self.write_gate()?;
        self.inner.expire(key).await
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        self.write_gate()?;
        self.inner.touch(key, expires_at).await
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        self.inner.delete_expired().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

/// A manager over a fresh test store, with the store for inspection.
pub fn manager() -> (SessionManager, Arc<TestStore>) {
    let store = Arc::new(TestStore::default());
    let manager = SessionManager::new(store.clone(), SessionConfig::default());
    (manager, store)
}

/// A manager with `config` over a fresh test store, both on a manual clock.
pub fn manager_at(config: SessionConfig) -> (SessionManager, Arc<TestStore>, ManualClock) {
    // 2030-01-01 00:00 UTC.
    let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap());
    let store = Arc::new(TestStore::with_clock(&clock));
    let manager = SessionManager::with_clock(store.clone(), config, clock.shared());
    (manager, store, clock)
}

pub type Body = String;

/// The session the layer put into the request.
pub fn session_of(request: &Request<Body>) -> Session {
    request
        .extensions()
        .get::<Session>()
        .cloned()
        .expect("the layer inserts the session")
}

/// A request, with `cookie` as its `Cookie` header if given.
pub fn get(cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder();
    if let Some(c) = cookie {
        builder = builder.header(COOKIE, c);
    }
    builder.body(Body::new()).unwrap()
}

/// The response's `Set-Cookie`, if any (and asserts there is at most one).
pub fn set_cookie(response: &Response<Body>) -> Option<String> {
    let mut values = response.headers().get_all(SET_COOKIE).iter();
    let first = values.next().map(|v| v.to_str().unwrap().to_owned());
    assert!(values.next().is_none(), "at most one Set-Cookie");
    first
}

/// A `Set-Cookie` value, parsed.
pub fn parse(set_cookie: &str) -> Cookie<'static> {
    Cookie::parse(set_cookie.to_owned()).expect("a well-formed Set-Cookie")
}

/// One request with `cookie` through a `SessionLayer` over `manager`, whose handler
/// runs `handler` on the request's session and answers `200` with what it returns.
pub async fn call<F, Fut>(
    manager: &SessionManager,
    cookie: Option<&str>,
    handler: F,
) -> Response<Body>
where
    F: FnOnce(Session) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = String> + Send + 'static,
{
    let service =
        SessionLayer::new(manager.clone()).layer(service_fn(move |req: Request<Body>| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(Response::new(handler(session_of(&req)).await)) }
        }));
    service.oneshot(get(cookie)).await.unwrap()
}

/// The `name=value` part of a `Set-Cookie` header, to send back as `Cookie`.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}
