//! Per backend: how to build the three contestants (and the manager-level ones) on
//! one server, with one pool size, in one process.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::Who;
use crate::harness::{self, BoxError, Contestant, Op, RunSpec, Sample};

pub mod file;
pub mod memory;
pub mod redis;
pub mod redis_cas;
pub mod sql;

/// A boxed future (the run level only; never per operation).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Runs one measured run of one contestant.
pub type RunFn = Arc<dyn Fn(Op, RunSpec, u64) -> BoxFuture<Result<Sample, BoxError>> + Send + Sync>;

/// Type-erases a contestant into a [`RunFn`]; the contestant itself stays
/// monomorphic inside the measured loop.
pub fn runner<C: Contestant>(c: Arc<C>) -> RunFn {
    Arc::new(move |op, spec, seed| {
        let c = c.clone();
        Box::pin(async move { harness::run(&c, op, spec, seed).await })
    })
}

/// The backends, in the order of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In-process memory.
    Memory,
    /// Files on a local file system.
    File,
    /// Standalone Redis.
    Redis,
    /// PostgreSQL.
    Postgres,
    /// MySQL / MariaDB.
    MySql,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 5] = [
        Backend::Memory,
        Backend::File,
        Backend::Redis,
        Backend::Postgres,
        Backend::MySql,
    ];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::File => "file",
            Backend::Redis => "redis",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == s)
    }

    /// The store-level request cycle target (ours ÷ limit).
    pub fn cycle_target(self) -> f64 {
        match self {
            Backend::Memory => 0.5,
            _ => 0.9,
        }
    }

    /// What "the limit" is on this backend (one line for the report).
    pub fn limit_description(self) -> &'static str {
        match self {
            Backend::Memory => {
                "a `DashMap<String, (Bytes, deadline)>`: get + clone of the shared buffer, replace in place"
            }
            Backend::File => {
                "plain files in 256 shard directories: `read` of the whole file; write = temporary file + `fdatasync` + `rename` + directory `fsync` (the same durability as ours); touch = `pwrite` of an 8-byte deadline + `fdatasync`; all through `spawn_blocking`"
            }
            Backend::Redis => {
                "`GET` / `SET … EX` / `EXPIRE` / `SET NX` on one shared multiplexed redis-rs connection"
            }
            Backend::Postgres | Backend::MySql => {
                "`SELECT` / `UPDATE` / `INSERT` by key on dedicated sqlx 0.9 connections (one per task, never pinged, statements prepared once)"
            }
        }
    }

    /// Which tower-sessions store is the incumbent here.
    pub fn tower_description(self) -> Option<&'static str> {
        match self {
            Backend::Memory => Some("tower-sessions-memory-store 0.14 (`MemoryStore`)"),
            Backend::File => None,
            Backend::Redis => {
                Some("tower-sessions-redis-store 0.16 (`RedisStore` on a `fred` pool)")
            }
            Backend::Postgres => {
                Some("tower-sessions-sqlx-store 0.15 (`PostgresStore`, sqlx 0.8 `PgPool`)")
            }
            Backend::MySql => {
                Some("tower-sessions-sqlx-store 0.15 (`MySqlStore`, sqlx 0.8 `MySqlPool`)")
            }
        }
    }
}

/// Everything measured on one backend for one payload size.
pub struct Contestants {
    /// The raw driver doing the same round trips.
    pub limit: RunFn,
    /// Ours through `Arc<dyn SessionInterface>`.
    pub ours: RunFn,
    /// tower-sessions' store, where there is one.
    pub tower: Option<RunFn>,
    /// Ours through `SessionManager` + `Session` (Cycle: read one key, change one,
    /// save; Load: read one key only).
    pub manager: RunFn,
    /// tower-sessions' `Session` over its store, the same request.
    pub manager_tower: Option<RunFn>,
    /// More store-level yardsticks, each measured only on the operations it names
    /// (Redis: the fair compare-and-set limits of issue 22).
    pub extra: Vec<Extra>,
    /// The stored bytes of one manager-created session (for the codec table).
    pub envelope: bytes::Bytes,
    /// Removes what the contestants stored.
    pub teardown: BoxFuture<Result<(), BoxError>>,
}

/// A store-level contestant beside the three of every backend.
pub struct Extra {
    /// Who it is in the results.
    pub who: Who,
    /// The operations it takes part in.
    pub ops: &'static [Op],
    /// Its runs.
    pub run: RunFn,
}
