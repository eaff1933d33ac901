//! SQL: `PostgresStore` / `MySqlStore` (sqlx 0.9, our ping-free pool) vs plain
//! statements by key on dedicated sqlx 0.9 connections vs tower-sessions-sqlx-store
//! (sqlx 0.8 and its `Pool`, with its default ping on acquire).
//!
//! Every contestant may open the same number of connections (`--sql-pool`). The
//! limit gives each task a connection of its own (with 32 tasks and 32 connections)
//! and never pings, so it pays exactly one round trip per statement.

use std::sync::Arc;

use bytes::Bytes;
use session_core::SessionInterface;
use session_mysql::MySqlDialect;
use session_mysql::sqlx::MySqlConnection;
use session_postgres::PgDialect;
use session_postgres::sqlx::{self, AssertSqlSafe, Connection as _, PgConnection};
use session_sql_common::{Dialect, SqlStore};
use time::{OffsetDateTime, PrimitiveDateTime};
use tokio::sync::Mutex;
use tower_sessions_sqlx_store::sqlx as sqlx08;

use crate::backends::{Backend, BoxFuture, Contestants, RunFn, runner};
use crate::contestants::{Ours, Tower};
use crate::harness::{BoxError, Contestant, Op, Rng, random_hex};
use crate::manager::{ManagerCycle, TowerSessionCycle};
use crate::server_cpu::{ServerProcesses, local_url_port, probed};
use crate::workload::{Workload, deadline, storage_keys, tower_ids};

/// One dedicated connection of the limit.
enum Conn {
    Pg(PgConnection),
    My(MySqlConnection),
}

/// The limit's statements.
struct Statements {
    load: Arc<str>,
    update: Arc<str>,
    touch: Arc<str>,
    create: Arc<str>,
    delete: Arc<str>,
}

impl Statements {
    fn new(backend: Backend, table: &str) -> Self {
        let s = |x: String| -> Arc<str> { x.into() };
        match backend {
            Backend::MySql => Self {
                load: s(format!(
                    "SELECT payload, expires_at, version FROM `{table}` WHERE `key` = ?"
                )),
                update: s(format!(
                    "UPDATE `{table}` SET payload = ?, expires_at = ?, version = version + 1 WHERE `key` = ?"
                )),
                touch: s(format!(
                    "UPDATE `{table}` SET expires_at = ? WHERE `key` = ?"
                )),
                create: s(format!(
                    "INSERT INTO `{table}` (`key`, payload, expires_at, version) VALUES (?, ?, ?, 1)"
                )),
                delete: s(format!("DELETE FROM `{table}` WHERE `key` = ?")),
            },
            _ => Self {
                load: s(format!(
                    "SELECT payload, expires_at, version FROM \"{table}\" WHERE key = $1"
                )),
                update: s(format!(
                    "UPDATE \"{table}\" SET payload = $1, expires_at = $2, version = version + 1 WHERE key = $3"
                )),
                touch: s(format!(
                    "UPDATE \"{table}\" SET expires_at = $1 WHERE key = $2"
                )),
                create: s(format!(
                    "INSERT INTO \"{table}\" (key, payload, expires_at, version) VALUES ($1, $2, $3, 1)"
                )),
                delete: s(format!("DELETE FROM \"{table}\" WHERE key = $1")),
            },
        }
    }
}

/// MySQL `DATETIME` holds UTC wall time, as session-mysql stores it.
fn utc(t: OffsetDateTime) -> PrimitiveDateTime {
    PrimitiveDateTime::new(t.date(), t.time())
}

/// The limit: plain statements on dedicated, never-pinged connections.
pub struct RawSql {
    conns: Vec<Mutex<Conn>>,
    sql: Statements,
    keys: Vec<String>,
    fresh: Vec<String>,
    payload: Bytes,
}

