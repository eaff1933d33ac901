//! Command-line flags and environment variables: every option of the session
//! configuration, the backend and where to listen.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, ValueEnum};
use session_core::time::Duration;
use session_core::{SameSite, SessionConfig, SessionConfigBuilder};

use crate::DemoError;

/// The session demo: an axum application with login, a cart, a visit counter and
/// an expiry page, on the session backend of your choice.
///
/// Every flag can also be given as the environment variable in its help text; a
/// flag wins over the variable. Boolean options take `true`/`false` (or `yes`/`no`,
/// `1`/`0`); a bare `--permanent` means `true`.
///
/// Secret keys come from the variable SESSION_SECRET_KEYS or from
/// `--secret-key-file`, never from a flag's value.
///
/// `Debug` hides the secret keys and any password in `--backend-url`, so the
/// options can be logged.
#[derive(Clone, Parser)]
#[command(name = "session-demo", version, about, long_about = None)]
pub struct Options {
    /// Where sessions are stored.
    #[arg(long, env = "SESSION_BACKEND", value_enum, default_value_t = BackendKind::File)]
    pub backend: BackendKind,

    /// The server of the redis, postgres and mysql backends; for redis-cluster a
    /// comma-separated list of node URLs. Redis defaults to redis://127.0.0.1:6379/0.
    #[arg(long, env = "SESSION_BACKEND_URL")]
    pub backend_url: Option<String>,

    /// Directory of the file backend (created if missing).
    #[arg(long, env = "SESSION_FILE_DIR", default_value = "session-data")]
    pub file_dir: PathBuf,

    /// Table of the postgres and mysql backends (created by a migration at start).
    #[arg(long, env = "SESSION_SQL_TABLE", default_value = "demo_sessions")]
    pub sql_table: String,

