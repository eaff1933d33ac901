//! What a store operation costs on the wire: round trips counted by a proxy between
//! the store and a standalone server (session-sql-testing's `round_trips`). The README's "one round
//! trip" for `load_and_touch` is checked here, not inferred from the commands.

mod common;

use common::{Server, key, record, unique_prefix};
use session_core::time::{Duration, OffsetDateTime};
use session_core::{SaveMode, SessionInterface};
use session_redis::{RedisConfig, RedisStore};
use session_sql_testing::round_trips::RoundTripProxy;

/// Runs `op` and returns its output with the round trips it made through `proxy`.
async fn counted<T>(proxy: &RoundTripProxy, op: impl Future<Output = T>) -> (T, u64) {
    let before = proxy.turns();
    let out = op.await;
    (out, proxy.turns() - before)
}

/// `load_and_touch` with the bound at the new deadline (a refresh threshold of 0) is
/// one round trip — the `MULTI`/`GET`/script/`EXEC` pipeline — due or not, and for an
/// absent key; with the bound before the new deadline (the manager's default
/// threshold) it is a `GET`, plus the touch script only when due. A `load` is one, a
/// `load` and a `touch` two.
#[tokio::test]
async fn load_and_touch_round_trips() {
    let Some(urls) = Server::Standalone.urls() else {
        return;
    };
    let proxy = RoundTripProxy::start(&urls[0]).await;
    let config = RedisConfig::new(proxy.url()).key_prefix(unique_prefix("trips"));
    let store = RedisStore::connect(config).await.expect("connect");
    let now = OffsetDateTime::now_utc();
    let hour = Duration::hours(1);
    let (k, absent) = (key(), key());
    store
        .save(&k, &record(b"a", now + hour), SaveMode::Create)
        .await
        .unwrap();
    // Each operation runs once before it is counted: a script's first run may load it
    // (`NOSCRIPT`, then the script), one more round trip.
    let mut trips = Vec::new();
    for _ in 0..2 {
        let (found, n) = counted(&proxy, store.load(&k)).await;
        assert!(found.unwrap().is_some());
        trips.push(n);
    }
    assert_eq!(trips[1], 1, "a load (first run: {trips:?})");
    trips.clear();
    for _ in 0..2 {
        let (_, n) = counted(&proxy, async {
            store.load(&k).await.unwrap().unwrap();
            assert!(store.touch(&k, now + hour).await.unwrap());
        })
        .await;
        trips.push(n);
    }
    assert_eq!(trips[1], 2, "a load and a touch (the proxy counts each)");
    // (new deadline, due_before, whether due, round trips), in pairs: the second call
    // of a pair is counted and sees the deadline the first one left.
    let calls = [
        (now + hour * 2, now + hour * 2, true, 1),
        (now + hour * 3, now + hour * 3, true, 1),
        (now + hour / 2, now + hour / 2, false, 1),
        (now + hour, now + hour, false, 1),
        (now + hour * 5, now + hour * 4, true, 2),
        (now + hour * 7, now + hour * 6, true, 2),
        (now + hour * 24, now + hour * 6, false, 1),
        (now + hour * 25, now + hour * 5, false, 1),
    ];
    for (i, (new, due_before, due, expected)) in calls.into_iter().enumerate() {
        let what = format!("load_and_touch #{i} (due: {due})");
        let (answer, n) = counted(&proxy, store.load_and_touch(&k, new, due_before)).await;
        let answer = answer.unwrap().unwrap_or_else(|| panic!("{what}: None"));
        assert_eq!(answer.touched, due, "{what}");
        assert_eq!(&answer.record.payload[..], b"a", "{what}");
        if i % 2 == 1 {
            assert_eq!(n, expected, "{what}: round trips");
        }
    }
    for i in 0..2 {
        let (answer, n) = counted(
            &proxy,
            store.load_and_touch(&absent, now + hour, now + hour),
        )
        .await;
        assert_eq!(answer.unwrap(), None);
        if i == 1 {
            assert_eq!(n, 1, "load_and_touch of an absent key: round trips");
        }
    }
    store.expire(&k).await.unwrap();
}
