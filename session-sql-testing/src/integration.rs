//! The integration tests both SQL stores run beyond the conformance suite — schema
//! and migrations, hostile table names, unreadable rows, pool exhaustion, statement
//! timeouts, a caller's
//! `sqlx::Pool`, connections in far time zones, a 100,000-row purge, connection loss, and the SQL-specific
//! [`contract`] checks — written once here, generic over a [`TestServer`] that
//! supplies what differs per database (its URL variable, and the raw SQL a test sends
//! behind the store's back). A store crate expands them with
//! [`sql_store_tests!`](crate::sql_store_tests).
//!
//! Every test works on a fresh table (or, for the connection-loss test, connections
//! the server can tell apart), so the tests run in parallel against one server. Each
//! one skips when the server's URL variable is unset, unless `SESSION_TEST_REQUIRE`
//! names the backend ([`server_url`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, Clock, ConfigError, Error, ManualClock, NewRecord, SaveMode, SessionInterface,
    StorageKey,
};
use sqlx::Connection;
use sqlx::pool::PoolOptions;

use session_sql_common::dialect::Dialect;
use session_sql_common::migrate::{CREATED, MigrationConnection};
use session_sql_common::store::{ConnectOptionsOf, SqlStore};
use session_sql_common::testing::server_url;
use session_sql_common::{
    EXPIRY_BUCKET_SECONDS, MAX_TABLE_NAME_LEN, SchemaTooNew, StatementTimeout, TableName,
    expiry_bucket,
};

use crate::contract::{self, key};
use crate::round_trips::{self, RoundTripProxy};

/// Rows [`TestServer::insert_expiring_rows`] inserts.
pub const BULK_ROWS: u64 = 100_000;

/// What the shared tests need from one database: names, and the statements they run
/// on a connection of their own to set up or inspect what the store cannot.
///
/// Implemented by a unit type in the store crate's integration tests. The methods may
/// panic (fail the test) on any error.
pub trait TestServer: 'static {
    /// The store's dialect.
    type Dialect: Dialect;
    /// What [`isolate`](Self::isolate) sets up to find the store's connections again.
    type Isolation;

    /// The backend's name in `SESSION_TEST_REQUIRE` (`"postgres"`, `"mysql"`).
    const BACKEND: &'static str;
    /// The variable with the server URL (`SESSION_TEST_POSTGRES_URL`, …).
    const URL_VAR: &'static str;
    /// The variable with a shell command that restarts the server; when set, the
    /// connection-loss test runs it instead of killing the store's connections.
    const RESTART_CMD_VAR: &'static str;
    /// A URL of this database's scheme on which nothing listens.
    const UNREACHABLE_URL: &'static str;
    /// Two session time zones far from UTC, as the statement of
    /// [`set_time_zone`](Self::set_time_zone) takes them, each with its offset in
    /// seconds east of UTC: one east of UTC, one west and not a whole hour from it.
    const FAR_TIME_ZONES: [(&'static str, i64); 2];
    /// A query of one `BIGINT` row: the connection's session time zone's offset from
    /// UTC now, in seconds east of UTC.
    const TIME_ZONE_OFFSET_QUERY: &'static str;

    /// The statement that puts a connection's session in the time zone `zone`.
    fn set_time_zone(zone: &str) -> String;

    /// Asserts the columns (names, types, collations) and the indexes that `migrate()`
    /// created for `table`: the sweep's index on `expires_bucket`, none on `expires_at`.
    fn assert_schema(url: &str, table: &str) -> impl Future<Output = ()>;

    /// The rows of `<table>_migrations`: version and description.
    fn migration_log(url: &str, table: &str) -> impl Future<Output = Vec<(i64, String)>>;

    /// Inserts a row for `key`, live until `expires_at`, whose version (-5) no store
    /// can accept.
    fn insert_unreadable_row(
        url: &str,
        table: &str,
        key: &StorageKey,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = ()>;

    /// Inserts [`BULK_ROWS`] rows that expire at `expires_at` (with its bucket), in one
    /// statement.
    fn insert_expiring_rows(
        url: &str,
        table: &str,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = ()>;

    /// Every row of `table`: key, deadline and the stored `expires_bucket`.
    fn stored_buckets(
        url: &str,
        table: &str,
    ) -> impl Future<Output = Vec<(String, OffsetDateTime, i64)>>;

    /// Inserts rows into a table of schema version 1 (no `expires_bucket` column), each
    /// with its key's hex as the payload and version 1, as a store of that version did.
    fn insert_version_1_rows(
        url: &str,
        table: &str,
        rows: &[(StorageKey, OffsetDateTime)],
    ) -> impl Future<Output = ()>;

    /// Refreshes the table's statistics, then returns the server's plan (`EXPLAIN`,
    /// as text) of the store's purge statement at `now` with a batch of `batch`.
    fn purge_plan(
        url: &str,
        table: &str,
        now: OffsetDateTime,
        batch: i64,
    ) -> impl Future<Output = String>;

    /// Runs `while_locked` while another client holds the row lock of `key` in a
    /// transaction (`SELECT … FOR UPDATE`), and commits afterwards.
    fn with_row_locked<F: Future>(
        url: &str,
        table: &str,
        key: &StorageKey,
        while_locked: F,
    ) -> impl Future<Output = F::Output>;

    /// Connect options for a store whose server connections can be found (and killed)
    /// later, and what finds them.
    fn isolate(
        url: &str,
    ) -> impl Future<Output = (ConnectOptionsOf<Self::Dialect>, Self::Isolation)>;

    /// Kills every server connection of the isolated store, as a server restart would.
    fn kill_connections(url: &str, isolation: &Self::Isolation) -> impl Future<Output = ()>;

    /// Removes whatever [`isolate`](Self::isolate) created.
    fn release(url: &str, isolation: Self::Isolation) -> impl Future<Output = ()>;
}

/// The store type under test.
type Store<S> = SqlStore<<S as TestServer>::Dialect>;

/// The server URL, or `None` (after printing a skip line) when unset.
pub fn url<S: TestServer>() -> Option<String> {
    server_url(S::URL_VAR, S::BACKEND)
}

/// A table name unique to this test run.
pub fn table(tag: &str) -> String {
    format!("t_{tag}_{}", &key().as_str()[..12])
}

/// A migrated store on a fresh table with a manual clock, or `None` when the server is
/// not configured.
pub async fn store<S: TestServer>(tag: &str) -> Option<(Store<S>, ManualClock)> {
    let url = url::<S>()?;
    let clock = ManualClock::starting_now();
    let store = Store::<S>::open(&url, &table(tag), Some(clock.shared()))
        .await
        .expect("open store");
    Some((store, clock))
}

fn rec(payload: &'static [u8], expires_at: OffsetDateTime) -> NewRecord {
    NewRecord {
        payload: Bytes::from_static(payload),
        expires_at,
    }
}

/// A table name outside the alphabet is a typed configuration error, before any SQL
/// exists (nothing listens at the URL).
pub fn hostile_table_names_are_rejected_before_any_sql<S: TestServer>() {
    for name in ["sessions; DROP TABLE users", "a\"b", "", "Sessions", "x.y"] {
        let err = Store::<S>::builder()
            .table_name(name)
            .connect(S::UNREACHABLE_URL)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config(ConfigError::Invalid {
                    setting: "table name",
                    ..
                })
            ),
            "{name:?}: {err:?}"
        );
    }
}

/// Several stores migrating one fresh table at once (the dialect's lock serialises
/// them), idempotence, the recorded version and schema, and a newer schema refused
/// permanently.
pub async fn migrations_are_idempotent_and_recorded<S: TestServer>() {
    let Some(url) = url::<S>() else { return };
    let version = <S::Dialect as Dialect>::SCHEMA_VERSION;
    let table = table("migrate");
    let stores: Vec<_> = (0..4)
        .map(|_| {
            Store::<S>::builder()
                .table_name(&table)
                .connect(&url)
                .unwrap()
        })
        .collect();
    assert_eq!(stores[0].schema_version().await.unwrap(), None);
    let runs: Vec<_> = stores
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move { s.migrate().await })
        })
        .collect();
    for r in runs {
        assert_eq!(r.await.unwrap().unwrap(), version);
    }
    assert_eq!(stores[0].migrate().await.unwrap(), version);
    assert_eq!(stores[0].schema_version().await.unwrap(), Some(version));

    // A fresh table is created at the newest version directly, recorded once.
    let rows = S::migration_log(&url, &table).await;
    assert_eq!(rows, [(version, CREATED.to_owned())]);
    S::assert_schema(&url, &table).await;

    // A newer schema than this build knows (recorded as a newer build would record
    // it) is refused, permanently.
    let mut conn = <<S::Dialect as Dialect>::Connection as Connection>::connect(&url)
        .await
        .unwrap();
    let record = S::Dialect::migration_sql(&TableName::new(&table).unwrap()).record_version;
    conn.record_version(record, 99, "future").await.unwrap();
    let err = stores[0].migrate().await.unwrap_err();
    assert!(!err.is_retryable());
    let Error::Backend { source, .. } = &err else {
        panic!("{err:?}")
    };
    let too_new = source
        .downcast_ref::<SchemaTooNew>()
        .expect("SchemaTooNew source");
    assert_eq!((too_new.found, too_new.supported), (99, version));
    stores[0].drop_table().await.unwrap();
}

