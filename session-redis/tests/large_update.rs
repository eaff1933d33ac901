//! Compare-and-set of large payloads (the `MULTI`/`EXEC` path, see
//! `RedisConfig::large_update_threshold`) against the standalone server, the cluster
//! and a `deadpool-redis` pool: every outcome of the script path, the same records,
//! and never a placeholder left under a key. After each step the test reads the raw
//! value back and checks it is absent, a well-formed record, or the foreign value the
//! test put there.

mod common;

use common::{Server, in_an_hour, key, raw_cluster, raw_standalone, record, unique_prefix};
use futures::future::join_all;
use redis::Value;
use redis::aio::ConnectionLike;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{Error, FIRST_VERSION, SaveMode, SessionInterface};
use session_redis::RedisStore;

/// Payloads above this go through the transaction in these tests.
const THRESHOLD: usize = 1024;

#[derive(Debug, Clone, Copy)]
enum Via {
    Standalone,
    Cluster,
    Pool,
}

/// A raw connection next to the store, for looking at (and planting) values.
enum Raw {
    Standalone(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Raw {
    async fn query(&mut self, cmd: &redis::Cmd) -> Value {
        let reply = match self {
            Raw::Standalone(c) => c.req_packed_command(cmd).await,
            Raw::Cluster(c) => c.req_packed_command(cmd).await,
        };
        reply.expect("raw command")
    }

    async fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        match self.query(redis::cmd("GET").arg(key)).await {
            Value::Nil => None,
            Value::BulkString(b) => Some(b),
            other => panic!("GET {key}: {other:?}"),
        }
    }

    async fn exists(&mut self, key: &str) -> bool {
        self.query(redis::cmd("EXISTS").arg(key)).await == Value::Int(1)
    }

    /// The key holds nothing, or a record (format 1, a full header) with `version`.
    async fn assert_absent_or_record(&mut self, key: &str, version: Option<u64>) {
        match (self.get(key).await, version) {
            (None, None) => {}
            (Some(v), Some(want)) => {
                assert!(v.len() >= 17 && v[0] == 1, "not a record: {:?}", head(&v));
                assert_eq!(u64::from_be_bytes(v[1..9].try_into().unwrap()), want);
            }
            (got, want) => panic!(
                "{key}: expected version {want:?}, found {:?}",
                got.as_deref().map(head)
            ),
        }
    }
}

fn head(v: &[u8]) -> &[u8] {
    &v[..v.len().min(24)]
}

async fn setup(via: Via, test: &str) -> Option<(RedisStore, Raw)> {
    let (store, raw) = match via {
        Via::Standalone => {
            let url = Server::Standalone.urls()?.remove(0);
            let store = Server::Standalone.store(test).await?;
            (store, Raw::Standalone(raw_standalone(&url).await))
        }
        Via::Cluster => {
            let urls = Server::Cluster.urls()?;
            let store = Server::Cluster.store(test).await?;
            (store, Raw::Cluster(raw_cluster(&urls).await))
        }
        Via::Pool => {
            let url = Server::Standalone.urls()?.remove(0);
            let pool = deadpool_redis::Config::from_url(url.clone())
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .unwrap();
            let store = RedisStore::from_pool(pool, &unique_prefix(test)).unwrap();
            (store, Raw::Standalone(raw_standalone(&url).await))
        }
    };
    Some((store.with_large_update_threshold(THRESHOLD), raw))
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        mod standalone { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { if let Some((s, r)) = super::setup(super::Via::Standalone, stringify!($case)).await { super::$case(s, r).await } }
        )* }
        mod cluster { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { if let Some((s, r)) = super::setup(super::Via::Cluster, stringify!($case)).await { super::$case(s, r).await } }
        )* }
        mod pool { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { if let Some((s, r)) = super::setup(super::Via::Pool, stringify!($case)).await { super::$case(s, r).await } }
        )* }
    };
}