impl RawSql {
    async fn load(&self, conn: &mut Conn, key: &str) -> Result<Vec<u8>, BoxError> {
        let q = AssertSqlSafe(self.sql.load.clone());
        let payload = match conn {
            Conn::Pg(c) => {
                let row: Option<(Vec<u8>, OffsetDateTime, i64)> =
                    sqlx::query_as(q).bind(key).fetch_optional(&mut *c).await?;
                row.map(|r| r.0)
            }
            Conn::My(c) => {
                let row: Option<(Vec<u8>, PrimitiveDateTime, i64)> =
                    sqlx::query_as(q).bind(key).fetch_optional(&mut *c).await?;
                row.map(|r| r.0)
            }
        };
        payload.ok_or_else(|| "vanished".into())
    }

    async fn write(&self, conn: &mut Conn, key: &str, payload: &[u8]) -> Result<(), BoxError> {
        let q = AssertSqlSafe(self.sql.update.clone());
        let at = deadline();
        let n = match conn {
            Conn::Pg(c) => sqlx::query(q)
                .bind(payload)
                .bind(at)
                .bind(key)
                .execute(&mut *c)
                .await?
                .rows_affected(),
            Conn::My(c) => sqlx::query(q)
                .bind(payload)
                .bind(utc(at))
                .bind(key)
                .execute(&mut *c)
                .await?
                .rows_affected(),
        };
        if n == 1 {
            Ok(())
        } else {
            Err("vanished".into())
        }
    }

    /// Touch (`payload` = None) or create (`Some`) of `key`; the affected rows.
    async fn exec_key(
        &self,
        conn: &mut Conn,
        sql: &Arc<str>,
        key: &str,
        payload: Option<&[u8]>,
    ) -> Result<u64, BoxError> {
        let q = AssertSqlSafe(sql.clone());
        let at = deadline();
        let n = match (conn, payload) {
            (Conn::Pg(c), None) => sqlx::query(q)
                .bind(at)
                .bind(key)
                .execute(&mut *c)
                .await?
                .rows_affected(),
            (Conn::Pg(c), Some(p)) => sqlx::query(q)
                .bind(key)
                .bind(p)
                .bind(at)
                .execute(&mut *c)
                .await?
                .rows_affected(),
            (Conn::My(c), None) => sqlx::query(q)
                .bind(utc(at))
                .bind(key)
                .execute(&mut *c)
                .await?
                .rows_affected(),
            (Conn::My(c), Some(p)) => sqlx::query(q)
                .bind(key)
                .bind(p)
                .bind(utc(at))
                .execute(&mut *c)
                .await?
                .rows_affected(),
        };
        Ok(n)
    }

    async fn delete(&self, conn: &mut Conn, key: &str) -> Result<(), BoxError> {
        let q = AssertSqlSafe(self.sql.delete.clone());
        match conn {
            Conn::Pg(c) => sqlx::query(q).bind(key).execute(&mut *c).await?,
            Conn::My(c) => {
                sqlx::query(q).bind(key).execute(&mut *c).await?;
                return Ok(());
            }
        };
        Ok(())
    }

    /// The connection of `task`: with at least as many connections as tasks, each
    /// task always gets the same one, uncontended — also at 1 task, where picking by
    /// session spread the task's operations over every connection (on MariaDB that
    /// ran the limit's loads 3–12 % faster than one connection did, while ours uses
    /// one: its pool hands out the most recently returned connection).
    fn conn(&self, task: usize) -> &Mutex<Conn> {
        &self.conns[task % self.conns.len()]
    }
}

impl Contestant for RawSql {
    async fn op(&self, op: Op, slot: usize, task: usize) -> Result<(), BoxError> {
        let mut conn = self.conn(task).lock().await;
        match op {
            Op::Cycle => {
                let key = &self.keys[slot];
                let got = self.load(&mut conn, key).await?;
                self.write(&mut conn, key, &got).await
            }
            Op::Load => self.load(&mut conn, &self.keys[slot]).await.map(drop),
            Op::Update => self.write(&mut conn, &self.keys[slot], &self.payload).await,
            Op::Touch => {
                let n = self
                    .exec_key(&mut conn, &self.sql.touch, &self.keys[slot], None)
                    .await?;
                if n == 1 {
                    Ok(())
                } else {
                    Err("vanished".into())
                }
            }
            Op::Create => {
                self.exec_key(
                    &mut conn,
                    &self.sql.create,
                    &self.fresh[slot],
                    Some(&self.payload),
                )
                .await?;
                Ok(())
            }
        }
    }

