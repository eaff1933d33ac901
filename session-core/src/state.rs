//! A request's view of its session: what it loaded, what it changed, and what
//! the manager's queue remembers of a save. Plain data, below every module that acts
//! on it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::codec::{Data, Envelope, Meta};
use crate::{Bytes, SessionToken, StorageKey, Version};

/// The last record this manager saved for a session.
#[derive(Debug, Clone)]
pub(crate) struct Saved {
    pub existing: Existing,
    pub meta: Meta,
    pub data: Arc<Data>,
}

/// One change this request made to one key, replayed onto fresh data when a save
/// conflicts with a concurrent request.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Set(Box<RawValue>),
    Remove,
}

/// The record this request loaded.
#[derive(Debug, Clone)]
pub(crate) struct Existing {
    pub token: SessionToken,
    pub key: StorageKey,
    pub version: Version,
    /// The payload as loaded, so a refresh without touch support can write it back
    /// without re-encoding.
    pub payload: Bytes,
    /// The record's deadline as loaded (or as this request last saved or touched it).
    pub expires_at: OffsetDateTime,
}

/// The session as this request sees it.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// `None` until the session is first used (lazy loading).
    pub loaded: Option<Loaded>,
    /// `cycle_id` was called.
    pub cycle: bool,
    /// `destroy` was called.
    pub destroyed: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// The stored record, or `None` for a session that does not exist yet.
    pub existing: Option<Existing>,
    /// A client-side session that came with the request's cookie.
    pub from_cookie: bool,
    /// The deadline sealed in that cookie, when the sealer tells it
    /// ([`CookieSealer::open_with_deadline`](crate::CookieSealer::open_with_deadline)).
    pub sealed_expires_at: Option<OffsetDateTime>,
    pub meta: Meta,
    /// The current values: loaded data with this request's changes applied. Shared
    /// (copy on write): `finish` snapshots the session without copying every value,
    /// and a change copies the map only while a snapshot still holds it.
    pub data: Arc<Data>,
    /// This request's changes, per key (the last one wins).
    pub changes: BTreeMap<String, Change>,
    /// `clear` was called: replayed first, before `changes`.
    pub cleared: bool,
    /// `meta.idle` / `meta.permanent` were changed by this request.
    pub meta_changed: bool,
    /// The rotation pointer this request's cookie named, when the session was
    /// reached through one (the response must carry the new cookie).
    pub via: Option<StorageKey>,
    /// The load already refreshed the deadline (a one-step `load_and_touch`), so
    /// `finish` only owes the cookie of a permanent session.
    pub refreshed: bool,
    /// The last `finish` found the session ended by someone else and saved nothing
    /// of this request ([`Session::ended_meanwhile`](crate::Session::ended_meanwhile)).
    pub ended_meanwhile: bool,
}

impl Loaded {
    pub(crate) fn is_modified(&self) -> bool {
        self.cleared || !self.changes.is_empty() || self.meta_changed
    }

    /// What the manager's queue remembers after this request saved the session.
    pub(crate) fn saved(&self) -> Option<Saved> {
        self.existing.as_ref().map(|existing| Saved {
            existing: existing.clone(),
            meta: self.meta,
            data: Arc::clone(&self.data),
        })
    }

    /// Whether `saved` is a newer version of the record this request loaded.
    pub(crate) fn is_behind(&self, saved: &Saved) -> bool {
        self.existing
            .as_ref()
            .is_some_and(|e| e.key == saved.existing.key && e.version < saved.existing.version)
    }

    /// Catches up with a save of this manager's queue that this request's load did
    /// not see (a newer version of the same record), replaying this request's
    /// changes onto it; otherwise leaves the session as it is.
    pub(crate) fn catch_up(&mut self, saved: &Saved) {
        if self.is_behind(saved) {
            let fresh = Envelope {
                meta: saved.meta,
                data: Data::clone(&saved.data),
            };
            self.rebase(fresh, saved.existing.clone());
        }
    }

    /// Replays this request's changes onto `fresh` (a concurrent writer's version).
    pub(crate) fn rebase(&mut self, fresh: Envelope, existing: Existing) {
        let mut data = fresh.data;
        if self.cleared {
            data.clear();
        }
        for (k, change) in &self.changes {
            match change {
                Change::Set(v) => {
                    data.insert(k.clone(), v.clone());
                }
                Change::Remove => {
                    data.remove(k);
                }
            }
        }
        let mut meta = fresh.meta;
        if self.meta_changed {
            meta.idle = self.meta.idle;
            meta.permanent = self.meta.permanent;
        }
        self.data = Arc::new(data);
        self.meta = meta;
        self.existing = Some(existing);
    }
}

/// A decoded record plus what the manager needs to save it again.
pub(crate) fn loaded_from_record(existing: Existing, envelope: Envelope) -> Loaded {
    Loaded {
        existing: Some(existing),
        from_cookie: false,
        sealed_expires_at: None,
        meta: envelope.meta,
        data: Arc::new(envelope.data),
        changes: BTreeMap::new(),
        cleared: false,
        meta_changed: false,
        via: None,
        refreshed: false,
        ended_meanwhile: false,
    }
}
