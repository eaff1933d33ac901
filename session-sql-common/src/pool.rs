//! Connection pooling without pings.
//!
//! `sqlx::Pool` pings a connection whenever it is returned, and by default again
//! before handing it out, so a load + save cycle costs three or four round trips
//! instead of two. [`ConnectionSource::Managed`] is a `deadpool` managed pool around
//! plain sqlx connections that recycles a connection **without** a round trip and
//! checks health where it matters instead:
//!
//! - a connection on which a statement failed with a connection-level error is
//!   discarded, and so are the idle ones (after a server restart they are all dead,
//!   and one failure should not become `pool size` failures);
//! - a connection whose statement was cancelled mid-flight (its future dropped) is
//!   pinged before reuse, which also drains the abandoned response;
//! - a connection idle for longer than [`PoolSettings::ping_after_idle`] is pinged,
//!   which catches connections silently dropped by firewalls or a restarted server;
//! - a connection older than [`PoolSettings::max_lifetime`] is replaced;
//! - a statement that does not complete within [`PoolSettings::statement_timeout`]
//!   (run through [`bounded`]) fails with a retryable error whose source is a
//!   [`StatementTimeout`], and its connection — in an unknown state, possibly with the
//!   statement still running on the server — is discarded. The idle connections are
//!   kept: a slow statement (a lock wait, a paused server) says nothing about their
//!   sockets.
//!
//! Every wait is bounded: for a free connection by [`PoolSettings::acquire_timeout`],
//! for a new one by [`PoolSettings::connect_timeout`], for the recycle ping by the
//! shorter of the statement and connect timeouts, and for each statement by the
//! statement timeout. Opening a connection keeps its own, longer limit: many
//! connections opened at once on a busy machine (PostgreSQL forks a process and runs
//! SCRAM for each) took over 2 s in the tests, so against a paused server a request
//! that needs a new connection fails after the connect timeout.
//!
//! [`ConnectionSource::Sqlx`] accepts a caller's `sqlx::Pool` as is, for applications
//! that already have one (it keeps that pool's ping behaviour).

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, Object, PoolError, QueueMode, RecycleError, RecycleResult};
use session_core::Error;
use sqlx::pool::PoolConnection;
use sqlx::{ConnectOptions, Connection};

use crate::error::{DbErrorHook, ErrorClass, PoolTimeout, StatementTimeout, classify, to_core};

/// Default [`PoolSettings::statement_timeout`]: 2 s, the same as the Redis store's
/// default command timeout.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Pool sizing and health-check settings of a [`ConnectionSource::Managed`] pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once. Default 16.
    pub max_connections: usize,
    /// How long an operation waits for a free connection before failing with a
    /// retryable error. Default 10 s. `None` waits forever (not recommended).
    pub acquire_timeout: Option<Duration>,
    /// How long opening a new connection may take. Default 10 s.
    pub connect_timeout: Option<Duration>,
    /// Connections older than this are closed and replaced. Default 30 min.
    pub max_lifetime: Option<Duration>,
    /// A connection unused for this long is pinged before it is handed out. Default
    /// 60 s. Busy connections are never pinged.
    pub ping_after_idle: Option<Duration>,
    /// The longest one statement may take once it has a connection (default
    /// [`DEFAULT_STATEMENT_TIMEOUT`], 2 s); also bounds the recycle ping. A stalled
    /// server or a long lock wait then yields a retryable [`Error::Backend`] whose
    /// source is a [`StatementTimeout`], instead of a hung request; the connection is
    /// discarded. `migrate()` counts as one statement. `None` waits forever (not
    /// recommended). Applies to a caller's `sqlx::Pool` too.
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Some(Duration::from_secs(10)),
            connect_timeout: Some(Duration::from_secs(10)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            ping_after_idle: Some(Duration::from_secs(60)),
            statement_timeout: Some(DEFAULT_STATEMENT_TIMEOUT),
        }
    }
}

/// A sqlx connection as the managed pool holds it, with the two flags that replace
/// the ping on every checkout.
#[derive(Debug)]
pub struct PooledConnection<C> {
    conn: C,
    /// A statement was started and its result never seen (the future was dropped).
    in_flight: bool,
    /// A statement failed with a connection-level error.
    broken: bool,
}

/// The `deadpool` manager: opens sqlx connections and recycles them without a round
/// trip unless one of the conditions in the module docs calls for a ping.
pub struct ConnectionManager<C: Connection> {
    options: C::Options,
    settings: PoolSettings,
}

