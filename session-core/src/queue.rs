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
use crate::state::Saved;

/// The per-session slot: the write lock and what it protects.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    latest: tokio::sync::Mutex<Option<Saved>>,
}

/// How many closed slots a queue keeps for reuse, so that a request does not
/// allocate and free one (a slot is only open while a request is in flight).
const SPARE_SLOTS: usize = 64;

/// The open slots by session, and closed ones kept for reuse.
#[derive(Debug, Default)]
struct Table {
    open: HashMap<u64, Arc<Slot>, foldhash::fast::RandomState>,
    spare: Vec<Arc<Slot>>,
}

/// The table of slots of one manager.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    table: Mutex<Table>,
}

impl Queue {
    fn table(&self) -> MutexGuard<'_, Table> {
        // Every critical section is a map operation and a push or pop: a panic
        // cannot leave it torn.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins (or opens) the slot of the session `token` names.
    pub(crate) fn join(self: &Arc<Self>, token: &SessionToken) -> Ticket {
        let (head, _) = token.bytes().split_at(8);
        let id = u64::from_le_bytes(head.try_into().unwrap_or_default());
        let mut table = self.table();
        let Table { open, spare } = &mut *table;
        let slot = Arc::clone(
            open.entry(id)
                .or_insert_with(|| spare.pop().unwrap_or_default()),
        );
        drop(table);
        Ticket {
            queue: Arc::clone(self),
            id,
            slot,
        }
    }

    /// How many sessions have a slot (requests in flight).
    pub(crate) fn len(&self) -> usize {
        self.table().open.len()
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
        let mut table = self.queue.table();
        // The map holds one reference and this ticket another; joins happen under
        // the same lock, so no one can be joining this slot right now.
        if Arc::strong_count(&self.slot) != 2 {
            return;
        }
        let Some(closed) = table.open.remove(&self.id) else {
            return;
        };
        if table.spare.len() < SPARE_SLOTS {
            // No other member is left to hold the lock: forget the session's last
            // record (no data outlives its requests) and keep the slot for reuse.
            let cleared = match closed.latest.try_lock() {
                Ok(mut latest) => {
                    *latest = None;
                    true
                }
                Err(_) => false,
            };
            if cleared {
                table.spare.push(closed);
            }
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

    #[tokio::test]
    async fn a_reused_slot_remembers_nothing_of_its_last_session() {
        let queue = Arc::new(Queue::default());
        let token = SessionToken::generate().unwrap();
        let ticket = queue.join(&token);
        *ticket.turn().await = Some(Saved {
            existing: crate::state::Existing {
                token: token.clone(),
                key: token.storage_key(),
                version: 3,
                payload: crate::Bytes::from_static(b"x"),
                expires_at: time::OffsetDateTime::UNIX_EPOCH,
            },
            meta: crate::codec::Meta {
                created_at: time::OffsetDateTime::UNIX_EPOCH,
                absolute_deadline: time::OffsetDateTime::UNIX_EPOCH,
                idle: None,
                permanent: None,
                id_issued_at: time::OffsetDateTime::UNIX_EPOCH,
            },
            data: Arc::default(),
        });
        let first = Arc::as_ptr(&ticket.slot);
        drop(ticket);
        assert_eq!(queue.table().spare.len(), 1, "the closed slot is kept");
        let other = SessionToken::generate().unwrap();
        let next = queue.join(&other);
        assert_eq!(Arc::as_ptr(&next.slot), first, "and reused");
        assert!(
            next.turn().await.is_none(),
            "without the last session's record"
        );
        assert_eq!(queue.table().spare.len(), 0);
    }
}
