//! Ready-made harnesses for this workspace's own stores, each behind the feature
//! that compiles its crate in. The `conformance` CLI and this crate's tests use them;
//! they are also worked examples of [`Harness`](crate::Harness) implementations.

#[cfg(feature = "file")]
mod file;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod sql;

#[cfg(feature = "file")]
pub use file::FileHarness;
#[cfg(feature = "memory")]
pub use memory::MemoryHarness;
#[cfg(feature = "redis")]
pub use redis::RedisHarness;
#[cfg(feature = "mysql")]
pub use sql::MysqlHarness;
#[cfg(feature = "postgres")]
pub use sql::PostgresHarness;
