#![doc = include_str!("../README.md")]

pub mod cleanup;
#[cfg(feature = "testing")]
pub mod contract;
pub mod error;
pub mod pool;
mod table;
pub mod testing;

pub use cleanup::{CleanupSchedule, spawn_cleanup};
pub use error::{DbErrorHook, ErrorClass, SchemaTooNew};
pub use pool::{ConnectionSource, Lease, PoolSettings};
pub use table::{MAX_TABLE_NAME_LEN, TableName};

/// Rows a `delete_expired` statement removes at most, unless configured otherwise:
/// big enough to purge 100,000 rows in a hundred statements, small enough that no
/// statement holds locks for long.
pub const DEFAULT_DELETE_BATCH: u32 = 1_000;
