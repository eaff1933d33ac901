//! Where the server backends' test servers are: a URL per backend from the
//! environment, read at run time, or (with the `containers` feature and a Docker
//! engine) a container started for this process.
//!
//! | backend | variable | example |
//! |---|---|---|
//! | [`Backend::Redis`] | `SESSION_TEST_REDIS_URL` | `redis://127.0.0.1:16379/0` |
//! | [`Backend::RedisCluster`] | `SESSION_TEST_REDIS_CLUSTER_URLS` | `redis://127.0.0.1:17001,redis://127.0.0.1:17002` |
//! | [`Backend::Postgres`] | `SESSION_TEST_POSTGRES_URL` | `postgres://sess:sess@127.0.0.1:15432/sess` |
//! | [`Backend::Mysql`] | `SESSION_TEST_MYSQL_URL` | `mysql://sess:sess@127.0.0.1:13306/sess` |
//!
//! `SESSION_TEST_REQUIRE` (e.g. `redis,postgres`) lists backends that must run: for
//! them a missing server is a [`SetupError::Failed`] instead of a
//! [`SetupError::Skip`].
//!
//! ```
//! use conformance_tests::SetupError;
//! use conformance_tests::servers::{Backend, Environment, resolve_in};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // An environment where nothing is set and no Docker engine answers.
//! let env = Environment::from_fn(|_| None, || false);
//! match resolve_in(&env, Backend::Redis).await {
//!     Err(SetupError::Skip(reason)) => assert!(reason.contains("SESSION_TEST_REDIS_URL")),
//!     other => panic!("{other:?}"),
//! }
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use crate::SetupError;

/// The variable listing the backends whose absence is a failure, not a skip.
pub const REQUIRE_VAR: &str = "SESSION_TEST_REQUIRE";

/// A backend that needs a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A standalone Redis server.
    Redis,
    /// A Redis Cluster (several seed URLs).
    RedisCluster,
    /// PostgreSQL.
    Postgres,
    /// MySQL 8 or MariaDB.
    Mysql,
}

impl Backend {
    /// Every server backend.
    pub const ALL: [Backend; 4] = [
        Backend::Redis,
        Backend::RedisCluster,
        Backend::Postgres,
        Backend::Mysql,
    ];

    /// The name used on the command line and in `SESSION_TEST_REQUIRE`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Redis => "redis",
            Backend::RedisCluster => "redis-cluster",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
        }
    }

    /// The backend called `name` (as [`Backend::name`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The environment variable holding this backend's server URL(s).
    pub fn env_var(self) -> &'static str {
        match self {
            Backend::Redis => "SESSION_TEST_REDIS_URL",
            Backend::RedisCluster => "SESSION_TEST_REDIS_CLUSTER_URLS",
            Backend::Postgres => "SESSION_TEST_POSTGRES_URL",
            Backend::Mysql => "SESSION_TEST_MYSQL_URL",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Backend::Redis => "redis://127.0.0.1:16379/0",
            Backend::RedisCluster => {
                "redis://127.0.0.1:17001,redis://127.0.0.1:17002,redis://127.0.0.1:17003"
            }
            Backend::Postgres => "postgres://sess:sess@127.0.0.1:15432/sess",
            Backend::Mysql => "mysql://sess:sess@127.0.0.1:13306/sess",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a server's URL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The backend's environment variable (or an explicit URL).
    Given,
    /// A container this process started (the `containers` feature).
    Container,
}

/// A resolved server: one URL, or several seed URLs for a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrls {
    backend: Backend,
    urls: Vec<String>,
    origin: Origin,
}

impl ServerUrls {
    /// Parses a URL (or, for a cluster, a comma-separated list of URLs) given for
    /// `backend`. Empty entries are an error; nothing else is checked here (the
    /// backend's driver reports a malformed URL).
    pub fn parse(backend: Backend, value: &str) -> Result<Self, String> {
        let urls: Vec<String> = if backend == Backend::RedisCluster {
            value.split(',').map(|s| s.trim().to_owned()).collect()
        } else {
            vec![value.trim().to_owned()]
        };
        if urls.iter().any(String::is_empty) {
            return Err(format!(
                "{}: empty URL in {value:?} (example: {})",
                backend.env_var(),
                backend.example()
            ));
        }
        Ok(Self {
            backend,
            urls,
            origin: Origin::Given,
        })
    }

    /// The backend these URLs are for.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The first (for single-server backends: the only) URL.
    pub fn url(&self) -> &str {
        // `parse` and the container path always produce at least one URL.
        self.urls.first().map_or("", String::as_str)
    }

