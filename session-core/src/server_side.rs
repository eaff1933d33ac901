//! Server-side sessions: the cookie carries a token, the store keeps the record.

use time::OffsetDateTime;

use crate::codec::Envelope;
use crate::manager::{CookieDecision, Shared};
use crate::session::{Existing, Loaded, loaded_from_record};
use crate::{Bytes, Error, NewRecord, SaveMode, SessionInterface, SessionToken};

/// How many fresh tokens are drawn when `Create` collides. A collision of 256-bit
/// random tokens means a broken random source or a broken store, so a few tries are
/// plenty.
const CREATE_ATTEMPTS: u32 = 4;

/// The manager's operations over a store.
pub(crate) struct ServerSide<'a> {
    shared: &'a Shared,
    store: &'a dyn SessionInterface,
}

impl<'a> ServerSide<'a> {
    pub(crate) fn new(shared: &'a Shared, store: &'a dyn SessionInterface) -> Self {
        Self { shared, store }
    }

    /// Ends a request: the store operations and the cookie decision. Returns the
    /// session state to keep (`None` when the session is gone).
    pub(crate) async fn finish(
        &self,
        incoming: Option<&SessionToken>,
        loaded: Option<Loaded>,
        cycle: bool,
        destroyed: bool,
        had_cookie: bool,
    ) -> Result<(CookieDecision, Option<Loaded>), Error> {
        let shared = self.shared;
        if destroyed {
            // The incoming key is known without loading: expire it blindly.
            if let Some(token) = incoming {
                self.store.expire(&token.storage_key()).await?;
            }
            return Ok((shared.removal_if(had_cookie), None));
        }
        let Some(mut loaded) = loaded else {
            return Ok((CookieDecision::Leave, None));
        };
        let decision = match loaded.existing.clone() {
            None if loaded.data.is_empty() => shared.removal_if(had_cookie),
            None => self.create(&mut loaded).await?,
            Some(existing) if cycle => {
                let decision = if loaded.data.is_empty() {
                    shared.removal_if(true)
                } else {
                    self.create(&mut loaded).await?
                };
                self.store.expire(&existing.key).await?;
                decision
            }
            Some(existing) if loaded.data.is_empty() && loaded.is_modified() => {
                self.store.expire(&existing.key).await?;
                loaded.existing = None;
                shared.removal_if(true)
            }
            Some(_) if loaded.is_modified() => self.update(&mut loaded).await?,
            Some(_) if shared.config.refresh_each_request() => self.refresh(&mut loaded).await?,
            Some(_) => CookieDecision::Leave,
        };
        Ok((decision, Some(loaded)))
    }

    /// Loads the session named by `incoming` (or starts a new one).
    pub(crate) async fn load(&self, incoming: Option<&SessionToken>) -> Result<Loaded, Error> {
        let now = self.shared.clock.now();
        if let Some(token) = incoming {
            let key = token.storage_key();
            if let Some(record) = self.store.load(&key).await? {
                let envelope = Envelope::decode(&record.payload)?;
                // The store's clock may differ from ours (server time); the absolute
                // cap is enforced here too.
                if envelope.meta.absolute_deadline > now {
                    return Ok(loaded_from_record(
                        token.clone(),
                        key,
                        record.version,
                        record.payload,
                        envelope,
                    ));
                }
            }
        }
        Ok(self.shared.fresh(now))
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
                    });
                    return Ok(CookieDecision::Set(cookie));
                }
                Err(Error::Collision) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Collision)
    }

    /// Compare-and-set with conflict merge.
    async fn update(&self, loaded: &mut Loaded) -> Result<CookieDecision, Error> {
        let attempts = self.shared.config.save_attempts();
        for _ in 0..attempts {
            let Some(existing) = loaded.existing.clone() else {
                return Ok(self.shared.removal_if(true));
            };
            if loaded.data.is_empty() {
                // A concurrent clear or removal left nothing after the merge.
                self.store.expire(&existing.key).await?;
                loaded.existing = None;
                return Ok(self.shared.removal_if(true));
            }
            let now = self.shared.clock.now();
            let record = self.record(loaded, now)?;
            let mode = SaveMode::Update {
                expected_version: existing.version,
            };
            match self.store.save(&existing.key, &record, mode).await {
                Ok(version) => {
                    let decision = if self.shared.is_permanent(loaded) || loaded.meta_changed {
                        CookieDecision::Set(self.shared.cookie(
                            existing.token.to_cookie_value(),
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
                        ..existing
                    });
                    return Ok(decision);
                }
                Err(Error::Conflict) => {
                    // Someone saved first: replay our changes onto their version.
                    match self.store.load(&existing.key).await? {
                        Some(fresh) => {
                            let envelope = Envelope::decode(&fresh.payload)?;
                            loaded.rebase(
                                envelope,
                                Existing {
                                    version: fresh.version,
                                    payload: fresh.payload,
                                    ..existing
                                },
                            );
                        }
                        None => return Ok(self.shared.gone(loaded)),
                    }
                }
                // Destroyed meanwhile: drop the changes, never resurrect.
                Err(Error::NotFound) => return Ok(self.shared.gone(loaded)),
                Err(e) => return Err(e),
            }
        }
        Err(Error::TooManyConflicts { attempts })
    }

    /// Extends the deadline of an unchanged session.
    async fn refresh(&self, loaded: &mut Loaded) -> Result<CookieDecision, Error> {
        let Some(existing) = loaded.existing.clone() else {
            return Ok(CookieDecision::Leave);
        };
        let now = self.shared.clock.now();
        let deadline = self.shared.deadline(&loaded.meta, now);
        let alive = if self.store.capabilities().touch {
            self.store.touch(&existing.key, deadline).await?
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