impl<C: Connection> fmt::Debug for ConnectionManager<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionManager")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<C: Connection> managed::Manager for ConnectionManager<C> {
    type Type = PooledConnection<C>;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PooledConnection<C>, sqlx::Error> {
        Ok(PooledConnection {
            // Boxed: the connect future (TLS, authentication) is ~2 KiB, and
            // deadpool's `get` future, whose nested timeouts hold room for it more
            // than once, grew by ~5 KiB with it inline — and so did every store
            // operation's future, which `async_trait` moves into a box when the
            // operation starts, although a connection is rarely opened.
            conn: Box::pin(self.options.connect()).await?,
            in_flight: false,
            broken: false,
        })
    }

    async fn recycle(
        &self,
        c: &mut PooledConnection<C>,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if c.broken {
            return Err(RecycleError::message("connection failed earlier"));
        }
        if self
            .settings
            .max_lifetime
            .is_some_and(|max| metrics.age() > max)
        {
            return Err(RecycleError::message("connection reached its max lifetime"));
        }
        let idle_too_long = self
            .settings
            .ping_after_idle
            .is_some_and(|idle| metrics.last_used() > idle);
        if c.in_flight || idle_too_long {
            // Boxed for the same reason as the connect future in `create`.
            Box::pin(c.conn.ping()).await?;
            c.in_flight = false;
        }
        Ok(())
    }
}

/// Where a store gets its connections.
pub enum ConnectionSource<C: Connection> {
    /// The ping-free managed pool (the default).
    Managed(managed::Pool<ConnectionManager<C>>),
    /// A caller's `sqlx::Pool`, used as is.
    Sqlx(sqlx::Pool<C::Database>),
}

// Both pools are handles to shared state; a clone is another handle to the same pool.
impl<C: Connection> Clone for ConnectionSource<C> {
    fn clone(&self) -> Self {
        match self {
            Self::Managed(p) => Self::Managed(p.clone()),
            Self::Sqlx(p) => Self::Sqlx(p.clone()),
        }
    }
}

impl<C: Connection> fmt::Debug for ConnectionSource<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Managed(p) => f.debug_tuple("Managed").field(&p.status()).finish(),
            Self::Sqlx(p) => f.debug_tuple("Sqlx").field(&p.size()).finish(),
        }
    }
}

impl<C: Connection> ConnectionSource<C> {
    /// A managed pool that opens connections with `options`, lazily (no connection is
    /// opened until the first operation).
    pub fn managed(options: C::Options, settings: PoolSettings) -> Result<Self, Error> {
        let max = settings.max_connections.max(1);
        let pool = managed::Pool::builder(ConnectionManager { options, settings })
            .max_size(max)
            // Hand out the most recently returned connection: under light load the
            // same few connections (and server backends, whose caches are warm) serve
            // every request, instead of a round robin over the whole pool — with 32
            // connections, PostgreSQL ran a one-task load + update cycle at half the
            // speed of a single connection that way.
            .queue_mode(QueueMode::Lifo)
            .wait_timeout(settings.acquire_timeout)
            .create_timeout(settings.connect_timeout)
            // The recycle step pings at most once: a statement on an open connection
            // (e.g. one whose caller gave up mid-statement), so bound it by the
            // statement timeout too. A recycle that times out discards the connection.
            .recycle_timeout(shorter(
                settings.statement_timeout,
                settings.connect_timeout,
            ))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(Error::backend)?;
        Ok(Self::Managed(pool))
    }

    /// Checks out a connection. Pool timeouts and failures to connect are retryable
    /// [`Error::Backend`]s (bad credentials are not).
    pub async fn acquire(&self, hook: DbErrorHook) -> Result<Lease<C>, Error> {
        match self {
            Self::Managed(pool) => match pool.get().await {
                Ok(obj) => Ok(Lease {
                    inner: LeaseInner::Managed(obj),
                    hook,
                }),
                Err(PoolError::Timeout(_)) => Err(Error::retryable(PoolTimeout)),
                Err(PoolError::Backend(e)) => Err(to_core(e, hook)),
                // Closed, no runtime (one is always set), or a hook error (none is set).
                Err(e) => Err(Error::backend(e.to_string())),
            },
            // Boxed: sqlx's acquire future is ~8 KiB (it can open a connection), and
            // unboxed it would size this future — and every store operation's future,
            // which `async_trait` moves into a box when the operation starts — for
            // both pools, the ping-free one included.
            Self::Sqlx(pool) => match Box::pin(pool.acquire()).await {
                Ok(conn) => Ok(Lease {
                    inner: LeaseInner::Sqlx(conn),
                    hook,
                }),
                Err(sqlx::Error::PoolTimedOut) => Err(Error::retryable(PoolTimeout)),
                Err(e) => Err(to_core(e, hook)),
            },
        }
    }

    /// Closes the pool: idle connections are dropped, checked-out ones when returned.
    pub async fn close(&self) {
        match self {
            Self::Managed(pool) => pool.close(),
            Self::Sqlx(pool) => pool.close().await,
        }
    }
}

