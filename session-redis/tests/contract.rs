//! The storage contract, case by case, against the standalone server, the cluster,
//! and the standalone server through a caller's `deadpool-redis` pool.

mod common;

use std::sync::Arc;

use common::{Server, in_an_hour, key, record, unique_prefix};
use futures::future::join_all;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{Error, FIRST_VERSION, SaveMode, SessionInterface};
use session_redis::RedisStore;

#[derive(Debug, Clone, Copy)]
enum Via {
    Standalone,
    Cluster,
    Pool,
}

async fn store(via: Via, test: &str) -> Option<RedisStore> {
    match via {
        Via::Standalone => Server::Standalone.store(test).await,
        Via::Cluster => Server::Cluster.store(test).await,
        Via::Pool => {
            let url = Server::Standalone.urls()?.remove(0);
            let pool = deadpool_redis::Config::from_url(url)
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .unwrap();
            Some(RedisStore::from_pool(pool, &unique_prefix(test)).unwrap())
        }
    }
}

/// One `#[tokio::test]` per case and connection kind, e.g. `standalone::create_collides`.
macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        mod standalone { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { if let Some(s) = super::store(super::Via::Standalone, stringify!($case)).await { super::$case(s).await } }
        )* }
        mod cluster { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { if let Some(s) = super::store(super::Via::Cluster, stringify!($case)).await { super::$case(s).await } }
        )* }
        mod pool { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { if let Some(s) = super::store(super::Via::Pool, stringify!($case)).await { super::$case(s).await } }
        )* }
    };
}

cases!(
    create_then_load_round_trips,
    payloads_of_every_size_and_byte,
    create_collides_and_writes_nothing,
    create_with_past_deadline_stores_nothing,
    update_is_compare_and_set,
    update_never_resurrects,
    expire_is_idempotent,
    touch_moves_the_deadline_only,
    touch_in_the_past_kills_the_record,
    expired_records_vanish_natively,
    concurrent_creates_one_wins,
    concurrent_updates_one_wins,
    capabilities_and_delete_expired,
    namespaces_are_isolated,
    works_as_a_trait_object,
);

async fn create_then_load_round_trips(s: RedisStore) {
    let k = key();
    assert_eq!(s.load(&k).await.unwrap(), None);
    let at = in_an_hour();
    let v = s
        .save(&k, &record(b"hello", at), SaveMode::Create)
        .await
        .unwrap();
    assert_eq!(v, FIRST_VERSION);
    let got = s.load(&k).await.unwrap().expect("live record");
    assert_eq!(&got.payload[..], b"hello");
    assert_eq!(got.version, FIRST_VERSION);
    // Millisecond precision, rounded down.
    let diff = at - got.expires_at;
    assert!(
        diff >= Duration::ZERO && diff < Duration::milliseconds(1),
        "{diff}"
    );
}

