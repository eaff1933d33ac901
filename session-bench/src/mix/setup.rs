//! Per backend: ours and tower-sessions as tower services over counted stores,
//! each on a store (table, key prefix, directory) of its own.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};

use session_core::{SessionConfig, SessionInterface, SessionManager};
use session_mysql::MySqlDialect;
use session_postgres::PgDialect;
use session_redis::{RedisConfig, RedisStore};
use session_sql_common::{Dialect, SqlStore};
use session_tower::SessionLayer;
use tower::{Layer as _, Service};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_core::SessionStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike as _, Config, Pool};
use tower_sessions_sqlx_store::sqlx as sqlx08;

use super::counting::{CountingStore, CountingTowerStore};
use super::{AppState, Calls, Mix, ours_handler, tower_handler};
use crate::backends::sql::database_name;
use crate::backends::{Backend, BoxFuture, RunFn, runner};
use crate::harness::{BoxError, Rng, random_hex};

/// The idle lifetime both sides use (ours' default; tower-sessions gets the same
/// as `Expiry::OnInactivity`).
pub const IDLE: time::Duration = time::Duration::hours(24);

/// One contestant of the mix.
pub struct Side {
    /// One measured run.
    pub run: RunFn,
    /// Its store calls and requests.
    pub calls: Arc<Calls>,
    /// Signs its users out (run once, after the last run).
    pub sign_out: BoxFuture<Result<(), BoxError>>,
}

/// Both contestants on one backend, and how to clean up after them.
pub struct Pair {
    /// Ours.
    pub ours: Side,
    /// tower-sessions, where it has a store for the backend.
    pub tower: Option<Side>,
    /// Removes the stores (after both sides signed out).
    pub teardown: BoxFuture<Result<(), BoxError>>,
}

/// A request handler service, as the layers wrap it.
pub trait App:
    Service<Request<()>, Response = Response<()>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> App for S where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// How ours' manager is set up beyond refresh on each request.
#[derive(Debug, Clone, Copy)]
pub struct OursSettings {
    /// Hide the store's one-step `load_and_touch` from the manager (see
    /// [`CountingStore::two_step`]).
    pub two_step: bool,
    /// The manager's `refresh_threshold` (0.5 is its default; 0 refreshes on every
    /// request).
    pub refresh_threshold: f64,
}

/// Ours: session-tower's layer over a `SessionManager` with refresh on each
/// request as `settings` say, over `store` counted into `calls`; and the cookie's
/// name.
pub fn ours_service(
    store: Arc<dyn SessionInterface>,
    calls: &Arc<Calls>,
    app: &Arc<AppState>,
    settings: OursSettings,
) -> Result<(impl App, String), BoxError> {
    let counted = Arc::new(CountingStore {
        inner: store,
        calls: calls.clone(),
        two_step: settings.two_step,
    });
    let config = SessionConfig::builder()
        .idle_lifetime(IDLE)
        .refresh_each_request(true)
        .refresh_threshold(settings.refresh_threshold)
        .build()?;
    let name = config.cookie_name().to_owned();
    let app = app.clone();
    let service = SessionLayer::new(SessionManager::new(counted, config))
        .layer(tower::service_fn(move |req| ours_handler(app.clone(), req)));
    Ok((service, name))
}

/// tower-sessions: its `SessionManagerLayer` with `Expiry::OnInactivity` and
/// `always_save` (its way to slide the deadline on every request) over `store`
/// counted into `calls`; and the cookie's name.
pub fn tower_service<S: SessionStore + Clone>(
    store: S,
    calls: &Arc<Calls>,
    app: &Arc<AppState>,
) -> (impl App, String) {
    let counted = CountingTowerStore {
        inner: store,
        calls: calls.clone(),
    };
    // Its default cookie name, said out loud.
    let name = "id";
    let app = app.clone();
    let service = SessionManagerLayer::new(counted)
        .with_name(name)
        .with_expiry(Expiry::OnInactivity(IDLE))
        .with_always_save(true)
        .layer(tower::service_fn(move |req| {
            tower_handler(app.clone(), req)
        }));
    (service, name.to_owned())
}

fn side(service: impl App, name: &str, calls: Arc<Calls>, users: usize, seed: u64) -> Side {
    let mix = Mix::new(service, name, users, calls.clone(), seed);
    let m = mix.clone();
    Side {
        run: runner(mix),
        calls,
        sign_out: Box::pin(async move { m.sign_out_all().await }),
    }
}

/// Ours as a contestant (see [`ours_service`]).
pub fn ours(
    store: Arc<dyn SessionInterface>,
    app: &Arc<AppState>,
    users: usize,
    seed: u64,
    settings: OursSettings,
) -> Result<Side, BoxError> {
    let calls = Arc::new(Calls::default());
    let (service, name) = ours_service(store, &calls, app, settings)?;
    Ok(side(service, &name, calls, users, seed))
}

/// tower-sessions as a contestant (see [`tower_service`]).
pub fn tower<S: SessionStore + Clone>(
    store: S,
    app: &Arc<AppState>,
    users: usize,
    seed: u64,
) -> Side {
    let calls = Arc::new(Calls::default());
    let (service, name) = tower_service(store, &calls, app);
    side(service, &name, calls, users, seed)
}