    async fn remove_created(&self, n: usize) -> Result<(), BoxError> {
        let n = n.min(self.fresh.len());
        let conns = self.conns.len();
        // One task per connection.
        let me: &Self = self;
        let jobs = (0..conns).map(|c| async move {
            let mut conn = me.conns[c].lock().await;
            let mut i = c;
            while i < n {
                me.delete(&mut conn, &me.fresh[i]).await?;
                i += conns;
            }
            Ok::<(), BoxError>(())
        });
        for r in join_all(jobs).await {
            r?;
        }
        Ok(())
    }
}

/// Polls every future to completion concurrently (on this task).
async fn join_all<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futures.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// The database name at the end of a URL (`mysql://u:p@h:port/NAME?…`).
pub(crate) fn database_name(url: &str) -> Result<String, BoxError> {
    let path = url.rsplit_once('/').ok_or("no database in the URL")?.1;
    let name = path.split('?').next().unwrap_or_default();
    if name.is_empty() {
        return Err("no database in the URL".into());
    }
    Ok(name.to_owned())
}

/// Opens one migrated store per table on its own pool of `pool` connections, and
/// queues each one's tear-down (drop the table, close the pool) in `drops`.
async fn open_stores<D: Dialect>(
    url: &str,
    pool: usize,
    tables: [&str; 3],
    drops: &mut Vec<BoxFuture<()>>,
) -> Result<[Arc<dyn SessionInterface>; 3], BoxError> {
    let mut stores = Vec::with_capacity(tables.len());
    for table in tables {
        let store = SqlStore::<D>::builder()
            .table_name(table)
            .max_connections(pool)
            .connect(url)?;
        store.migrate().await?;
        let s = store.clone();
        drops.push(Box::pin(async move {
            let _ = s.drop_table().await;
            s.close().await;
        }));
        stores.push(Arc::new(store) as Arc<dyn SessionInterface>);
    }
    Ok(stores
        .try_into()
        .unwrap_or_else(|_| unreachable!("one store per table")))
}

