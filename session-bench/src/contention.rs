//! Contention: many concurrent changes of ONE session, through one manager and
//! through two processes' managers on one store, counting the compare-and-set
//! attempts each request needed.
//!
//! Within one process the manager's per-session queue should make every request
//! save at its first attempt; across processes the compare-and-set decides, and the
//! figure that matters is how many attempts the slowest requests need against the
//! default `save_attempts` (16). The second process is this binary again
//! (`--contention-child`), started twice so both sides are alike.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use session_core::time::OffsetDateTime;
use session_core::{
    Capabilities, CookieDecision, Error, NewRecord, SaveMode, SessionConfig, SessionInterface,
    SessionManager, StorageKey, StoredRecord, Version,
};
use session_mysql::MySqlDialect;
use session_postgres::PgDialect;
use session_redis::{RedisConfig, RedisStore};
use session_sql_common::SqlStore;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::backends::Backend;
use crate::harness::BoxError;

/// Concurrent additions per round: all of them in one process, or half in each of
/// two.
pub const ADDS: usize = 50;

/// Where the stores keep the contention sessions (a table, a key prefix).
const NAMESPACE: &str = "bench_contention";

tokio::task_local! {
    /// The compare-and-set attempts of the request running in this task.
    static ATTEMPTS: Cell<u32>;
}

/// Counts `save(Update)` calls into the running request's [`ATTEMPTS`].
struct Counting(Arc<dyn SessionInterface>);

#[async_trait]
impl SessionInterface for Counting {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        self.0.load(key).await
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        if let SaveMode::Update { .. } = mode {
            let _ = ATTEMPTS.try_with(|a| a.set(a.get() + 1));
        }
        self.0.save(key, record, mode).await
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        self.0.expire(key).await
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        self.0.touch(key, expires_at).await
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        self.0.delete_expired().await
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

/// One row of the contention table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The store.
    pub backend: Backend,
    /// 1 or 2.
    pub processes: usize,
    /// Attempts of every request that saved.
    pub attempts: Vec<u32>,
    /// Requests that gave up (`TooManyConflicts`) or failed otherwise.
    pub failed: usize,
}

impl Row {
    /// The `q`-quantile of the attempts (nearest rank), 0 when none saved.
    pub fn quantile(&self, q: f64) -> u32 {
        let mut sorted = self.attempts.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }
}

/// Opens the store of `backend` shared by both processes.
async fn open_store(
    backend: Backend,
    url: &str,
    dir: &Path,
) -> Result<Arc<dyn SessionInterface>, BoxError> {
    Ok(match backend {
        Backend::Memory => return Err("the memory store lives in one process".into()),
        Backend::File => Arc::new(session_file::FileStore::open(dir).await?),
        Backend::Redis => Arc::new(
            RedisStore::connect(RedisConfig::new(url).key_prefix(format!("{NAMESPACE}:"))).await?,
        ),
        Backend::Postgres => {
            let store = SqlStore::<PgDialect>::builder()
                .table_name(NAMESPACE)
                .connect(url)?;
            store.migrate().await?;
            Arc::new(store)
        }
        Backend::MySql => {
            let store = SqlStore::<MySqlDialect>::builder()
                .table_name(NAMESPACE)
                .connect(url)?;
            store.migrate().await?;
            Arc::new(store)
        }
    })
}

/// Runs `adds` concurrent additions to the session `cookie` names, each in its own
/// task, and returns the attempts of those that saved and how many failed.
async fn additions(
    store: Arc<dyn SessionInterface>,
    cookie: &str,
    adds: usize,
    tag: &str,
) -> (Vec<u32>, usize) {
    let manager = SessionManager::new(Arc::new(Counting(store)), SessionConfig::default());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..adds {
        let (manager, cookie, key) = (manager.clone(), cookie.to_owned(), format!("{tag}{i}"));
        tasks.spawn(ATTEMPTS.scope(Cell::new(0), async move {
            let session = manager.session(Some(&cookie));
            let saved = match session.insert(&key, &i).await {
                Ok(()) => manager.finish(&session).await.is_ok(),
                Err(_) => false,
            };
            saved.then(|| ATTEMPTS.with(Cell::get))
        }));
    }
    let (mut attempts, mut failed) = (Vec::with_capacity(adds), 0);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Some(n)) => attempts.push(n),
            _ => failed += 1,
        }
    }
    (attempts, failed)
}

/// A fresh session with one value; returns its cookie.
async fn new_session(store: &Arc<dyn SessionInterface>) -> Result<String, BoxError> {
    let manager = SessionManager::new(Arc::clone(store), SessionConfig::default());
    let session = manager.session(None);
    session.insert("cart", &0u32).await?;
    match manager.finish(&session).await? {
        CookieDecision::Set(c) => Ok(c.value().to_owned()),
        other => Err(format!("a new session answered {other:?}").into()),
    }
}