/// A table of the current schema whose migration log is gone (dropped by hand, or a
/// table restored from a dump without it) is adopted by `migrate()`: it reports no
/// version before, the steps re-run without harm (the schema is unchanged, no row is
/// lost or changed), the log then records the current version, and the store keeps
/// working on the rows it had.
pub async fn a_table_without_its_migration_log_is_adopted<S: TestServer>() {
    let Some((store, clock)) = store::<S>("nolog").await else {
        return;
    };
    let url = url::<S>().unwrap();
    let table = store.table_name().to_owned();
    let (k, dead) = (key(), key());
    let deadline = clock.now() + Duration::hours(1);
    let v = store
        .save(&k, &rec(b"kept", deadline), SaveMode::Create)
        .await
        .unwrap();
    store
        .save(
            &dead,
            &rec(b"dead", clock.now() - Duration::hours(1)),
            SaveMode::Create,
        )
        .await
        .unwrap();
    let before = S::stored_buckets(&url, &table).await;
    let mut conn = <<S::Dialect as Dialect>::Connection as Connection>::connect(&url)
        .await
        .unwrap();
    // Lower-case [a-z0-9_]: the same unquoted name on both servers.
    conn.execute_unprepared(format!("DROP TABLE {table}_migrations"))
        .await
        .unwrap();
    assert_eq!(store.schema_version().await.unwrap(), None);

    assert_eq!(
        store.migrate().await.unwrap(),
        <S::Dialect as Dialect>::SCHEMA_VERSION
    );
    assert_eq!(
        store.schema_version().await.unwrap(),
        Some(<S::Dialect as Dialect>::SCHEMA_VERSION)
    );
    S::assert_schema(&url, &table).await;
    let versions: Vec<i64> = S::migration_log(&url, &table)
        .await
        .into_iter()
        .map(|(version, _)| version)
        .collect();
    assert_eq!(
        versions.last().copied(),
        Some(<S::Dialect as Dialect>::SCHEMA_VERSION),
        "{versions:?}"
    );
    let mut after = S::stored_buckets(&url, &table).await;
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(after, before, "the adoption changed the rows");
    assert_buckets_match_deadlines::<S>(&url, &table).await;
    let r = store.load(&k).await.unwrap().expect("the live row is kept");
    assert_eq!((&r.payload[..], r.version), (&b"kept"[..], v));
    let update = SaveMode::Update {
        expected_version: v,
    };
    store
        .save(&k, &rec(b"after", deadline), update)
        .await
        .unwrap();
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    // A second run finds nothing to do.
    assert_eq!(
        store.migrate().await.unwrap(),
        <S::Dialect as Dialect>::SCHEMA_VERSION
    );
    assert_eq!(S::migration_log(&url, &table).await.len(), versions.len());
    store.drop_table().await.unwrap();
}

