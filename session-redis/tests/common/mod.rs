//! Shared by the integration tests: servers from the environment, fresh namespaces,
//! records and `redis-cli`-free inspection through a raw connection.
#![allow(dead_code)] // each test binary uses a different subset

mod own_cluster;
mod own_server;

#[allow(unused_imports)] // used by the fault tests only
pub use own_cluster::{OwnCluster, info_field, keyslot, query, string};
#[allow(unused_imports)] // used by the fault tests only
pub use own_server::OwnServer;

use std::sync::atomic::{AtomicU32, Ordering};

use session_core::time::{Duration, OffsetDateTime};
use session_core::{Bytes, NewRecord, SessionToken, StorageKey};
use session_redis::{RedisConfig, RedisStore};

/// Which server a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Standalone,
    Cluster,
}

impl Server {
    pub fn var(self) -> &'static str {
        match self {
            Server::Standalone => "SESSION_TEST_REDIS_URL",
            Server::Cluster => "SESSION_TEST_REDIS_CLUSTER_URLS",
        }
    }

    fn require_name(self) -> &'static str {
        match self {
            Server::Standalone => "redis",
            Server::Cluster => "redis-cluster",
        }
    }

    /// The server's URL(s) from the environment, or `None` (after printing the skip
    /// line) when the variable is unset and `SESSION_TEST_REQUIRE` does not demand it.
    pub fn urls(self) -> Option<Vec<String>> {
        match std::env::var(self.var()) {
            Ok(v) if !v.trim().is_empty() => Some(
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
            _ => {
                let required = std::env::var("SESSION_TEST_REQUIRE").unwrap_or_default();
                if required.split(',').any(|n| n.trim() == self.require_name()) {
                    panic!(
                        "{} is unset but SESSION_TEST_REQUIRE demands {}",
                        self.var(),
                        self.require_name()
                    );
                }
                println!("skipped: {} is not set", self.var());
                None
            }
        }
    }

    /// A config for this server with a key prefix no other test uses.
    pub fn config(self, test: &str) -> Option<RedisConfig> {
        let urls = self.urls()?;
        let cfg = match self {
            Server::Standalone => RedisConfig::new(urls[0].clone()),
            Server::Cluster => RedisConfig::cluster(urls),
        };
        Some(cfg.key_prefix(unique_prefix(test)))
    }

    /// A connected store on a fresh namespace, or `None` (skip).
    pub async fn store(self, test: &str) -> Option<RedisStore> {
        let cfg = self.config(test)?;
        Some(RedisStore::connect(cfg).await.expect("connect"))
    }
}

/// `sr-test:<test>:<pid>-<n>:` — unique per test, process and call, so tests run in
/// parallel against one server and never see each other's keys.
pub fn unique_prefix(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "sr-test:{test}:{}-{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn key() -> StorageKey {
    SessionToken::generate().unwrap().storage_key()
}

pub fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

pub fn record(payload: &[u8], expires_at: OffsetDateTime) -> NewRecord {
    NewRecord {
        payload: Bytes::copy_from_slice(payload),
        expires_at,
    }
}

/// A raw multiplexed connection to the standalone server, for inspecting keys.
pub async fn raw_standalone(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A raw cluster connection, for inspecting keys.
pub async fn raw_cluster(urls: &[String]) -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(urls.to_vec())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}