async fn payloads_of_every_size_and_byte(s: RedisStore) {
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(3 * 256 + 7).collect();
    let big: Vec<u8> = (0..4 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for payload in [Vec::new(), vec![0u8], every_byte, big] {
        let k = key();
        s.save(&k, &record(&payload, in_an_hour()), SaveMode::Create)
            .await
            .unwrap();
        let got = s.load(&k).await.unwrap().unwrap();
        assert_eq!(got.payload.len(), payload.len());
        assert!(
            got.payload[..] == payload[..],
            "payload of {} bytes changed",
            payload.len()
        );
        // And through an update.
        s.save(
            &k,
            &record(&payload, in_an_hour()),
            SaveMode::Update {
                expected_version: 1,
            },
        )
        .await
        .unwrap();
        assert!(s.load(&k).await.unwrap().unwrap().payload[..] == payload[..]);
        // Multi-MiB values should not sit in a shared server for an hour.
        s.expire(&k).await.unwrap();
    }
}

async fn create_collides_and_writes_nothing(s: RedisStore) {
    let k = key();
    s.save(&k, &record(b"first", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    let later = in_an_hour() + Duration::hours(5);
    let err = s
        .save(&k, &record(b"second", later), SaveMode::Create)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Collision), "{err:?}");
    let got = s.load(&k).await.unwrap().unwrap();
    assert_eq!((&got.payload[..], got.version), (&b"first"[..], 1));
    assert!(got.expires_at < later);
}

async fn create_with_past_deadline_stores_nothing(s: RedisStore) {
    let k = key();
    let past = OffsetDateTime::now_utc() - Duration::hours(1);
    s.save(&k, &record(b"dead", past), SaveMode::Create)
        .await
        .unwrap();
    assert_eq!(s.load(&k).await.unwrap(), None);
    let err = s
        .save(
            &k,
            &record(b"x", in_an_hour()),
            SaveMode::Update {
                expected_version: 1,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    // The key is free for a live create.
    s.save(&k, &record(b"alive", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    assert_eq!(&s.load(&k).await.unwrap().unwrap().payload[..], b"alive");
}

async fn update_is_compare_and_set(s: RedisStore) {
    let k = key();
    let absent = s
        .save(
            &k,
            &record(b"x", in_an_hour()),
            SaveMode::Update {
                expected_version: 1,
            },
        )
        .await;
    assert!(matches!(absent, Err(Error::NotFound)), "{absent:?}");
    s.save(&k, &record(b"v1", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    let new_deadline = in_an_hour() + Duration::hours(1);
    let v2 = s
        .save(
            &k,
            &record(b"v2", new_deadline),
            SaveMode::Update {
                expected_version: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(v2, 2);
    let got = s.load(&k).await.unwrap().unwrap();
    assert_eq!((&got.payload[..], got.version), (&b"v2"[..], 2));
    assert!((new_deadline - got.expires_at).abs() < Duration::milliseconds(1));
    // A stale version conflicts and writes nothing.
    for stale in [0, 1, 3, u64::MAX] {
        let err = s
            .save(
                &k,
                &record(b"stale", in_an_hour()),
                SaveMode::Update {
                    expected_version: stale,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict), "{stale}: {err:?}");
    }
    let got = s.load(&k).await.unwrap().unwrap();
    assert_eq!((&got.payload[..], got.version), (&b"v2"[..], 2));
    assert_eq!(
        s.save(
            &k,
            &record(b"v3", in_an_hour()),
            SaveMode::Update {
                expected_version: 2
            }
        )
        .await
        .unwrap(),
        3
    );
}

async fn update_never_resurrects(s: RedisStore) {
    let k = key();
    s.save(&k, &record(b"v1", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    s.expire(&k).await.unwrap();
    let err = s
        .save(
            &k,
            &record(b"ghost", in_an_hour()),
            SaveMode::Update {
                expected_version: 1,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert_eq!(s.load(&k).await.unwrap(), None);
}

async fn expire_is_idempotent(s: RedisStore) {
    let k = key();
    s.expire(&k).await.unwrap();
    s.save(&k, &record(b"v1", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    s.expire(&k).await.unwrap();
    s.expire(&k).await.unwrap();
    assert_eq!(s.load(&k).await.unwrap(), None);
}

async fn touch_moves_the_deadline_only(s: RedisStore) {
    let k = key();
    assert!(
        !s.touch(&k, in_an_hour()).await.unwrap(),
        "absent key reported as touched"
    );
    assert_eq!(s.load(&k).await.unwrap(), None, "touch created a record");
    s.save(&k, &record(b"payload", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    s.save(
        &k,
        &record(b"payload2", in_an_hour()),
        SaveMode::Update {
            expected_version: 1,
        },
    )
    .await
    .unwrap();
    let later = in_an_hour() + Duration::days(3);
    assert!(s.touch(&k, later).await.unwrap());
    let got = s.load(&k).await.unwrap().unwrap();
    assert_eq!((&got.payload[..], got.version), (&b"payload2"[..], 2));
    assert!((later - got.expires_at).abs() < Duration::milliseconds(1));
    // Earlier works too.
    let sooner = OffsetDateTime::now_utc() + Duration::minutes(10);
    assert!(s.touch(&k, sooner).await.unwrap());
    assert!(
        (sooner - s.load(&k).await.unwrap().unwrap().expires_at).abs() < Duration::milliseconds(1)
    );
    // The version is untouched, so CAS still works with the loaded version.
    assert_eq!(
        s.save(
            &k,
            &record(b"p3", in_an_hour()),
            SaveMode::Update {
                expected_version: 2
            }
        )
        .await
        .unwrap(),
        3
    );
}

async fn touch_in_the_past_kills_the_record(s: RedisStore) {
    let k = key();
    s.save(&k, &record(b"x", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    assert!(
        s.touch(&k, OffsetDateTime::now_utc() - Duration::hours(1))
            .await
            .unwrap()
    );
    assert_eq!(s.load(&k).await.unwrap(), None);
    assert!(!s.touch(&k, in_an_hour()).await.unwrap());
    assert_eq!(
        s.load(&k).await.unwrap(),
        None,
        "touch resurrected the record"
    );
}

async fn expired_records_vanish_natively(s: RedisStore) {
    let k = key();
    let soon = OffsetDateTime::now_utc() + Duration::milliseconds(300);
    s.save(&k, &record(b"short", soon), SaveMode::Create)
        .await
        .unwrap();
    assert!(s.load(&k).await.unwrap().is_some());
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match s.load(&k).await.unwrap() {
            None => break,
            Some(r) => assert!(
                r.expires_at > OffsetDateTime::now_utc() - Duration::milliseconds(50),
                "expired record returned"
            ),
        }
        assert!(
            std::time::Instant::now() < give_up,
            "record outlived its deadline by seconds"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let err = s
        .save(
            &k,
            &record(b"x", in_an_hour()),
            SaveMode::Update {
                expected_version: 1,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert!(!s.touch(&k, in_an_hour()).await.unwrap());
    s.save(&k, &record(b"again", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
}

async fn concurrent_creates_one_wins(s: RedisStore) {
    let k = key();
    let results = join_all((0..32).map(|i| {
        let (s, k) = (s.clone(), k.clone());
        tokio::spawn(async move {
            let payload = format!("writer {i}");
            (
                i,
                s.save(
                    &k,
                    &record(payload.as_bytes(), in_an_hour()),
                    SaveMode::Create,
                )
                .await,
            )
        })
    }))
    .await;
    let mut winners = Vec::new();
    for r in results {
        match r.unwrap() {
            (i, Ok(1)) => winners.push(i),
            (_, Err(Error::Collision)) => {}
            (i, other) => panic!("writer {i}: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let got = s.load(&k).await.unwrap().unwrap();
    assert_eq!(got.payload, format!("writer {}", winners[0]).into_bytes());
}

async fn concurrent_updates_one_wins(s: RedisStore) {
    let k = key();
    s.save(&k, &record(b"base", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    let results = join_all((0..32).map(|i| {
        let (s, k) = (s.clone(), k.clone());
        tokio::spawn(async move {
            let payload = format!("writer {i}");
            (
                i,
                s.save(
                    &k,
                    &record(payload.as_bytes(), in_an_hour()),
                    SaveMode::Update {
                        expected_version: 1,
                    },
                )
                .await,
            )
        })
    }))
    .await;
    let mut winners = Vec::new();
    for r in results {
        match r.unwrap() {
            (i, Ok(2)) => winners.push(i),
            (_, Err(Error::Conflict)) => {}
            (i, other) => panic!("writer {i}: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let got = s.load(&k).await.unwrap().unwrap();
    assert_eq!(got.version, 2);
    assert_eq!(got.payload, format!("writer {}", winners[0]).into_bytes());
}

async fn capabilities_and_delete_expired(s: RedisStore) {
    let caps = s.capabilities();
    assert!(
        caps.native_ttl && caps.touch && caps.delete_expired && caps.durable,
        "{caps:?}"
    );
    let k = key();
    s.save(&k, &record(b"x", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    assert_eq!(s.delete_expired().await.unwrap(), 0);
    assert!(
        s.load(&k).await.unwrap().is_some(),
        "delete_expired removed a live record"
    );
}

async fn namespaces_are_isolated(s: RedisStore) {
    let other = s
        .with_key_prefix(&unique_prefix("namespaces_other"))
        .unwrap();
    let k = key();
    s.save(&k, &record(b"mine", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    assert_eq!(other.load(&k).await.unwrap(), None);
    other
        .save(&k, &record(b"theirs", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    other.expire(&k).await.unwrap();
    assert_eq!(&s.load(&k).await.unwrap().unwrap().payload[..], b"mine");
    assert!(s.with_key_prefix("").is_err());
    assert!(s.with_key_prefix("{hot}:").is_err());
}

async fn works_as_a_trait_object(s: RedisStore) {
    let store: Arc<dyn SessionInterface> = Arc::new(s);
    let k = key();
    store
        .save(&k, &record(b"dyn", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    assert_eq!(&store.load(&k).await.unwrap().unwrap().payload[..], b"dyn");
}