/// A version-2 upgrade that died after any of its statements, before it recorded the
/// version (on MySQL DDL commits at once, so a killed process leaves exactly that), is
/// completed by the next `migrate()`: every statement of the step re-runs or is found
/// done, the schema is version 2's, and every row gets its bucket.
pub async fn a_half_applied_upgrade_is_completed<S: TestServer>() {
    let Some(url) = url::<S>() else { return };
    let step = &S::Dialect::MIGRATIONS[1];
    assert_eq!(step.version, 2);
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let statements = (step.statements)(&TableName::new("probe").unwrap()).len();
    for done in 0..=statements {
        let table = table(&format!("half{done}"));
        let name = TableName::new(&table).unwrap();
        let mut conn = version_1_table::<S>(&url, &name).await;
        let rows = [
            (key(), now - Duration::hours(1)),
            (key(), now + Duration::hours(1)),
        ];
        S::insert_version_1_rows(&url, &table, &rows).await;
        for statement in (step.statements)(&name).into_iter().take(done) {
            conn.execute_unprepared(statement).await.unwrap();
        }

        let store = Store::<S>::builder()
            .table_name(&table)
            .clock(clock.shared())
            .connect(&url)
            .unwrap();
        let migrated = store.migrate().await;
        assert_eq!(
            migrated.unwrap_or_else(|e| panic!(
                "migrate() after {done} of the {statements} statements of version 2: {e:?}"
            )),
            2
        );
        S::assert_schema(&url, &table).await;
        assert_eq!(assert_buckets_match_deadlines::<S>(&url, &table).await, 2);
        assert!(store.load(&rows[1].0).await.unwrap().is_some());
        assert_eq!(store.delete_expired().await.unwrap(), 1);
        store.drop_table().await.unwrap();
    }
}

/// Asserts that every row's stored bucket is the bucket of its stored deadline.
async fn assert_buckets_match_deadlines<S: TestServer>(url: &str, table: &str) -> usize {
    let rows = S::stored_buckets(url, table).await;
    for (key, expires_at, bucket) in &rows {
        assert_eq!(
            *bucket,
            expiry_bucket(*expires_at),
            "row {key} with deadline {expires_at}"
        );
    }
    rows.len()
}

/// The first instant of the expiry bucket after `at`'s.
fn next_bucket_start(at: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp((expiry_bucket(at) + 1) * EXPIRY_BUCKET_SECONDS).unwrap()
}

/// Creates `table` as a store of schema version 1 left it: the version-1 table and
/// its migration log, at version 1. Returns the connection it used.
pub async fn version_1_table<S: TestServer>(
    url: &str,
    table: &TableName,
) -> <S::Dialect as Dialect>::Connection {
    let mut conn = <<S::Dialect as Dialect>::Connection as Connection>::connect(url)
        .await
        .unwrap();
    let log = S::Dialect::migration_sql(table);
    conn.execute_unprepared(log.create_log).await.unwrap();
    let v1 = &S::Dialect::MIGRATIONS[0];
    assert_eq!(v1.version, 1);
    for statement in (v1.statements)(table) {
        conn.execute_unprepared(statement).await.unwrap();
    }
    conn.record_version(log.record_version, 1, v1.description)
        .await
        .unwrap();
    conn
}

/// A table written by a store of schema version 1 (an `expires_at` index, no bucket
/// column), under the longest table name, is upgraded in place by `migrate()`: every row gets the bucket of its
/// deadline — on both sides of a bucket boundary, before 1970, in the past and the
/// future — live rows stay readable and writable, and `delete_expired` removes exactly
/// the expired ones.
pub async fn version_1_tables_are_upgraded_in_place<S: TestServer>() {
    let Some(url) = url::<S>() else { return };
    upgrade_in_place::<S>(&url, None).await;
}

