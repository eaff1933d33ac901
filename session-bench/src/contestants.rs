//! The two contestants that look the same on every backend: ours through
//! `Arc<dyn SessionInterface>`, and tower-sessions through its `SessionStore` trait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use session_core::{NewRecord, SaveMode, SessionInterface, StorageKey};
use tower_sessions_core::SessionStore;
use tower_sessions_core::session::{Id, Record};

use crate::harness::{BoxError, Contestant, Op};
use crate::workload::{Workload, deadline, for_each_concurrent};

/// Setup concurrency (pre-creating sessions, removing created ones).
pub const SETUP_TASKS: usize = 32;

/// Ours: the store behind the object-safe storage contract, exactly as the
/// session manager holds it.
pub struct Ours {
    store: Arc<dyn SessionInterface>,
    keys: Vec<StorageKey>,
    versions: Vec<AtomicU64>,
    fresh: Vec<StorageKey>,
    record: NewRecord,
}

impl Ours {
    /// Pre-creates one session per key in `keys` (with `save(Create)`).
    pub async fn setup(
        store: Arc<dyn SessionInterface>,
        keys: Vec<StorageKey>,
        fresh: Vec<StorageKey>,
        workload: &Workload,
    ) -> Result<Arc<Self>, BoxError> {
        let record = NewRecord {
            payload: workload.payload.clone(),
            expires_at: deadline(),
        };
        let versions = keys.iter().map(|_| AtomicU64::new(0)).collect();
        let me = Arc::new(Self {
            store,
            keys,
            versions,
            fresh,
            record,
        });
        let m = me.clone();
        for_each_concurrent(me.keys.len(), SETUP_TASKS, move |i| {
            let m = m.clone();
            async move {
                let v = m
                    .store
                    .save(&m.keys[i], &m.record, SaveMode::Create)
                    .await?;
                m.versions[i].store(v, Ordering::Relaxed);
                Ok(())
            }
        })
        .await?;
        Ok(me)
    }

    /// Expires every pre-created session.
    pub async fn teardown(self: &Arc<Self>) -> Result<(), BoxError> {
        let m = self.clone();
        for_each_concurrent(self.keys.len(), SETUP_TASKS, move |i| {
            let m = m.clone();
            async move { Ok(m.store.expire(&m.keys[i]).await?) }
        })
        .await
    }

    fn record(&self) -> NewRecord {
        NewRecord {
            payload: self.record.payload.clone(),
            expires_at: deadline(),
        }
    }
}

impl Contestant for Ours {
    async fn op(&self, op: Op, slot: usize, _task: usize) -> Result<(), BoxError> {
        match op {
            Op::Cycle => {
                let key = &self.keys[slot];
                let got = self.store.load(key).await?.ok_or("session vanished")?;
                let record = NewRecord {
                    payload: got.payload,
                    expires_at: deadline(),
                };
                let mode = SaveMode::Update {
                    expected_version: got.version,
                };
                let v = self.store.save(key, &record, mode).await?;
                self.versions[slot].store(v, Ordering::Relaxed);
            }
            Op::Load => {
                self.store
                    .load(&self.keys[slot])
                    .await?
                    .ok_or("session vanished")?;
            }
            Op::Update => {
                let mode = SaveMode::Update {
                    expected_version: self.versions[slot].load(Ordering::Relaxed),
                };
                let v = self
                    .store
                    .save(&self.keys[slot], &self.record(), mode)
                    .await?;
                self.versions[slot].store(v, Ordering::Relaxed);
            }
            Op::Touch => {
                if !self.store.touch(&self.keys[slot], deadline()).await? {
                    return Err("session vanished".into());
                }
            }
            Op::Create => {
                self.store
                    .save(&self.fresh[slot], &self.record(), SaveMode::Create)
                    .await?;
            }
        }
        Ok(())
    }

    async fn remove_created(&self, n: usize) -> Result<(), BoxError> {
        // The fresh keys are owned by this value; borrow them through a raw clone of
        // the store so the tasks are 'static.
        let store = self.store.clone();
        let keys: Arc<[StorageKey]> = self.fresh[..n.min(self.fresh.len())].into();
        for_each_concurrent(keys.len(), SETUP_TASKS, move |i| {
            let (store, keys) = (store.clone(), keys.clone());
            async move { Ok(store.expire(&keys[i]).await?) }
        })
        .await
    }
}

