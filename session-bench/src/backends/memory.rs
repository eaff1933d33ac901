//! In-process memory: `MemoryStore` vs a bare `DashMap` vs tower-sessions'
//! `MemoryStore`.

use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use time::OffsetDateTime;

use crate::backends::{Contestants, runner};
use crate::contestants::{Ours, Tower};
use crate::harness::{BoxError, Contestant, Op, Rng, random_hex};
use crate::manager::{ManagerCycle, TowerSessionCycle};
use crate::workload::{Workload, deadline, storage_keys, tower_ids};

/// The limit: a concurrent map of shared byte buffers and deadlines. No versions,
/// no expiry checks, no key type: the least a session map can do.
pub struct RawMap {
    map: DashMap<String, (Bytes, OffsetDateTime)>,
    keys: Vec<String>,
    fresh: Vec<String>,
    payload: Bytes,
}

impl Contestant for RawMap {
    async fn op(&self, op: Op, slot: usize, _task: usize) -> Result<(), BoxError> {
        match op {
            Op::Cycle => {
                let key = &self.keys[slot];
                let got = self.map.get(key).ok_or("vanished")?.0.clone();
                let mut entry = self.map.get_mut(key).ok_or("vanished")?;
                *entry = (got, deadline());
            }
            Op::Load => {
                let got = self.map.get(&self.keys[slot]).ok_or("vanished")?.0.clone();
                std::hint::black_box(got);
            }
            Op::Update => {
                let mut entry = self.map.get_mut(&self.keys[slot]).ok_or("vanished")?;
                *entry = (self.payload.clone(), deadline());
            }
            Op::Touch => {
                self.map.get_mut(&self.keys[slot]).ok_or("vanished")?.1 = deadline();
            }
            Op::Create => {
                self.map
                    .insert(self.fresh[slot].clone(), (self.payload.clone(), deadline()));
            }
        }
        Ok(())
    }

    async fn remove_created(&self, n: usize) -> Result<(), BoxError> {
        for k in &self.fresh[..n.min(self.fresh.len())] {
            self.map.remove(k);
        }
        Ok(())
    }
}

/// Builds the memory contestants for `workload`.
pub async fn contestants(
    workload: &Workload,
    sessions: usize,
    fresh: usize,
    rng: &mut Rng,
) -> Result<Contestants, BoxError> {
    let keys: Vec<String> = (0..sessions).map(|_| random_hex(rng, 32)).collect();
    let map = DashMap::new();
    for k in &keys {
        map.insert(k.clone(), (workload.payload.clone(), deadline()));
    }
    let raw = Arc::new(RawMap {
        map,
        keys,
        fresh: (0..fresh).map(|_| random_hex(rng, 32)).collect(),
        payload: workload.payload.clone(),
    });
    let ours = Ours::setup(
        Arc::new(session_memory::MemoryStore::new()),
        storage_keys(sessions, rng),
        storage_keys(fresh, rng),
        workload,
    )
    .await?;
    let tower = Tower::setup(
        tower_sessions_memory_store::MemoryStore::default(),
        tower_ids(sessions, rng),
        tower_ids(fresh, rng),
        workload,
    )
    .await?;
    let manager = ManagerCycle::setup(
        Arc::new(session_memory::MemoryStore::new()),
        sessions,
        workload,
    )
    .await?;
    let manager_tower = TowerSessionCycle::setup(
        tower_sessions_memory_store::MemoryStore::default(),
        sessions,
        workload,
        rng,
    )
    .await?;
    Ok(Contestants {
        limit: runner(raw),
        ours: runner(ours),
        tower: Some(runner(tower)),
        extra: Vec::new(),
        envelope: manager.envelope().await?,
        manager: runner(manager),
        manager_tower: Some(runner(manager_tower)),
        // Everything lives in this process and goes with it.
        teardown: Box::pin(async { Ok(()) }),
    })
}