/// [`version_1_tables_are_upgraded_in_place`], with the store's connections in the
/// session time zone `zone` (the server's own when `None`).
async fn upgrade_in_place<S: TestServer>(url: &str, zone: Option<(&'static str, i64)>) {
    // The longest name: every name derived from it (indexes of both versions, the
    // log) must still fit the server's identifier limit.
    let mut table = table("upgrade");
    while table.len() < MAX_TABLE_NAME_LEN {
        table.push('x');
    }
    let name = TableName::new(&table).unwrap();
    drop(version_1_table::<S>(url, &name).await);

    let clock = ManualClock::starting_now();
    // Whole microseconds: both databases store deadlines to the microsecond.
    let now = clock.now().replace_nanosecond(0).unwrap();
    clock.set(now);
    let boundary = next_bucket_start(now + Duration::hours(1));
    let micro = Duration::microseconds(1);
    let expired = [
        now - Duration::days(3),
        now - micro,
        now,
        OffsetDateTime::UNIX_EPOCH - Duration::milliseconds(500),
        next_bucket_start(now - Duration::hours(1)) - micro,
    ];
    let live = [
        now + micro,
        boundary - micro,
        boundary,
        boundary + micro,
        now + Duration::days(6),
    ];
    let rows: Vec<(StorageKey, OffsetDateTime)> =
        expired.iter().chain(&live).map(|at| (key(), *at)).collect();
    S::insert_version_1_rows(url, &table, &rows).await;

    let store = store_in_zone::<S>(url, &table, &clock, zone).await;
    assert_eq!(store.migrate().await.unwrap(), S::Dialect::SCHEMA_VERSION);
    S::assert_schema(url, &table).await;
    let mut log = S::migration_log(url, &table).await;
    log.sort();
    let steps: Vec<(i64, String)> = S::Dialect::MIGRATIONS
        .iter()
        .map(|m| (m.version, m.description.to_owned()))
        .collect();
    assert_eq!(log, steps, "each step recorded once");
    assert_eq!(
        assert_buckets_match_deadlines::<S>(url, &table).await,
        rows.len()
    );

    for (k, at) in &rows[expired.len()..] {
        let found = store
            .load(k)
            .await
            .unwrap()
            .expect("a live row survives the upgrade");
        assert_eq!(
            (found.payload.as_ref(), found.expires_at),
            (k.as_str().as_bytes(), *at)
        );
    }
    assert_eq!(store.delete_expired().await.unwrap(), expired.len() as u64);
    // Written by this version after the upgrade: the bucket follows the deadline.
    let (k, _) = &rows[expired.len()];
    let later = rec(b"after the upgrade", boundary + Duration::hours(2));
    assert_eq!(
        store
            .save(
                k,
                &later,
                SaveMode::Update {
                    expected_version: 1
                }
            )
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        assert_buckets_match_deadlines::<S>(url, &table).await,
        live.len()
    );
    // At the boundary, `boundary - 1µs` and `boundary` itself have expired;
    // `boundary + 1µs`, in the current bucket, is live and stepped over.
    clock.set(boundary);
    assert_eq!(store.delete_expired().await.unwrap(), 2);
    assert!(store.load(k).await.unwrap().is_some());
    store.drop_table().await.unwrap();
}

/// Every write that sets a deadline stores that deadline and its bucket beside it —
/// create, create over an expired row, update, touch, `load_and_touch` on both of its
/// paths, a removal by update — whatever the deadline's UTC offset, so the sweep index
/// finds every expired row.
pub async fn every_write_stores_the_bucket_of_its_deadline<S: TestServer>() {
    let Some(url) = url::<S>() else { return };
    buckets_of_every_write::<S>(&url, None).await;
}

/// [`every_write_stores_the_bucket_of_its_deadline`], with the store's connections in
/// the session time zone `zone` (the server's own when `None`).
async fn buckets_of_every_write<S: TestServer>(url: &str, zone: Option<(&'static str, i64)>) {
    let table = table("buckets");
    let clock = ManualClock::starting_now();
    let store = store_in_zone::<S>(url, &table, &clock, zone).await;
    store.migrate().await.unwrap();
    let now = clock.now().replace_nanosecond(0).unwrap();
    clock.set(now);
    let east = session_core::time::UtcOffset::from_hms(5, 30, 0).unwrap();
    let west = session_core::time::UtcOffset::from_hms(-8, 0, 0).unwrap();
    let boundary = next_bucket_start(now + Duration::minutes(30));
    let micro = Duration::microseconds(1);
    let k = key();
    // What a connection in the server's own time zone reads back: the deadline
    // written, and its bucket.
    let stored = |at: OffsetDateTime| {
        let url = url.to_owned();
        let table = table.clone();
        let k = k.clone();
        async move {
            assert_buckets_match_deadlines::<S>(&url, &table).await;
            let rows = S::stored_buckets(&url, &table).await;
            let (_, deadline, _) = rows
                .iter()
                .find(|(key, _, _)| key == k.as_str())
                .expect("the row is stored");
            assert_eq!(*deadline, at, "the stored deadline");
        }
    };

    let first = (boundary - micro).to_offset(east);
    store
        .save(&k, &rec(b"a", first), SaveMode::Create)
        .await
        .unwrap();
    stored(first).await;
    let v = store
        .save(
            &k,
            &rec(b"b", boundary.to_offset(west)),
            SaveMode::Update {
                expected_version: 1,
            },
        )
        .await
        .unwrap();
    stored(boundary).await;
    let touched = (boundary + Duration::hours(1)).to_offset(east);
    assert!(store.touch(&k, touched).await.unwrap());
    stored(touched).await;
    // The two-step path: the bound is before the new deadline.
    let refreshed = store
        .load_and_touch(
            &k,
            boundary + Duration::hours(5),
            boundary + Duration::hours(3),
        )
        .await
        .unwrap()
        .expect("live");
    assert!(refreshed.touched);
    assert_eq!(refreshed.record.expires_at, boundary + Duration::hours(5));
    stored(boundary + Duration::hours(5)).await;
    // The one-step path: the bound is at the new deadline.
    let at = (boundary + Duration::hours(7)).to_offset(west);
    let refreshed = store
        .load_and_touch(&k, at, at)
        .await
        .unwrap()
        .expect("live");
    assert!(refreshed.touched);
    assert_eq!(refreshed.record.expires_at, at);
    stored(at).await;
    // A removal by update: the deadline (and so the bucket) moves into the past, and
    // the sweep must find the dead row.
    store
        .save(
            &k,
            &rec(b"c", now - Duration::days(1)),
            SaveMode::Update {
                expected_version: v,
            },
        )
        .await
        .unwrap();
    stored(now - Duration::days(1)).await;
    // A create over that expired row writes the new deadline's bucket.
    store
        .save(
            &k,
            &rec(b"d", (boundary + micro).to_offset(west)),
            SaveMode::Create,
        )
        .await
        .unwrap();
    stored(boundary + micro).await;
    assert_eq!(
        store.load(&k).await.unwrap().expect("live").expires_at,
        boundary + micro
    );
    // The sweep, exact to the microsecond: not yet at the deadline, then at it.
    clock.set(boundary);
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    clock.set(boundary + micro);
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    assert!(S::stored_buckets(url, &table).await.is_empty());
    store.drop_table().await.unwrap();
}

/// The connection's session time zone changes nothing: a store whose connections
/// are all in a zone far east of UTC, or west of it by a fraction of an hour, stores,
/// reads, refreshes and sweeps the same instants as a connection in the server's own
/// zone sees them, and upgrades a version-1 table with the same buckets. (Deadlines
/// are bound as UTC instants; a statement that read `now()`, converted a zone-less
/// column through the session's zone, or let the server format a deadline would
/// shift them by the zone's offset.)
pub async fn the_sessions_time_zone_changes_nothing<S: TestServer>() {
    let Some(url) = url::<S>() else { return };
    for zone in S::FAR_TIME_ZONES {
        buckets_of_every_write::<S>(&url, Some(zone)).await;
        upgrade_in_place::<S>(&url, Some(zone)).await;
    }
}

/// A store on `table` with the clock `clock`, whose connections are all in the
/// session time zone `zone` (checked on one of them), or in the server's own when
/// `None`.
async fn store_in_zone<S: TestServer>(
    url: &str,
    table: &str,
    clock: &ManualClock,
    zone: Option<(&'static str, i64)>,
) -> Store<S> {
    let builder = Store::<S>::builder()
        .table_name(table)
        .clock(clock.shared());
    let Some((zone, offset)) = zone else {
        return builder.connect(url).unwrap();
    };
    let set = S::set_time_zone(zone);
    let pool = PoolOptions::<<<S::Dialect as Dialect>::Connection as Connection>::Database>::new()
        .max_connections(4)
        .after_connect(move |conn, _| Box::pin(conn.execute_unprepared(set.clone())))
        .connect(url)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        conn.fetch_version(S::TIME_ZONE_OFFSET_QUERY.to_owned())
            .await
            .unwrap(),
        Some(offset),
        "the connection is in {zone}"
    );
    drop(conn);
    builder.with_pool(pool).unwrap()
}

/// A row the store cannot read is `Error::Decode`, not a panic.
pub async fn unreadable_rows_are_decode_errors<S: TestServer>() {
    let Some((store, clock)) = store::<S>("decode").await else {
        return;
    };
    let url = url::<S>().unwrap();
    let k = key();
    S::insert_unreadable_row(
        &url,
        store.table_name(),
        &k,
        clock.now() + Duration::hours(1),
    )
    .await;
    let err = store.load(&k).await.unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
    store.drop_table().await.unwrap();
}

/// With its only connection held by a blocked update, the store's next operation
/// fails with a retryable error after the acquire timeout instead of hanging.
pub async fn exhausted_pool_times_out_instead_of_hanging<S: TestServer>() {
    let Some(url) = url::<S>() else { return };
    let clock = ManualClock::starting_now();
    let store = Store::<S>::builder()
        .table_name(table("exhaust"))
        .clock(clock.shared())
        .max_connections(1)
        .acquire_timeout(StdDuration::from_millis(300))
        .connect(&url)
        .unwrap();
    store.migrate().await.unwrap();
    let k = key();
    let deadline = clock.now() + Duration::hours(1);
    store
        .save(&k, &rec(b"a", deadline), SaveMode::Create)
        .await
        .unwrap();

    // Another client locks the row, so the store's update holds its only connection.
    let mut blocked = None;
    S::with_row_locked(&url, store.table_name(), &k, async {
        blocked = Some(tokio::spawn({
            let (store, k) = (store.clone(), k.clone());
            async move {
                let update = SaveMode::Update {
                    expected_version: 1,
                };
                store.save(&k, &rec(b"b", deadline), update).await
            }
        }));
        tokio::time::sleep(StdDuration::from_millis(200)).await;

        let started = Instant::now();
        let r = tokio::time::timeout(StdDuration::from_secs(5), store.load(&key())).await;
        let err = r.expect("an exhausted pool must not hang").unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert!(started.elapsed() >= StdDuration::from_millis(250));
    })
    .await;
    let blocked = blocked.expect("the update was started");
    assert_eq!(blocked.await.unwrap().unwrap(), 2);
    store.drop_table().await.unwrap();
}

/// A server that accepts connections and never answers (what a paused server looks
/// like to a client: the kernel completes the TCP handshake, the process says
/// nothing): an operation that has to open a connection fails with a retryable error
/// after the connect timeout instead of hanging.
pub async fn stalled_server_fails_within_the_connect_timeout<S: TestServer>() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection without reading or writing a byte.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = S::UNREACHABLE_URL.replace("127.0.0.1:1/", &format!("127.0.0.1:{port}/"));
    assert_ne!(
        url,
        S::UNREACHABLE_URL,
        "UNREACHABLE_URL must use 127.0.0.1:1"
    );
    let store = Store::<S>::builder()
        .pool_settings(session_sql_common::PoolSettings {
            statement_timeout: Some(StdDuration::from_millis(300)),
            connect_timeout: Some(StdDuration::from_secs(1)),
            ..session_sql_common::PoolSettings::default()
        })
        .connect(&url)
        .unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let r = tokio::time::timeout(StdDuration::from_secs(10), store.load(&key()))
            .await
            .expect("an operation against a stalled server must not hang");
        let err = r.expect_err("a stalled server cannot answer");
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            started.elapsed() < StdDuration::from_secs(5),
            "took {:?}, far beyond the 1 s connect timeout",
            started.elapsed()
        );
    }
    holder.abort();
}

