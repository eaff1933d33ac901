#![doc = include_str!("../README.md")]

mod migrate;
mod sql;
mod store;

pub use migrate::SCHEMA_VERSION;
pub use session_sql_common::{CleanupSchedule, PoolSettings, SchemaTooNew, spawn_cleanup};
pub use store::{MySqlStore, MySqlStoreBuilder};

/// The table name used when none is configured.
pub const DEFAULT_TABLE: &str = "sessions";

/// Re-exported so callers name the same sqlx as the store (e.g. to pass a `MySqlPool`).
pub use sqlx;