    /// Key prefix of the redis and redis-cluster backends.
    #[arg(
        long,
        env = "SESSION_REDIS_KEY_PREFIX",
        default_value = "session-demo:"
    )]
    pub redis_key_prefix: String,

    /// Address to listen on.
    #[arg(long, env = "SESSION_DEMO_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, short, env = "SESSION_DEMO_PORT", default_value_t = 3000)]
    pub port: u16,

    /// Name of the session cookie.
    #[arg(long, env = "SESSION_COOKIE_NAME", default_value = "session_id")]
    pub cookie_name: String,

    /// The cookie's `Secure` attribute. Browsers accept Secure cookies over plain
    /// http only from localhost / 127.0.0.1; anywhere else turn it off (or serve
    /// https).
    #[arg(long, env = "SESSION_COOKIE_SECURE", value_parser = BoolishValueParser::new(),
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value = "true")]
    pub cookie_secure: bool,

    /// Shorthand for `--cookie-secure false`, for a demo reached over plain http
    /// from another host. Wins over `--cookie-secure`.
    #[arg(long, env = "SESSION_INSECURE_COOKIES", value_parser = BoolishValueParser::new(),
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value = "false")]
    pub insecure_cookies: bool,

    /// The cookie's `HttpOnly` attribute.
    #[arg(long, env = "SESSION_COOKIE_HTTP_ONLY", value_parser = BoolishValueParser::new(),
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value = "true")]
    pub cookie_http_only: bool,

    /// The cookie's `SameSite` attribute (`none` requires Secure).
    #[arg(long, env = "SESSION_COOKIE_SAME_SITE", value_enum, default_value_t = SameSiteArg::Lax)]
    pub cookie_same_site: SameSiteArg,

    /// The cookie's `Path`.
    #[arg(long, env = "SESSION_COOKIE_PATH", default_value = "/")]
    pub cookie_path: String,

    /// The cookie's `Domain` (none by default: the cookie is host-only).
    #[arg(long, env = "SESSION_COOKIE_DOMAIN")]
    pub cookie_domain: Option<String>,

    /// The cookie's `Partitioned` attribute (CHIPS; requires Secure).
    #[arg(long, env = "SESSION_COOKIE_PARTITIONED", value_parser = BoolishValueParser::new(),
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value = "false")]
    pub cookie_partitioned: bool,

    /// Idle lifetime ("expiration time"): `90s`, `30m`, `24h`, `7d` or seconds.
    #[arg(long, env = "SESSION_IDLE_LIFETIME", value_parser = parse_duration, default_value = "24h")]
    pub idle_lifetime: Duration,

    /// Absolute lifetime: the hard cap since creation, whatever the activity.
    #[arg(long, env = "SESSION_ABSOLUTE_LIFETIME", value_parser = parse_duration, default_value = "7d")]
    pub absolute_lifetime: Duration,

    /// Persistent cookies (`Max-Age`) instead of browser-session cookies.
    #[arg(long, env = "SESSION_PERMANENT", value_parser = BoolishValueParser::new(),
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value = "false")]
    pub permanent: bool,

    /// Extend the deadline on every request that touches the session.
    #[arg(long, env = "SESSION_REFRESH_EACH_REQUEST", value_parser = BoolishValueParser::new(),
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value = "false")]
    pub refresh_each_request: bool,

    /// With refresh each request: the share of the idle lifetime a refresh must
    /// gain before it is written (0 ≤ share < 1; 0 refreshes on every request).
    #[arg(long, env = "SESSION_REFRESH_THRESHOLD",
          default_value_t = SessionConfig::DEFAULT_REFRESH_THRESHOLD)]
    pub refresh_threshold: f64,

    /// Largest encoded session that is saved, in bytes.
    #[arg(long, env = "SESSION_MAX_PAYLOAD_BYTES", default_value_t = 1024 * 1024)]
    pub max_payload_bytes: usize,

    /// How often a save is tried while concurrent requests change the session.
    #[arg(long, env = "SESSION_SAVE_ATTEMPTS", default_value_t = 16)]
    pub save_attempts: u32,

    /// Give session ids older than this a new id (off unless given).
    #[arg(long, env = "SESSION_ROTATE_EVERY", value_parser = parse_duration)]
    pub rotate_every: Option<Duration>,

    /// How long a rotated id still leads to its session.
    #[arg(long, env = "SESSION_ROTATION_GRACE", value_parser = parse_duration, default_value = "60s")]
    pub rotation_grace: Duration,

    /// A file of secret keys, one `ID:BASE64` per line, newest first (the format is
    /// in the README; `openssl rand -base64 32` makes a secret). The newest key
    /// seals, every key opens. With the cookie backend they seal the cookies (a
    /// random key per start when none is given); with a server-side backend they
    /// encrypt every session at rest. The keys may instead be given in the variable
    /// SESSION_SECRET_KEYS (same format); never on the command line, where every
    /// local user can read them in the process list.
    #[arg(long, env = "SESSION_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,

    /// The value of `SESSION_SECRET_KEYS`, read by [`Options::parse_args`] (no flag
    /// takes a secret).
    #[arg(skip)]
    pub secret_keys_env: Option<String>,

    /// How the cookie backend seals sessions: `encrypted` (the user cannot read
    /// them) or `signed` (readable, tamper-proof).
    #[arg(long, env = "SESSION_COOKIE_SEALING", value_enum, default_value_t = Sealing::Encrypted)]
    pub cookie_sealing: Sealing,

    /// How often expired sessions are purged from the store (file, PostgreSQL,
    /// MySQL and memory; Redis expires them itself). `0` turns the purge off.
    #[arg(long, env = "SESSION_CLEANUP_INTERVAL", value_parser = parse_duration, default_value = "5m")]
    pub cleanup_interval: Duration,

    /// How long a client may take to send a request's header (also the longest a
    /// kept-alive connection waits idle for the next request).
    #[arg(long, env = "SESSION_DEMO_HEADER_READ_TIMEOUT", value_parser = parse_positive_duration,
          default_value = "10s")]
    pub header_read_timeout: Duration,

    /// How long a client may take to send a request's body.
    #[arg(long, env = "SESSION_DEMO_BODY_READ_TIMEOUT", value_parser = parse_positive_duration,
          default_value = "10s")]
    pub body_read_timeout: Duration,

    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "SESSION_DEMO_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// User names that log in with the `admin` role (comma-separated); everyone
    /// else is a `user`.
    #[arg(
        long,
        env = "SESSION_DEMO_ADMIN_USERS",
        value_delimiter = ',',
        default_value = "admin"
    )]
    pub admin_users: Vec<String>,

    /// Calls of `GET /api/ping` a session may make per window.
    #[arg(long, env = "SESSION_DEMO_API_RATE_LIMIT", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub api_rate_limit: u32,

    /// The rate-limit window of `GET /api/ping`.
    #[arg(long, env = "SESSION_DEMO_API_RATE_WINDOW", value_parser = parse_positive_duration,
          default_value = "60s")]
    pub api_rate_window: Duration,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("backend", &self.backend)
            .field("backend_url", &self.backend_url.as_deref().map(redact_urls))
            .field("file_dir", &self.file_dir)
            .field("sql_table", &self.sql_table)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("cookie_name", &self.cookie_name)
            .field("cookie_secure", &self.cookie_secure)
            .field("insecure_cookies", &self.insecure_cookies)
            .field("cookie_http_only", &self.cookie_http_only)
            .field("cookie_same_site", &self.cookie_same_site)
            .field("cookie_path", &self.cookie_path)
            .field("cookie_domain", &self.cookie_domain)
            .field("cookie_partitioned", &self.cookie_partitioned)
            .field("idle_lifetime", &self.idle_lifetime)
            .field("absolute_lifetime", &self.absolute_lifetime)
            .field("permanent", &self.permanent)
            .field("refresh_each_request", &self.refresh_each_request)
            .field("refresh_threshold", &self.refresh_threshold)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("save_attempts", &self.save_attempts)
            .field("rotate_every", &self.rotate_every)
            .field("rotation_grace", &self.rotation_grace)
            .field("secret_key_file", &self.secret_key_file)
            .field(
                "secret_keys_env",
                &self.secret_keys_env.as_ref().map(|_| "<redacted>"),
            )
            .field("cookie_sealing", &self.cookie_sealing)
            .field("cleanup_interval", &self.cleanup_interval)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("admin_users", &self.admin_users)
            .field("api_rate_limit", &self.api_rate_limit)
            .field("api_rate_window", &self.api_rate_window)
            .finish()
    }
}