/// Checking out a connection is a small future: every store operation's future holds
/// one, and `async_trait` moves that whole future into a box each time an operation
/// starts. With sqlx's acquire future (which may open a connection) and the connect
/// and ping futures of the managed pool held inline it was 8.7 KiB (PostgreSQL), and
/// copying it cost a load through the store 9,000 instructions of `memcpy`, two
/// thirds of what the store added to the bare statement (callgrind, one task).
pub fn connection_checkout_future_stays_small<S: TestServer>() {
    let options: ConnectOptionsOf<S::Dialect> = S::UNREACHABLE_URL.parse().unwrap();
    let source =
        session_sql_common::ConnectionSource::<<S::Dialect as Dialect>::Connection>::managed(
            options,
            session_sql_common::PoolSettings::default(),
        )
        .unwrap();
    let checkout = source.acquire(S::Dialect::ERROR_HOOK);
    let size = std::mem::size_of_val(&checkout);
    assert!(size <= 1024, "the checkout future is {size} bytes");
}

/// A zero statement timeout is a typed configuration error when the store is built
/// (nothing listens at the URL: no connection is needed to find out).
pub fn zero_statement_timeout_is_a_config_error<S: TestServer>() {
    let err = Store::<S>::builder()
        .statement_timeout(StdDuration::ZERO)
        .connect(S::UNREACHABLE_URL)
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Config(ConfigError::Invalid {
                setting: "statement timeout",
                ..
            })
        ),
        "{err:?}"
    );
    let settings = session_sql_common::PoolSettings::default();
    assert_eq!(
        settings.statement_timeout,
        Some(session_sql_common::DEFAULT_STATEMENT_TIMEOUT)
    );
    // The bound can be switched off explicitly, and a positive one is accepted.
    for timeout in [None, Some(StdDuration::from_millis(1))] {
        Store::<S>::builder()
            .pool_settings(session_sql_common::PoolSettings {
                statement_timeout: timeout,
                ..settings
            })
            .connect(S::UNREACHABLE_URL)
            .unwrap();
    }
}

