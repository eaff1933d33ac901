//! `rediss://` against a real TLS-only Redis (`scripts/services.sh` starts one with a
//! throwaway CA): the conformance suite over TLS with the CA given as
//! `RedisConfig::tls_root_certificates`, and the ways a TLS configuration can be
//! wrong. Needs the crate feature `tls` and `SESSION_TEST_REDIS_TLS_URL` +
//! `SESSION_TEST_TLS_CA` (a skip line when unset; a failure instead when
//! `SESSION_TEST_REQUIRE` names `redis-tls`).

use async_trait::async_trait;
use conformance_tests::backends::RedisHarness;
use conformance_tests::servers::Backend;
use conformance_tests::{Fixture, Harness, Namespace, SetupError};
use session_core::{BoxError, ConfigError};
use session_redis::{RedisConfig, RedisStore};
use tokio::sync::OnceCell;

const URL_VAR: &str = "SESSION_TEST_REDIS_TLS_URL";
const CA_VAR: &str = "SESSION_TEST_TLS_CA";

/// The TLS server's URL and its CA certificate (PEM), or why there is none.
fn tls_server() -> Result<(String, Vec<u8>), String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (Some(url), Some(ca_path)) = (var(URL_VAR), var(CA_VAR)) else {
        let reason = format!("{URL_VAR} and {CA_VAR} are not both set");
        let required = std::env::var("SESSION_TEST_REQUIRE").unwrap_or_default();
        if required.split(',').any(|n| n.trim() == "redis-tls") {
            panic!("{reason} but SESSION_TEST_REQUIRE demands redis-tls");
        }
        return Err(reason);
    };
    let ca = std::fs::read(&ca_path).unwrap_or_else(|e| panic!("reading {ca_path}: {e}"));
    Ok((url, ca))
}

/// The standalone harness, connected over TLS with the test CA.
#[derive(Default)]
struct TlsHarness(OnceCell<RedisHarness>);

#[async_trait]
impl Harness for TlsHarness {
    fn name(&self) -> &str {
        "redis (TLS)"
    }

    async fn open(&self, namespace: &Namespace) -> Result<Fixture, SetupError> {
        let (url, ca) = tls_server().map_err(SetupError::Skip)?;
        let inner = self
            .0
            .get_or_init(|| async {
                let config = RedisConfig::new(url).tls_root_certificates(ca);
                RedisHarness::from_config(Backend::Redis, config)
            })
            .await;
        inner.open(namespace).await
    }

    async fn cleanup(&self, namespace: &Namespace) -> Result<(), BoxError> {
        match self.0.get() {
            Some(inner) => inner.cleanup(namespace).await,
            None => Ok(()),
        }
    }
}

mod conformance {
    conformance_tests::conformance_suite!(super::TlsHarness::default());
}

/// The server speaks only TLS, so the suite above really ran over TLS: a plain
/// connection to the same port gets no answer it understands.
#[tokio::test]
async fn the_server_refuses_plain_connections() {
    let Ok((url, _)) = tls_server().map_err(|r| println!("skipped: {r}")) else {
        return;
    };
    let plain = url.replacen("rediss://", "redis://", 1);
    let config = RedisConfig::new(plain)
        .connect_timeout(std::time::Duration::from_millis(500))
        .command_timeout(std::time::Duration::from_millis(500));
    assert!(RedisStore::connect(config).await.is_err());
}

/// Without the test CA the certificate is not trusted (the system roots do not
/// contain it): connecting fails with an error, never a panic or an unverified
/// connection — and not a retryable one, since a retry meets the same certificate.
#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let Ok((url, _)) = tls_server().map_err(|r| println!("skipped: {r}")) else {
        return;
    };
    let err = RedisStore::connect(RedisConfig::new(url))
        .await
        .expect_err("a certificate from an unknown CA must not be accepted");
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    assert!(!err.is_retryable(), "{chain}");
}

fn config_error(config: RedisConfig) -> ConfigError {
    config
        .validate()
        .expect_err("the configuration must be refused")
}

#[test]
fn root_certificates_for_a_plain_url_are_a_config_error() {
    let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec();
    let err = config_error(RedisConfig::new("redis://127.0.0.1:6379").tls_root_certificates(pem));
    assert!(err.to_string().contains("not rediss://"), "{err}");
    let mixed = RedisConfig::cluster(["rediss://127.0.0.1:7000", "redis://127.0.0.1:7001"])
        .tls_root_certificates(Vec::new());
    assert!(config_error(mixed).to_string().contains("not rediss://"));
}

#[test]
fn root_certificates_that_are_not_pem_are_a_config_error() {
    for pem in [
        &b""[..],
        b"not a certificate",
        b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    ] {
        let config = RedisConfig::new("rediss://127.0.0.1:6380").tls_root_certificates(pem);
        let err = config_error(config);
        assert!(err.to_string().contains("tls root certificates"), "{err}");
    }
}

#[test]
fn the_test_ca_is_accepted_and_not_printed() {
    let Ok((url, ca)) = tls_server().map_err(|r| println!("skipped: {r}")) else {
        return;
    };
    let config = RedisConfig::new(url).tls_root_certificates(ca.clone());
    config.validate().expect("a valid CA certificate");
    let shown = format!("{config:?}");
    assert!(
        shown.contains(&format!("tls_root_certificates: Some({})", ca.len())),
        "{shown}"
    );
}
