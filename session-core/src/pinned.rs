//! Sessions whose own deadline is shorter than the configured idle lifetime, as
//! far as this manager has seen.
//!
//! A one-step `load_and_touch` asks the store for the configured idle lifetime
//! from now, because the manager learns a session's own lifetime (a shorter
//! per-session idle lifetime, or the last stretch before its absolute deadline)
//! only from the record it loads. For such a session the store moves the deadline
//! too far on every read and the manager puts it back with a second write: two
//! writes per request where a plain load would make none. So the manager remembers
//! the sessions it had to correct and loads them with a plain `load` afterwards,
//! refreshing only when due. The memory is per process and bounded; forgetting a
//! session only costs one more correction.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use crate::StorageKey;

/// How many sessions are remembered; the oldest is forgotten first. At about 16
/// bytes each, a few hundred KiB at most.
pub(crate) const CAPACITY: usize = 16_384;

/// A bounded set of storage keys, by keyed hash: a collision (one in 2^64 per
/// pair, with keys an attacker cannot predict) only makes a session load in two
/// steps.
#[derive(Debug, Default)]
pub(crate) struct Pinned {
    hasher: RandomState,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Pinned {
    /// Whether `key`'s session had its one-step refresh corrected here before.
    pub(crate) fn contains(&self, key: &StorageKey) -> bool {
        let h = self.hasher.hash_one(key.as_str());
        self.lock().set.contains(&h)
    }

    /// Remembers `key`, forgetting the oldest entry beyond [`CAPACITY`].
    pub(crate) fn insert(&self, key: &StorageKey) {
        let h = self.hasher.hash_one(key.as_str());
        let mut inner = self.lock();
        if inner.set.insert(h) {
            inner.order.push_back(h);
            if inner.order.len() > CAPACITY
                && let Some(oldest) = inner.order.pop_front()
            {
                inner.set.remove(&oldest);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The set holds no invariant a panic elsewhere could break half-way.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionToken;

    fn key() -> StorageKey {
        SessionToken::generate().unwrap().storage_key()
    }

    #[test]
    fn remembers_what_it_was_told_and_nothing_else() {
        let pinned = Pinned::default();
        let (a, b) = (key(), key());
        assert!(!pinned.contains(&a));
        pinned.insert(&a);
        pinned.insert(&a);
        assert!(pinned.contains(&a));
        assert!(!pinned.contains(&b));
        assert_eq!(pinned.lock().order.len(), 1);
    }

    #[test]
    fn forgets_the_oldest_beyond_its_capacity() {
        let pinned = Pinned::default();
        let keys: Vec<_> = (0..=CAPACITY).map(|_| key()).collect();
        for k in &keys {
            pinned.insert(k);
        }
        assert!(!pinned.contains(&keys[0]));
        assert!(pinned.contains(&keys[1]));
        assert!(pinned.contains(&keys[CAPACITY]));
        let inner = pinned.lock();
        assert_eq!((inner.set.len(), inner.order.len()), (CAPACITY, CAPACITY));
    }
}