/// Asserts that `err` is the retryable error of a statement that ran into the
/// statement timeout `limit`.
fn assert_statement_timeout(err: &Error, limit: StdDuration) {
    assert!(err.is_retryable(), "{err:?}");
    let Error::Backend { source, .. } = err else {
        panic!("not a backend error: {err:?}")
    };
    let timeout = source
        .downcast_ref::<StatementTimeout>()
        .unwrap_or_else(|| panic!("source is not a StatementTimeout: {source:?}"));
    assert_eq!(timeout.limit, limit);
    assert!(source.to_string().contains("statement timeout"), "{source}");
}

/// A statement blocked by a row lock another client holds (`SELECT … FOR UPDATE` in an
/// open transaction — the shared server is never paused) fails with a retryable error
/// whose source is a [`StatementTimeout`], after the store's statement timeout and not
/// when the lock goes away; the stuck connection is discarded, never reused; the same
/// store value serves other statements meanwhile and works normally once the lock is
/// released.
///
/// The blocked operation is `touch`: its abandoned statement is still queued on the
/// server and may move the deadline once the lock is released (the server does not
/// know the client gave up — any timed-out write's outcome is unknown), but it changes
/// neither payload nor version, so what the test reads afterwards is determined.
pub async fn blocked_statement_times_out_and_the_store_recovers<S: TestServer>() {
    let Some(url) = url::<S>() else { return };
    let limit = StdDuration::from_millis(300);
    let clock = ManualClock::starting_now();
    // One connection: every operation after a timeout needs a fresh one, so a timed-out
    // connection that was reused (it still waits for its abandoned statement's answer)
    // or that leaked its pool slot would make the next operation fail.
    let store = Store::<S>::builder()
        .table_name(table("stmt_timeout"))
        .clock(clock.shared())
        .max_connections(1)
        .acquire_timeout(StdDuration::from_secs(5))
        .statement_timeout(limit)
        .connect(&url)
        .unwrap();
    store.migrate().await.unwrap();
    let k = key();
    let deadline = clock.now() + Duration::hours(1);
    let later = deadline + Duration::hours(1);
    store
        .save(&k, &rec(b"a", deadline), SaveMode::Create)
        .await
        .unwrap();

    S::with_row_locked(&url, store.table_name(), &k, async {
        for round in 0..3 {
            let started = Instant::now();
            let r = tokio::time::timeout(StdDuration::from_secs(5), store.touch(&k, later)).await;
            let err = r
                .unwrap_or_else(|_| panic!("round {round}: a blocked statement must not hang"))
                .unwrap_err();
            assert_statement_timeout(&err, limit);
            assert!(
                started.elapsed() >= limit - StdDuration::from_millis(50),
                "round {round}: failed after {:?}, before the timeout",
                started.elapsed()
            );
            // A plain read is not blocked by the row lock: the store still serves, on
            // a new connection.
            let r = tokio::time::timeout(StdDuration::from_secs(5), store.load(&k)).await;
            let got = r
                .unwrap_or_else(|_| panic!("round {round}: load hung after a timeout"))
                .unwrap()
                .expect("the session is live");
            assert_eq!((&got.payload[..], got.version), (&b"a"[..], 1));
        }
    })
    .await;

    // The lock is gone: the same store value works again.
    let got = store.load(&k).await.unwrap().expect("the session is live");
    assert_eq!((&got.payload[..], got.version), (&b"a"[..], 1));
    // Deadlines are stored to the microsecond.
    let micros = |t: OffsetDateTime| t.unix_timestamp_nanos() / 1_000;
    assert!(
        [deadline, later]
            .map(micros)
            .contains(&micros(got.expires_at)),
        "{:?}",
        got.expires_at
    );
    let update = SaveMode::Update {
        expected_version: 1,
    };
    assert_eq!(store.save(&k, &rec(b"b", later), update).await.unwrap(), 2);
    assert!(store.touch(&k, later).await.unwrap());
    let got = store.load(&k).await.unwrap().expect("the session is live");
    assert_eq!(
        (&got.payload[..], got.version, micros(got.expires_at)),
        (&b"b"[..], 2, micros(later))
    );
    store.drop_table().await.unwrap();
}

