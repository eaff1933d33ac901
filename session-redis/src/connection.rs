//! The connections a store sends its commands over, and the one place that sends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisResult, ServerErrorKind, Value};
use session_core::Error;

use crate::config::{RedisConfig, Target};
use crate::error::{RedisStoreError, from_pool, from_redis};
use crate::scripts::{Arg, Script};

/// Reconnection attempts per connection loss before pending requests fail. Small on
/// purpose: the command timeout bounds every operation anyway, and a failed round of
/// attempts is followed by a fresh one on the next request, so the store recovers
/// whenever the server comes back.
const RECONNECT_RETRIES: usize = 2;
/// Retries of the cluster client on a redirect, `TRYAGAIN` or a lost node.
const CLUSTER_RETRIES: u32 = 3;

/// One request: a plain command, a script call that falls back from `EVALSHA` to
/// `EVAL` on `NOSCRIPT`, or a `MULTI`/`EXEC` transaction.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Request<'a> {
    /// A single command.
    Command(&'a Cmd),
    /// `script` on `key` with `args`.
    Script {
        script: &'a Script,
        key: Arg<'a>,
        args: &'a [Arg<'a>],
    },
    /// An atomic pipeline (`MULTI` … `EXEC`) whose commands all name one key; the
    /// reply is `EXEC`'s array (see [`crate::scripts::transaction`]).
    Transaction(&'a Pipeline),
}

/// Multiplexed connections used round-robin. Each request clones a handle (an `Arc`
/// or a channel sender), never a socket.
pub(crate) struct RoundRobin<C> {
    conns: Box<[C]>,
    next: AtomicUsize,
}

impl<C: Clone> RoundRobin<C> {
    fn new(conns: Vec<C>) -> Self {
        Self {
            conns: conns.into_boxed_slice(),
            next: AtomicUsize::new(0),
        }
    }

    fn pick(&self) -> C {
        let i = match self.conns.len() {
            1 => 0,
            n => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        self.conns[i].clone()
    }
}

/// How the store reaches Redis.
pub(crate) enum Connection {
    /// redis-rs `ConnectionManager`s: multiplexed, reconnecting by themselves.
    Standalone(RoundRobin<ConnectionManager>),
    /// redis-rs async cluster connections: slot-aware, following redirects,
    /// reconnecting by themselves.
    Cluster(RoundRobin<ClusterConnection>),
    /// A caller's `deadpool-redis` pool: one checkout per operation.
    Pool(deadpool_redis::Pool),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Standalone(rr) => write!(f, "Standalone({} connections)", rr.conns.len()),
            Self::Cluster(rr) => write!(f, "Cluster({} connections)", rr.conns.len()),
            Self::Pool(p) => write!(f, "Pool({:?})", p.status()),
        }
    }
}

impl Connection {
    /// Opens the connections `config` asks for (already validated) and proves the
    /// server answers, all within `connect_timeout` per connection.
    pub(crate) async fn open(config: &RedisConfig) -> Result<Self, Error> {
        let after = config.connect_timeout;
        let connecting = async {
            match &config.target {
                Target::Standalone(url) => Self::open_standalone(url, config).await,
                Target::Cluster(nodes) => Self::open_cluster(nodes, config).await,
            }
        };
        // `pool_size` connections are opened one after the other.
        let budget = after.saturating_mul(u32::try_from(config.pool_size).unwrap_or(u32::MAX));
        match tokio::time::timeout(budget, connecting).await {
            Ok(r) => r.map_err(from_redis),
            Err(_) => Err(Error::retryable(RedisStoreError::ConnectTimeout { after })),
        }
    }