/// Records kept for reuse so that no operation deep-clones a session map (which a
/// tower-sessions application would not do either). Indexed by `slot % RECORDS`:
/// with 1 or 32 tasks no two tasks ever share one.
const RECORDS: usize = 64;

/// tower-sessions: one of its stores through its own `SessionStore` trait.
pub struct Tower<S> {
    store: S,
    ids: Vec<Id>,
    fresh: Vec<Id>,
    records: Vec<Mutex<Option<Record>>>,
}

impl<S: SessionStore + Clone> Tower<S> {
    /// Pre-creates one session per id (with `create`, which may change an id on a
    /// collision; the id it settles on is kept).
    pub async fn setup(
        store: S,
        ids: Vec<Id>,
        fresh: Vec<Id>,
        workload: &Workload,
    ) -> Result<Arc<Self>, BoxError> {
        let template = Record {
            id: Id(0),
            data: workload.data.clone(),
            expiry_date: deadline(),
        };
        let records = (0..RECORDS)
            .map(|_| Mutex::new(Some(template.clone())))
            .collect();
        let ids = Arc::new(Mutex::new(ids));
        let s = store.clone();
        let ids2 = ids.clone();
        let n = ids.lock().map_err(|_| "poisoned")?.len();
        for_each_concurrent(n, SETUP_TASKS, move |i| {
            let (store, ids, template) = (s.clone(), ids2.clone(), template.clone());
            async move {
                let mut record = template;
                record.id = ids.lock().map_err(|_| "poisoned")?[i];
                store.create(&mut record).await?;
                ids.lock().map_err(|_| "poisoned")?[i] = record.id;
                Ok(())
            }
        })
        .await?;
        let ids = std::mem::take(&mut *ids.lock().map_err(|_| "poisoned")?);
        Ok(Arc::new(Self {
            store,
            ids,
            fresh,
            records,
        }))
    }

    /// Deletes every pre-created session.
    pub async fn teardown(self: &Arc<Self>) -> Result<(), BoxError> {
        let me = self.clone();
        for_each_concurrent(self.ids.len(), SETUP_TASKS, move |i| {
            let me = me.clone();
            async move { Ok(me.store.delete(&me.ids[i]).await?) }
        })
        .await
    }

    /// Takes the reusable record of `slot`, names it `id`, and hands it back after `f`.
    async fn with_record<F, Fut>(&self, slot: usize, id: Id, f: F) -> Result<(), BoxError>
    where
        F: FnOnce(Record) -> Fut,
        Fut: Future<Output = (Record, Result<(), BoxError>)>,
    {
        let cell = &self.records[slot % RECORDS];
        let mut record = cell
            .lock()
            .map_err(|_| "poisoned")?
            .take()
            .ok_or("record in use")?;
        record.id = id;
        record.expiry_date = deadline();
        let (record, result) = f(record).await;
        *cell.lock().map_err(|_| "poisoned")? = Some(record);
        result
    }
}

impl<S: SessionStore + Clone> Contestant for Tower<S> {
    async fn op(&self, op: Op, slot: usize, _task: usize) -> Result<(), BoxError> {
        match op {
            Op::Cycle => {
                let mut record = self
                    .store
                    .load(&self.ids[slot])
                    .await?
                    .ok_or("session vanished")?;
                record.expiry_date = deadline();
                self.store.save(&record).await?;
            }
            Op::Load => {
                self.store
                    .load(&self.ids[slot])
                    .await?
                    .ok_or("session vanished")?;
            }
            // tower-sessions has no touch: refreshing a deadline is a full save.
            Op::Update | Op::Touch => {
                self.with_record(slot, self.ids[slot], |r| async move {
                    let result = self.store.save(&r).await.map_err(BoxError::from);
                    (r, result)
                })
                .await?;
            }
            Op::Create => {
                self.with_record(slot, self.fresh[slot], |mut r| async move {
                    let result = self.store.create(&mut r).await.map_err(BoxError::from);
                    (r, result)
                })
                .await?;
            }
        }
        Ok(())
    }

    async fn remove_created(&self, n: usize) -> Result<(), BoxError> {
        let store = self.store.clone();
        let ids: Arc<[Id]> = self.fresh[..n.min(self.fresh.len())].into();
        for_each_concurrent(ids.len(), SETUP_TASKS, move |i| {
            let (store, ids) = (store.clone(), ids.clone());
            async move { Ok(store.delete(&ids[i]).await?) }
        })
        .await
    }
}
