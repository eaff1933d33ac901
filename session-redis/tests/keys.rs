//! What the store leaves in Redis: key names, TTLs, slot spread, and what it does
//! with values it did not write.

mod common;

use common::{Server, in_an_hour, key, raw_cluster, raw_standalone, record};
use redis::AsyncCommands;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{DecodeError, Error, SaveMode, SessionInterface};
use session_redis::RedisStore;

/// Every key under `prefix` on the node at `url`.
async fn keys_on(url: &str, prefix: &str) -> Vec<String> {
    let mut con = raw_standalone(url).await;
    let mut it = con
        .scan_match::<_, String>(format!("{prefix}*"))
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(k) = futures::StreamExt::next(&mut it).await {
        out.push(k.unwrap());
    }
    out
}

/// Runs a mix of every operation, then checks each key on each node.
async fn every_key_is_prefix_hex_with_ttl(server: Server) {
    let Some(urls) = server.urls() else { return };
    let Some(store) = server.store("layout").await else {
        return;
    };
    let prefix = store.key_prefix().to_owned();
    let mut live = 0;
    for i in 0..60 {
        let k = key();
        store
            .save(&k, &record(b"x", in_an_hour()), SaveMode::Create)
            .await
            .unwrap();
        match i % 6 {
            0 => store.expire(&k).await.unwrap(),
            1 => assert!(
                store
                    .touch(&k, in_an_hour() + Duration::days(1))
                    .await
                    .unwrap()
            ),
            2 => {
                store
                    .save(
                        &k,
                        &record(b"y", in_an_hour()),
                        SaveMode::Update {
                            expected_version: 1,
                        },
                    )
                    .await
                    .unwrap();
            }
            3 => assert!(
                store
                    .touch(&k, OffsetDateTime::now_utc() - Duration::hours(1))
                    .await
                    .unwrap()
            ),
            4 => {
                let _ = store
                    .save(
                        &k,
                        &record(b"z", in_an_hour()),
                        SaveMode::Update {
                            expected_version: 7,
                        },
                    )
                    .await;
            }
            _ => {}
        }
        if !matches!(i % 6, 0 | 3) {
            live += 1;
        }
        // Operations on keys that do not exist must not leave anything behind.
        let ghost = key();
        assert!(!store.touch(&ghost, in_an_hour()).await.unwrap());
        let _ = store
            .save(
                &ghost,
                &record(b"g", in_an_hour()),
                SaveMode::Update {
                    expected_version: 1,
                },
            )
            .await;
    }
    let mut seen = Vec::new();
    for url in &urls {
        for k in keys_on(url, &prefix).await {
            let suffix = &k[prefix.len()..];
            assert!(
                suffix.len() == 64
                    && suffix
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "unexpected key {k:?}"
            );
            let mut con = raw_standalone(url).await;
            let pttl: i64 = redis::cmd("PTTL")
                .arg(&k)
                .query_async(&mut con)
                .await
                .unwrap();
            assert!(pttl > 0, "key {k:?} has no TTL ({pttl})");
            seen.push(k);
        }
    }
    assert_eq!(seen.len(), live, "keys: {seen:?}");
}

#[tokio::test]
async fn standalone_keys_are_prefix_hex_with_ttl() {
    every_key_is_prefix_hex_with_ttl(Server::Standalone).await;
}

#[tokio::test]
async fn cluster_keys_are_prefix_hex_with_ttl() {
    every_key_is_prefix_hex_with_ttl(Server::Cluster).await;
}

#[tokio::test]
async fn cluster_keys_spread_over_every_master() {
    let Some(urls) = Server::Cluster.urls() else {
        return;
    };
    let Some(store) = Server::Cluster.store("spread").await else {
        return;
    };
    let keys: Vec<_> = (0..300).map(|_| key()).collect();
    for k in &keys {
        store
            .save(
                k,
                &record(k.as_str().as_bytes(), in_an_hour()),
                SaveMode::Create,
            )
            .await
            .unwrap();
        store
            .save(
                k,
                &record(b"v2", in_an_hour()),
                SaveMode::Update {
                    expected_version: 1,
                },
            )
            .await
            .unwrap();
        assert!(store.touch(k, in_an_hour()).await.unwrap());
    }
    for k in &keys {
        let r = store.load(k).await.unwrap().unwrap();
        assert_eq!((&r.payload[..], r.version), (&b"v2"[..], 2));
    }
    // The seed URLs are the three masters: each must hold some of the keys.
    let mut per_node = Vec::new();
    for url in &urls {
        per_node.push(keys_on(url, store.key_prefix()).await.len());
    }
    assert_eq!(per_node.iter().sum::<usize>(), keys.len(), "{per_node:?}");
    assert!(
        per_node.iter().all(|&n| n > 0),
        "keys not spread over the masters: {per_node:?}"
    );
}