/// Builds both sides on `backend` (`url` for servers, `dir` for files); ours
/// set up as `settings` say.
#[allow(clippy::too_many_arguments)]
pub async fn build(
    backend: Backend,
    url: &str,
    dir: &std::path::Path,
    sql_pool: usize,
    app: &Arc<AppState>,
    users: usize,
    settings: OursSettings,
    rng: &mut Rng,
) -> Result<Pair, BoxError> {
    let (s1, s2) = (rng.next_u64(), rng.next_u64());
    match backend {
        Backend::Memory => Ok(Pair {
            ours: ours(
                Arc::new(session_memory::MemoryStore::new()),
                app,
                users,
                s1,
                settings,
            )?,
            tower: Some(tower(
                tower_sessions_memory_store::MemoryStore::default(),
                app,
                users,
                s2,
            )),
            teardown: Box::pin(async { Ok(()) }),
        }),
        Backend::File => {
            let tmp = tempfile::Builder::new()
                .prefix("session-bench-mix-")
                .tempdir_in(dir)?;
            let store = session_file::FileStore::open(tmp.path().join("ours")).await?;
            Ok(Pair {
                ours: ours(Arc::new(store), app, users, s1, settings)?,
                tower: None,
                teardown: Box::pin(async move {
                    tokio::task::spawn_blocking(move || tmp.close()).await??;
                    Ok(())
                }),
            })
        }
        Backend::Redis => {
            let prefix = format!("bench:{}:{}:mix:", std::process::id(), random_hex(rng, 4));
            let store = RedisStore::connect(RedisConfig::new(url).key_prefix(prefix)).await?;
            // One connection each, as in the other Redis tables.
            let pool = Pool::new(Config::from_url(url)?, None, None, None, 1)?;
            pool.init().await?;
            let theirs = tower_sessions_redis_store::RedisStore::new(pool.clone());
            Ok(Pair {
                ours: ours(Arc::new(store), app, users, s1, settings)?,
                tower: Some(tower(theirs, app, users, s2)),
                teardown: Box::pin(async move {
                    pool.quit().await?;
                    Ok(())
                }),
            })
        }
        Backend::Postgres | Backend::MySql => {
            let table = format!("bench_{}_{}_mix", std::process::id(), random_hex(rng, 3));
            let (store, drop_ours) = match backend {
                Backend::Postgres => sql_store::<PgDialect>(url, sql_pool, &table).await?,
                _ => sql_store::<MySqlDialect>(url, sql_pool, &table).await?,
            };
            let tower_table = format!("{table}_tower");
            let (tower_side, drop_theirs) =
                tower_sql(backend, url, sql_pool, &tower_table, app, users, s2).await?;
            Ok(Pair {
                ours: ours(store, app, users, s1, settings)?,
                tower: Some(tower_side),
                teardown: Box::pin(async move {
                    drop_ours.await;
                    drop_theirs.await;
                    Ok(())
                }),
            })
        }
    }
}

/// Our SQL store on its own migrated table and pool; and its tear-down.
async fn sql_store<D: Dialect>(
    url: &str,
    pool: usize,
    table: &str,
) -> Result<(Arc<dyn SessionInterface>, BoxFuture<()>), BoxError> {
    let store = SqlStore::<D>::builder()
        .table_name(table)
        .max_connections(pool)
        .connect(url)?;
    store.migrate().await?;
    let s = store.clone();
    let drop: BoxFuture<()> = Box::pin(async move {
        let _ = s.drop_table().await;
        s.close().await;
    });
    Ok((Arc::new(store), drop))
}

/// tower-sessions' SQL store on sqlx 0.8 with a pool of `pool` connections, on
/// its own migrated table; and its tear-down.
async fn tower_sql(
    backend: Backend,
    url: &str,
    pool: usize,
    table: &str,
    app: &Arc<AppState>,
    users: usize,
    seed: u64,
) -> Result<(Side, BoxFuture<()>), BoxError> {
    let table = table.to_owned();
    if backend == Backend::Postgres {
        let pool = sqlx08::postgres::PgPoolOptions::new()
            .max_connections(pool as u32)
            .connect(url)
            .await?;
        let store = tower_sessions_sqlx_store::PostgresStore::new(pool.clone())
            .with_schema_name("public")?
            .with_table_name(&table)?;
        store.migrate().await?;
        let drop: BoxFuture<()> = Box::pin(async move {
            let sql = format!("DROP TABLE IF EXISTS \"public\".\"{table}\"");
            let _ = sqlx08::query(&sql).execute(&pool).await;
            pool.close().await;
        });
        Ok((tower(store, app, users, seed), drop))
    } else {
        let pool = sqlx08::mysql::MySqlPoolOptions::new()
            .max_connections(pool as u32)
            .connect(url)
            .await?;
        let db = database_name(url)?;
        let store = tower_sessions_sqlx_store::MySqlStore::new(pool.clone())
            .with_schema_name(&db)?
            .with_table_name(&table)?;
        store.migrate().await?;
        let drop: BoxFuture<()> = Box::pin(async move {
            let sql = format!("DROP TABLE IF EXISTS `{db}`.`{table}`");
            let _ = sqlx08::query(&sql).execute(&pool).await;
            pool.close().await;
        });
        Ok((tower(store, app, users, seed), drop))
    }
}
