//! Server-side sessions: the cookie carries a token, the store keeps the record.

use std::sync::OnceLock;

use time::OffsetDateTime;

use crate::clock::saturating_add;
use crate::codec::{Envelope, Stored};
use crate::decision::CookieDecision;
use crate::queue::Ticket;
use crate::rotation;
use crate::shared::Shared;
use crate::state::{Existing, Loaded, loaded_from_record};
use crate::{
    Bytes, DecodeError, Error, NewRecord, SaveMode, SessionInterface, SessionToken, StorageKey,
    StoredRecord,
};

/// How many fresh tokens are drawn when `Create` collides. A collision of 256-bit
/// random tokens means a broken random source or a broken store, so a few tries are
/// plenty.
const CREATE_ATTEMPTS: u32 = 4;

/// How many forward pointers a load follows. One is the normal case; a session
/// rotated twice within one grace window needs two.
const MAX_HOPS: usize = 3;

/// A live session record found by following pointers from a token.
struct Found {
    token: SessionToken,
    key: StorageKey,
    record: StoredRecord,
    envelope: Envelope,
    /// The pointer's key, when the session was reached through one.
    via: Option<StorageKey>,
    /// What a one-step refresh did to this record while loading it.
    refreshed: Option<FirstHop>,
}

/// The deadline a one-step refresh asks for (see [`SessionInterface::load_and_touch`]).
#[derive(Debug, Clone, Copy)]
struct OneStep {
    expires_at: OffsetDateTime,
    due_before: OffsetDateTime,
}

/// What `load_and_touch` did to the record the cookie names.
#[derive(Debug, Clone, Copy)]
struct FirstHop {
    /// The deadline asked for.
    sent: OffsetDateTime,
    /// The deadline the record has now, as the store reported it.
    now_expires_at: OffsetDateTime,
    /// The deadline it had before.
    previous: OffsetDateTime,
    touched: bool,
}

impl Found {
    /// What the request keeps of the record, and the decoded session.
    fn into_parts(self) -> (Existing, Envelope) {
        let existing = Existing {
            token: self.token,
            key: self.key,
            version: self.record.version,
            payload: self.record.payload,
            expires_at: self.record.expires_at,
        };
        (existing, self.envelope)
    }
}

/// The deadline of a compare-and-set removal (an `Update` whose deadline is not in
/// the future, see [`SaveMode::Update`]). A fixed instant far in the past rather than
/// "now minus a margin", so that a store whose clock lags ours (server time) still
/// sees it as past; within the range of every store's timestamps.
const REMOVAL_DEADLINE: OffsetDateTime = time::macros::datetime!(2000-01-01 0:00 UTC);

/// What a write of a loaded session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    /// Save this request's changes (remove the record if they emptied it).
    Save,
    /// Move the session to a new id, retiring the old record as said.
    NewId(Retire),
}

/// What becomes of the old record when a session moves to a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retire {
    /// A forward pointer for the grace window (periodic rotation).
    Pointer,
    /// Nothing: the old id stops working at once (`cycle_id`).
    Remove,
}

/// The manager's operations over a store.
pub(crate) struct ServerSide<'a> {
    shared: &'a Shared,
    store: &'a dyn SessionInterface,
    /// Whether a write that finds the session changed since this request loaded it
    /// merges (the default) or gives up with `Conflict` (`finish_if_unchanged`).
    merge: bool,
}

impl<'a> ServerSide<'a> {
    pub(crate) fn new(shared: &'a Shared, store: &'a dyn SessionInterface) -> Self {
        Self {
            shared,
            store,
            merge: true,
        }
    }

    /// `self`, merging concurrent changes or not.
    pub(crate) fn merging(self, merge: bool) -> Self {
        Self { merge, ..self }
    }

