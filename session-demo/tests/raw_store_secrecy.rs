//! Security review (HARDENING.md): tokens are hashed at rest, checked by reading the
//! RAW stores of the server backends after a session lifecycle through the manager
//! (create, update, touch, login rotation, periodic rotation with its pointer record):
//!
//! - Redis (standalone and cluster): every key under a fresh prefix and every value,
//!   whatever its type, read with redis-rs (SCAN on each node);
//! - PostgreSQL and MySQL: every column of every row of a fresh table, read with SQL
//!   as text / bytes.
//!
//! No cookie value appears anywhere, as the cookie string, its raw 32 bytes or their
//! hex. The session data is found in the raw rows (so the check is not vacuous) and
//! every key is the hash of an issued token. Each test prints one skip line when its
//! `SESSION_TEST_*` variable is unset (and fails instead when `SESSION_TEST_REQUIRE`
//! names the backend). The file store is checked the same way in
//! session-file/tests/secrecy.rs, the in-memory path in session-core/tests/secrecy.rs.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    CookieDecision, ManualClock, SessionConfig, SessionInterface, SessionManager, SessionToken,
};
use session_postgres::sqlx;

const MARKER: &str = "marker-value";

/// The variable's URL, or `None` after a skip line (a failure when required).
fn server(backend: &str, variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if common::required(backend) => {
            panic!("SESSION_TEST_REQUIRE names {backend}, but {variable} is not set")
        }
        _ => {
            println!("skipped: {variable} is not set ({backend} raw-store secrecy)");
            None
        }
    }
}

/// A fresh lower-case name part, so parallel runs never share data.
fn unique() -> String {
    let token = SessionToken::generate().unwrap().storage_key();
    token.as_str()[..12].to_owned()
}

fn set_value(d: &CookieDecision) -> String {
    match d {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected Set, got {other:?}"),
    }
}

/// Drives two sessions through every step that writes; returns the cookie values
/// issued (four ids) — all still live, the second one as a rotation pointer.
async fn lifecycle(store: Arc<dyn SessionInterface>) -> Vec<String> {
    // The manager's clock starts at the real time, so native TTLs agree with it.
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let config = SessionConfig::builder()
        .refresh_each_request(true)
        .rotate_every(Some(Duration::hours(1)))
        .rotation_grace(Duration::hours(2))
        .build()
        .unwrap();
    let manager = SessionManager::with_clock(store, config, clock.shared());
    let mut cookies = Vec::new();
    let s = manager.session(None);
    s.insert("cart", &MARKER).await.unwrap();
    cookies.push(set_value(&manager.finish(&s).await.unwrap()));
    clock.advance(Duration::minutes(5));
    let s = manager.session(Some(&cookies[0]));
    s.insert("visits", &2).await.unwrap();
    let _ = manager.finish(&s).await.unwrap();
    let s = manager.session(Some(&cookies[0]));
    s.insert("user", &"alice").await.unwrap();
    s.cycle_id().await.unwrap();
    cookies.push(set_value(&manager.finish(&s).await.unwrap()));
    clock.advance(Duration::minutes(61));
    let s = manager.session(Some(&cookies[1]));
    assert!(s.exists().await.unwrap());
    cookies.push(set_value(&manager.finish(&s).await.unwrap()));
    let other = manager.session(None);
    other.insert("cart", &MARKER).await.unwrap();
    cookies.push(set_value(&manager.finish(&other).await.unwrap()));
    cookies
}

