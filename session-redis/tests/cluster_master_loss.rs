//! Losing one master of a Redis Cluster that has no replicas, on a private three-node
//! cluster this test starts (ports 21420–21422, cluster bus 31420–31422; never the
//! shared cluster): what the same store value does while the master is gone, with
//! Redis's default `cluster-require-full-coverage yes` and without it, and after the
//! master returns. Runs when `SESSION_TEST_REDIS_URL` is set (the machine has Redis)
//! and `redis-server` is on the PATH.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::{OwnCluster, in_an_hour, key, keyslot, query, record};
use session_core::{Error, SaveMode, SessionInterface, StorageKey};
use session_redis::{RedisConfig, RedisStore};

const COMMAND_TIMEOUT: Duration = Duration::from_millis(800);

/// Retries `op` until it returns `Ok`, for at most `within`; the last error panics.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let give_up = Instant::now() + within;
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < give_up => {
                assert!(e.is_retryable(), "{what}: a permanent error {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{what}: still failing after {within:?}: {e}"),
        }
    }
}

/// `op` fails with a retryable error, within the command timeout (and some slack for
/// a loaded machine).
async fn fails_retryably<T: std::fmt::Debug>(
    what: &str,
    op: impl Future<Output = Result<T, Error>>,
) {
    let started = Instant::now();
    let err = op.await.expect_err(what);
    assert!(err.is_retryable(), "{what}: {err}");
    assert!(
        started.elapsed() < COMMAND_TIMEOUT + Duration::from_secs(2),
        "{what}: took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_master_without_replica_and_its_return() {
    let Some(mut cluster) = OwnCluster::start("master-loss", &[21420, 21421, 21422]).await else {
        return;
    };
    let store = RedisStore::connect(
        RedisConfig::cluster(cluster.urls())
            .key_prefix("master-loss:")
            .command_timeout(COMMAND_TIMEOUT),
    )
    .await
    .unwrap();
    let mut raw = cluster.nodes[0].raw().await;

    // At least four sessions on every master.
    let mut on: [Vec<StorageKey>; 3] = Default::default();
    while on.iter().any(|keys| keys.len() < 4) {
        let k = key();
        let owner = cluster.owner(keyslot(&mut raw, &store.redis_key(&k)).await);
        store
            .save(&k, &record(b"before", in_an_hour()), SaveMode::Create)
            .await
            .unwrap();
        on[owner].push(k);
    }

    // The third master dies (SIGKILL): its sessions fail retryably, within the
    // command timeout, never a hang or a panic.
    cluster.nodes[2].kill();
    for k in &on[2] {
        fails_retryably("load of a session on the lost master", store.load(k)).await;
    }

    // Once the survivors mark it failed, a cluster that requires full slot coverage
    // (Redis's default) refuses every slot: the other sessions fail retryably too
    // (CLUSTERDOWN), until the master returns or the coverage rule is relaxed.
    cluster
        .wait_state(&[0, 1], "fail", Duration::from_secs(20))
        .await;
    for k in on[0].iter().chain(&on[1]) {
        fails_retryably("load while the cluster is down", store.load(k)).await;
    }

    // Without full coverage required, the survivors serve their own slots again —
    // through the same store value — while the lost master's slots keep failing.
    for node in &cluster.nodes[..2] {
        let mut con = node.raw().await;
        let mut set = redis::cmd("CONFIG");
        set.arg("SET")
            .arg("cluster-require-full-coverage")
            .arg("no");
        query(&mut con, &set).await;
    }
    cluster
        .wait_state(&[0, 1], "ok", Duration::from_secs(20))
        .await;
    for k in on[0].iter().chain(&on[1]) {
        let got = eventually(Duration::from_secs(15), "load on a survivor", || {
            store.load(k)
        })
        .await
        .expect("a survivor's session is intact");
        assert_eq!(&got.payload[..], b"before");
    }
    fails_retryably("load on the lost master", store.load(&on[2][0])).await;

    // The master returns with its node id and slots (nodes.conf) but without its data
    // (no persistence, no replica): its sessions are gone — "no session", not an
    // error — new ones can be created in its slots, and the others are untouched.
    assert!(cluster.nodes[2].spawn(), "redis-server did not restart");
    cluster
        .wait_state(&[0, 1, 2], "ok", Duration::from_secs(20))
        .await;
    for k in &on[2] {
        let got = eventually(Duration::from_secs(15), "load after the return", || {
            store.load(k)
        })
        .await;
        assert!(got.is_none(), "a session of the lost master came back");
        store
            .save(k, &record(b"after", in_an_hour()), SaveMode::Create)
            .await
            .expect("create in the returned master's slots");
    }
    for k in on[0].iter().chain(&on[1]) {
        assert_eq!(
            &store.load(k).await.unwrap().unwrap().payload[..],
            b"before"
        );
    }
}
