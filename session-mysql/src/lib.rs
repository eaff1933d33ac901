#![doc = include_str!("../README.md")]

mod batch;
mod migrate;
mod sql;
mod store;

pub use migrate::SCHEMA_VERSION;
pub use session_sql_common::{
    CleanupSchedule, DEFAULT_STATEMENT_TIMEOUT, DEFAULT_TABLE, PoolSettings, SchemaTooNew,
    StatementTimeout, spawn_cleanup,
};
pub use store::{MySqlDialect, MySqlStore, MySqlStoreBuilder};

/// Re-exported so callers name the same sqlx as the store (e.g. to pass a `MySqlPool`).
pub use sqlx;
