#![doc = include_str!("../README.md")]

mod config;
mod connection;
mod error;
mod record;
mod scripts;
mod store;

pub use config::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEY_PREFIX,
    DEFAULT_LARGE_UPDATE_THRESHOLD, DEFAULT_POOL_SIZE, MAX_KEY_PREFIX_LEN, RedisConfig,
};
pub use error::RedisStoreError;
pub use store::RedisStore;

/// Re-exported so callers building a pool for [`RedisStore::from_pool`] use the same
/// version.
pub use deadpool_redis;
/// Re-exported so callers name the same driver version.
pub use redis;