/// The store declares the one-step `load_and_touch`, and with the bound at the new
/// deadline (a refresh threshold of 0: nearly every read is due) it is one round trip
/// to the server, as a plain `load` is, where a `load` and a `touch` are two — due or
/// not, and for an absent key. With the bound before the new deadline (the manager's
/// default threshold: a refresh is due only now and then) it is a plain `load`, one
/// round trip, plus a `touch` only when due ([`round_trips::load_and_touch_round_trips`]).
pub async fn load_and_touch_is_one_round_trip<S: TestServer>() {
    let Some(url) = url::<S>() else { return };
    let proxy = RoundTripProxy::start(&url).await;
    let clock = ManualClock::starting_now();
    let store = Store::<S>::builder()
        .table_name(table("trips"))
        .clock(clock.shared())
        .max_connections(1)
        .connect(proxy.url())
        .unwrap();
    store.migrate().await.unwrap();
    assert!(
        store.capabilities().load_and_touch,
        "the store does not declare the one-step load_and_touch"
    );
    round_trips::load_and_touch_round_trips(&store, &proxy, clock.now()).await;
    store.drop_table().await.unwrap();
}

/// A store on a caller's `sqlx::Pool` keeps the compare-and-set and create contracts.
pub async fn accepts_a_callers_sqlx_pool<S: TestServer>() {
    let Some(url) = url::<S>() else { return };
    let pool = PoolOptions::<<<S::Dialect as Dialect>::Connection as Connection>::Database>::new()
        .max_connections(8)
        .connect(&url)
        .await
        .unwrap();
    let clock = ManualClock::starting_now();
    let store = Store::<S>::builder()
        .table_name(table("sqlxpool"))
        .clock(clock.shared())
        .with_pool(pool)
        .unwrap();
    store.migrate().await.unwrap();
    contract::update_cas(&store, &clock).await;
    let shared: Arc<dyn SessionInterface> = Arc::new(store.clone());
    contract::concurrent_creates(shared, &clock, 16).await;
    store.drop_table().await.unwrap();
}

/// `delete_expired` finds rows through the bucket index, and purges [`BULK_ROWS`]
/// expired rows in batches and leaves live ones.
pub async fn delete_expired_purges_100k_rows_in_batches<S: TestServer>() {
    let Some((store, clock)) = store::<S>("bulk").await else {
        return;
    };
    let url = url::<S>().unwrap();
    // Bulk setup in one statement; the purge is the subject.
    let deadline = clock.now() + Duration::minutes(1);
    S::insert_expiring_rows(&url, store.table_name(), deadline).await;
    // At a time of an earlier bucket than every row's, the sweep finds nothing through
    // the bucket index instead of reading the whole table. (Rows of the current
    // bucket are read and their exact deadlines checked: with a minute left, most
    // of the time every row here is in it, and reading the table is then the right
    // plan.)
    let earlier = deadline - Duration::seconds(EXPIRY_BUCKET_SECONDS);
    let plan = S::purge_plan(&url, store.table_name(), earlier, 1_000).await;
    let index = format!("{}_bucket_idx", store.table_name());
    assert!(
        plan.contains(&index),
        "the purge does not use {index}:\n{plan}"
    );
    let live: Vec<_> = (0..5).map(|_| key()).collect();
    for k in &live {
        let rec = rec(b"live", clock.now() + Duration::hours(1));
        store.save(k, &rec, SaveMode::Create).await.unwrap();
    }
    clock.advance(Duration::minutes(2));
    assert_eq!(store.delete_expired().await.unwrap(), BULK_ROWS);
    for k in &live {
        assert!(store.load(k).await.unwrap().is_some());
    }
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    store.drop_table().await.unwrap();
}