async fn destroy(store: &Arc<dyn SessionInterface>, cookie: &str) -> Result<(), BoxError> {
    let manager = SessionManager::new(Arc::clone(store), SessionConfig::default());
    let session = manager.session(Some(cookie));
    if session.len().await? != ADDS + 1 {
        return Err(format!(
            "the session holds {} values after {ADDS} additions, expected {}",
            session.len().await?,
            ADDS + 1
        )
        .into());
    }
    session.destroy();
    let _removed = manager.finish(&session).await?;
    Ok(())
}

/// Measures `rounds` rounds of [`ADDS`] concurrent additions on `backend`, in one
/// process and split over two.
pub async fn measure(
    backend: Backend,
    url: &str,
    file_base: &Path,
    rounds: usize,
) -> Result<Vec<Row>, BoxError> {
    let dir = tempfile::Builder::new()
        .prefix("contention-")
        .tempdir_in(file_base)?;
    let store = open_store(backend, url, dir.path()).await?;
    let mut one = Row {
        backend,
        processes: 1,
        attempts: Vec::new(),
        failed: 0,
    };
    let mut two = Row {
        processes: 2,
        ..one.clone()
    };
    for _ in 0..rounds {
        let cookie = new_session(&store).await?;
        let (attempts, failed) = additions(Arc::clone(&store), &cookie, ADDS, "item").await;
        one.attempts.extend(attempts);
        one.failed += failed;
        if failed == 0 {
            destroy(&store, &cookie).await?;
        }

        let cookie = new_session(&store).await?;
        let (attempts, failed) = two_processes(backend, url, dir.path(), &cookie).await?;
        two.attempts.extend(attempts);
        two.failed += failed;
        if failed == 0 {
            destroy(&store, &cookie).await?;
        }
    }
    Ok(vec![one, two])
}

/// Starts two children that each add `ADDS / 2` values to the session at once.
async fn two_processes(
    backend: Backend,
    url: &str,
    dir: &Path,
    cookie: &str,
) -> Result<(Vec<u32>, usize), BoxError> {
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for side in ["p", "q"] {
        let mut child = tokio::process::Command::new(&exe)
            .args(["--contention-child", "--backends", backend.name()])
            .arg("--contention-url")
            .arg(url)
            .arg("--file-dir")
            .arg(dir)
            // `=`: a cookie may begin with `-`, which would read as a flag.
            .arg(format!("--contention-cookie={cookie}"))
            .arg(format!("--contention-tag={side}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
        children.push((child, stdout.lines()));
    }
    // Both connected: start them together.
    for (_, lines) in &mut children {
        match lines.next_line().await? {
            Some(l) if l == "ready" => {}
            other => return Err(format!("contention child said {other:?}").into()),
        }
    }
    for (child, _) in &mut children {
        let stdin = child.stdin.as_mut().ok_or("no child stdin")?;
        stdin.write_all(b"go\n").await?;
        stdin.flush().await?;
    }
    let (mut attempts, mut failed) = (Vec::new(), 0);
    for (mut child, mut lines) in children {
        let line = lines
            .next_line()
            .await?
            .ok_or("contention child said nothing")?;
        let mut words = line.split_whitespace();
        if words.next() != Some("result") {
            return Err(format!("contention child said {line:?}").into());
        }
        failed += words.next().ok_or("no failure count")?.parse::<usize>()?;
        for w in words {
            attempts.push(w.parse()?);
        }
        let status = child.wait().await?;
        if !status.success() {
            return Err(format!("contention child exited with {status}").into());
        }
    }
    Ok((attempts, failed))
}

/// The child side of [`two_processes`]: connect, say "ready", wait for "go", add
/// `ADDS / 2` values, print `result <failed> <attempts>…`.
pub async fn child(
    backend: Backend,
    url: &str,
    dir: PathBuf,
    cookie: &str,
    tag: &str,
) -> Result<(), BoxError> {
    let store = open_store(backend, url, &dir).await?;
    println!("ready");
    let mut go = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut go)
        .await?;
    let (attempts, failed) = additions(store, cookie, ADDS / 2, tag).await;
    let list: Vec<String> = attempts.iter().map(u32::to_string).collect();
    println!("result {failed} {}", list.join(" "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let row = Row {
            backend: Backend::File,
            processes: 2,
            attempts: (1..=100).rev().collect(),
            failed: 0,
        };
        assert_eq!(row.quantile(0.5), 50);
        assert_eq!(row.quantile(0.99), 99);
        assert_eq!(row.quantile(1.0), 100);
        let empty = Row {
            attempts: Vec::new(),
            ..row
        };
        assert_eq!(empty.quantile(0.99), 0);
    }
}