    /// Ends a request: the store operations and the cookie decision. Returns the
    /// session state to keep (`None` when the session is gone).
    pub(crate) async fn finish(
        &self,
        incoming: Option<&SessionToken>,
        ticket: Option<&Ticket>,
        loaded: Option<Loaded>,
        cycle: bool,
        destroyed: bool,
        had_cookie: bool,
    ) -> Result<(CookieDecision, Option<Loaded>), Error> {
        let shared = self.shared;
        if destroyed {
            // Logout through an old id must end the rotated session too.
            let target = match &loaded {
                Some(l) => l.existing.as_ref().map(|e| e.key.clone()),
                None if shared.config.rotate_every().is_some() => match incoming {
                    Some(t) => self.find(t, None).await?.map(|f| f.key),
                    None => None,
                },
                None => None,
            };
            if let Some(key) = &target {
                self.store.expire(key).await?;
            }
            // The incoming key is known without loading: expire it blindly, unless
            // it is the record just expired (a logout that read its session).
            if let Some(key) = incoming.map(SessionToken::storage_key)
                && target.as_ref() != Some(&key)
            {
                self.store.expire(&key).await?;
            }
            return Ok((shared.removal_if(had_cookie), None));
        }
        let Some(mut loaded) = loaded else {
            return Ok((CookieDecision::Leave, None));
        };
        let decision = match loaded.existing {
            // No live session. A cookie that is not a token at all is removed; a
            // token whose session is dead is left alone: it may be the old id of a
            // login that a concurrent request just rotated, whose response has given
            // (or will give) the browser the new cookie — a removal arriving after it
            // would delete that one. A dead token costs a load per request, no more.
            None if loaded.data.is_empty() => shared.removal_if(had_cookie && incoming.is_none()),
            None => self.create(&mut loaded).await?,
            // Manual rotation is strict: the old record is removed, no pointer left.
            Some(_) if cycle => {
                self.write(&mut loaded, ticket, Intent::NewId(Retire::Remove))
                    .await?
            }
            Some(_) if self.rotation_due(&loaded) => {
                self.write(&mut loaded, ticket, Intent::NewId(Retire::Pointer))
                    .await?
            }
            Some(_) if loaded.is_modified() => {
                self.write(&mut loaded, ticket, Intent::Save).await?
            }
            Some(_) if shared.config.refresh_each_request() => self.refresh(&mut loaded).await?,
            Some(_) => CookieDecision::Leave,
        };
        // A request that came through a pointer must learn the new id.
        let decision = match (decision, loaded.via.take(), &loaded.existing) {
            (CookieDecision::Leave, Some(_), Some(existing)) => {
                let now = shared.clock.now();
                let deadline = shared.deadline(&loaded.meta, now);
                let value = existing.token.to_cookie_value();
                CookieDecision::Set(shared.cookie(value, &loaded, deadline, now))
            }
            (decision, _, _) => decision,
        };
        Ok((decision, Some(loaded)))
    }

    /// Loads the session named by `incoming` (or starts a new one). A request that
    /// finds its session joins the session's queue first, so every save this manager
    /// makes after the load is seen when this request writes.
    pub(crate) async fn load(
        &self,
        incoming: Option<&SessionToken>,
        ticket: &OnceLock<Ticket>,
    ) -> Result<Loaded, Error> {
        let now = self.shared.clock.now();
        if let Some(token) = incoming {
            let joined = self.shared.queue.join(token);
            if let Some(mut found) = self.find(token, self.one_step(token, now)).await? {
                let via = found.via.clone();
                let first = found.refreshed.take();
                let (existing, envelope) = found.into_parts();
                let mut loaded = loaded_from_record(existing, envelope);
                loaded.via = via;
                match first {
                    Some(first) if !self.settle(&mut loaded, first, now).await? => {}
                    _ => {
                        // A request loads once (the load gate): the first ticket is
                        // the one.
                        let _ = ticket.set(joined);
                        return Ok(loaded);
                    }
                }
            }
        }
        Ok(self.shared.fresh(now))
    }

