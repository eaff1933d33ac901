//! What to connect to and how: [`RedisConfig`].

use std::time::Duration;

use session_core::ConfigError;

/// The key prefix used unless [`RedisConfig::key_prefix`] sets another.
pub const DEFAULT_KEY_PREFIX: &str = "session:";
/// The longest accepted key prefix, in bytes.
pub const MAX_KEY_PREFIX_LEN: usize = 128;
/// Default number of multiplexed connections ([`RedisConfig::pool_size`]).
pub const DEFAULT_POOL_SIZE: usize = 1;
/// Default [`RedisConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default [`RedisConfig::command_timeout`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Default [`RedisConfig::large_update_threshold`]: payloads longer than this many
/// bytes are updated by a `MULTI`/`EXEC` transaction instead of one Lua script.
pub const DEFAULT_LARGE_UPDATE_THRESHOLD: usize = 4096;

/// Where the store connects.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One server (or a proxy in front of many).
    Standalone(String),
    /// The seed nodes of a Redis Cluster; the rest is discovered.
    Cluster(Vec<String>),
}

/// Configuration of a [`RedisStore`](crate::RedisStore), checked by
/// [`RedisStore::connect`](crate::RedisStore::connect).
///
/// ```
/// use std::time::Duration;
/// use session_redis::RedisConfig;
///
/// let standalone = RedisConfig::new("redis://127.0.0.1:6379/0")
///     .key_prefix("myapp:sess:")
///     .pool_size(2)
///     .command_timeout(Duration::from_millis(500));
/// let cluster = RedisConfig::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
/// # let _ = (standalone, cluster);
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) target: Target,
    pub(crate) key_prefix: String,
    pub(crate) pool_size: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) durable: bool,
    pub(crate) large_update_threshold: usize,
    /// PEM certificates to trust for `rediss://` instead of the system's roots.
    #[cfg(feature = "tls")]
    pub(crate) tls_root_certificates: Option<Vec<u8>>,
}

impl RedisConfig {
    /// A standalone server at `url`: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` with the crate feature `tls`, or `redis+unix:///path`.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_target(Target::Standalone(url.into()))
    }

    /// A Redis Cluster, given the URLs of some of its nodes (the others are
    /// discovered). Credentials and TLS are taken from the first URL.
    pub fn cluster<I>(nodes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::with_target(Target::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    fn with_target(target: Target) -> Self {
        Self {
            target,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            durable: true,
            large_update_threshold: DEFAULT_LARGE_UPDATE_THRESHOLD,
            #[cfg(feature = "tls")]
            tls_root_certificates: None,
        }
    }

    /// The string put in front of every storage key (default [`DEFAULT_KEY_PREFIX`]).
    /// Give every application — and every test — its own, so their sessions never
    /// meet. 1 to [`MAX_KEY_PREFIX_LEN`] printable ASCII characters without spaces
    /// and without `{` or `}`: a hash tag would pin every session to one cluster slot,
    /// one node.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How many multiplexed connections to open and use in turn (default 1). One
    /// connection pipelines any number of concurrent requests; a second one helps
    /// only when a single socket saturates a CPU core. On a cluster, each one is a
    /// separate cluster connection (a connection to every master).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// The longest a single connection attempt may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest one store operation may take, reconnecting included (default 2 s).
    /// A stalled or unreachable server yields a retryable error after this long
    /// instead of a hung request.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// What [`Capabilities::durable`](session_core::Capabilities::durable) reports
    /// (default `true`: records live outside the application process, so they
    /// survive its restart). Whether they also survive a restart of Redis depends
    /// on the server's RDB/AOF settings, which the store neither sees nor changes;
    /// set `false` for a cache-only server whose loss should be planned for.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Payloads longer than this many bytes (default
    /// [`DEFAULT_LARGE_UPDATE_THRESHOLD`]) are compare-and-set by a `MULTI`/`EXEC`
    /// transaction on the record's key (a small check script, a plain `SET … NX`, a
    /// small cleanup script) instead of one Lua script that receives the whole record:
    /// every byte handed to a script costs Redis ≈1.2 µs of server time per KiB
    /// (measured on 7.0), a plain `SET` next to nothing.
    /// Both are atomic compare-and-sets with the same outcomes; smaller payloads are
    /// cheaper through the single script. `0` sends every update through the
    /// transaction, `usize::MAX` none. See the crate's README and BENCHMARKS.md.
    pub fn large_update_threshold(mut self, bytes: usize) -> Self {
        self.large_update_threshold = bytes;
        self
    }

    /// Trust only these certificate authorities (PEM, one or more `CERTIFICATE`
    /// blocks) for `rediss://` connections, instead of the system's root store: for a
    /// server whose certificate comes from a private CA (managed Redis services often
    /// hand out one). The server's certificate must still name the host in the URL.
    /// Feature `tls`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_redis::RedisConfig;
    ///
    /// let ca = std::fs::read("/etc/redis/ca.crt")?;
    /// let config = RedisConfig::new("rediss://redis.internal:6380/0").tls_root_certificates(ca);
    /// # let _ = config;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificates = Some(pem.into());
        self
    }

    /// Checks every setting; [`RedisStore::connect`](crate::RedisStore::connect)
    /// calls it first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_key_prefix(&self.key_prefix)?;
        match &self.target {
            Target::Standalone(url) => validate_url(url)?,
            Target::Cluster(nodes) if nodes.is_empty() => {
                return Err(invalid("cluster nodes", "at least one node URL is needed"));
            }
            Target::Cluster(nodes) => nodes.iter().try_for_each(|u| validate_url(u))?,
        }
        if self.pool_size == 0 {
            return Err(invalid("pool size", "must be at least 1"));
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid("connect timeout", "must be positive"));
        }
        if self.command_timeout.is_zero() {
            return Err(invalid("command timeout", "must be positive"));
        }
        #[cfg(feature = "tls")]
        if let Some(pem) = &self.tls_root_certificates {
            self.validate_tls_roots(pem)?;
        }
        Ok(())
    }

    /// The root certificates must parse, and are only for `rediss://` URLs: given for
    /// a plain URL they would silently protect nothing.
    #[cfg(feature = "tls")]
    fn validate_tls_roots(&self, pem: &[u8]) -> Result<(), ConfigError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;

        let plain = match &self.target {
            Target::Standalone(url) => !url.starts_with("rediss://"),
            Target::Cluster(nodes) => nodes.iter().any(|u| !u.starts_with("rediss://")),
        };
        if plain {
            return Err(invalid(
                "tls root certificates",
                "given, but the URL is not rediss://",
            ));
        }
        let mut count = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            cert.map_err(|e| invalid("tls root certificates", format!("not PEM: {e}")))?;
            count += 1;
        }
        if count == 0 {
            return Err(invalid(
                "tls root certificates",
                "no CERTIFICATE block in the PEM",
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for RedisConfig {
    // Hand-written so that passwords inside URLs never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match &self.target {
            Target::Standalone(_) => "standalone",
            Target::Cluster(_) => "cluster",
        };
        let mut f = f.debug_struct("RedisConfig");
        f.field("target", &target)
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("durable", &self.durable)
            .field("large_update_threshold", &self.large_update_threshold);
        #[cfg(feature = "tls")]
        f.field(
            "tls_root_certificates",
            &self.tls_root_certificates.as_ref().map(|pem| pem.len()),
        );
        f.finish()
    }
}

/// Checks a key prefix (see [`RedisConfig::key_prefix`]).
pub(crate) fn validate_key_prefix(prefix: &str) -> Result<(), ConfigError> {
    if prefix.is_empty() {
        return Err(invalid(
            "key prefix",
            "must not be empty: sessions would mix with every other key",
        ));
    }
    if prefix.len() > MAX_KEY_PREFIX_LEN {
        return Err(invalid(
            "key prefix",
            format!("longer than {MAX_KEY_PREFIX_LEN} bytes"),
        ));
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "key prefix",
            "only printable ASCII without spaces is allowed",
        ));
    }
    if prefix.contains(['{', '}']) {
        return Err(invalid(
            "key prefix",
            "`{` and `}` would form a hash tag and put every session in one cluster slot",
        ));
    }
    Ok(())
}

