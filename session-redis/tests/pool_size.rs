//! [`RedisConfig::pool_size`]: the store opens that many multiplexed connections and
//! uses them in turn (the suite runs on such a store too: `tests/conformance.rs`).

mod common;

use common::{OwnServer, key, query, string};
use session_core::SessionInterface;
use session_redis::{RedisConfig, RedisStore};

/// The last command of each of the server's clients but `except`, by client id
/// (`CLIENT LIST`'s `id` and `cmd` fields).
async fn last_commands(raw: &mut redis::aio::MultiplexedConnection, except: i64) -> Vec<String> {
    let list = string(query(raw, redis::cmd("CLIENT").arg("LIST")).await);
    let field = |line: &str, name: &str| {
        line.split(' ')
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    list.lines()
        .filter(|l| field(l, "id").and_then(|id| id.parse::<i64>().ok()) != Some(except))
        .map(|l| field(l, "cmd").expect("CLIENT LIST has cmd="))
        .collect()
}

/// `pool_size(3)` opens three connections to the server, and three operations in a
/// row go one over each (a store that always picked the same connection, or opened
/// one, would leave the others idle).
#[tokio::test]
async fn pool_size_connections_are_opened_and_used_in_turn() {
    let Some(server) = OwnServer::start(26420, &[]) else {
        return;
    };
    let mut raw = server.raw().await;
    let raw_id = match query(&mut raw, redis::cmd("CLIENT").arg("ID")).await {
        redis::Value::Int(id) => id,
        other => panic!("CLIENT ID: {other:?}"),
    };
    let store = RedisStore::connect(RedisConfig::new(server.url()).pool_size(3))
        .await
        .expect("connect");
    let opened = last_commands(&mut raw, raw_id).await;
    assert_eq!(opened.len(), 3, "connections opened: {opened:?}");
    let k = key();
    for _ in 0..3 {
        assert!(store.load(&k).await.expect("load").is_none());
    }
    assert_eq!(
        last_commands(&mut raw, raw_id).await,
        ["get", "get", "get"],
        "the last command of each connection"
    );
}
