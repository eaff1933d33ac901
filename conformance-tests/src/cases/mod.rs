//! The cases, one module per operation or clause. Each case is one function whose
//! name is the case name and whose first doc line states the clause it checks. The
//! list that registers them (and that the `conformance_suite!` macro expands) is
//! `__with_cases!` in `lib.rs`.
//!
//! Clauses that can depend on a size or a count are checked over a ladder (see
//! [`ladder`]): stores switch paths at such thresholds (a Redis transaction above
//! 4 KiB, SQL purges in batches of 1,000, file sweeps in batches of 256 per shard), and
//! a store that is right at one point can be wrong past the next threshold.

mod clock;
mod concurrency;
mod create;
mod expire;
mod isolation;
pub(crate) mod ladder;
mod payload;
mod refresh;
mod removal;
mod rotation;
mod sweep;
mod touch;
mod update;

pub(crate) use clock::*;
pub(crate) use concurrency::*;
pub(crate) use create::*;
pub(crate) use expire::*;
pub(crate) use isolation::*;
pub(crate) use payload::*;
pub(crate) use refresh::*;
pub(crate) use removal::*;
pub(crate) use rotation::*;
pub(crate) use sweep::*;
pub(crate) use touch::*;
pub(crate) use update::*;

/// What every case module uses.
mod prelude {
    pub(crate) use std::sync::Arc;
    pub(crate) use std::time::Duration as StdDuration;

    pub(crate) use session_core::time::{Duration, OffsetDateTime, UtcOffset};
    pub(crate) use session_core::{
        Bytes, Error, FIRST_VERSION, NewRecord, SaveMode, SessionInterface, StorageKey,
    };
    pub(crate) use tokio::sync::Barrier;
    pub(crate) use tokio::task::JoinSet;

    pub(crate) use super::ladder::{self, Rung};
    pub(crate) use super::{CREATE, HOUR, join_all, update};
    pub(crate) use crate::check::{
        CaseError, CaseResult, Ctx, OrFail, Summary, ensure, expect_err, fail, key, key_from,
        load_exact, load_live, load_none, near, now_of, pattern, payload_diff,
    };
}

use prelude::*;

pub(crate) const HOUR: Duration = Duration::hours(1);
pub(crate) const CREATE: SaveMode = SaveMode::Create;

pub(crate) const fn update(expected_version: u64) -> SaveMode {
    SaveMode::Update { expected_version }
}

/// Joins every task of `set`; a panicking task fails the case.
pub(crate) async fn join_all<T: 'static>(
    mut set: JoinSet<T>,
    what: &str,
) -> Result<Vec<T>, CaseError> {
    let mut out = Vec::with_capacity(set.len());
    while let Some(r) = set.join_next().await {
        match r {
            Ok(v) => out.push(v),
            Err(e) => fail!("{what}: a spawned task failed: {e}"),
        }
    }
    Ok(out)
}