fn validate_url(url: &str) -> Result<(), ConfigError> {
    if url.starts_with("rediss://") && !cfg!(feature = "tls") {
        return Err(invalid(
            "redis url",
            "rediss:// needs the crate feature `tls` of session-redis",
        ));
    }
    // Parse without connecting. The driver's message never contains the URL, so no
    // password ends up in the error.
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| invalid("redis url", e.to_string()))
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        RedisConfig::new("redis://127.0.0.1:6379/0")
            .validate()
            .unwrap();
        RedisConfig::cluster(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
            .validate()
            .unwrap();
    }

    #[test]
    fn bad_prefixes_are_rejected() {
        for p in [
            "",
            "has space",
            "tab\t",
            "{tag}:",
            "a}",
            "é:",
            &"x".repeat(129),
        ] {
            let err = RedisConfig::new("redis://127.0.0.1")
                .key_prefix(p)
                .validate()
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        setting: "key prefix",
                        ..
                    }
                ),
                "{p:?}"
            );
        }
        for p in [
            "s:",
            "myapp:sess:",
            "conformance-case_1/abc:",
            &"x".repeat(128),
        ] {
            validate_key_prefix(p).unwrap();
        }
    }

    #[test]
    fn bad_settings_are_rejected() {
        let base = || RedisConfig::new("redis://127.0.0.1");
        let cases = [
            (base().pool_size(0), "pool size"),
            (base().connect_timeout(Duration::ZERO), "connect timeout"),
            (base().command_timeout(Duration::ZERO), "command timeout"),
            (RedisConfig::new("http://127.0.0.1"), "redis url"),
            (RedisConfig::new("not a url"), "redis url"),
            (RedisConfig::cluster(Vec::<String>::new()), "cluster nodes"),
            (RedisConfig::cluster(["redis://a", "nope"]), "redis url"),
        ];
        for (cfg, setting) in cases {
            match cfg.validate() {
                Err(ConfigError::Invalid { setting: s, .. }) => assert_eq!(s, setting),
                other => panic!("{setting}: {other:?}"),
            }
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_urls_need_the_feature() {
        let err = RedisConfig::new("rediss://127.0.0.1")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("`tls`"), "{err}");
    }

    #[test]
    fn debug_hides_urls() {
        let cfg = RedisConfig::new("redis://user:hunter2@127.0.0.1");
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