    async fn open_standalone(url: &str, config: &RedisConfig) -> RedisResult<Self> {
        #[cfg(feature = "tls")]
        let client = match &config.tls_root_certificates {
            Some(pem) => redis::Client::build_with_tls(url, tls_roots(pem))?,
            None => redis::Client::open(url)?,
        };
        #[cfg(not(feature = "tls"))]
        let client = redis::Client::open(url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            // No timeout of the driver's own: `RedisStore` bounds every operation
            // with `command_timeout`, which starts first, so the driver's (same
            // length) could at best tie with it and turn a timeout into an I/O
            // error; the second timer cost ~5 % of the client's instructions.
            .set_response_timeout(None)
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(Duration::from_millis(500));
        let mut conns = Vec::with_capacity(config.pool_size);
        for _ in 0..config.pool_size {
            conns.push(
                ConnectionManager::new_with_config(client.clone(), manager_config.clone()).await?,
            );
        }
        Ok(Self::Standalone(RoundRobin::new(conns)))
    }

    async fn open_cluster(nodes: &[String], config: &RedisConfig) -> RedisResult<Self> {
        let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.command_timeout)
            .retries(CLUSTER_RETRIES);
        #[cfg(feature = "tls")]
        let client = match &config.tls_root_certificates {
            Some(pem) => client.certs(tls_roots(pem)),
            None => client,
        };
        let client = client.build()?;
        let mut conns = Vec::with_capacity(config.pool_size);
        for _ in 0..config.pool_size {
            match client.get_async_connection().await {
                Ok(conn) => conns.push(conn),
                #[cfg(feature = "tls")]
                Err(e) => return Err(seed_certificate_failure(nodes, config).await.unwrap_or(e)),
                #[cfg(not(feature = "tls"))]
                Err(e) => return Err(e),
            }
        }
        Ok(Self::Cluster(RoundRobin::new(conns)))
    }

    /// Whether this is a cluster connection.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Sends `req` and returns the server's reply, or the mapped error.
    pub(crate) async fn send(&self, req: Request<'_>) -> Result<Value, Error> {
        self.send_raw(req).await?.map_err(from_redis)
    }

    /// Sends `req` and returns the driver's result unmapped, for a caller that looks
    /// at the error itself; the outer error is a failed pool checkout.
    pub(crate) async fn send_raw(&self, req: Request<'_>) -> Result<RedisResult<Value>, Error> {
        Ok(match self {
            Self::Standalone(rr) => exec(&mut rr.pick(), req).await,
            Self::Cluster(rr) => exec(&mut rr.pick(), req).await,
            Self::Pool(pool) => {
                // Boxed: the checkout future (which may open a connection) is ~6 KiB;
                // inline, it would size every command's future, and so every store
                // operation's, for the multiplexed connections too (see the test).
                let mut conn = Box::pin(pool.get()).await.map_err(from_pool)?;
                exec(&mut conn, req).await
            }
        })
    }
}

/// Why a cluster's seeds refused a TLS connection, when it was their certificate.
///
/// The cluster client reports a failed start as an I/O error that holds its cause
/// only as text, so a certificate that no retry can cure would read as retryable.
/// After such a failure, one plain (non-cluster) connection to the first `rediss://`
/// seed, with the same TLS settings, recovers the typed cause; any other outcome
/// leaves the cluster client's error as it was.
#[cfg(feature = "tls")]
async fn seed_certificate_failure(
    nodes: &[String],
    config: &RedisConfig,
) -> Option<redis::RedisError> {
    let seed = nodes.iter().find(|url| url.starts_with("rediss://"))?;
    let client = match &config.tls_root_certificates {
        Some(pem) => redis::Client::build_with_tls(seed.as_str(), tls_roots(pem)),
        None => redis::Client::open(seed.as_str()),
    }
    .ok()?;
    let probe = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout));
    let err = client
        .get_multiplexed_async_connection_with_config(&probe)
        .await
        .err()?;
    crate::error::is_certificate_failure(&err).then_some(err)
}

/// The driver's TLS settings for [`RedisConfig::tls_root_certificates`]: trust these
/// roots, present no client certificate.
#[cfg(feature = "tls")]
fn tls_roots(pem: &[u8]) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    }
}

async fn exec<C: ConnectionLike>(con: &mut C, req: Request<'_>) -> RedisResult<Value> {
    match req {
        Request::Command(cmd) => cmd.query_async(con).await,
        Request::Script { script, key, args } => {
            match script.evalsha(&key, args).query_async(con).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.eval(&key, args).query_async(con).await
                }
                reply => reply,
            }
        }
        Request::Transaction(pipe) => pipe.query_async(con).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sending a command is a small future whatever the connection kind: every store
    /// operation's future holds one, and `async_trait` moves that whole future into a
    /// box each time an operation starts. With `deadpool-redis`'s checkout future
    /// (which may open a connection) held inline it was 7 KiB, for the multiplexed
    /// connections too.
    #[tokio::test]
    async fn a_command_future_stays_small() {
        // Nothing listens there; the pool connects lazily and nothing is polled.
        let pool = deadpool_redis::Config::from_url("redis://127.0.0.1:1/")
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap();
        let conn = Connection::Pool(pool);
        let cmd = redis::cmd("GET");
        let sending = conn.send(Request::Command(&cmd));
        let size = std::mem::size_of_val(&sending);
        assert!(size <= 1024, "the command future is {size} bytes");
    }
}
