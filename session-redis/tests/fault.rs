//! Faults on private `redis-server` processes this test starts on its own loopback
//! ports (never the shared servers): the server dies and comes back, the server
//! stalls (SIGSTOP), the script cache is flushed.
//!
//! Runs when `SESSION_TEST_REDIS_URL` is set (the machine has Redis) and
//! `redis-server` is on the PATH.

mod common;

use std::time::{Duration, Instant};

use common::{OwnServer, in_an_hour, key, record};
use session_core::{Error, SaveMode, SessionInterface};
use session_redis::{RedisConfig, RedisStore, RedisStoreError};

fn is_retryable_backend(err: &Error) -> bool {
    matches!(
        err,
        Error::Backend {
            retryable: true,
            ..
        }
    )
}

/// Polls until a create + load succeeds on `store`, for up to `within`.
async fn until_serving(store: &RedisStore, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let k = key();
        match store
            .save(&k, &record(b"back", in_an_hour()), SaveMode::Create)
            .await
        {
            Ok(_) => {
                assert_eq!(&store.load(&k).await.unwrap().unwrap().payload[..], b"back");
                return started.elapsed();
            }
            Err(e) => assert!(is_retryable_backend(&e), "{e:?}"),
        }
        assert!(
            started.elapsed() < within,
            "store did not recover within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_server_restart() {
    let Some(mut server) = OwnServer::start(26400, &[]) else {
        return;
    };
    let timeout = Duration::from_millis(500);
    let store = RedisStore::connect(
        RedisConfig::new(server.url())
            .key_prefix("fault-restart:")
            .connect_timeout(Duration::from_millis(200))
            .command_timeout(timeout),
    )
    .await
    .unwrap();
    let k = key();
    store
        .save(&k, &record(b"before", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();

    server.kill();
    // A bounded loop of every operation: each fails typed and retryable, in time.
    for i in 0..20 {
        let started = Instant::now();
        let result = match i % 4 {
            0 => store.load(&k).await.map(drop),
            1 => store
                .save(
                    &k,
                    &record(b"x", in_an_hour()),
                    SaveMode::Update {
                        expected_version: 1,
                    },
                )
                .await
                .map(drop),
            2 => store.touch(&k, in_an_hour()).await.map(drop),
            _ => store.expire(&k).await,
        };
        let err = result.expect_err("server is down");
        assert!(is_retryable_backend(&err), "op {i}: {err:?}");
        assert!(
            started.elapsed() < timeout + Duration::from_millis(300),
            "op {i} took {:?}",
            started.elapsed()
        );
    }

    assert!(server.spawn());
    let took = until_serving(&store, Duration::from_secs(10)).await;
    println!("served again {took:?} after the restart");
    // The restarted server kept nothing (--save ''), and says so.
    assert_eq!(store.load(&k).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_server_times_out() {
    let Some(server) = OwnServer::start(26401, &[]) else {
        return;
    };
    let timeout = Duration::from_millis(300);
    let store = RedisStore::connect(
        RedisConfig::new(server.url())
            .key_prefix("fault-stall:")
            .command_timeout(timeout),
    )
    .await
    .unwrap();
    let k = key();
    store
        .save(&k, &record(b"before", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();

    server.signal("-STOP");
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.load(&k).await.expect_err("server is stopped");
        let took = started.elapsed();
        assert!(is_retryable_backend(&err), "{err:?}");
        assert!(
            took >= timeout - Duration::from_millis(20),
            "gave up early: {took:?}"
        );
        assert!(
            took < timeout + Duration::from_millis(300),
            "timeout did not fire: {took:?}"
        );
        // Either our own deadline or the driver's response timeout fired first.
        let src = std::error::Error::source(&err).unwrap();
        let ours = matches!(
            src.downcast_ref::<RedisStoreError>(),
            Some(RedisStoreError::Timeout { .. })
        );
        let driver = src
            .downcast_ref::<redis::RedisError>()
            .is_some_and(|e| e.is_timeout());
        assert!(ours || driver, "not a timeout: {src:?}");
    }
    server.signal("-CONT");
    until_serving(&store, Duration::from_secs(5)).await;
    assert_eq!(
        &store.load(&k).await.unwrap().unwrap().payload[..],
        b"before"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_reload_after_script_flush() {
    let Some(server) = OwnServer::start(26402, &[]) else {
        return;
    };
    let store = RedisStore::connect(RedisConfig::new(server.url()).key_prefix("fault-noscript:"))
        .await
        .unwrap();
    let mut raw = common::raw_standalone(&server.url()).await;
    let k = key();
    store
        .save(&k, &record(b"v1", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    for round in 1..=3u64 {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut raw)
            .await
            .unwrap();
        let v = store
            .save(
                &k,
                &record(b"v", in_an_hour()),
                SaveMode::Update {
                    expected_version: round,
                },
            )
            .await
            .unwrap();
        assert_eq!(v, round + 1);
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(store.touch(&k, in_an_hour()).await.unwrap());
    }
}
