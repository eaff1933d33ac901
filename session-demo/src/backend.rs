//! Backend selection: one arm per backend, each opening a store (or a cookie
//! sealer) from the options. Adding a backend is one `BackendKind` variant and one
//! arm in [`open_manager`].

use std::sync::Arc;

use session_cookie::{EncryptedCookies, SignedCookies};
use session_core::{SessionConfig, SessionInterface, SessionManager, SessionToken};
use session_crypto::{EncryptedStore, Key, KeyRing};

use crate::secrets::{SecretKey, key_ring};
use crate::{BackendKind, DemoError, Options, Sealing};

impl BackendKind {
    /// The command-line name (`redis-cluster`, …).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::File => "file",
            BackendKind::Redis => "redis",
            BackendKind::RedisCluster => "redis-cluster",
            BackendKind::Postgres => "postgres",
            BackendKind::Mysql => "mysql",
            BackendKind::Cookie => "cookie",
        }
    }
}

/// Opens the store the options select and puts a manager with the options'
/// configuration over it. With secret keys (`secrets`, see
/// [`Options::secret_keys`]), server-side sessions are encrypted at rest.
pub async fn open_manager(
    options: &Options,
    secrets: &[SecretKey],
) -> Result<SessionManager, DemoError> {
    let config: SessionConfig = options.session_config()?;
    let backend = options.backend.name();
    let fail = |source| DemoError::Backend { backend, source };
    let url = || {
        options
            .backend_url
            .as_deref()
            .ok_or(DemoError::MissingUrl { backend })
    };
    let store: Arc<dyn SessionInterface> = match options.backend {
        BackendKind::Memory => Arc::new(session_memory::MemoryStore::new()),
        BackendKind::File => Arc::new(
            session_file::FileStore::open(options.file_dir.clone())
                .await
                .map_err(fail)?,
        ),
        BackendKind::Redis => {
            let url = options
                .backend_url
                .as_deref()
                .unwrap_or("redis://127.0.0.1:6379/0");
            let redis = session_redis::RedisConfig::new(url).key_prefix(&options.redis_key_prefix);
            Arc::new(
                session_redis::RedisStore::connect(redis)
                    .await
                    .map_err(fail)?,
            )
        }
        BackendKind::RedisCluster => {
            let nodes = url()?.split(',').map(str::trim).filter(|n| !n.is_empty());
            let redis = session_redis::RedisConfig::cluster(nodes.map(str::to_owned))
                .key_prefix(&options.redis_key_prefix);
            Arc::new(
                session_redis::RedisStore::connect(redis)
                    .await
                    .map_err(fail)?,
            )
        }
        BackendKind::Postgres => Arc::new(
            session_postgres::PostgresStore::open(url()?, &options.sql_table, None)
                .await
                .map_err(fail)?,
        ),
        BackendKind::Mysql => Arc::new(
            session_mysql::MySqlStore::open(url()?, &options.sql_table, None)
                .await
                .map_err(fail)?,
        ),
        BackendKind::Cookie => {
            // Without configured keys, a random key for this run: cookies stop
            // opening when the demo restarts, which is fine for a demo.
            let ring = match key_ring(secrets)? {
                Some(ring) => ring,
                None => KeyRing::new(random_key().map_err(fail)?),
            };
            return Ok(match options.cookie_sealing {
                Sealing::Encrypted => {
                    SessionManager::client_side(Arc::new(EncryptedCookies::new(ring)), config)
                }
                Sealing::Signed => {
                    SessionManager::client_side(Arc::new(SignedCookies::new(ring)), config)
                }
            });
        }
    };
    let store = match key_ring(secrets)? {
        Some(ring) => Arc::new(EncryptedStore::new(store, ring)),
        None => store,
    };
    Ok(SessionManager::new(store, config))
}

/// A key from 256 random bits (a session token's worth of the OS CSPRNG).
fn random_key() -> Result<Key, session_core::Error> {
    let secret = SessionToken::generate()?.to_cookie_value();
    Ok(Key::new("ephemeral", secret.as_bytes())?)
}
