//! Command-line flags and environment variables: every option of the session
//! configuration, the backend and where to listen.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, ValueEnum};
use session_core::time::Duration;
use session_core::{SameSite, SessionConfig};

use crate::DemoError;

/// The session demo: an axum application with login, a cart, a visit counter and
/// an expiry page, on the session backend of your choice.
///
/// Every flag can also be given as the environment variable in its help text; a
/// flag wins over the variable. Boolean options take `true`/`false` (or `yes`/`no`,
/// `1`/`0`); a bare `--permanent` means `true`.
///
/// `Debug` hides the `--secret-key` values and any password in `--backend-url`, so
/// the options can be logged.
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

    /// Secret key ring as `ID:SECRET`, newest first (repeat the flag, or
    /// comma-separate in the variable); each secret at least 32 bytes of random
    /// text. The newest key seals, every key opens. With the cookie backend it seals
    /// the cookies (a random key per start when none is given); with a server-side
    /// backend it encrypts every session at rest.
    #[arg(
        long = "secret-key",
        env = "SESSION_SECRET_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub secret_keys: Vec<String>,

    /// How the cookie backend seals sessions: `encrypted` (the user cannot read
    /// them) or `signed` (readable, tamper-proof).
    #[arg(long, env = "SESSION_COOKIE_SEALING", value_enum, default_value_t = Sealing::Encrypted)]
    pub cookie_sealing: Sealing,
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
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("save_attempts", &self.save_attempts)
            .field("rotate_every", &self.rotate_every)
            .field("rotation_grace", &self.rotation_grace)
            .field(
                "secret_keys",
                &format_args!("<{} redacted>", self.secret_keys.len()),
            )
            .field("cookie_sealing", &self.cookie_sealing)
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
    /// environment variables included.
    pub fn parse_args<I, S>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        Self::try_parse_from(
            std::iter::once("session-demo".into()).chain(args.into_iter().map(Into::into)),
        )
    }

    /// The session configuration these options describe, validated.
    pub fn session_config(&self) -> Result<SessionConfig, DemoError> {
        let same_site = match self.cookie_same_site {
            SameSiteArg::Strict => SameSite::Strict,
            SameSiteArg::Lax => SameSite::Lax,
            SameSiteArg::None => SameSite::None,
        };
        Ok(SessionConfig::builder()
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
            .max_payload_bytes(self.max_payload_bytes)
            .save_attempts(self.save_attempts)
            .rotate_every(self.rotate_every)
            .rotation_grace(self.rotation_grace)
            .build()?)
    }
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
        assert_eq!((c.max_payload_bytes(), c.save_attempts()), (4096, 3));
        assert_eq!(c.rotate_every(), Some(Duration::hours(1)));
        assert_eq!(c.rotation_grace(), Duration::seconds(5));
    }

    #[test]
    fn the_defaults_are_the_design_defaults() {
        let options = Options::parse_args(["--backend", "memory"]).unwrap();
        assert_eq!(options.session_config().unwrap(), SessionConfig::default());
        assert_eq!(options.port, 3000);
        assert_eq!(options.host.to_string(), "127.0.0.1");
    }

    /// Security review (HARDENING.md): `Debug` of the options once printed every
    /// `--secret-key` and the backend URL's password.
    #[test]
    fn debug_hides_secret_keys_and_url_passwords() {
        let secret = "s3cr3t-0123456789abcdef0123456789abcdef";
        let options = Options::parse_args([
            "--backend",
            "postgres",
            "--backend-url",
            "postgres://sess:hunter2pw@127.0.0.1:5432/sess?password=qu3rypw",
            "--secret-key",
            &format!("new:{secret}"),
            "--secret-key",
            &format!("old-{secret}:{secret}"),
        ])
        .unwrap();
        let debug = format!("{options:?}");
        for hidden in [secret, "hunter2pw", "qu3rypw"] {
            assert!(!debug.contains(hidden), "{hidden} in {debug}");
        }
        assert!(debug.contains("postgres://sess:<redacted>@127.0.0.1:5432/sess?<redacted>"));
        assert!(debug.contains("<2 redacted>"), "{debug}");
        assert!(debug.contains("cookie_name: \"session_id\""), "{debug}");

        assert_eq!(
            redact_urls("redis://:pw@a:1/0,redis://tok@b:2,redis://c:3"),
            "redis://:<redacted>@a:1/0,redis://<redacted>@b:2,redis://c:3"
        );
        assert_eq!(redact_urls("not a url"), "not a url");
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