    /// All URLs (several for a Redis Cluster).
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Where the URLs came from.
    pub fn origin(&self) -> Origin {
        self.origin
    }
}

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;
type Probe = dyn Fn() -> bool + Send + Sync;

/// What resolution looks at: environment variables and whether a Docker engine
/// answers. [`Environment::process`] is the real one; tests inject their own with
/// [`Environment::from_fn`] (setting variables in-process is `unsafe` in edition
/// 2024 and racy across threads).
#[derive(Clone)]
pub struct Environment {
    lookup: Arc<Lookup>,
    engine: Arc<Probe>,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment").finish_non_exhaustive()
    }
}

impl Environment {
    /// The process environment, and a real probe of the Docker engine
    /// ([`docker_engine_answers`]).
    pub fn process() -> Self {
        Self {
            lookup: Arc::new(|name| std::env::var(name).ok()),
            engine: Arc::new(|| docker_engine_answers(&|name| std::env::var(name).ok())),
        }
    }

    /// An environment made of a variable lookup and an engine probe.
    pub fn from_fn(
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
        engine_answers: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            lookup: Arc::new(lookup),
            engine: Arc::new(engine_answers),
        }
    }

    /// The variable's value, if set to something other than blanks.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// Whether `SESSION_TEST_REQUIRE` lists `backend`.
    pub fn is_required(&self, backend: Backend) -> bool {
        self.var(REQUIRE_VAR).is_some_and(|list| {
            list.split(',')
                .any(|name| name.trim().eq_ignore_ascii_case(backend.name()))
        })
    }

    /// Whether a Docker engine answers (only consulted with the `containers` feature).
    pub fn docker_engine_answers(&self) -> bool {
        (self.engine)()
    }
}

/// Resolves `backend`'s server from the process environment; see [`resolve_in`].
pub async fn resolve(backend: Backend) -> Result<ServerUrls, SetupError> {
    resolve_in(&Environment::process(), backend).await
}

/// Resolves `backend`'s server:
///
/// 1. the backend's variable ([`Backend::env_var`]) if set;
/// 2. else, with the `containers` feature and a Docker engine that answers, a
///    container started once per process (`redis:7`, `postgres:15`,
///    `mariadb:10.11`; a Redis Cluster cannot be started this way);
/// 3. else [`SetupError::Skip`] with a reason naming the variable — or
///    [`SetupError::Failed`] if `SESSION_TEST_REQUIRE` lists the backend.
pub async fn resolve_in(env: &Environment, backend: Backend) -> Result<ServerUrls, SetupError> {
    let var = backend.env_var();
    if let Some(value) = env.var(var) {
        return ServerUrls::parse(backend, &value).map_err(SetupError::failed);
    }
    let why_no_container = container_url(env, backend).await;
    let why_no_container = match why_no_container {
        Ok(url) => {
            return Ok(ServerUrls {
                backend,
                urls: vec![url],
                origin: Origin::Container,
            });
        }
        Err(why) => why,
    };
    let message = format!(
        "{var} is not set ({why_no_container}); set it to run the {backend} cases, e.g. {var}={}",
        backend.example()
    );
    if env.is_required(backend) {
        Err(SetupError::failed(format!(
            "{REQUIRE_VAR} requires `{backend}`, but {message}"
        )))
    } else {
        Err(SetupError::Skip(message))
    }
}

#[cfg(not(feature = "containers"))]
async fn container_url(_env: &Environment, _backend: Backend) -> Result<String, String> {
    Err("the `containers` feature is off".to_owned())
}

#[cfg(feature = "containers")]
async fn container_url(env: &Environment, backend: Backend) -> Result<String, String> {
    if backend == Backend::RedisCluster {
        return Err("the `containers` feature cannot start a Redis Cluster".to_owned());
    }
    if !env.docker_engine_answers() {
        return Err("no Docker engine answered for the `containers` feature".to_owned());
    }
    containers::url_for(backend)
        .await
        .map_err(|e| format!("starting a {backend} container failed: {e}"))
}

