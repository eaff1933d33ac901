//! Periodic id rotation (session-core's `rotate_every`) on a real Redis, in real
//! time: Redis keeps its own clock, so the conformance suite's manual-clock rotation
//! cases skip here. A short period and grace window keep this to a few seconds.
//! Runs on the standalone server and the cluster; skips (with a line naming the
//! variable) when unset, fails when `SESSION_TEST_REQUIRE` names the backend.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use conformance_tests::SetupError;
use conformance_tests::servers::{Backend, resolve};
use session_core::SessionInterface;
use session_core::time::Duration;
use session_core::{CookieDecision, SessionConfig, SessionManager, SessionToken};
use session_redis::{RedisConfig, RedisStore};

async fn store(backend: Backend) -> Option<RedisStore> {
    let urls = match resolve(backend).await {
        Ok(u) => u.urls().to_vec(),
        Err(SetupError::Skip(why)) => {
            println!("SKIP: {why}");
            return None;
        }
        Err(e) => panic!("{e:?}"),
    };
    let config = match backend {
        Backend::RedisCluster => RedisConfig::cluster(urls),
        _ => RedisConfig::new(urls[0].clone()),
    };
    let prefix = format!(
        "rotation-test:{}:",
        SessionToken::generate().unwrap().storage_key()
    );
    Some(
        RedisStore::connect(config.key_prefix(&prefix[..40]))
            .await
            .expect("connect"),
    )
}

fn set(d: CookieDecision) -> String {
    match d {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected Set, got {other:?}"),
    }
}

async fn rotation_in_real_time(backend: Backend) {
    let Some(store) = store(backend).await else {
        return;
    };
    let store: Arc<dyn SessionInterface> = Arc::new(store);
    let config = SessionConfig::builder()
        .rotate_every(Some(Duration::seconds(1)))
        .rotation_grace(Duration::seconds(2))
        .build()
        .unwrap();
    let m = SessionManager::new(Arc::clone(&store), config);

    let s = m.session(None);
    s.insert("user", &1).await.unwrap();
    let old = set(m.finish(&s).await.unwrap());
    // Loaded before the rotation, finished after it.
    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    let in_flight = m.session(Some(&old));
    in_flight.insert("a", &1).await.unwrap();

    let s = m.session(Some(&old));
    s.get::<i64>("user").await.unwrap();
    let new = set(m.finish(&s).await.unwrap());
    assert_ne!(new, old);
    assert_eq!(set(m.finish(&in_flight).await.unwrap()), new);

    let check = m.session(Some(&new));
    assert_eq!(check.keys().await.unwrap(), ["a", "user"]);

    // Past the grace window Redis has evicted the pointer by itself.
    tokio::time::sleep(StdDuration::from_millis(2300)).await;
    let old_key = SessionToken::parse(&old).unwrap().storage_key();
    assert!(store.load(&old_key).await.unwrap().is_none());
    let s = m.session(Some(&old));
    assert!(!s.exists().await.unwrap());
    assert!(m.session(Some(&new)).exists().await.unwrap());
    store
        .expire(&SessionToken::parse(&new).unwrap().storage_key())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_standalone() {
    rotation_in_real_time(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_cluster() {
    rotation_in_real_time(Backend::RedisCluster).await;
}
