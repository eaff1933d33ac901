//! The large-payload update transaction on private `redis-server` processes this test
//! starts on its own loopback ports (never the shared servers): which path a payload
//! takes, a transaction refused while queueing (`OOM`), a connection cut in the middle
//! of the transaction, a record larger than the server accepts, and a cluster whose
//! slot moved under the client (`MOVED` inside `MULTI`).
//!
//! Runs when `SESSION_TEST_REDIS_URL` is set (the machine has Redis) and
//! `redis-server` is on the PATH. Ports 26410–26413, and 21414–21415 for the cluster
//! (a cluster node also listens on its port + 10000). All below the ephemeral port
//! range (32768–60999), which an outgoing connection could otherwise be holding.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::{OwnCluster, OwnServer, in_an_hour, info_field, key, keyslot, query, record};
use redis::Value;
use redis::aio::ConnectionLike;
use session_core::{Error, SaveMode, SessionInterface};
use session_redis::{RedisConfig, RedisStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `calls` of one command in `INFO commandstats`, 0 if it never ran.
async fn calls(con: &mut impl ConnectionLike, command: &str) -> u64 {
    let text = match query(con, redis::cmd("INFO").arg("commandstats")).await {
        Value::BulkString(b) => String::from_utf8(b).unwrap(),
        Value::VerbatimString { text, .. } => text,
        other => panic!("INFO: {other:?}"),
    };
    let prefix = format!("cmdstat_{command}:calls=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .unwrap_or(0)
}

fn update(v: u64) -> SaveMode {
    SaveMode::Update {
        expected_version: v,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_above_the_threshold_take_the_transaction() {
    let Some(server) = OwnServer::start(26410, &[]) else {
        return;
    };
    let store = RedisStore::connect(
        RedisConfig::new(server.url())
            .key_prefix("lu-paths:")
            .large_update_threshold(1000),
    )
    .await
    .unwrap();
    let mut raw = server.raw().await;
    let k = key();
    store
        .save(&k, &record(b"v1", in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    // The transaction's scripts go as EVAL: a flushed cache does not matter.
    query(&mut raw, redis::cmd("SCRIPT").arg("FLUSH")).await;
    query(&mut raw, redis::cmd("CONFIG").arg("RESETSTAT")).await;
    let v = store
        .save(&k, &record(&[7; 1001], in_an_hour()), update(1))
        .await
        .unwrap();
    assert_eq!(
        [
            calls(&mut raw, "multi").await,
            calls(&mut raw, "exec").await,
            calls(&mut raw, "eval").await,
            calls(&mut raw, "evalsha").await,
            calls(&mut raw, "set").await,
        ],
        [1, 1, 2, 0, 1],
        "1001 bytes: MULTI, EVAL check, SET, EVAL cleanup, EXEC"
    );
    query(&mut raw, redis::cmd("CONFIG").arg("RESETSTAT")).await;
    store
        .save(&k, &record(&[8; 1000], in_an_hour()), update(v))
        .await
        .unwrap();
    assert_eq!(
        [
            calls(&mut raw, "multi").await,
            calls(&mut raw, "exec").await,
            calls(&mut raw, "evalsha").await,
        ],
        [0, 0, 1],
        "1000 bytes: one EVALSHA"
    );
    let got = store.load(&k).await.unwrap().unwrap();
    assert_eq!((got.version, &got.payload[..]), (3, &[8u8; 1000][..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_transaction_changes_nothing() {
    let Some(server) = OwnServer::start(26411, &["--maxmemory-policy", "noeviction"]) else {
        return;
    };
    let store = RedisStore::connect(
        RedisConfig::new(server.url())
            .key_prefix("lu-oom:")
            .large_update_threshold(1000),
    )
    .await
    .unwrap();
    let mut raw = server.raw().await;
    let k = key();
    let rk = store.redis_key(&k);
    store
        .save(&k, &record(&[1; 2000], in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    // Every write is now refused while queueing: `EXEC` answers `EXECABORT`.
    query(
        &mut raw,
        redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(1),
    )
    .await;
    let err = store
        .save(&k, &record(&[2; 5000], in_an_hour()), update(1))
        .await
        .unwrap_err();
    // Typed: a non-retryable backend error whose source is the server's refusal of
    // the `SET`, not the bare `EXECABORT`.
    match &err {
        Error::Backend {
            retryable: false,
            source,
        } => {
            let redis_err = source
                .downcast_ref::<redis::RedisError>()
                .expect("a driver error");
            assert_eq!(redis_err.code(), Some("OOM"), "{redis_err:?}");
        }
        other => panic!("{other:?}"),
    }
    // Absent key: the placeholder step is refused with the rest.
    let absent = key();
    let err = store
        .save(&absent, &record(&[2; 5000], in_an_hour()), update(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    query(
        &mut raw,
        redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(0),
    )
    .await;
    assert_eq!(
        query(&mut raw, redis::cmd("EXISTS").arg(store.redis_key(&absent))).await,
        Value::Int(0)
    );
    let Value::BulkString(value) = query(&mut raw, redis::cmd("GET").arg(&rk)).await else {
        panic!("record gone")
    };
    assert_eq!(value.len(), 17 + 2000);
    assert_eq!(&value[17..], &[1; 2000][..]);
    assert_eq!(
        store
            .save(&k, &record(&[3; 5000], in_an_hour()), update(1))
            .await
            .unwrap(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_the_servers_limit_is_refused_on_both_paths() {
    let Some(server) = OwnServer::start(26412, &["--proto-max-bulk-len", "1mb"]) else {
        return;
    };
    let store = RedisStore::connect(
        RedisConfig::new(server.url())
            .key_prefix("lu-big:")
            .command_timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let mut raw = server.raw().await;
    let k = key();
    store
        .save(&k, &record(&[1; 5000], in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    let huge = vec![9u8; 2 << 20];
    for threshold in [0, usize::MAX] {
        let s = store.clone().with_large_update_threshold(threshold);
        let err = s
            .save(&k, &record(&huge, in_an_hour()), update(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{threshold}: {err:?}");
        // The server closed the connection on the oversized argument; the record
        // is untouched, and the store serves again.
        let got = loop {
            match store.load(&k).await {
                Ok(r) => break r,
                Err(e) => assert!(
                    matches!(
                        e,
                        Error::Backend {
                            retryable: true,
                            ..
                        }
                    ),
                    "{e:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let got = got.expect("record gone");
        assert_eq!((got.version, &got.payload[..]), (1, &[1u8; 5000][..]));
    }
    assert_eq!(
        query(&mut raw, &redis::cmd("DBSIZE")).await,
        Value::Int(1),
        "only the record"
    );
}

/// A TCP proxy in front of a server that, once armed with `n`, forwards `n` more
/// bytes from the client and then cuts every connection it serves.
struct CuttingProxy {
    port: u16,
    budget: Arc<AtomicI64>,
}

impl CuttingProxy {
    async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let budget = Arc::new(AtomicI64::new(i64::MAX));
        let b = budget.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let b = b.clone();
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    });
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n @ 1..) = cr.read(&mut buf).await {
                        let left = b.fetch_sub(n as i64, Ordering::SeqCst);
                        let pass = usize::try_from(left.max(0)).unwrap_or(usize::MAX).min(n);
                        if sw.write_all(&buf[..pass]).await.is_err() || pass < n {
                            break;
                        }
                    }
                    // Dropping both halves closes both connections.
                    down.abort();
                });
            }
        });
        Self { port, budget }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn arm(&self, bytes: i64) {
        self.budget.store(bytes, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.budget.store(i64::MAX, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_inside_the_transaction_writes_nothing() {
    let Some(server) = OwnServer::start(26413, &[]) else {
        return;
    };
    let proxy = CuttingProxy::start(server.port()).await;
    let store = RedisStore::connect(
        RedisConfig::new(proxy.url())
            .key_prefix("lu-cut:")
            .large_update_threshold(1000),
    )
    .await
    .unwrap();
    let mut raw = server.raw().await;
    let k = key();
    let rk = store.redis_key(&k);
    let absent = key();
    store
        .save(&k, &record(&[1; 3000], in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    // How many bytes one such update sends: a successful one on another key.
    let probe = key();
    store
        .save(&probe, &record(&[1; 3000], in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    let before = proxy.budget.load(Ordering::SeqCst);
    store
        .save(&probe, &record(&[2; 16 * 1024], in_an_hour()), update(1))
        .await
        .unwrap();
    let sent = before - proxy.budget.load(Ordering::SeqCst);
    assert!(sent > 16 * 1024, "{sent}");
    // Cut after MULTI and the check script, inside the SET's payload; then one byte
    // before the end of EXEC; for a present and an absent key.
    for (cut, target) in [
        (2000, &k),
        (sent - 1, &k),
        (2000, &absent),
        (sent - 1, &absent),
    ] {
        proxy.arm(cut);
        let err = store
            .save(target, &record(&[2; 16 * 1024], in_an_hour()), update(1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Backend {
                    retryable: true,
                    ..
                }
            ),
            "cut at {cut}: {err:?}"
        );
        proxy.disarm();
        // The server discarded the unfinished transaction with the connection.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Value::BulkString(value) = query(&mut raw, redis::cmd("GET").arg(&rk)).await else {
            panic!("record gone")
        };
        assert_eq!((value.len(), value[8], value[17]), (17 + 3000, 1, 1));
        assert_eq!(
            query(&mut raw, redis::cmd("EXISTS").arg(store.redis_key(&absent))).await,
            Value::Int(0),
            "placeholder or record under the absent key"
        );
    }
    // The store reconnects through the proxy and the retry succeeds.
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        match store
            .save(&k, &record(&[3; 16 * 1024], in_an_hour()), update(1))
            .await
        {
            Ok(v) => break assert_eq!(v, 2),
            Err(e) => assert!(
                matches!(
                    e,
                    Error::Backend {
                        retryable: true,
                        ..
                    }
                ),
                "{e:?}"
            ),
        }
        assert!(Instant::now() < give_up, "store did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// On a private two-node cluster: the transaction is routed to the key's node, and
/// after the key's slot moved to the other node behind the client's back, the
/// transaction is refused with `MOVED` (inside `MULTI` the cluster client does not
/// follow redirects), nothing runs, and the update is repeated as the script, which
/// follows the redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_slot_falls_back_to_the_script() {
    let Some(cluster) = OwnCluster::start("lu-moved", &[21414, 21415]).await else {
        return;
    };
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (mut ra, mut rb) = (a.raw().await, b.raw().await);
    let (id_a, id_b) = (cluster.ids[0].clone(), cluster.ids[1].clone());
    let store = RedisStore::connect(
        RedisConfig::cluster([a.url(), b.url()])
            .key_prefix("lu-moved:")
            .large_update_threshold(1000),
    )
    .await
    .unwrap();
    // A key whose slot starts on A.
    let (k, rk) = loop {
        let k = key();
        let rk = store.redis_key(&k);
        if cluster.owner(keyslot(&mut ra, &rk).await) == 0 {
            break (k, rk);
        }
    };
    store
        .save(&k, &record(&[1; 2000], in_an_hour()), SaveMode::Create)
        .await
        .unwrap();
    query(&mut ra, redis::cmd("CONFIG").arg("RESETSTAT")).await;
    assert_eq!(
        store
            .save(&k, &record(&[2; 2000], in_an_hour()), update(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        calls(&mut ra, "exec").await,
        1,
        "not sent as a transaction to the key's node"
    );

    // Move the key's slot from A to B without telling the client.
    let slot = keyslot(&mut ra, &rk).await;
    let setslot = |state: &str, id: &str| {
        let mut c = redis::cmd("CLUSTER");
        c.arg("SETSLOT").arg(slot).arg(state).arg(id);
        c
    };
    query(&mut rb, &setslot("IMPORTING", &id_a)).await;
    query(&mut ra, &setslot("MIGRATING", &id_b)).await;
    let mut migrate = redis::cmd("MIGRATE");
    migrate
        .arg("127.0.0.1")
        .arg(b.port())
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&rk);
    query(&mut ra, &migrate).await;
    query(&mut rb, &setslot("NODE", &id_b)).await;
    query(&mut ra, &setslot("NODE", &id_b)).await;
    query(&mut ra, redis::cmd("CONFIG").arg("RESETSTAT")).await;
    query(&mut rb, redis::cmd("CONFIG").arg("RESETSTAT")).await;

    assert_eq!(
        store
            .save(&k, &record(&[3; 2000], in_an_hour()), update(2))
            .await
            .unwrap(),
        3
    );
    // A refused the transaction (MOVED while queueing, then EXECABORT) and ran
    // nothing; B ran the script.
    assert_eq!(calls(&mut ra, "exec").await, 1);
    let mut errorstats = redis::cmd("INFO");
    errorstats.arg("errorstats");
    assert!(
        info_field(&mut ra, &errorstats, "errorstat_MOVED")
            .await
            .starts_with("count="),
        "A did not answer MOVED"
    );
    assert_eq!(calls(&mut rb, "exec").await, 0);
    assert!(calls(&mut rb, "evalsha").await + calls(&mut rb, "eval").await >= 1);
    let got = store.load(&k).await.unwrap().unwrap();
    assert_eq!((got.version, &got.payload[..]), (3, &[3u8; 2000][..]));
    // The redirect refreshed the client's slot map: the next large update is one
    // transaction on B.
    store
        .save(&k, &record(&[4; 2000], in_an_hour()), update(3))
        .await
        .unwrap();
    assert_eq!(calls(&mut rb, "exec").await, 1);
}
