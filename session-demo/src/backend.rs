//! Backend selection: one arm per backend, each opening a store (or a cookie
//! sealer) from the options. Adding a backend is one `BackendKind` variant and one
//! arm in [`open_manager`].

use std::sync::Arc;

use session_cookie::{EncryptedCookies, SignedCookies};
use session_core::{SessionConfig, SessionInterface, SessionManager, SessionToken};
use session_crypto::{EncryptedStore, Key, KeyError, KeyRing};

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
/// configuration over it. With `--secret-key`, server-side sessions are encrypted
/// at rest.
pub async fn open_manager(options: &Options) -> Result<SessionManager, DemoError> {
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
            let ring = match key_ring(&options.secret_keys)? {
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
    let store = match key_ring(&options.secret_keys)? {
        Some(ring) => Arc::new(EncryptedStore::new(store, ring)),
        None => store,
    };
    Ok(SessionManager::new(store, config))
}

/// The key ring of `--secret-key ID:SECRET` values (newest first), if any.
fn key_ring(specs: &[String]) -> Result<Option<KeyRing>, DemoError> {
    if specs.is_empty() {
        return Ok(None);
    }
    let keys = specs
        .iter()
        .map(|spec| {
            let (id, secret) = spec.split_once(':').ok_or_else(|| {
                DemoError::SecretKey(
                    "expected ID:SECRET (e.g. 2025-06:<32+ random characters>)".to_owned(),
                )
            })?;
            Key::new(id, secret.as_bytes()).map_err(|e| {
                DemoError::SecretKey(match e {
                    // The part before the first `:` may be a secret typed without
                    // an id: never echo it.
                    KeyError::InvalidId(_) => {
                        "the ID before `:` must be 1 to 32 characters of [A-Za-z0-9._-]".to_owned()
                    }
                    e => e.to_string(),
                })
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    KeyRing::from_keys(keys)
        .map(Some)
        .map_err(|e| DemoError::SecretKey(e.to_string()))
}

/// A key from 256 random bits (a session token's worth of the OS CSPRNG).
fn random_key() -> Result<Key, session_core::Error> {
    let secret = SessionToken::generate()?.to_cookie_value();
    Ok(Key::new("ephemeral", secret.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::key_ring;
    use crate::DemoError;

    #[test]
    fn secret_keys_parse_into_a_ring_newest_first() {
        // 32 characters with no repeating pattern (weak secrets are refused).
        let secret = "k7Qp2xV9mZr4Lw8sT1nB6yHc3dGf5jEa";
        let ring = key_ring(&[format!("new:{secret}"), format!("old:{secret}")])
            .unwrap()
            .unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["new", "old"]);
        assert!(key_ring(&[]).unwrap().is_none());
        for bad in [
            "no-colon",
            "id:short",
            ":xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "bad id:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ] {
            assert!(
                matches!(key_ring(&[bad.to_owned()]), Err(DemoError::SecretKey(_))),
                "{bad}"
            );
        }
        let twice = format!("same:{secret}");
        assert!(key_ring(&[twice.clone(), twice]).is_err());
    }

    /// Security review (HARDENING.md): a secret typed with a `:` but without an id
    /// was echoed in the error (as the invalid id).
    #[test]
    fn errors_never_echo_what_may_be_a_secret() {
        let secret = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A+/x";
        let spec = format!("{secret}:{secret}");
        let Err(error) = key_ring(&[spec]) else {
            panic!("a 50-character id is invalid");
        };
        let message = error.to_string();
        assert!(!message.contains(&secret[..8]), "{message}");
        assert!(message.contains("ID"), "{message}");
    }
}