    /// The one-step refresh to load with, when refresh-each-request is on and the
    /// store does it in one round trip: the configured idle lifetime from `now`,
    /// due when that gains more than the threshold. Not for a session whose
    /// one-step refresh this manager had to correct before (see `pinned`): its own
    /// deadline is shorter, and a plain load refreshes it only when due.
    fn one_step(&self, token: &SessionToken, now: OffsetDateTime) -> Option<OneStep> {
        let config = &self.shared.config;
        let caps = self.store.capabilities();
        if !(config.refresh_each_request() && caps.load_and_touch && caps.touch) {
            return None;
        }
        if self.shared.pinned.contains(&token.storage_key()) {
            return None;
        }
        let idle = config.idle_lifetime();
        // `build()` keeps the idle lifetime within ten years and the threshold in
        // [0, 1): the product is a valid, non-negative duration.
        let margin =
            time::Duration::seconds_f64(idle.as_seconds_f64() * config.refresh_threshold());
        let expires_at = saturating_add(now, idle);
        Some(OneStep {
            expires_at,
            due_before: saturating_add(expires_at, -margin),
        })
    }

    /// After a one-step refresh of a session: checks the store's new deadline
    /// against the session's own (its absolute deadline, its own idle lifetime,
    /// computed from the same `now`) and corrects it with one `touch` where they
    /// differ. Returns false when the session vanished meanwhile.
    async fn settle(
        &self,
        loaded: &mut Loaded,
        first: FirstHop,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        let Some(existing) = loaded.existing.as_mut() else {
            return Ok(true);
        };
        let own = self.shared.deadline(&loaded.meta, now);
        let due = self.shared.refresh_due(&loaded.meta, first.previous, own);
        let target = if due { own } else { first.previous };
        existing.expires_at = first.now_expires_at;
        if first.touched && target != first.sent {
            self.shared.pinned.insert(&existing.key);
            if !self.store.touch(&existing.key, target).await? {
                return Ok(false);
            }
            existing.expires_at = target;
        }
        loaded.refreshed = due && first.touched;
        Ok(true)
    }

    /// The live session `token` names, following rotation pointers. With
    /// `one_step`, the record the token names is loaded with `load_and_touch`;
    /// when it turns out not to be a live session (a pointer, unreadable bytes, a
    /// passed absolute deadline), a deadline the store moved is put back.
    async fn find(
        &self,
        token: &SessionToken,
        one_step: Option<OneStep>,
    ) -> Result<Option<Found>, Error> {
        let mut first = None;
        let found = self.follow(token, one_step, &mut first).await;
        let Some(hop) = first.filter(|hop| hop.touched) else {
            return found;
        };
        match found {
            Ok(Some(mut found)) if found.via.is_none() => {
                found.refreshed = Some(hop);
                Ok(Some(found))
            }
            other => {
                // Not a session, or not this record: restore the deadline first.
                let key = token.storage_key();
                self.shared.pinned.insert(&key);
                self.store.touch(&key, hop.previous).await?;
                other
            }
        }
    }

