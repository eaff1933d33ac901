//! Opening a store from a backend spec given on the command line.

use std::sync::Arc;

use session_core::{Error, SessionInterface};
use session_file::FileStore;
use session_memory::MemoryStore;
use session_mysql::MySqlStore;
use session_postgres::PostgresStore;
use session_redis::{RedisConfig, RedisStore};

/// An opened store and what the chaos checks may expect of it.
pub struct Backend {
    /// The store, as the manager uses it.
    pub store: Arc<dyn SessionInterface>,
    /// The concrete memory store, to read its footprint.
    pub memory: Option<Arc<MemoryStore>>,
    /// Whether acknowledged writes must survive a restart of the server (or of
    /// this process) as configured by `scripts/services.sh`.
    pub durable: bool,
    /// Short name for reports.
    pub kind: &'static str,
}

/// The kind of backend a spec names, without opening it.
pub fn kind_of(spec: &str) -> Option<&'static str> {
    let (scheme, _) = spec.split_once(':').unwrap_or((spec, ""));
    Some(match scheme {
        "memory" => "memory",
        "file" => "file",
        "redis" => "redis",
        "redis-cluster" => "redis-cluster",
        "postgres" | "postgresql" => "postgres",
        "mysql" | "mariadb" => "mysql",
        _ => return None,
    })
}

/// The node URLs of `redis-cluster://h1:p1,h2:p2` (each may also be a full
/// `redis://` URL).
pub fn cluster_nodes(spec: &str) -> Vec<String> {
    let rest = spec.strip_prefix("redis-cluster://").unwrap_or(spec);
    rest.split(',')
        .filter(|s| !s.is_empty())
        .map(|n| {
            if n.starts_with("redis://") {
                n.to_owned()
            } else {
                format!("redis://{n}")
            }
        })
        .collect()
}

/// Opens the store named by `spec`:
/// `memory`, `file:///dir`, `redis://…`, `redis-cluster://h:p,h:p,…`,
/// `postgres://…`, `mysql://…`. `namespace` (`[a-z0-9_]`) picks the Redis key
/// prefix, SQL table or file sub-directory, so a run never touches other data.
pub async fn open(spec: &str, namespace: &str) -> Result<Backend, Error> {
    let kind = kind_of(spec).ok_or_else(|| {
        Error::Config(session_core::ConfigError::Invalid {
            setting: "backend",
            reason: format!("unknown backend spec {spec:?}"),
        })
    })?;
    let prefix = format!("chaos:{namespace}:");
    let table = format!("chaos_{namespace}");
    let (store, memory, durable): (Arc<dyn SessionInterface>, _, bool) = match kind {
        "memory" => {
            let m = Arc::new(MemoryStore::new());
            (m.clone(), Some(m), false)
        }
        "file" => {
            let dir = spec.strip_prefix("file://").unwrap_or(&spec[5..]);
            let dir = std::path::Path::new(dir).join(namespace);
            (Arc::new(FileStore::builder(dir).open().await?), None, true)
        }
        "redis" => {
            let cfg = RedisConfig::new(spec).key_prefix(prefix);
            // services.sh runs Redis without RDB/AOF: a restart loses everything.
            (Arc::new(RedisStore::connect(cfg).await?), None, false)
        }
        "redis-cluster" => {
            let cfg = RedisConfig::cluster(cluster_nodes(spec)).key_prefix(prefix);
            (Arc::new(RedisStore::connect(cfg).await?), None, false)
        }
        "postgres" => (
            Arc::new(PostgresStore::open(spec, &table, None).await?),
            None,
            true,
        ),
        "mysql" => (
            Arc::new(MySqlStore::open(spec, &table, None).await?),
            None,
            true,
        ),
        _ => unreachable!("kind_of returns only the kinds above"),
    };
    Ok(Backend {
        store,
        memory,
        durable,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind_of("memory"), Some("memory"));
        assert_eq!(kind_of("redis://127.0.0.1:1/0"), Some("redis"));
        assert_eq!(kind_of("redis-cluster://a:1,b:2"), Some("redis-cluster"));
        assert_eq!(kind_of("postgres://u:p@h/db"), Some("postgres"));
        assert_eq!(kind_of("mysql://u:p@h/db"), Some("mysql"));
        assert_eq!(kind_of("file:///tmp/x"), Some("file"));
        assert_eq!(kind_of("ftp://x"), None);
    }

    #[test]
    fn cluster_spec() {
        assert_eq!(
            cluster_nodes("redis-cluster://127.0.0.1:1,redis://127.0.0.1:2"),
            vec!["redis://127.0.0.1:1", "redis://127.0.0.1:2"]
        );
    }
}