/// Builds the SQL contestants for `workload` on the server at `url`, with at most
/// `pool` connections each.
pub async fn contestants(
    backend: Backend,
    url: &str,
    pool: usize,
    workload: &Workload,
    sessions: usize,
    fresh: usize,
    rng: &mut Rng,
) -> Result<Contestants, BoxError> {
    let ns = format!("bench_{}_{}", std::process::id(), random_hex(rng, 3));
    let ours_table = format!("{ns}_ours");
    let raw_table = format!("{ns}_raw");
    let mgr_table = format!("{ns}_mgr");
    let tower_table = format!("{ns}_tower");
    let tower_mgr_table = format!("{ns}_tower_mgr");

    // Ours (and, made the same way, the limit's table: identical schema).
    let mut drops: Vec<BoxFuture<()>> = Vec::new();
    let tables = [ours_table.as_str(), raw_table.as_str(), mgr_table.as_str()];
    let [ours_store, raw_store, mgr_store] = match backend {
        Backend::Postgres => open_stores::<PgDialect>(url, pool, tables, &mut drops).await?,
        _ => open_stores::<MySqlDialect>(url, pool, tables, &mut drops).await?,
    };

    // The limit: pre-create its rows with the store (same table layout), then use
    // the table with plain statements on its own connections.
    let raw_keys = storage_keys(sessions, rng);
    let _preload = Ours::setup(raw_store, raw_keys.clone(), Vec::new(), workload).await?;
    let mut conns = Vec::with_capacity(pool);
    for _ in 0..pool {
        conns.push(Mutex::new(match backend {
            Backend::Postgres => Conn::Pg(PgConnection::connect(url).await?),
            _ => Conn::My(MySqlConnection::connect(url).await?),
        }));
    }
    let raw = Arc::new(RawSql {
        conns,
        sql: Statements::new(backend, &raw_table),
        keys: raw_keys.iter().map(|k| k.as_str().to_owned()).collect(),
        fresh: (0..fresh).map(|_| random_hex(rng, 32)).collect(),
        payload: workload.payload.clone(),
    });

    let ours = Ours::setup(
        ours_store,
        storage_keys(sessions, rng),
        storage_keys(fresh, rng),
        workload,
    )
    .await?;
    let manager = ManagerCycle::setup(mgr_store, sessions, workload).await?;

    // tower-sessions on sqlx 0.8, with the pool as its users get it by default.
    let (tower, manager_tower) = match backend {
        Backend::Postgres => {
            let pool = sqlx08::postgres::PgPoolOptions::new()
                .max_connections(pool as u32)
                .connect(url)
                .await?;
            let store = |t: &str| -> Result<_, BoxError> {
                Ok(tower_sessions_sqlx_store::PostgresStore::new(pool.clone())
                    .with_schema_name("public")?
                    .with_table_name(t)?)
            };
            let (ts, tm) = (store(&tower_table)?, store(&tower_mgr_table)?);
            ts.migrate().await?;
            tm.migrate().await?;
            let t = Tower::setup(
                ts,
                tower_ids(sessions, rng),
                tower_ids(fresh, rng),
                workload,
            )
            .await?;
            let m = TowerSessionCycle::setup(tm, sessions, workload, rng).await?;
            for table in [tower_table.clone(), tower_mgr_table.clone()] {
                let pool = pool.clone();
                drops.push(Box::pin(async move {
                    let sql = format!("DROP TABLE IF EXISTS \"public\".\"{table}\"");
                    let _ = sqlx08::query(&sql).execute(&pool).await;
                }));
            }
            (runner(t), runner(m))
        }
        _ => {
            let pool = sqlx08::mysql::MySqlPoolOptions::new()
                .max_connections(pool as u32)
                .connect(url)
                .await?;
            let db = database_name(url)?;
            let store = |t: &str| -> Result<_, BoxError> {
                Ok(tower_sessions_sqlx_store::MySqlStore::new(pool.clone())
                    .with_schema_name(&db)?
                    .with_table_name(t)?)
            };
            let (ts, tm) = (store(&tower_table)?, store(&tower_mgr_table)?);
            ts.migrate().await?;
            tm.migrate().await?;
            let t = Tower::setup(
                ts,
                tower_ids(sessions, rng),
                tower_ids(fresh, rng),
                workload,
            )
            .await?;
            let m = TowerSessionCycle::setup(tm, sessions, workload, rng).await?;
            for table in [tower_table.clone(), tower_mgr_table.clone()] {
                let (pool, db) = (pool.clone(), db.clone());
                drops.push(Box::pin(async move {
                    let sql = format!("DROP TABLE IF EXISTS `{db}`.`{table}`");
                    let _ = sqlx08::query(&sql).execute(&pool).await;
                }));
            }
            (runner(t), runner(m))
        }
    };

    // The server's CPU per operation, when it runs on this machine.
    let server = local_url_port(url).and_then(ServerProcesses::find);
    if server.is_none() {
        eprintln!(
            "[bench]   no local server process found for the URL in /proc: no server CPU figures"
        );
    }
    let probe = |run: RunFn| match server {
        Some(s) => probed(run, s),
        None => run,
    };
    Ok(Contestants {
        limit: probe(runner(raw)),
        ours: probe(runner(ours)),
        tower: Some(probe(tower)),
        extra: Vec::new(),
        envelope: manager.envelope().await?,
        manager: probe(runner(manager)),
        manager_tower: Some(probe(manager_tower)),
        // Dropping the tables removes every row.
        teardown: Box::pin(async move {
            for d in drops {
                d.await;
            }
            Ok(())
        }),
    })
}
