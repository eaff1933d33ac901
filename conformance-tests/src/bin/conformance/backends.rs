//! The backends the CLI knows: one entry per backend, each gated on the feature that
//! compiles its crate in. Adding a backend is a harness in
//! `conformance_tests::backends` and one arm in [`harness_for`] (plus its name in
//! [`BackendName`] if it is new).

use std::fmt;
use std::sync::Arc;

use conformance_tests::Harness;
#[allow(unused_imports)]
use conformance_tests::{backends, servers};

/// A backend name as given to `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendName {
    Memory,
    File,
    Redis,
    RedisCluster,
    Postgres,
    Mysql,
}

impl BackendName {
    pub const ALL: [BackendName; 6] = [
        BackendName::Memory,
        BackendName::File,
        BackendName::Redis,
        BackendName::RedisCluster,
        BackendName::Postgres,
        BackendName::Mysql,
    ];

    /// The backends run when no `--backend` is given: those that need no server.
    pub const EMBEDDED: [BackendName; 2] = [BackendName::Memory, BackendName::File];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendName::Memory => "memory",
            BackendName::File => "file",
            BackendName::Redis => "redis",
            BackendName::RedisCluster => "redis-cluster",
            BackendName::Postgres => "postgres",
            BackendName::Mysql => "mysql",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// The server backend behind this name, for URL resolution.
    pub fn server(self) -> Option<conformance_tests::servers::Backend> {
        use conformance_tests::servers::Backend;
        match self {
            BackendName::Memory | BackendName::File => None,
            BackendName::Redis => Some(Backend::Redis),
            BackendName::RedisCluster => Some(Backend::RedisCluster),
            BackendName::Postgres => Some(Backend::Postgres),
            BackendName::Mysql => Some(Backend::Mysql),
        }
    }
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a backend cannot be run by this build.
#[derive(Debug)]
pub enum Unavailable {
    /// Its crate is not compiled into this binary.
    NotCompiledIn {
        backend: BackendName,
        hint: &'static str,
    },
    /// A URL was given for a backend that takes none.
    TakesNoUrl(BackendName),
    /// The harness could not be prepared.
    Setup(String),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::NotCompiledIn { backend, hint } => {
                write!(
                    f,
                    "backend `{backend}` is not available in this build: {hint}"
                )
            }
            Unavailable::TakesNoUrl(backend) => {
                write!(f, "backend `{backend}` needs no server and takes no URL")
            }
            Unavailable::Setup(why) => f.write_str(why),
        }
    }
}

/// The harness for `backend`. `arg` is the `=VALUE` part of `--backend NAME=VALUE`:
/// a server URL (comma-separated node URLs for `redis-cluster`), or for `file` the
/// directory to create namespaces in. Server backends without it resolve their URL
/// from the environment (`conformance_tests::servers`), so the skip/require rules
/// apply; `file` without it uses a fresh temporary directory.
pub fn harness_for(
    backend: BackendName,
    arg: Option<String>,
) -> Result<Arc<dyn Harness>, Unavailable> {
    if arg.is_some() && backend.server().is_none() && backend != BackendName::File {
        return Err(Unavailable::TakesNoUrl(backend));
    }
    #[allow(unused_variables)]
    let urls = arg.as_ref().map(|a| {
        a.split(',')
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect::<Vec<_>>()
    });
    // Unused when every backend feature is on (as in a whole-workspace build).
    #[allow(unused_variables)]
    let not_compiled = |feature: &'static str| Unavailable::NotCompiledIn {
        backend,
        hint: feature,
    };
    match backend {
        #[cfg(feature = "memory")]
        BackendName::Memory => Ok(Arc::new(backends::MemoryHarness)),
        #[cfg(not(feature = "memory"))]
        BackendName::Memory => Err(not_compiled("build with the `memory` feature")),

        #[cfg(feature = "file")]
        BackendName::File => match arg {
            Some(dir) => Ok(Arc::new(backends::FileHarness::at(dir))),
            None => backends::FileHarness::temporary()
                .map(|h| Arc::new(h) as Arc<dyn Harness>)
                .map_err(|e| Unavailable::Setup(format!("no temporary directory: {e}"))),
        },
        #[cfg(not(feature = "file"))]
        BackendName::File => Err(not_compiled("build with the `file` feature")),

        #[cfg(feature = "redis")]
        BackendName::Redis | BackendName::RedisCluster => {
            let server = backend.server().unwrap_or(servers::Backend::Redis);
            Ok(Arc::new(backends::RedisHarness::new(server, urls)))
        }
        #[cfg(not(feature = "redis"))]
        BackendName::Redis | BackendName::RedisCluster => {
            Err(not_compiled("build with `--features servers` (or `redis`)"))
        }

        #[cfg(feature = "postgres")]
        BackendName::Postgres => Ok(Arc::new(backends::PostgresHarness::new(
            urls.and_then(|u| u.into_iter().next()),
        ))),
        #[cfg(not(feature = "postgres"))]
        BackendName::Postgres => Err(not_compiled(
            "build with `--features servers` (or `postgres`)",
        )),

        #[cfg(feature = "mysql")]
        BackendName::Mysql => Ok(Arc::new(backends::MysqlHarness::new(
            urls.and_then(|u| u.into_iter().next()),
        ))),
        #[cfg(not(feature = "mysql"))]
        BackendName::Mysql => Err(not_compiled("build with `--features servers` (or `mysql`)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in BackendName::ALL {
            assert_eq!(BackendName::parse(b.as_str()), Some(b));
        }
        assert_eq!(BackendName::parse("sqlite"), None);
    }

    #[test]
    fn memory_takes_no_url() {
        assert!(matches!(
            harness_for(BackendName::Memory, Some("x".into())),
            Err(Unavailable::TakesNoUrl(_))
        ));
    }
}