/// Every form a token could take in raw storage.
fn forms(cookie: &str) -> Vec<Vec<u8>> {
    let raw = URL_SAFE_NO_PAD.decode(cookie).unwrap();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        cookie.as_bytes().to_vec(),
        raw,
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The checks on everything read raw: no token in any form; the data is there.
fn assert_no_token(cookies: &[String], raw: &[Vec<u8>]) {
    assert!(!raw.is_empty(), "nothing was read from the store");
    let marker_hex = hex(MARKER.as_bytes());
    assert!(
        raw.iter()
            .any(|r| contains(r, MARKER.as_bytes()) || contains(r, marker_hex.as_bytes())),
        "the session data was not found raw: the check would be vacuous"
    );
    for cookie in cookies {
        for form in forms(cookie) {
            for r in raw {
                assert!(!contains(r, &form), "a token in raw storage");
            }
        }
    }
}

fn storage_keys(cookies: &[String]) -> Vec<String> {
    cookies
        .iter()
        .map(|c| {
            SessionToken::parse(c)
                .unwrap()
                .storage_key()
                .as_str()
                .to_owned()
        })
        .collect()
}

mod redis_raw {
    use super::*;
    use session_redis::redis::{self, AsyncConnectionConfig, Value};
    use session_redis::{RedisConfig, RedisStore};

    /// Every key under `prefix` on `node`, and every value they hold (all types).
    async fn dump(node: &str, prefix: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let client = redis::Client::open(node).unwrap();
        let mut con = client
            .get_multiplexed_async_connection_with_config(&AsyncConnectionConfig::new())
            .await
            .unwrap();
        // Reads on a cluster replica need READONLY; a standalone server refuses it.
        let _: Result<Value, _> = redis::cmd("READONLY").query_async(&mut con).await;
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut con)
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut values = Vec::new();
        for key in &keys {
            let kind: String = redis::cmd("TYPE")
                .arg(key)
                .query_async(&mut con)
                .await
                .unwrap();
            let read = match kind.as_str() {
                "string" => redis::cmd("GET").arg(key).clone(),
                "hash" => redis::cmd("HGETALL").arg(key).clone(),
                "list" => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).clone(),
                "set" => redis::cmd("SMEMBERS").arg(key).clone(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .clone(),
                "none" => continue, // expired between SCAN and TYPE
                other => panic!("unexpected Redis type {other}"),
            };
            let value: Value = read.query_async(&mut con).await.unwrap();
            flatten(value, &mut values);
        }
        for key in &keys {
            let _: Result<Value, _> = redis::cmd("DEL").arg(key).query_async(&mut con).await;
        }
        (keys, values)
    }

    fn flatten(value: Value, out: &mut Vec<Vec<u8>>) {
        match value {
            Value::BulkString(b) => out.push(b),
            Value::SimpleString(s) => out.push(s.into_bytes()),
            Value::Int(n) => out.push(n.to_string().into_bytes()),
            Value::Array(items) | Value::Set(items) => {
                items.into_iter().for_each(|v| flatten(v, out));
            }
            Value::Map(pairs) => pairs.into_iter().for_each(|(k, v)| {
                flatten(k, out);
                flatten(v, out);
            }),
            Value::Nil => {}
            other => out.push(format!("{other:?}").into_bytes()),
        }
    }

    async fn check(config: RedisConfig, nodes: &[String], prefix: &str) {
        let store = RedisStore::connect(config).await.unwrap();
        let cookies = lifecycle(Arc::new(store)).await;
        let mut keys = Vec::new();
        let mut values = Vec::new();
        for node in nodes {
            let (k, v) = dump(node, prefix).await;
            keys.extend(k);
            values.extend(v);
        }
        // Every key is the prefix, maybe a hash tag, and the hash of an issued id.
        let hashes = storage_keys(&cookies);
        for key in &keys {
            let key = String::from_utf8(key.clone()).unwrap();
            assert!(
                hashes.iter().any(|h| key.contains(h.as_str())),
                "a key that is no issued id's hash: {key}"
            );
        }
        assert!(keys.len() >= 3, "the sessions and the pointer: {keys:?}");
        let raw: Vec<Vec<u8>> = keys.into_iter().chain(values).collect();
        assert_no_token(&cookies, &raw);
    }

    #[tokio::test]
    async fn standalone_holds_no_token() {
        let Some(url) = server("redis", "SESSION_TEST_REDIS_URL") else {
            return;
        };
        let prefix = format!("secrecy-{}:", unique());
        check(
            RedisConfig::new(url.clone()).key_prefix(prefix.clone()),
            &[url],
            &prefix,
        )
        .await;
    }

    #[tokio::test]
    async fn cluster_holds_no_token() {
        let Some(urls) = server("redis-cluster", "SESSION_TEST_REDIS_CLUSTER_URLS") else {
            return;
        };
        let nodes: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        let prefix = format!("secrecy-{}:", unique());
        check(
            RedisConfig::cluster(nodes.clone()).key_prefix(prefix.clone()),
            &nodes,
            &prefix,
        )
        .await;
    }
}

mod sql_raw {
    use super::*;

    /// Checks the raw rows, given as bytes per column value, and the key column.
    fn check_rows(cookies: &[String], columns: &[String], rows: Vec<Vec<u8>>, keys: Vec<String>) {
        assert!(columns.iter().any(|c| c == "payload"), "{columns:?}");
        let hashes = storage_keys(cookies);
        for key in &keys {
            assert!(
                hashes.contains(key),
                "a key that is no issued id's hash: {key}"
            );
        }
        assert!(keys.len() >= 3, "the sessions and the pointer: {keys:?}");
        assert_no_token(cookies, &rows);
    }

    #[tokio::test]
    async fn postgres_rows_hold_no_token() {
        let Some(url) = server("postgres", "SESSION_TEST_POSTGRES_URL") else {
            return;
        };
        let table = format!("secrecy_{}", unique());
        let store = session_postgres::PostgresStore::open(&url, &table, None)
            .await
            .unwrap();
        let cookies = lifecycle(Arc::new(store)).await;

        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(&table)
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut rows = Vec::new();
        for column in &columns {
            // Every type as PostgreSQL prints it (bytea as \x hex).
            let sql = format!("SELECT \"{column}\"::text FROM \"{table}\"");
            let values: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .unwrap();
            rows.extend(values.into_iter().flatten().map(String::into_bytes));
        }
        let sql = format!("SELECT key FROM \"{table}\"");
        let keys: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
            .unwrap();
        let sql = format!("DROP TABLE IF EXISTS \"{table}\", \"{table}_migrations\"");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
        check_rows(&cookies, &columns, rows, keys);
    }