/// `url` (or a comma-separated list of them) with the password of each URL's user
/// info and the whole query string (libpq and some drivers accept `?password=`)
/// replaced by `<redacted>`.
fn redact_urls(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let Some((scheme, rest)) = url.split_once("://") else {
                return url.to_owned();
            };
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            let authority = match authority.rsplit_once('@') {
                Some((user_info, host)) => match user_info.split_once(':') {
                    Some((user, _password)) => format!("{user}:<redacted>@{host}"),
                    // A bare user info may itself be a token (`redis://TOKEN@host`).
                    None => format!("<redacted>@{host}"),
                },
                None => authority.to_owned(),
            };
            let tail = match tail.split_once('?') {
                Some((path, _query)) => format!("{path}?<redacted>"),
                None => tail.to_owned(),
            };
            format!("{scheme}://{authority}{tail}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The session backends the demo can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// In-process memory (lost on restart).
    Memory,
    /// One file per session under `--file-dir`.
    File,
    /// A standalone Redis server.
    Redis,
    /// A Redis Cluster.
    RedisCluster,
    /// PostgreSQL.
    Postgres,
    /// MySQL 8 or MariaDB.
    Mysql,
    /// No store: the whole session in a sealed cookie (see `--cookie-sealing`).
    Cookie,
}

/// How client-side sessions are sealed into the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sealing {
    /// XChaCha20-Poly1305: secret and tamper-proof.
    Encrypted,
    /// HMAC-SHA256: tamper-proof, readable by the user.
    Signed,
}

/// The `SameSite` attribute as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SameSiteArg {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (requires Secure).
    None,
}

impl Options {
    /// Parses `args` (without the program name) like the command line would,
    /// environment variables included (`SESSION_SECRET_KEYS` too).
    pub fn parse_args<I, S>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let mut options = Self::try_parse_from(
            std::iter::once("session-demo".into()).chain(args.into_iter().map(Into::into)),
        )?;
        options.secret_keys_env = std::env::var(crate::secrets::ENV_VAR)
            .ok()
            .filter(|text| !text.trim().is_empty());
        Ok(options)
    }

    /// The configured secret keys (from the variable or the file), newest first.
    pub fn secret_keys(&self) -> Result<Vec<crate::secrets::SecretKey>, DemoError> {
        crate::secrets::load(
            self.secret_keys_env.as_deref(),
            self.secret_key_file.as_deref(),
        )
    }

    /// The session configuration these options describe, validated.
    pub fn session_config(&self) -> Result<SessionConfig, DemoError> {
        Ok(self.config_builder().build()?)
    }

    /// [`session_config`](Self::session_config) with `save_attempts` 1: a save that
    /// meets a concurrent change fails instead of merging (the rate-limited API's
    /// manager, see `api.rs`). Built from the same builder, so it can never miss an
    /// option the main configuration has.
    pub(crate) fn strict_session_config(&self) -> Result<SessionConfig, DemoError> {
        Ok(self.config_builder().save_attempts(1).build()?)
    }

    fn config_builder(&self) -> SessionConfigBuilder {
        let same_site = match self.cookie_same_site {
            SameSiteArg::Strict => SameSite::Strict,
            SameSiteArg::Lax => SameSite::Lax,
            SameSiteArg::None => SameSite::None,
        };
        SessionConfig::builder()
            .cookie_name(self.cookie_name.clone())
            .secure(self.cookie_secure && !self.insecure_cookies)
            .http_only(self.cookie_http_only)
            .same_site(same_site)
            .path(self.cookie_path.clone())
            .domain(self.cookie_domain.clone())
            .partitioned(self.cookie_partitioned)
            .idle_lifetime(self.idle_lifetime)
            .absolute_lifetime(self.absolute_lifetime)
            .permanent(self.permanent)
            .refresh_each_request(self.refresh_each_request)
            .refresh_threshold(self.refresh_threshold)
            .max_payload_bytes(self.max_payload_bytes)
            .save_attempts(self.save_attempts)
            .rotate_every(self.rotate_every)
            .rotation_grace(self.rotation_grace)
    }
}