/// Connection loss in the middle of a loop of updates: by default every server
/// connection of the store is killed ([`TestServer::kill_connections`], what a server
/// restart does to clients); with [`TestServer::RESTART_CMD_VAR`] set, that shell
/// command runs instead (e.g. a real restart). The errors are retryable, the same store
/// value recovers, and every update acknowledged before the fault is still there.
pub async fn connection_loss_gives_retryable_errors_then_recovers<S: TestServer>() {
    let Some(url) = url::<S>() else { return };
    let (options, isolation) = S::isolate(&url).await;
    let clock = ManualClock::starting_now();
    let store = Store::<S>::builder()
        .table_name(table("fault"))
        .clock(clock.shared())
        .max_connections(4)
        .connect_with(options)
        .unwrap();
    store.migrate().await.unwrap();
    let keys: Vec<_> = (0..8).map(|_| key()).collect();
    let deadline = clock.now() + Duration::hours(1);
    let mut last_ok = vec![0u64; keys.len()];
    for (i, k) in keys.iter().enumerate() {
        last_ok[i] = store
            .save(k, &rec(b"v", deadline), SaveMode::Create)
            .await
            .unwrap();
    }
    let mut errors = 0;
    for round in 0..200 {
        if round == 100 {
            inject_fault::<S>(&url, &isolation).await;
        }
        let i = round % keys.len();
        let mode = SaveMode::Update {
            expected_version: last_ok[i],
        };
        match store.save(&keys[i], &rec(b"v", deadline), mode).await {
            Ok(v) => last_ok[i] = v,
            Err(e) => {
                assert!(e.is_retryable(), "round {round}: {e:?}");
                errors += 1;
                // The failed update may or may not have committed: resync the version.
                tokio::time::sleep(StdDuration::from_millis(50)).await;
                if let Ok(Some(r)) = store.load(&keys[i]).await {
                    last_ok[i] = r.version;
                }
            }
        }
    }
    assert!(errors > 0, "the fault was not noticed");
    assert!(errors < 100, "the store did not recover: {errors} errors");
    for (i, k) in keys.iter().enumerate() {
        let got = store
            .load(k)
            .await
            .unwrap()
            .expect("acknowledged record lost");
        assert!(got.version >= last_ok[i], "acknowledged update lost");
    }
    store.drop_table().await.unwrap();
    store.close().await;
    S::release(&url, isolation).await;
}

async fn inject_fault<S: TestServer>(url: &str, isolation: &S::Isolation) {
    if let Ok(cmd) = std::env::var(S::RESTART_CMD_VAR) {
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .status()
            .await
            .unwrap();
        assert!(status.success(), "{cmd} failed");
        return;
    }
    S::kill_connections(url, isolation).await;
}

/// Runs a [`contract`] check on a fresh table, then drops the table.
async fn contract_check<S: TestServer>(tag: &str, check: impl AsyncFnOnce(Store<S>, &ManualClock)) {
    let Some((store, clock)) = store::<S>(tag).await else {
        return;
    };
    check(store.clone(), &clock).await;
    store.drop_table().await.unwrap();
}

/// [`contract::create_and_collision`] on a fresh table.
pub async fn create_and_collision<S: TestServer>() {
    contract_check::<S>("create_and_collision", async |s, c| {
        contract::create_and_collision(&s, c).await
    })
    .await;
}

/// [`contract::create_over_expired`] on a fresh table.
pub async fn create_over_expired<S: TestServer>() {
    contract_check::<S>("create_over_expired", async |s, c| {
        contract::create_over_expired(&s, c).await
    })
    .await;
}

/// [`contract::delete_expired`] of 2,500 rows (three batches) on a fresh table.
pub async fn delete_expired_in_batches<S: TestServer>() {
    contract_check::<S>("delete_expired_in_batches", async |s, c| {
        contract::delete_expired(Arc::new(s), c, 2_500).await
    })
    .await;
}

/// Expands into the [`integration`](self) tests, each a test function of the same
/// name, for the [`TestServer`] given (a type of the calling test crate, which needs
/// `tokio` with the `macros` and `rt-multi-thread` features as a dev-dependency).
///
/// ```text
/// struct Postgres;
/// impl session_sql_testing::integration::TestServer for Postgres { /* … */ }
/// session_sql_testing::sql_store_tests!(Postgres);
/// ```
#[macro_export]
macro_rules! sql_store_tests {
    ($server:ty) => {
        #[test]
        fn hostile_table_names_are_rejected_before_any_sql() {
            $crate::integration::hostile_table_names_are_rejected_before_any_sql::<$server>();
        }

        #[test]
        fn connection_checkout_future_stays_small() {
            $crate::integration::connection_checkout_future_stays_small::<$server>();
        }

        #[test]
        fn zero_statement_timeout_is_a_config_error() {
            $crate::integration::zero_statement_timeout_is_a_config_error::<$server>();
        }

        #[tokio::test]
        async fn stalled_server_fails_within_the_connect_timeout() {
            $crate::integration::stalled_server_fails_within_the_connect_timeout::<$server>().await;
        }

        $crate::sql_store_tests!(@each $server, #[tokio::test];
            migrations_are_idempotent_and_recorded,
            version_1_tables_are_upgraded_in_place,
            a_table_without_its_migration_log_is_adopted,
            a_half_applied_upgrade_is_completed,
            every_write_stores_the_bucket_of_its_deadline,
            the_sessions_time_zone_changes_nothing,
            unreadable_rows_are_decode_errors,
            exhausted_pool_times_out_instead_of_hanging,
            blocked_statement_times_out_and_the_store_recovers,
            accepts_a_callers_sqlx_pool,
            load_and_touch_is_one_round_trip,
        );
        $crate::sql_store_tests!(@each $server, #[tokio::test(flavor = "multi_thread", worker_threads = 2)];
            delete_expired_purges_100k_rows_in_batches,
            connection_loss_gives_retryable_errors_then_recovers,
            create_and_collision,
            create_over_expired,
            delete_expired_in_batches,
        );
    };
    (@each $server:ty, #[$test:meta]; $($name:ident,)*) => {$(
        #[$test]
        async fn $name() {
            $crate::integration::$name::<$server>().await;
        }
    )*};
}
