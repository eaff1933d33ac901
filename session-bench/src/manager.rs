//! Manager-level contestants: a whole request as an application sees it (cookie →
//! lazy load → read one key → change one key → save), and the codec baseline.

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde_json::Value;
use session_core::{CookieDecision, SessionConfig, SessionInterface, SessionManager, SessionToken};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::{Session as TowerSession, SessionStore};

use crate::contestants::SETUP_TASKS;
use crate::harness::{BoxError, Contestant, Op};
use crate::workload::{Workload, deadline, for_each_concurrent, tower_ids};

/// The key every request reads.
const READ_KEY: &str = "k00";
/// The key every changing request writes (a small counter).
const WRITE_KEY: &str = "visits";

/// Ours: `SessionManager` over a store, as session-tower drives it per request.
pub struct ManagerCycle {
    manager: SessionManager,
    cookies: Vec<String>,
    counter: AtomicU64,
}

impl ManagerCycle {
    /// Creates `sessions` sessions holding `workload.data` through the manager and
    /// keeps their cookies.
    pub async fn setup(
        store: Arc<dyn SessionInterface>,
        sessions: usize,
        workload: &Workload,
    ) -> Result<Arc<Self>, BoxError> {
        let manager = SessionManager::new(store, SessionConfig::default());
        let data: Arc<Vec<(String, Value)>> = Arc::new(workload.data.clone().into_iter().collect());
        let cookies = Arc::new(std::sync::Mutex::new(vec![String::new(); sessions]));
        let (m, c) = (manager.clone(), cookies.clone());
        for_each_concurrent(sessions, SETUP_TASKS, move |i| {
            let (manager, cookies, data) = (m.clone(), c.clone(), data.clone());
            async move {
                let session = manager.session(None);
                for (k, v) in data.iter() {
                    session.insert(k, v).await?;
                }
                let CookieDecision::Set(cookie) = manager.finish(&session).await? else {
                    return Err("a new session with data must set a cookie".into());
                };
                cookies.lock().map_err(|_| "poisoned")?[i] = cookie.value().to_owned();
                Ok(())
            }
        })
        .await?;
        let cookies = std::mem::take(&mut *cookies.lock().map_err(|_| "poisoned")?);
        Ok(Arc::new(Self {
            manager,
            cookies,
            counter: AtomicU64::new(0),
        }))
    }

    /// The stored bytes of the first session (what a store keeps: the envelope).
    pub async fn envelope(&self) -> Result<Bytes, BoxError> {
        let store = self.manager.store().ok_or("not a server-side manager")?;
        let token = SessionToken::parse(&self.cookies[0]).ok_or("bad cookie")?;
        let record = store
            .load(&token.storage_key())
            .await?
            .ok_or("session vanished")?;
        Ok(record.payload)
    }

    /// Expires every session it created.
    pub async fn teardown(self: &Arc<Self>) -> Result<(), BoxError> {
        let me = self.clone();
        for_each_concurrent(self.cookies.len(), SETUP_TASKS, move |i| {
            let me = me.clone();
            async move {
                let session = me.manager.session(Some(&me.cookies[i]));
                session.destroy();
                let _ = me.manager.finish(&session).await?;
                Ok(())
            }
        })
        .await
    }
}

impl Contestant for ManagerCycle {
    async fn op(&self, op: Op, slot: usize, _task: usize) -> Result<(), BoxError> {
        let session = self.manager.session(Some(&self.cookies[slot]));
        let value: Option<String> = session.get(READ_KEY).await?;
        if value.is_none() {
            return Err("session lost its data".into());
        }
        if op == Op::Cycle {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            session.insert(WRITE_KEY, &n).await?;
        }
        let _ = self.manager.finish(&session).await?;
        Ok(())
    }

    async fn remove_created(&self, _n: usize) -> Result<(), BoxError> {
        Ok(())
    }
}

/// tower-sessions: its `Session` handle over its store, the same request (the id
/// parsed from the cookie, lazy load on first access, `save` when modified — what
/// its layer does).
pub struct TowerSessionCycle<S> {
    store: Arc<S>,
    cookies: Vec<String>,
    counter: AtomicU64,
}

impl<S: SessionStore> TowerSessionCycle<S> {
    /// Creates `sessions` records holding `workload.data` in `store`.
    pub async fn setup(
        store: S,
        sessions: usize,
        workload: &Workload,
        rng: &mut crate::harness::Rng,
    ) -> Result<Arc<Self>, BoxError> {
        let store = Arc::new(store);
        let ids = Arc::new(std::sync::Mutex::new(tower_ids(sessions, rng)));
        let template = Record {
            id: Id(0),
            data: workload.data.clone(),
            expiry_date: deadline(),
        };
        let (s, ids2) = (store.clone(), ids.clone());
        for_each_concurrent(sessions, SETUP_TASKS, move |i| {
            let (store, ids, mut record) = (s.clone(), ids2.clone(), template.clone());
            async move {
                record.id = ids.lock().map_err(|_| "poisoned")?[i];
                store.create(&mut record).await?;
                ids.lock().map_err(|_| "poisoned")?[i] = record.id;
                Ok(())
            }
        })
        .await?;
        let cookies = ids
            .lock()
            .map_err(|_| "poisoned")?
            .iter()
            .map(Id::to_string)
            .collect();
        Ok(Arc::new(Self {
            store,
            cookies,
            counter: AtomicU64::new(0),
        }))
    }

    /// Deletes every record it created.
    pub async fn teardown(self: &Arc<Self>) -> Result<(), BoxError> {
        let me = self.clone();
        for_each_concurrent(self.cookies.len(), SETUP_TASKS, move |i| {
            let me = me.clone();
            async move {
                let id = Id::from_str(&me.cookies[i])?;
                Ok(me.store.delete(&id).await?)
            }
        })
        .await
    }
}

impl<S: SessionStore> Contestant for TowerSessionCycle<S> {
    async fn op(&self, op: Op, slot: usize, _task: usize) -> Result<(), BoxError> {
        let id = Id::from_str(&self.cookies[slot])?;
        let session = TowerSession::new(Some(id), self.store.clone(), None);
        let value: Option<String> = session.get(READ_KEY).await?;
        if value.is_none() {
            return Err("session lost its data".into());
        }
        if op == Op::Cycle {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            session.insert(WRITE_KEY, n).await?;
        }
        if session.is_modified() {
            session.save().await?;
        }
        Ok(())
    }

    async fn remove_created(&self, _n: usize) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The codec baseline: decode the whole stored envelope into a `serde_json::Value`
/// tree and encode it again — what a codec that does not decode lazily pays on
/// every request that touches the session.
pub struct FullCodec {
    /// The envelope, as the store returns it.
    pub envelope: Bytes,
}

impl Contestant for FullCodec {
    async fn op(&self, _op: Op, _slot: usize, _task: usize) -> Result<(), BoxError> {
        let mut value: Value = serde_json::from_slice(&self.envelope)?;
        // Change one key, as the request does.
        if let Some(data) = value.get_mut("data").and_then(Value::as_object_mut) {
            data.insert(WRITE_KEY.to_owned(), Value::from(1));
        }
        let out = serde_json::to_vec(&value)?;
        std::hint::black_box(out);
        Ok(())
    }

    async fn remove_created(&self, _n: usize) -> Result<(), BoxError> {
        Ok(())
    }
}