/// Whether a Docker engine answers `GET /_ping` at `DOCKER_HOST` (`unix://` or
/// `tcp://`) or, when that is unset, at `/var/run/docker.sock`. Waits at most about
/// two seconds.
pub fn docker_engine_answers(lookup: &dyn Fn(&str) -> Option<String>) -> bool {
    use std::time::Duration;
    const TIMEOUT: Duration = Duration::from_secs(1);

    fn ping(mut stream: impl std::io::Read + std::io::Write) -> bool {
        if stream
            .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < buf.len() {
            match stream.read(&mut buf[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        let head = String::from_utf8_lossy(&buf[..n]);
        head.starts_with("HTTP/1.") && head.split_whitespace().nth(1) == Some("200")
    }

    fn unix(path: &str) -> bool {
        #[cfg(unix)]
        {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(TIMEOUT));
                    let _ = s.set_write_timeout(Some(TIMEOUT));
                    ping(s)
                }
                Err(_) => false,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            false
        }
    }

    fn tcp(addr: &str) -> bool {
        use std::net::{TcpStream, ToSocketAddrs};
        let Ok(mut addrs) = addr.to_socket_addrs() else {
            return false;
        };
        addrs.any(|a| match TcpStream::connect_timeout(&a, TIMEOUT) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(TIMEOUT));
                let _ = s.set_write_timeout(Some(TIMEOUT));
                ping(s)
            }
            Err(_) => false,
        })
    }

    match lookup("DOCKER_HOST").filter(|h| !h.trim().is_empty()) {
        Some(host) => {
            let host = host.trim();
            if let Some(path) = host.strip_prefix("unix://") {
                unix(path)
            } else if let Some(addr) = host.strip_prefix("tcp://") {
                tcp(addr.trim_end_matches('/'))
            } else {
                false
            }
        }
        None => unix("/var/run/docker.sock"),
    }
}

#[cfg(feature = "containers")]
mod containers {
    //! One container per backend per process, started on a runtime of its own so
    //! that the Docker client outlives the per-test runtimes that ask for it.

    use std::sync::{Mutex, OnceLock};
    use std::time::Duration;

    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{ContainerAsync, GenericImage, ImageExt};
    use tokio::sync::OnceCell;

    use super::Backend;

    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    static REDIS: OnceCell<Result<String, String>> = OnceCell::const_new();
    static POSTGRES: OnceCell<Result<String, String>> = OnceCell::const_new();
    static MYSQL: OnceCell<Result<String, String>> = OnceCell::const_new();
    /// The started containers, kept running until the process exits.
    static KEEP: Mutex<Vec<ContainerAsync<GenericImage>>> = Mutex::new(Vec::new());