    /// [`find`](Self::find)'s walk; reports what a one-step refresh did in `first`.
    async fn follow(
        &self,
        token: &SessionToken,
        mut one_step: Option<OneStep>,
        first: &mut Option<FirstHop>,
    ) -> Result<Option<Found>, Error> {
        let now = self.shared.clock.now();
        let mut token = token.clone();
        let mut via = None;
        for _ in 0..MAX_HOPS {
            let key = token.storage_key();
            let fetched = match one_step.take() {
                Some(step) => self
                    .store
                    .load_and_touch(&key, step.expires_at, step.due_before)
                    .await
                    .map(|answer| {
                        answer.map(|r| {
                            *first = Some(FirstHop {
                                sent: step.expires_at,
                                now_expires_at: r.record.expires_at,
                                previous: r.previous_expires_at,
                                touched: r.touched,
                            });
                            r.record
                        })
                    }),
                None => self.store.load(&key).await,
            };
            let loaded = fetched.and_then(|record| match record {
                Some(r) => Ok(Some((Stored::decode(&r.payload)?, r))),
                None => Ok(None),
            });
            let (stored, record) = match loaded {
                Ok(Some(found)) => found,
                Ok(None) => return Ok(None),
                // A record from a newer release: an error, never a silent logout
                // (or a later overwrite) of a session this build cannot read.
                Err(Error::Decode(e @ DecodeError::UnknownVersion(_))) => {
                    return Err(Error::Decode(e));
                }
                // Unreadable bytes (corruption, a payload sealed with a key that
                // has left the ring) are no session: the request starts afresh
                // under a new token and the dead record expires on its own.
                Err(Error::Decode(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            match stored {
                Stored::Session(envelope) => {
                    // The store's clock may differ from ours (server time); the
                    // absolute cap is enforced here too.
                    if envelope.meta.absolute_deadline <= now {
                        return Ok(None);
                    }
                    return Ok(Some(Found {
                        token,
                        key,
                        record,
                        envelope,
                        via,
                        refreshed: None,
                    }));
                }
                Stored::Forward(masked) => {
                    // Only the first pointer matters for cleanup: it is the one the
                    // browser's cookie names.
                    via.get_or_insert(key);
                    token = rotation::unmask(&masked, &token);
                }
            }
        }
        Ok(None)
    }

    fn rotation_due(&self, loaded: &Loaded) -> bool {
        let now = self.shared.clock.now();
        self.shared
            .config
            .rotate_every()
            .is_some_and(|period| now - loaded.meta.id_issued_at >= period)
    }

    /// Every write of a session this request loaded: a compare-and-set update, a
    /// compare-and-set removal when the session is empty, or a move to a new id.
    ///
    /// Writes wait for this session's turn in the manager's queue and first catch up
    /// with what the queue's last writer saved, so requests of one process do not
    /// conflict. A conflict with another process reloads the session, replays this
    /// request's per-key changes onto it and decides again: an emptied session that
    /// is no longer empty is updated, not removed; a session that became empty is
    /// removed. A session destroyed meanwhile stays destroyed.
    async fn write(
        &self,
        loaded: &mut Loaded,
        ticket: Option<&Ticket>,
        intent: Intent,
    ) -> Result<CookieDecision, Error> {
        let mut turn = match ticket {
            Some(ticket) => Some(ticket.turn().await),
            None => None,
        };
        if let Some(saved) = turn.as_deref().and_then(Option::as_ref) {
            if !self.merge && loaded.is_behind(saved) {
                return Err(Error::Conflict);
            }
            loaded.catch_up(saved);
        }
        let attempts = self.shared.config.save_attempts();
        for attempt in 0..attempts {
            // An earlier request of this process (the queue's) removed it.
            let Some(old) = loaded.existing.clone() else {
                return Ok(self.shared.gone(loaded));
            };
            let outcome = match intent {
                _ if loaded.data.is_empty() => self.remove(loaded, &old).await,
                Intent::NewId(Retire::Remove) => self.new_id(loaded, &old, Retire::Remove).await,
                Intent::NewId(Retire::Pointer) if self.rotation_due(loaded) => {
                    self.new_id(loaded, &old, Retire::Pointer).await
                }
                _ if loaded.is_modified() => self.update(loaded, &old).await,
                // A concurrent request rotated the session (we followed its pointer)
                // and this request changed nothing.
                _ => return Ok(CookieDecision::Leave),
            };
            match outcome {
                Ok(decision) => {
                    if let Some(turn) = turn.as_deref_mut() {
                        *turn = loaded.saved();
                    }
                    return Ok(decision);
                }
                Err(Error::Conflict) if !self.merge => return Err(Error::Conflict),
                Err(Error::Conflict) => {
                    // Someone saved (or rotated) first: replay our changes onto
                    // their version.
                    backoff(attempt).await;
                    if !self.reload(loaded, &old).await? {
                        return Ok(self.shared.gone(loaded));
                    }
                }
                // Destroyed (or its id cycled) meanwhile: drop the changes, never
                // resurrect.
                Err(Error::NotFound) => return Ok(self.shared.gone(loaded)),
                Err(e) => return Err(e),
            }
        }
        Err(Error::TooManyConflicts { attempts })
    }

    /// Removes the loaded record by compare-and-set (see [`SaveMode::Update`]).
    async fn remove(&self, loaded: &mut Loaded, old: &Existing) -> Result<CookieDecision, Error> {
        let removal = NewRecord {
            payload: Bytes::new(),
            expires_at: REMOVAL_DEADLINE,
        };
        let mode = SaveMode::Update {
            expected_version: old.version,
        };
        self.store.save(&old.key, &removal, mode).await?;
        loaded.existing = None;
        Ok(self.shared.removal_if(true))
    }

    /// Moves the session (with this request's changes) to a new token: creates the
    /// new record, then retires the old one by compare-and-set — a forward pointer
    /// for periodic rotation, a removal for `cycle_id`. If the old record changed
    /// meanwhile the new one is removed again and the error returned, so of two
    /// requests moving one session exactly one wins and the other merges.
    async fn new_id(
        &self,
        loaded: &mut Loaded,
        old: &Existing,
        retire: Retire,
    ) -> Result<CookieDecision, Error> {
        let previous_issued = loaded.meta.id_issued_at;
        loaded.meta.id_issued_at = self.shared.clock.now();
        let decision = match self.create(loaded).await {
            Ok(decision) => decision,
            Err(e) => {
                loaded.meta.id_issued_at = previous_issued;
                return Err(e);
            }
        };
        let Some(new) = loaded.existing.clone() else {
            return Ok(decision);
        };
        let retirement = match retire {
            Retire::Pointer => {
                let now = self.shared.clock.now();
                NewRecord {
                    payload: Bytes::from(Stored::encode_forward(&rotation::mask(
                        &new.token, &old.token,
                    ))),
                    expires_at: saturating_add(now, self.shared.config.rotation_grace())
                        .min(self.shared.deadline(&loaded.meta, now)),
                }
            }
            Retire::Remove => NewRecord {
                payload: Bytes::new(),
                expires_at: REMOVAL_DEADLINE,
            },
        };
        let mode = SaveMode::Update {
            expected_version: old.version,
        };
        match self.store.save(&old.key, &retirement, mode).await {
            Ok(_) => {
                let pointer = loaded.via.take();
                if let (Retire::Remove, Some(pointer)) = (retire, pointer) {
                    // The old cookie named a pointer to the old record: it must stop
                    // working at once too.
                    self.store.expire(&pointer).await?;
                }
                Ok(decision)
            }
            Err(e) => {
                // Lost the race (or failed): the new record must not linger.
                self.store.expire(&new.key).await?;
                loaded.meta.id_issued_at = previous_issued;
                loaded.existing = Some(old.clone());
                Err(e)
            }
        }
    }

    /// After a conflict on `existing`: loads the current version (following a
    /// rotation pointer) and replays this request's changes onto it. Returns false
    /// when the session is gone.
    async fn reload(&self, loaded: &mut Loaded, existing: &Existing) -> Result<bool, Error> {
        let Some(found) = self.find(&existing.token, None).await? else {
            return Ok(false);
        };
        if found.via.is_some() && loaded.via.is_none() {
            loaded.via = found.via.clone();
        }
        let (existing, envelope) = found.into_parts();
        loaded.rebase(envelope, existing);
        Ok(true)
    }

    fn record(&self, loaded: &Loaded, now: OffsetDateTime) -> Result<NewRecord, Error> {
        Ok(NewRecord {
            payload: Bytes::from(self.shared.encode(loaded)?),
            expires_at: self.shared.deadline(&loaded.meta, now),
        })
    }

    /// Stores `loaded` under a fresh token and returns the cookie that names it.
    async fn create(&self, loaded: &mut Loaded) -> Result<CookieDecision, Error> {
        let now = self.shared.clock.now();
        let record = self.record(loaded, now)?;
        for _ in 0..CREATE_ATTEMPTS {
            let token = SessionToken::generate()?;
            let key = token.storage_key();
            match self.store.save(&key, &record, SaveMode::Create).await {
                Ok(version) => {
                    let cookie =
                        self.shared
                            .cookie(token.to_cookie_value(), loaded, record.expires_at, now);
                    loaded.existing = Some(Existing {
                        token,
                        key,
                        version,
                        payload: record.payload,
                        expires_at: record.expires_at,
                    });
                    return Ok(CookieDecision::Set(cookie));
                }
                Err(Error::Collision) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Collision)
    }

    /// One compare-and-set of the session with this request's changes.
    async fn update(&self, loaded: &mut Loaded, old: &Existing) -> Result<CookieDecision, Error> {
        let now = self.shared.clock.now();
        let record = self.record(loaded, now)?;
        let mode = SaveMode::Update {
            expected_version: old.version,
        };
        let version = self.store.save(&old.key, &record, mode).await?;
        let decision = if self.shared.is_permanent(loaded) || loaded.meta_changed {
            CookieDecision::Set(self.shared.cookie(
                old.token.to_cookie_value(),
                loaded,
                record.expires_at,
                now,
            ))
        } else {
            CookieDecision::Leave
        };
        loaded.existing = Some(Existing {
            version,
            payload: record.payload,
            expires_at: record.expires_at,
            ..old.clone()
        });
        Ok(decision)
    }

    /// Extends the deadline of an unchanged session, when that gains more than the
    /// configured share of its idle lifetime ([`SessionConfig::refresh_threshold`]);
    /// otherwise no store call and no cookie.
    ///
    /// [`SessionConfig::refresh_threshold`]: crate::SessionConfig::refresh_threshold
    async fn refresh(&self, loaded: &mut Loaded) -> Result<CookieDecision, Error> {
        let Some(existing) = loaded.existing.clone() else {
            return Ok(CookieDecision::Leave);
        };
        let now = self.shared.clock.now();
        if loaded.refreshed {
            // The load moved the deadline already (one step): only the cookie is left.
            return Ok(if self.shared.is_permanent(loaded) {
                CookieDecision::Set(self.shared.cookie(
                    existing.token.to_cookie_value(),
                    loaded,
                    existing.expires_at,
                    now,
                ))
            } else {
                CookieDecision::Leave
            });
        }
        let deadline = self.shared.deadline(&loaded.meta, now);
        if !self
            .shared
            .refresh_due(&loaded.meta, existing.expires_at, deadline)
        {
            return Ok(CookieDecision::Leave);
        }
        let alive = if self.store.capabilities().touch {
            let alive = self.store.touch(&existing.key, deadline).await?;
            loaded.existing = Some(Existing {
                expires_at: deadline,
                ..existing.clone()
            });
            alive
        } else {
            // No touch: write the loaded bytes back unchanged with the new deadline.
            let record = NewRecord {
                payload: existing.payload.clone(),
                expires_at: deadline,
            };
            let mode = SaveMode::Update {
                expected_version: existing.version,
            };
            match self.store.save(&existing.key, &record, mode).await {
                Ok(version) => {
                    loaded.existing = Some(Existing {
                        version,
                        expires_at: deadline,
                        ..existing.clone()
                    });
                    true
                }
                // A concurrent request saved (and so refreshed) it: fine.
                Err(Error::Conflict) => true,
                Err(Error::NotFound) => false,
                Err(e) => return Err(e),
            }
        };
        if !alive {
            return Ok(self.shared.gone(loaded));
        }
        Ok(if self.shared.is_permanent(loaded) {
            CookieDecision::Set(self.shared.cookie(
                existing.token.to_cookie_value(),
                loaded,
                deadline,
                now,
            ))
        } else {
            CookieDecision::Leave
        })
    }
}

/// Waits before the `attempt`-th retry of a conflicting save. The first retry is
/// immediate (a conflict usually means one other writer, who has finished); later
/// ones sleep a random time under an exponentially growing cap, so a crowd of
/// writers on one session spreads out instead of colliding again in lockstep.
async fn backoff(attempt: u32) {
    const BASE_MICROS: u64 = 100;
    const CAP_MICROS: u64 = 20_000;
    if attempt == 0 {
        return;
    }
    let cap = (BASE_MICROS << attempt.min(16)).min(CAP_MICROS);
    let mut bytes = [0u8; 8];
    // Jitter needs no cryptographic quality; without randomness, use the cap.
    let jitter = match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes) % cap,
        Err(_) => cap,
    };
    tokio::time::sleep(std::time::Duration::from_micros(jitter)).await;
}