cases!(
    round_trips_in_the_same_layout,
    conflict_writes_nothing,
    absent_is_not_found_and_leaves_nothing,
    expired_is_not_found,
    past_deadline_deletes_at_once,
    foreign_values_are_left_alone,
    concurrent_updaters_one_wins_per_version,
);

/// `len` bytes, different for every `seed`.
fn big(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn update(v: u64) -> SaveMode {
    SaveMode::Update {
        expected_version: v,
    }
}

async fn round_trips_in_the_same_layout(s: RedisStore, mut raw: Raw) {
    let k = key();
    let rk = s.redis_key(&k);
    s.save(&k, &record(b"small", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    // Alternate the two paths: large, small, exactly the threshold (script), one
    // byte more (transaction).
    let payloads = [
        big(16 * 1024, 1),
        b"tiny".to_vec(),
        big(THRESHOLD, 2),
        big(THRESHOLD + 1, 3),
        Vec::new(),
        big(100_000, 4),
    ];
    let mut v = FIRST_VERSION;
    for p in payloads {
        let at = in_an_hour() + Duration::minutes(v as i64);
        v = s.save(&k, &record(&p, at), update(v)).await.unwrap();
        let got = s.load(&k).await.unwrap().unwrap();
        assert_eq!(got.version, v);
        assert!(got.payload[..] == p[..], "payload of {} bytes", p.len());
        assert!((at - got.expires_at).abs() < Duration::milliseconds(1));
        // The string is exactly header + payload, and the key's TTL is the deadline.
        let value = raw.get(&rk).await.unwrap();
        assert_eq!(value.len(), 17 + p.len());
        assert_eq!(value[0], 1);
        assert_eq!(u64::from_be_bytes(value[1..9].try_into().unwrap()), v);
        let ms = i64::from_be_bytes(value[9..17].try_into().unwrap());
        assert_eq!(
            raw.query(redis::cmd("PEXPIRETIME").arg(&rk)).await,
            Value::Int(ms)
        );
    }
    assert_eq!(v, 7);
}

async fn conflict_writes_nothing(s: RedisStore, mut raw: Raw) {
    let k = key();
    let rk = s.redis_key(&k);
    s.save(&k, &record(&big(5000, 1), in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    let v2 = s
        .save(&k, &record(&big(5000, 2), in_an_hour()), update(1))
        .await
        .unwrap();
    assert_eq!(v2, 2);
    for stale in [0, 1, 3, u64::MAX - 1, u64::MAX] {
        let err = s
            .save(&k, &record(&big(8000, 9), in_an_hour()), update(stale))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict), "{stale}: {err:?}");
        raw.assert_absent_or_record(&rk, Some(2)).await;
    }
    let got = s.load(&k).await.unwrap().unwrap();
    assert_eq!(got.version, 2);
    assert!(got.payload[..] == big(5000, 2)[..]);
}

async fn absent_is_not_found_and_leaves_nothing(s: RedisStore, mut raw: Raw) {
    let k = key();
    let rk = s.redis_key(&k);
    let err = s
        .save(&k, &record(&big(4000, 1), in_an_hour()), update(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert!(!raw.exists(&rk).await, "the update left something behind");
    // After an expire too, and the key stays free for a create.
    s.save(&k, &record(&big(4000, 2), in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    s.expire(&k).await.unwrap();
    let err = s
        .save(&k, &record(&big(4000, 3), in_an_hour()), update(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert!(!raw.exists(&rk).await, "the update left something behind");
    assert_eq!(
        s.save(&k, &record(b"new", in_an_hour()), SaveMode::Create)
            .await
            .unwrap(),
        FIRST_VERSION
    );
}

async fn expired_is_not_found(s: RedisStore, mut raw: Raw) {
    let k = key();
    let rk = s.redis_key(&k);
    let soon = OffsetDateTime::now_utc() + Duration::milliseconds(200);
    s.save(&k, &record(&big(3000, 1), soon), SaveMode::Create)
        .await
        .unwrap();
    // Wait for the deadline to pass without reading the key (a read would make Redis
    // delete it lazily; the update must handle a logically expired key itself).
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let err = s
        .save(&k, &record(&big(3000, 2), in_an_hour()), update(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert!(!raw.exists(&rk).await, "the update left something behind");
    assert_eq!(s.load(&k).await.unwrap(), None);
    s.save(&k, &record(b"again", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
}

async fn past_deadline_deletes_at_once(s: RedisStore, mut raw: Raw) {
    let k = key();
    let rk = s.redis_key(&k);
    s.save(&k, &record(&big(3000, 1), in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    let past = OffsetDateTime::now_utc() - Duration::hours(1);
    // As on the script path: the update succeeds and the record is gone at once.
    assert_eq!(
        s.save(&k, &record(&big(3000, 2), past), update(1))
            .await
            .unwrap(),
        2
    );
    assert!(
        !raw.exists(&rk).await,
        "a record with a past deadline stayed"
    );
    assert_eq!(s.load(&k).await.unwrap(), None);
    let err = s
        .save(&k, &record(&big(3000, 3), in_an_hour()), update(2))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert!(!raw.exists(&rk).await);
}

async fn foreign_values_are_left_alone(s: RedisStore, mut raw: Raw) {
    let mut header_like = vec![2u8; 17];
    header_like.extend_from_slice(b"format 2");
    let strings: [&[u8]; 5] = [
        b"",
        b"x",
        b"not a session record at all",
        &header_like,
        &[1u8; 16], // format byte 1 but shorter than a header
    ];
    for foreign in strings {
        let k = key();
        let rk = s.redis_key(&k);
        raw.query(redis::cmd("SET").arg(&rk).arg(foreign).arg("EX").arg(600))
            .await;
        let err = s
            .save(&k, &record(&big(4000, 1), in_an_hour()), update(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{foreign:?}: {err:?}");
        assert_eq!(
            raw.get(&rk).await.as_deref(),
            Some(foreign),
            "value changed"
        );
        raw.query(redis::cmd("DEL").arg(&rk)).await;
    }
    // A key of another type.
    let k = key();
    let rk = s.redis_key(&k);
    raw.query(redis::cmd("RPUSH").arg(&rk).arg("a").arg("b"))
        .await;
    let err = s
        .save(&k, &record(&big(4000, 1), in_an_hour()), update(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
    assert_eq!(
        raw.query(redis::cmd("LRANGE").arg(&rk).arg(0).arg(-1))
            .await,
        Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::BulkString(b"b".to_vec())
        ])
    );
    raw.query(redis::cmd("DEL").arg(&rk)).await;
}

async fn concurrent_updaters_one_wins_per_version(s: RedisStore, mut raw: Raw) {
    let k = key();
    let rk = s.redis_key(&k);
    s.save(&k, &record(&big(8192, 0), in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    let mut version = FIRST_VERSION;
    for round in 0..6u8 {
        // 16 writers per version; a quarter of them small (the script path), so both
        // paths race for the same version.
        let results = join_all((0..16u8).map(|i| {
            let (s, k) = (s.clone(), k.clone());
            let payload = if i % 4 == 0 {
                vec![round, i]
            } else {
                big(
                    8192 + usize::from(i),
                    round.wrapping_mul(16).wrapping_add(i),
                )
            };
            tokio::spawn(async move {
                let r = s
                    .save(&k, &record(&payload, in_an_hour()), update(version))
                    .await;
                (payload, r)
            })
        }))
        .await;
        let mut winners = Vec::new();
        for r in results {
            match r.unwrap() {
                (p, Ok(v)) => {
                    assert_eq!(v, version + 1);
                    winners.push(p);
                }
                (_, Err(Error::Conflict)) => {}
                (_, other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {} winners", winners.len());
        version += 1;
        let got = s.load(&k).await.unwrap().unwrap();
        assert_eq!(got.version, version);
        assert!(got.payload[..] == winners[0][..]);
        raw.assert_absent_or_record(&rk, Some(version)).await;
    }
    s.expire(&k).await.unwrap();
}