    pub(super) async fn url_for(backend: Backend) -> Result<String, String> {
        let cell = match backend {
            Backend::Redis => &REDIS,
            Backend::Postgres => &POSTGRES,
            Backend::Mysql => &MYSQL,
            Backend::RedisCluster => return Err("unsupported".to_owned()),
        };
        cell.get_or_init(|| async move {
            let runtime = RUNTIME.get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("conformance-containers")
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
            });
            match runtime {
                Ok(rt) => rt
                    .spawn(start(backend))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string())),
                Err(e) => Err(format!("could not start a runtime: {e}")),
            }
        })
        .await
        .clone()
    }

    async fn start(backend: Backend) -> Result<String, String> {
        let (image, port) = match backend {
            Backend::Redis => (
                GenericImage::new("redis", "7")
                    .with_exposed_port(6379.tcp())
                    .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections")),
                6379,
            ),
            Backend::Postgres => (
                GenericImage::new("postgres", "15")
                    .with_exposed_port(5432.tcp())
                    .with_wait_for(WaitFor::message_on_stderr(
                        "database system is ready to accept connections",
                    ))
                    .with_wait_for(WaitFor::message_on_stdout(
                        "database system is ready to accept connections",
                    )),
                5432,
            ),
            Backend::Mysql => (
                GenericImage::new("mariadb", "10.11")
                    .with_exposed_port(3306.tcp())
                    .with_wait_for(WaitFor::message_on_stderr(
                        "mariadbd: ready for connections",
                    ))
                    .with_wait_for(WaitFor::message_on_stderr("port: 3306")),
                3306,
            ),
            Backend::RedisCluster => return Err("unsupported".to_owned()),
        };
        let request = image
            .with_label("session-conformance-tests", "1")
            .with_startup_timeout(Duration::from_secs(180))
            .with_env_var("POSTGRES_USER", "sess")
            .with_env_var("POSTGRES_PASSWORD", "sess")
            .with_env_var("POSTGRES_DB", "sess")
            .with_env_var("MARIADB_USER", "sess")
            .with_env_var("MARIADB_PASSWORD", "sess")
            .with_env_var("MARIADB_DATABASE", "sess")
            .with_env_var("MARIADB_ROOT_PASSWORD", "sess");
        let container = request.start().await.map_err(|e| e.to_string())?;
        let host = container.get_host().await.map_err(|e| e.to_string())?;
        let port = container
            .get_host_port_ipv4(port)
            .await
            .map_err(|e| e.to_string())?;
        KEEP.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(container);
        Ok(match backend {
            Backend::Redis => format!("redis://{host}:{port}/0"),
            Backend::Postgres => format!("postgres://sess:sess@{host}:{port}/sess"),
            _ => format!("mysql://sess:sess@{host}:{port}/sess"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)], engine: bool) -> Environment {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Environment::from_fn(move |k| map.get(k).cloned(), move || engine)
    }

    #[tokio::test]
    async fn unset_without_engine_skips_naming_the_variable() {
        for backend in Backend::ALL {
            match resolve_in(&env(&[], false), backend).await {
                Err(SetupError::Skip(reason)) => {
                    assert!(reason.contains(backend.env_var()), "{reason}")
                }
                other => panic!("{backend}: expected a skip, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn unset_and_required_fails() {
        let e = env(&[(REQUIRE_VAR, "postgres, redis-cluster")], false);
        for backend in Backend::ALL {
            let r = resolve_in(&e, backend).await;
            let required = matches!(backend, Backend::Postgres | Backend::RedisCluster);
            match r {
                Err(SetupError::Failed(msg)) if required => {
                    let msg = msg.to_string();
                    assert!(
                        msg.contains(backend.env_var()) && msg.contains(REQUIRE_VAR),
                        "{msg}"
                    );
                }
                Err(SetupError::Skip(_)) if !required => {}
                other => panic!("{backend} (required: {required}): got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn set_variable_is_the_url() {
        let e = env(
            &[
                ("SESSION_TEST_REDIS_URL", " redis://127.0.0.1:16379/0 "),
                (
                    "SESSION_TEST_REDIS_CLUSTER_URLS",
                    "redis://a:1, redis://b:2,redis://c:3",
                ),
                ("SESSION_TEST_POSTGRES_URL", "postgres://u:p@h:1/db"),
                (REQUIRE_VAR, "redis,redis-cluster,postgres,mysql"),
                ("SESSION_TEST_MYSQL_URL", "mysql://u:p@h:2/db"),
            ],
            false,
        );
        let redis = resolve_in(&e, Backend::Redis).await.unwrap();
        assert_eq!(redis.url(), "redis://127.0.0.1:16379/0");
        assert_eq!(redis.origin(), Origin::Given);
        let cluster = resolve_in(&e, Backend::RedisCluster).await.unwrap();
        assert_eq!(
            cluster.urls(),
            ["redis://a:1", "redis://b:2", "redis://c:3"]
        );
        assert_eq!(
            resolve_in(&e, Backend::Postgres).await.unwrap().url(),
            "postgres://u:p@h:1/db"
        );
        assert_eq!(
            resolve_in(&e, Backend::Mysql).await.unwrap().url(),
            "mysql://u:p@h:2/db"
        );
    }

    #[tokio::test]
    async fn blank_is_unset_and_empty_cluster_entry_fails() {
        let e = env(&[("SESSION_TEST_REDIS_URL", "  ")], false);
        assert!(matches!(
            resolve_in(&e, Backend::Redis).await,
            Err(SetupError::Skip(_))
        ));
        let e = env(
            &[("SESSION_TEST_REDIS_CLUSTER_URLS", "redis://a:1,,")],
            false,
        );
        assert!(matches!(
            resolve_in(&e, Backend::RedisCluster).await,
            Err(SetupError::Failed(_))
        ));
    }

    #[cfg(feature = "containers")]
    #[tokio::test]
    async fn cluster_is_never_a_container() {
        // Even when an engine "answers", a cluster cannot be started: skip or fail.
        let e = env(&[], true);
        match resolve_in(&e, Backend::RedisCluster).await {
            Err(SetupError::Skip(reason)) => {
                assert!(
                    reason.contains("SESSION_TEST_REDIS_CLUSTER_URLS"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn probe_without_engine_is_false() {
        // Nothing listens on these.
        assert!(!docker_engine_answers(&|_| Some(
            "unix:///nonexistent/docker.sock".into()
        )));
        assert!(!docker_engine_answers(&|_| Some(
            "tcp://127.0.0.1:1".into()
        )));
        assert!(!docker_engine_answers(&|_| Some("ssh://somewhere".into())));
    }

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(Backend::from_name(b.name()), Some(b));
        }
        assert_eq!(Backend::from_name("memory"), None);
    }
}
