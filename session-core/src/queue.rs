//! One writer per session per manager: the per-session queue.
//!
//! Requests of one session that end in the same process line up on a per-session
//! lock for their store writes instead of racing each other's compare-and-set. Each
//! slot also remembers the last record this manager saved for the session, so a
//! request that loaded an older version replays its changes onto that record before
//! it writes — no conflict, no reload: N queued changes cost N writes. The
//! compare-and-set stays, for other processes and for what the slot does not know.
//!
//! A request joins the slot of the token its cookie carries when it first uses the
//! session (before the load, so that no save of this process can slip between the
//! load and the join unseen), and leaves it when its `Session` is dropped. The slot
//! goes with its last member, so the table holds only sessions with a request in
//! flight.
//!
//! Every request that uses a session joins, so joining is kept cheap: slots are
//! found by the first 64 bits of the token (random; no hashing or allocation of the
//! storage key), in a map with a seeded fast hash. Two sessions whose tokens share
//! those bits would only share a slot — take turns — and catching up compares full
//! storage keys, so they never see each other's data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::SessionToken;
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

type Slots = HashMap<u64, Arc<Slot>, foldhash::fast::RandomState>;

/// The table of slots of one manager.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    slots: Mutex<Slots>,
}

impl Queue {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        // Every critical section is one map operation: a panic cannot leave it torn.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins (or opens) the slot of the session `token` names.
    pub(crate) fn join(self: &Arc<Self>, token: &SessionToken) -> Ticket {
        let (head, _) = token.bytes().split_at(8);
        let id = u64::from_le_bytes(head.try_into().unwrap_or_default());
        let slot = Arc::clone(self.slots().entry(id).or_default());
        Ticket {
            queue: Arc::clone(self),
            id,
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
    id: u64,
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
            slots.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_lives_exactly_as_long_as_its_members() {
        let queue = Arc::new(Queue::default());
        let token = SessionToken::generate().unwrap();
        let other = SessionToken::generate().unwrap();
        let a = queue.join(&token);
        let b = queue.join(&token);
        let c = queue.join(&other);
        assert_eq!(queue.len(), 2);
        assert!(Arc::ptr_eq(&a.slot, &b.slot), "one slot per session");
        drop(a);
        assert_eq!(queue.len(), 2, "b still holds the slot");
        drop(b);
        assert_eq!(queue.len(), 1, "the slot goes with its last member");
        drop(c);
        assert_eq!(queue.len(), 0);
        let again = queue.join(&token);
        assert_eq!(queue.len(), 1);
        drop(again);
        assert_eq!(queue.len(), 0);
    }
}
