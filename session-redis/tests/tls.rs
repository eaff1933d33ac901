//! `rediss://` against a real TLS-only Redis (`scripts/services.sh` starts one with a
//! throwaway CA): the conformance suite over TLS with the CA given as
//! `RedisConfig::tls_root_certificates`, and the ways a TLS configuration can be
//! wrong. Needs the crate feature `tls` and `SESSION_TEST_REDIS_TLS_URL` +
//! `SESSION_TEST_TLS_CA` (a skip line when unset; a failure instead when
//! `SESSION_TEST_REQUIRE` names `redis-tls`).

mod common;

use async_trait::async_trait;
use common::{OwnCluster, info_field, key, record, unique_prefix};
use conformance_tests::backends::RedisHarness;
use conformance_tests::servers::Backend;
use conformance_tests::{Fixture, Harness, Namespace, SetupError};
use session_core::time::{Duration, OffsetDateTime};
use session_core::{BoxError, ConfigError, SaveMode, SessionInterface};
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
    let chain = error_chain(&err);
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    assert!(!err.is_retryable(), "{chain}");
}

/// `err` and its sources, joined by `: `.
fn error_chain(err: &session_core::Error) -> String {
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    chain
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

/// An all-`rediss://` cluster: the root certificates given are trusted on every
/// connection the cluster client opens — to the seeds and to the masters it learns
/// from the slot map (their TLS ports) — and every operation works on keys of both
/// masters; without them, connecting fails, and not as retryable. (A private
/// two-master cluster, `tls-cluster yes`, with the server certificate that
/// `scripts/services.sh` keeps beside the test CA.)
#[tokio::test]
async fn an_all_tls_cluster_trusts_the_given_roots_on_every_node() {
    let Ok((_, ca)) = tls_server().map_err(|r| println!("skipped: {r}")) else {
        return;
    };
    let ca_path = std::env::var(CA_VAR).unwrap();
    let dir = std::path::Path::new(&ca_path).parent().unwrap().to_owned();
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let tls_port = |port: u16| port + 100;
    let ports = [21440, 21441];
    let Some(cluster) = OwnCluster::start_with(
        "tls",
        &ports,
        |port| {
            [
                "--tls-port",
                &tls_port(port).to_string(),
                "--tls-cluster",
                "yes",
                "--tls-cert-file",
                &file("server.crt"),
                "--tls-key-file",
                &file("server.key"),
                "--tls-ca-cert-file",
                &ca_path,
                "--tls-auth-clients",
                "no",
            ]
            .map(str::to_owned)
            .to_vec()
        },
        tls_port,
    )
    .await
    else {
        return;
    };
    let seeds: Vec<String> = ports
        .iter()
        .map(|&p| format!("rediss://127.0.0.1:{}", tls_port(p)))
        .collect();

    let untrusted = RedisStore::connect(RedisConfig::cluster(seeds.clone()))
        .await
        .expect_err("a certificate from an unknown CA must not be accepted");
    let chain = error_chain(&untrusted);
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    assert!(!untrusted.is_retryable(), "{chain}");

    let config = RedisConfig::cluster(seeds)
        .tls_root_certificates(ca)
        .key_prefix(unique_prefix("tls-cluster"));
    let store = RedisStore::connect(config).await.expect("connect over TLS");
    let now = OffsetDateTime::now_utc();
    let hour = Duration::hours(1);
    let keys: Vec<_> = (0..32).map(|_| key()).collect();
    for k in &keys {
        store
            .save(k, &record(b"a", now + hour), SaveMode::Create)
            .await
            .unwrap();
        let v = store
            .save(
                k,
                &record(b"b", now + hour),
                SaveMode::Update {
                    expected_version: 1,
                },
            )
            .await
            .unwrap();
        assert_eq!(v, 2);
        assert!(store.touch(k, now + 2 * hour).await.unwrap());
        let refreshed = store
            .load_and_touch(k, now + 3 * hour, now + 3 * hour)
            .await
            .unwrap()
            .expect("live");
        assert_eq!(refreshed.record.payload.as_ref(), b"b");
        assert!(refreshed.touched);
    }
    // Both masters hold keys, so both were reached over TLS (the plain ports are
    // only this test's way in to look).
    let mut keyspace = redis::cmd("INFO");
    keyspace.arg("keyspace");
    for node in &cluster.nodes {
        let mut raw = node.raw().await;
        let db0 = info_field(&mut raw, &keyspace, "db0").await;
        assert!(
            db0.starts_with("keys="),
            "node {} holds no key",
            node.port()
        );
    }
    for k in &keys {
        store.expire(k).await.unwrap();
        assert!(store.load(k).await.unwrap().is_none());
    }
}