    #[tokio::test]
    async fn mysql_rows_hold_no_token() {
        use session_mysql::sqlx as mysqlx;
        let Some(url) = server("mysql", "SESSION_TEST_MYSQL_URL") else {
            return;
        };
        let table = format!("secrecy_{}", unique());
        let store = session_mysql::MySqlStore::open(&url, &table, None)
            .await
            .unwrap();
        let cookies = lifecycle(Arc::new(store)).await;

        let pool = mysqlx::MySqlPool::connect(&url).await.unwrap();
        let columns: Vec<String> = mysqlx::query_scalar(
            "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ?",
        )
        .bind(&table)
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut rows = Vec::new();
        for column in &columns {
            let sql = format!("SELECT CAST(`{column}` AS BINARY) FROM `{table}`");
            let values: Vec<Option<Vec<u8>>> = mysqlx::query_scalar(mysqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .unwrap();
            rows.extend(values.into_iter().flatten());
        }
        let sql = format!("SELECT CAST(`key` AS CHAR) FROM `{table}`");
        let keys: Vec<String> = mysqlx::query_scalar(mysqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
            .unwrap();
        let sql = format!("DROP TABLE IF EXISTS `{table}`, `{table}_migrations`");
        mysqlx::query(mysqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
        check_rows(&cookies, &columns, rows, keys);
    }
}

/// Everything an error shows: `Display`, alternate, `Debug`, and its sources.
fn every_rendering(e: &session_core::Error) -> String {
    let mut out = format!("{e} | {e:#} | {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!(" | {s} | {s:?}"));
        source = s.source();
    }
    out
}

/// The database password of a store URL never reaches `Debug` or an error message:
/// not for a lazily connecting store, a malformed URL, a refused connection, or
/// (when the server is configured) a wrong password.
#[tokio::test]
async fn sql_store_debug_and_errors_hide_the_url_password() {
    const PASSWORD: &str = "Hunter2Secret";
    let pg = session_postgres::PostgresStore::builder()
        .connect(&format!("postgres://u:{PASSWORD}@127.0.0.1:9/db"))
        .unwrap();
    let my = session_mysql::MySqlStore::builder()
        .connect(&format!("mysql://u:{PASSWORD}@127.0.0.1:9/db"))
        .unwrap();
    let debug = format!("{pg:?} {my:?} {pg:#?} {my:#?}");
    assert!(!debug.contains(PASSWORD), "{debug}");

    let mut errors = Vec::new();
    for url in [
        format!("postgres://u:{PASSWORD}@127.0.0.1:notaport/db"),
        format!("postgres://u:{PASSWORD}@127.0.0.1:9/db"),
    ] {
        errors.push(
            session_postgres::PostgresStore::open(&url, "secrecy", None)
                .await
                .unwrap_err(),
        );
    }
    for url in [
        format!("mysql://u:{PASSWORD}@127.0.0.1:notaport/db"),
        format!("mysql://u:{PASSWORD}@127.0.0.1:9/db"),
    ] {
        errors.push(
            session_mysql::MySqlStore::open(&url, "secrecy", None)
                .await
                .unwrap_err(),
        );
    }
    // A wrong password on the real servers: the authentication error.
    let swap = |url: &str| -> Option<String> {
        let (scheme, rest) = url.split_once("://")?;
        let (user_info, host) = rest.split_once('@')?;
        let user = user_info.split(':').next()?;
        Some(format!("{scheme}://{user}:{PASSWORD}@{host}"))
    };
    if let Some(url) = std::env::var("SESSION_TEST_POSTGRES_URL")
        .ok()
        .and_then(|u| swap(&u))
    {
        errors.push(
            session_postgres::PostgresStore::open(&url, "secrecy", None)
                .await
                .unwrap_err(),
        );
    }
    if let Some(url) = std::env::var("SESSION_TEST_MYSQL_URL")
        .ok()
        .and_then(|u| swap(&u))
    {
        errors.push(
            session_mysql::MySqlStore::open(&url, "secrecy", None)
                .await
                .unwrap_err(),
        );
    }
    for e in &errors {
        let text = every_rendering(e);
        assert!(!text.contains(PASSWORD), "{text}");
    }
}

/// SQL identifiers are validated before any SQL is built: a hostile table name (from
/// `--sql-table`, or any caller) is a configuration error on both SQL stores, with no
/// connection attempted (the URLs point at a closed port).
#[tokio::test]
async fn hostile_table_names_are_rejected_before_any_sql() {
    for table in [
        "sessions; DROP TABLE users",
        "s\"; DROP TABLE users; --",
        "s`; DROP TABLE users; --",
        "Sessions",
        "a b",
        "",
        &"a".repeat(49),
    ] {
        let pg = session_postgres::PostgresStore::builder()
            .table_name(table)
            .connect("postgres://u:p@127.0.0.1:9/db");
        assert!(
            matches!(pg, Err(session_core::Error::Config(_))),
            "postgres accepted {table:?}"
        );
        let my = session_mysql::MySqlStore::builder()
            .table_name(table)
            .connect("mysql://u:p@127.0.0.1:9/db");
        assert!(
            matches!(my, Err(session_core::Error::Config(_))),
            "mysql accepted {table:?}"
        );
    }
}
