//! One writer per session per manager: the per-session queue.
//!
//! Requests of one session that end in the same process line up on a per-session
//! lock for their store writes instead of racing each other's compare-and-set. Each
//! slot also remembers the last record this manager saved for the session, so a
//! request that loaded an older version replays its changes onto that record before
//! it writes — no conflict, no reload: N queued changes cost N writes. The
//! compare-and-set stays, for other processes and for what the slot does not know.
//!
//! A request joins the slot of the key its cookie names when it first uses the
//! session (before the load, so that no save of this process can slip between the
//! load and the join unseen), and leaves it when its session state is dropped. The
//! slot goes with its last member, so the table holds only sessions with a request
//! in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::StorageKey;
use crate::codec::{Data, Meta};
use crate::session::Existing;

/// The last record this manager saved for a session.
#[derive(Debug, Clone)]
pub(crate) struct Saved {
    pub existing: Existing,
    pub meta: Meta,
    pub data: Arc<Data>,
}

/// The per-session slot: the write lock and what it protects.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    latest: tokio::sync::Mutex<Option<Saved>>,
}

/// The table of slots of one manager.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    slots: Mutex<HashMap<StorageKey, Arc<Slot>>>,
}

impl Queue {
    fn slots(&self) -> MutexGuard<'_, HashMap<StorageKey, Arc<Slot>>> {
        // Every critical section is one map operation: a panic cannot leave it torn.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins (or opens) the slot for `key`.
    pub(crate) fn join(self: &Arc<Self>, key: StorageKey) -> Ticket {
        let slot = Arc::clone(self.slots().entry(key.clone()).or_default());
        Ticket {
            queue: Arc::clone(self),
            key,
            slot,
        }
    }

    /// How many sessions have a slot (requests in flight).
    pub(crate) fn len(&self) -> usize {
        self.slots().len()
    }
}

/// A request's membership in a slot; leaving it (drop) closes the slot when no
/// other request holds it.
#[derive(Debug)]
pub(crate) struct Ticket {
    queue: Arc<Queue>,
    key: StorageKey,
    slot: Arc<Slot>,
}

impl Ticket {
    /// Waits for this session's turn to write. Requests are served in arrival order.
    pub(crate) async fn turn(&self) -> tokio::sync::MutexGuard<'_, Option<Saved>> {
        self.slot.latest.lock().await
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut slots = self.queue.slots();
        // The map holds one reference and this ticket another; joins happen under
        // the same lock, so no one can be joining this slot right now.
        if Arc::strong_count(&self.slot) == 2 {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionToken;

    #[test]
    fn a_slot_lives_exactly_as_long_as_its_members() {
        let queue = Arc::new(Queue::default());
        let key = SessionToken::generate().unwrap().storage_key();
        let other = SessionToken::generate().unwrap().storage_key();
        let a = queue.join(key.clone());
        let b = queue.join(key.clone());
        let c = queue.join(other);
        assert_eq!(queue.len(), 2);
        assert!(Arc::ptr_eq(&a.slot, &b.slot), "one slot per session");
        drop(a);
        assert_eq!(queue.len(), 2, "b still holds the slot");
        drop(b);
        assert_eq!(queue.len(), 1, "the slot goes with its last member");
        drop(c);
        assert_eq!(queue.len(), 0);
        let again = queue.join(key);
        assert_eq!(queue.len(), 1);
        drop(again);
        assert_eq!(queue.len(), 0);
    }
}
