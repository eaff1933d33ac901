use std::sync::Arc;

use async_trait::async_trait;
use session_redis::{RedisConfig, RedisStore};
use tokio::sync::OnceCell;

use crate::servers::{self, Backend, ServerUrls};
use crate::{Fixture, Harness, Namespace, SetupError};

/// `session-redis` against a standalone server or a cluster. The server is resolved
/// (from the environment, or a URL given here) and connected once per harness; each
/// namespace is a key prefix on the same connections. Redis keeps its own time, so
/// the fixture has no manual clock.
#[derive(Debug)]
pub struct RedisHarness {
    backend: Backend,
    urls: Option<Vec<String>>,
    /// A complete configuration (e.g. TLS settings) instead of URLs.
    config: Option<RedisConfig>,
    store: OnceCell<RedisStore>,
}

impl RedisHarness {
    /// Standalone Redis at `SESSION_TEST_REDIS_URL` (skipped when unset).
    pub fn standalone() -> Self {
        Self::new(Backend::Redis, None)
    }

    /// Redis Cluster at `SESSION_TEST_REDIS_CLUSTER_URLS` (skipped when unset).
    pub fn cluster() -> Self {
        Self::new(Backend::RedisCluster, None)
    }

    /// `backend` (`Redis` or `RedisCluster`) at the given URLs, or from the
    /// environment when `urls` is `None`.
    pub fn new(backend: Backend, urls: Option<Vec<String>>) -> Self {
        Self {
            backend,
            urls,
            config: None,
            store: OnceCell::new(),
        }
    }

    /// The server `config` describes (its key prefix is replaced by one per
    /// namespace), reported as `backend`. For settings beyond a URL, e.g.
    /// `RedisConfig::tls_root_certificates`.
    pub fn from_config(backend: Backend, config: RedisConfig) -> Self {
        Self {
            config: Some(config),
            ..Self::new(backend, None)
        }
    }

    async fn connect(&self) -> Result<RedisStore, SetupError> {
        if let Some(config) = &self.config {
            return Ok(RedisStore::connect(config.clone()).await?);
        }
        let urls = match &self.urls {
            Some(urls) => urls.clone(),
            None => servers::resolve(self.backend)
                .await
                .map(|u: ServerUrls| u.urls().to_vec())?,
        };
        let config = match self.backend {
            Backend::RedisCluster => RedisConfig::cluster(urls),
            _ => RedisConfig::new(urls.first().cloned().unwrap_or_default()),
        };
        Ok(RedisStore::connect(config).await?)
    }
}

#[async_trait]
impl Harness for RedisHarness {
    fn name(&self) -> &str {
        self.backend.name()
    }

    async fn open(&self, namespace: &Namespace) -> Result<Fixture, SetupError> {
        let base = self.store.get_or_try_init(|| self.connect()).await?;
        let store = base.with_key_prefix(&format!("conformance:{namespace}:"))?;
        Ok(Fixture::new(Arc::new(store)))
    }
}
