#![doc = include_str!("../README.md")]

mod bucket;
pub mod dialect;
pub mod error;
pub mod migrate;
pub mod pool;
pub mod store;
mod table;
pub mod testing;

pub use bucket::{EXPIRY_BUCKET_SECONDS, expiry_bucket};
pub use dialect::{Dialect, RawRecord, RefreshedRow, Rerun, Statements};
pub use error::{DbErrorHook, ErrorClass, SchemaTooNew, StatementTimeout};
pub use migrate::{Migration, MigrationOutcome, MigrationSql};
pub use pool::{ConnectionSource, DEFAULT_STATEMENT_TIMEOUT, Lease, PoolSettings, bounded};
/// Re-exported from `session_core`, where the helper lives (it serves any store).
pub use session_core::{CleanupSchedule, spawn_cleanup};
pub use store::{SqlStore, SqlStoreBuilder};
pub use table::{MAX_TABLE_NAME_LEN, TableName};

/// The table name used when none is configured.
pub const DEFAULT_TABLE: &str = "sessions";

/// Rows a `delete_expired` statement removes at most, unless configured otherwise:
/// big enough to purge 100,000 rows in a hundred statements, small enough that no
/// statement holds locks for long.
pub const DEFAULT_DELETE_BATCH: u32 = 1_000;