/// [`parse_duration`], refusing zero.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).and_then(|d| {
        if d.is_positive() {
            Ok(d)
        } else {
            Err("must be longer than 0s".to_owned())
        }
    })
}

/// A non-negative `time` duration as a `std` one (negative ones are zero).
pub(crate) fn to_std(duration: Duration) -> std::time::Duration {
    std::time::Duration::try_from(duration).unwrap_or_default()
}

/// Parses `90s`, `30m`, `24h`, `7d`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 30m, 24h or 7d"))?;
    let seconds_per_unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit `{other}` (use s, m, h or d)")),
    };
    n.checked_mul(seconds_per_unit)
        // time::Duration covers i64 seconds; keep far from its edge so deadline
        // arithmetic (now + lifetime) cannot overflow.
        .filter(|s| *s <= 100 * 365 * 86_400)
        .map(Duration::seconds)
        .ok_or_else(|| format!("`{text}` is longer than 100 years"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_nonsense() {
        assert_eq!(parse_duration("90"), Ok(Duration::seconds(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::seconds(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::minutes(30)));
        assert_eq!(parse_duration("24h"), Ok(Duration::hours(24)));
        assert_eq!(parse_duration(" 7d "), Ok(Duration::days(7)));
        for bad in [
            "",
            "m",
            "-5m",
            "5 m",
            "5w",
            "1.5h",
            "99999999999999999999",
            "9999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_reach_the_session_config() {
        let options = Options::parse_args([
            "--backend",
            "memory",
            "--cookie-name",
            "sid",
            "--insecure-cookies",
            "--cookie-http-only",
            "false",
            "--cookie-same-site",
            "strict",
            "--cookie-path",
            "/app",
            "--cookie-domain",
            "example.test",
            "--idle-lifetime",
            "30m",
            "--absolute-lifetime",
            "2h",
            "--permanent",
            "--refresh-each-request=yes",
            "--refresh-threshold",
            "0.25",
            "--max-payload-bytes",
            "4096",
            "--save-attempts",
            "3",
            "--rotate-every",
            "1h",
            "--rotation-grace",
            "5s",
        ])
        .unwrap();
        assert_eq!(options.backend, BackendKind::Memory);
        let c = options.session_config().unwrap();
        assert_eq!(c.cookie_name(), "sid");
        assert!(!c.secure() && !c.http_only() && !c.partitioned());
        assert_eq!(c.same_site(), SameSite::Strict);
        assert_eq!((c.path(), c.domain()), ("/app", Some("example.test")));
        assert_eq!(c.idle_lifetime(), Duration::minutes(30));
        assert_eq!(c.absolute_lifetime(), Duration::hours(2));
        assert!(c.permanent() && c.refresh_each_request());
        assert_eq!(c.refresh_threshold(), 0.25);
        assert_eq!((c.max_payload_bytes(), c.save_attempts()), (4096, 3));
        assert_eq!(c.rotate_every(), Some(Duration::hours(1)));
        assert_eq!(c.rotation_grace(), Duration::seconds(5));
    }

    #[test]
    fn the_strict_config_differs_only_in_save_attempts() {
        let flags = [
            "--cookie-name",
            "__Host-sid",
            "--cookie-same-site",
            "strict",
            "--idle-lifetime",
            "3m",
            "--rotate-every",
            "1h",
            "--max-payload-bytes",
            "4096",
            "--refresh-each-request",
        ];
        let options = Options::parse_args(flags.iter().chain(&["--save-attempts", "9"])).unwrap();
        let strict = options.strict_session_config().unwrap();
        assert_eq!(strict.save_attempts(), 1);
        let one = Options::parse_args(flags.iter().chain(&["--save-attempts", "1"])).unwrap();
        assert_eq!(strict, one.session_config().unwrap());
        assert_ne!(strict, options.session_config().unwrap());
    }

    #[test]
    fn the_defaults_are_the_design_defaults() {
        let options = Options::parse_args(["--backend", "memory"]).unwrap();
        assert_eq!(options.session_config().unwrap(), SessionConfig::default());
        assert_eq!(options.port, 3000);
        assert_eq!(options.host.to_string(), "127.0.0.1");
    }

    /// Security review (HARDENING.md): `Debug` of the options once printed every
    /// secret key and the backend URL's password.
    #[test]
    fn debug_hides_secret_keys_and_url_passwords() {
        let secret = "c2VjcmV0LWZvci1kZWJ1Zy10ZXN0LTlmOGU3ZDZjNWI0YTM5Mjg=";
        let mut options = Options::parse_args([
            "--backend",
            "postgres",
            "--backend-url",
            "postgres://sess:hunter2pw@127.0.0.1:5432/sess?password=qu3rypw",
        ])
        .unwrap();
        options.secret_keys_env = Some(format!("new:{secret}"));
        let debug = format!("{options:?}");
        for hidden in [secret, "hunter2pw", "qu3rypw"] {
            assert!(!debug.contains(hidden), "{hidden} in {debug}");
        }
        assert!(debug.contains("postgres://sess:<redacted>@127.0.0.1:5432/sess?<redacted>"));
        assert!(
            debug.contains("secret_keys_env: Some(\"<redacted>\")"),
            "{debug}"
        );
        assert!(debug.contains("cookie_name: \"session_id\""), "{debug}");

        assert_eq!(
            redact_urls("redis://:pw@a:1/0,redis://tok@b:2,redis://c:3"),
            "redis://:<redacted>@a:1/0,redis://<redacted>@b:2,redis://c:3"
        );
        assert_eq!(redact_urls("not a url"), "not a url");
    }

    /// Security review (HARDENING.md, issue 20): `--secret-key ID:SECRET` put the
    /// secret in the process list (`ps`, `/proc/PID/cmdline`) for every local user.
    /// No flag takes a secret value any more.
    #[test]
    fn no_flag_takes_a_secret() {
        let spec = "k:c2VjcmV0LWZvci1kZWJ1Zy10ZXN0LTlmOGU3ZDZjNWI0YTM5Mjg=";
        for flag in ["--secret-key", "--secret-keys", "--secret"] {
            assert!(
                Options::parse_args([flag, spec]).is_err(),
                "{flag} is accepted"
            );
        }
        let file = Options::parse_args(["--secret-key-file", "/run/secrets/session-keys"]).unwrap();
        assert_eq!(
            file.secret_key_file.as_deref(),
            Some(std::path::Path::new("/run/secrets/session-keys"))
        );
    }

    #[test]
    fn the_new_options_parse_and_zero_timeouts_are_refused() {
        let options = Options::parse_args([
            "--cleanup-interval",
            "0",
            "--header-read-timeout",
            "2s",
            "--body-read-timeout",
            "3s",
            "--max-body-bytes",
            "100",
            "--admin-users",
            "root,alice",
            "--api-rate-limit",
            "7",
            "--api-rate-window",
            "2m",
        ])
        .unwrap();
        assert_eq!(options.cleanup_interval, Duration::ZERO);
        assert_eq!(options.header_read_timeout, Duration::seconds(2));
        assert_eq!(options.body_read_timeout, Duration::seconds(3));
        assert_eq!(options.max_body_bytes, 100);
        assert_eq!(options.admin_users, ["root", "alice"]);
        assert_eq!(options.api_rate_limit, 7);
        assert_eq!(options.api_rate_window, Duration::minutes(2));
        let defaults = Options::parse_args(Vec::<String>::new()).unwrap();
        assert_eq!(defaults.cleanup_interval, Duration::minutes(5));
        assert_eq!(defaults.admin_users, ["admin"]);
        for bad in [
            ["--header-read-timeout", "0"],
            ["--body-read-timeout", "0s"],
            ["--api-rate-window", "0"],
            ["--api-rate-limit", "0"],
        ] {
            assert!(Options::parse_args(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn invalid_combinations_are_typed_errors() {
        let options =
            Options::parse_args(["--cookie-same-site", "none", "--cookie-secure", "false"])
                .unwrap();
        assert!(matches!(
            options.session_config(),
            Err(DemoError::Config(_))
        ));
        assert!(Options::parse_args(["--backend", "floppy"]).is_err());
        assert!(Options::parse_args(["--idle-lifetime", "soon"]).is_err());
    }
}