/// The shorter of two optional limits (`None` is no limit).
fn shorter(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Runs one statement, bounded by `limit` (a store's
/// [`PoolSettings::statement_timeout`]; `None` waits forever): a statement that takes
/// longer is dropped and yields the error [`StatementTimeout::into_sqlx`] makes, which
/// [`Lease::finish`] turns into a retryable [`Error::Backend`] with the
/// [`StatementTimeout`] as its source, discarding the connection.
///
/// `let r = bounded(limit, query.execute(lease.begin())).await; lease.finish(r)?;`
pub async fn bounded<T>(
    limit: Option<Duration>,
    statement: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    match limit {
        None => statement.await,
        Some(limit) => tokio::time::timeout(limit, statement)
            .await
            .unwrap_or_else(|_| Err(StatementTimeout { limit }.into_sqlx())),
    }
}

enum LeaseInner<C: Connection> {
    Managed(Object<ConnectionManager<C>>),
    Sqlx(PoolConnection<C::Database>),
}

/// A checked-out connection. Use it as
/// `let r = bounded(limit, query.execute(lease.begin())).await; let r = lease.finish(r)?;`
/// so the lease knows when a statement was abandoned, timed out or broke its
/// connection.
pub struct Lease<C: Connection> {
    inner: LeaseInner<C>,
    hook: DbErrorHook,
}

impl<C: Connection> Lease<C> {
    /// The connection, for one statement whose result goes to [`Lease::finish`].
    pub fn begin(&mut self) -> &mut C {
        match &mut self.inner {
            LeaseInner::Managed(obj) => {
                obj.in_flight = true;
                &mut obj.conn
            }
            LeaseInner::Sqlx(conn) => conn,
        }
    }

    /// Records the statement's outcome and maps its error: a connection-level failure
    /// marks this connection for discarding and empties the idle part of the pool; a
    /// [`StatementTimeout`] (from [`bounded`]) discards only this connection and
    /// becomes a retryable [`Error::Backend`] with the timeout as its source.
    pub fn finish<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, Error> {
        let class = result.as_ref().err().map(|e| classify(e, self.hook));
        let timed_out = result.as_ref().err().and_then(StatementTimeout::from_sqlx);
        match &mut self.inner {
            LeaseInner::Managed(obj) => {
                obj.in_flight = false;
                if class == Some(ErrorClass::ConnectionLost) {
                    // Its state is unknown (the statement may still be running on the
                    // server, its response may still arrive): never reuse it.
                    obj.broken = true;
                    // After an I/O error the idle siblings most likely died the same
                    // way (a server restart). A timeout is different: one slow
                    // statement — a lock wait, a long purge — says nothing about the
                    // other sockets, and emptying the pool would make every concurrent
                    // request reconnect (each reconnect waiting up to the connect
                    // timeout), while an idle connection that is really dead fails
                    // after the statement timeout and is discarded then.
                    if timed_out.is_none()
                        && let Some(pool) = Object::pool(obj)
                    {
                        pool.retain(|_, _| false);
                    }
                }
            }
            LeaseInner::Sqlx(conn) => {
                if class == Some(ErrorClass::ConnectionLost) {
                    conn.close_on_drop();
                }
            }
        }
        match timed_out {
            Some(timeout) => Err(Error::retryable(timeout)),
            None => result.map_err(|e| to_core(e, self.hook)),
        }
    }

    /// Whether `err` is a transient conflict (deadlock victim, serialization
    /// failure): the server rolled the single statement back as a whole, so it may be
    /// run again at once.
    pub fn is_transient_conflict(&self, err: &sqlx::Error) -> bool {
        classify(err, self.hook) == ErrorClass::TransientConflict
    }
}

impl<C: Connection> Deref for Lease<C> {
    type Target = C;

    fn deref(&self) -> &C {
        match &self.inner {
            LeaseInner::Managed(obj) => &obj.conn,
            LeaseInner::Sqlx(conn) => conn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_passes_results_through_and_times_out_a_stalled_statement() {
        let limit = Duration::from_millis(50);
        assert_eq!(bounded(Some(limit), async { Ok(7) }).await.unwrap(), 7);
        assert_eq!(bounded(None, async { Ok(7) }).await.unwrap(), 7);
        let failed = bounded::<()>(Some(limit), async { Err(sqlx::Error::RowNotFound) }).await;
        assert!(matches!(failed, Err(sqlx::Error::RowNotFound)));

        let stalled = bounded::<()>(Some(limit), std::future::pending()).await;
        let err = stalled.unwrap_err();
        assert_eq!(
            StatementTimeout::from_sqlx(&err),
            Some(StatementTimeout { limit })
        );
    }

    #[test]
    fn the_recycle_ping_gets_the_shorter_limit() {
        let (s, l) = (Duration::from_secs(2), Duration::from_secs(10));
        assert_eq!(shorter(Some(s), Some(l)), Some(s));
        assert_eq!(shorter(Some(l), Some(s)), Some(s));
        assert_eq!(shorter(None, Some(l)), Some(l));
        assert_eq!(shorter(Some(s), None), Some(s));
        assert_eq!(shorter(None, None), None);
        assert_eq!(
            PoolSettings::default().statement_timeout,
            Some(DEFAULT_STATEMENT_TIMEOUT)
        );
    }
}
