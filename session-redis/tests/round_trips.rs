//! What a store operation costs on the wire: round trips counted by a proxy between
//! the store and a standalone server, or a cluster's node (session-sql-testing's
//! `round_trips`). The README's "one round trip" for `load_and_touch` is checked here,
//! not inferred from the commands.

mod common;

use common::{OwnCluster, Server, query, unique_prefix};
use session_core::time::OffsetDateTime;
use session_redis::{RedisConfig, RedisStore};
use session_sql_testing::round_trips::{self, RoundTripProxy};

/// `load_and_touch` with the bound at the new deadline (a refresh threshold of 0) is
/// one round trip — the `MULTI`/`GET`/script/`EXEC` pipeline — due or not, and for an
/// absent key; with the bound before the new deadline (the manager's default
/// threshold) it is a `GET`, plus the touch script only when due. A `load` is one, a
/// `load` and a `touch` two (`session_sql_testing::round_trips::load_and_touch_round_trips`).
#[tokio::test]
async fn load_and_touch_round_trips() {
    let Some(urls) = Server::Standalone.urls() else {
        return;
    };
    let proxy = RoundTripProxy::start(&urls[0]).await;
    let config = RedisConfig::new(proxy.url()).key_prefix(unique_prefix("trips"));
    let store = RedisStore::connect(config).await.expect("connect");
    round_trips::load_and_touch_round_trips(&store, &proxy, OffsetDateTime::now_utc()).await;
}

/// The same round trips on a Redis Cluster: the cluster client sends a key's
/// `MULTI`/`GET`/script/`EXEC` pipeline to the key's master in one turn, and neither
/// the routing nor the transaction adds one. (A private one-master cluster that
/// announces its proxy's port, so the client, which learns where the slots live from
/// the node itself, reaches the node only through the proxy.)
#[tokio::test]
async fn load_and_touch_round_trips_on_a_cluster() {
    let Some(cluster) = OwnCluster::start("trips", &[21430]).await else {
        return;
    };
    let node = &cluster.nodes[0];
    let proxy = RoundTripProxy::start(&node.url()).await;
    let mut raw = node.raw().await;
    query(
        &mut raw,
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("cluster-announce-port")
            .arg(proxy.port()),
    )
    .await;
    let config =
        RedisConfig::cluster(vec![proxy.url().to_owned()]).key_prefix(unique_prefix("trips"));
    let store = RedisStore::connect(config).await.expect("connect");
    round_trips::load_and_touch_round_trips(&store, &proxy, OffsetDateTime::now_utc()).await;
}