/// Writes `value` raw under the store's key for `k`.
async fn plant(server: Server, store: &RedisStore, k: &session_core::StorageKey, value: &[u8]) {
    let urls = server.urls().unwrap();
    let rkey = store.redis_key(k);
    match server {
        Server::Standalone => {
            let _: () = raw_standalone(&urls[0])
                .await
                .set_ex(&rkey, value, 600)
                .await
                .unwrap();
        }
        Server::Cluster => {
            let _: () = raw_cluster(&urls)
                .await
                .set_ex(&rkey, value, 600)
                .await
                .unwrap();
        }
    }
}

async fn garbage_is_a_decode_error(server: Server) {
    let Some(store) = server.store("garbage").await else {
        return;
    };
    let hdr_ok_but_short = [1u8, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    for value in [&b""[..], b"plain text", &[0xff; 40], &hdr_ok_but_short] {
        let k = key();
        plant(server, &store, &k, value).await;
        let err = store.load(&k).await.unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "load {value:?}: {err:?}");
        let err = store
            .save(
                &k,
                &record(b"x", in_an_hour()),
                SaveMode::Update {
                    expected_version: 1,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "update {value:?}: {err:?}");
        let err = store.touch(&k, in_an_hour()).await.unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "touch {value:?}: {err:?}");
        let err = store
            .load_and_touch(&k, in_an_hour(), in_an_hour())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Decode(_)),
            "load_and_touch {value:?}: {err:?}"
        );
        // Create does not overwrite what it did not write; expire clears it.
        let err = store
            .save(&k, &record(b"x", in_an_hour()), SaveMode::Create)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Collision), "{err:?}");
        store.expire(&k).await.unwrap();
        store
            .save(&k, &record(b"x", in_an_hour()), SaveMode::Create)
            .await
            .unwrap();
    }
    // A key of another type.
    let k = key();
    let rkey = store.redis_key(&k);
    let urls = server.urls().unwrap();
    let cmd = {
        let mut c = redis::cmd("HSET");
        c.arg(&rkey).arg("f").arg("v");
        c
    };
    match server {
        Server::Standalone => {
            let _: i64 = cmd
                .query_async(&mut raw_standalone(&urls[0]).await)
                .await
                .unwrap();
        }
        Server::Cluster => {
            let _: i64 = cmd
                .query_async(&mut raw_cluster(&urls).await)
                .await
                .unwrap();
        }
    }
    let err = store.load(&k).await.unwrap_err();
    assert!(
        matches!(err, Error::Decode(DecodeError::Malformed { .. })),
        "{err:?}"
    );
    let err = store
        .save(
            &k,
            &record(b"x", in_an_hour()),
            SaveMode::Update {
                expected_version: 1,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
    let err = store.touch(&k, in_an_hour()).await.unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
    let err = store
        .load_and_touch(&k, in_an_hour(), in_an_hour())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
    store.expire(&k).await.unwrap();
}

#[tokio::test]
async fn standalone_garbage_is_a_decode_error() {
    garbage_is_a_decode_error(Server::Standalone).await;
}

#[tokio::test]
async fn cluster_garbage_is_a_decode_error() {
    garbage_is_a_decode_error(Server::Cluster).await;
}

#[tokio::test]
async fn bad_config_is_a_config_error() {
    let err = RedisStore::connect(
        session_redis::RedisConfig::new("redis://127.0.0.1:1").key_prefix("a b"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[tokio::test]
async fn unreachable_server_is_a_retryable_connect_error() {
    // Port 1 on loopback: nothing listens there, so the connection is refused.
    let cfg = session_redis::RedisConfig::new("redis://127.0.0.1:1")
        .connect_timeout(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = RedisStore::connect(cfg).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
