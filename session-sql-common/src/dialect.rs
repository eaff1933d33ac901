//! What a database supplies to the shared [`SqlStore`](crate::SqlStore): its statement
//! texts, how to bind and run them, and its migrations.
//!
//! The split: everything that is the same on every server — the pool and its leases,
//! the clock, the Update-then-disambiguate logic of `save`, the batch loop of
//! `delete_expired`, re-running deadlock victims, decoding versions, the migration
//! runner — lives in this crate once. A [`Dialect`] only says how one statement is
//! bound, run and read, because that is where sqlx's types differ per database.
//!
//! Why not a store generic over `sqlx::Database` with `sqlx::query` in the shared
//! code: binding a value and running a query generically needs bounds such as
//! `for<'c> &'c mut C: Executor<'c, Database = DB>`, `for<'q> DB::Arguments<'q>:
//! IntoArguments<'q, DB>` and `Type<DB> + Encode<'q, DB> + Decode<'r, DB>` for every
//! column type, on every function — more noise than the few lines of binding they
//! would save. Each dialect's methods are concrete instead (a handful of lines each).

use std::future::Future;
use std::sync::Arc;

use session_core::time::OffsetDateTime;
use session_core::{NewRecord, StorageKey};
use sqlx::error::DatabaseError;

use crate::error::DbErrorHook;
use crate::migrate::{Migration, MigrationConnection, MigrationOutcome, MigrationSql};
use crate::table::TableName;

/// The SQL of every operation for one table, built once per store by
/// [`Dialect::statements`] from the validated table name. The binds each statement
/// takes are the dialect's business ([`Dialect`]'s methods run them).
#[derive(Debug)]
pub struct Statements {
    /// Reads the row of a key by key alone: `payload, expires_at, version` (the
    /// store drops a row that has expired).
    pub load: Arc<str>,
    /// Inserts a row, or replaces an expired one, in one statement.
    pub create: Arc<str>,
    /// Compare-and-set of a live row.
    pub update: Arc<str>,
    /// Whether a live row holds a key (after an update matched nothing).
    pub is_live: Arc<str>,
    /// Deletes a key's row.
    pub expire: Arc<str>,
    /// Moves a live row's deadline.
    pub touch: Arc<str>,
    /// Deletes at most a batch of expired rows, found through the expiry bucket index
    /// ([`expiry_bucket`](crate::expiry_bucket)).
    pub purge: Arc<str>,
    /// Loads a live row and moves its deadline when it is before a bound, in one
    /// statement ([`Dialect::load_and_touch`]); `None` where the database has no
    /// such statement (the store then loads and touches in two).
    pub load_and_touch: Option<Arc<str>>,
}

/// What [`Dialect::load_and_touch`] read and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshedRow {
    /// The row after the statement (its new deadline when `touched`).
    pub row: RawRecord,
    /// The deadline the row had before.
    pub previous: OffsetDateTime,
    /// Whether the deadline was moved.
    pub touched: bool,
}

/// A row as read from the table, before the version is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// The payload column.
    pub payload: Vec<u8>,
    /// The deadline column, as an instant.
    pub expires_at: OffsetDateTime,
    /// The version column (`BIGINT`, so signed; a negative one is a decode error).
    pub version: i64,
}

/// Which statements the store re-runs, up to 5 times, when the server rolled them back
/// whole as a deadlock victim (nothing was written, so the re-run is the same
/// operation). Reads are never re-run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerun {
    /// Only the create (concurrent creates of one key can deadlock on the primary key).
    Create,
    /// Every single-statement write: create, update, expire, touch and each purge batch
    /// (InnoDB can also pick an `UPDATE` racing a `DELETE` through the `expires_at`
    /// index).
    EveryWrite,
}

/// One database's SQL and how to run it; see the [module docs](self).
///
/// Every method runs exactly one statement on `conn` (the store leases the
/// connection, maps errors and re-runs deadlock victims around it), except
/// [`migrate`](Dialect::migrate), which runs a whole migration under the dialect's
/// lock. Implementations bind `now` — the store's clock, never the server's — as a
/// parameter wherever a statement compares deadlines, and write
/// [`expiry_bucket`](crate::expiry_bucket) of the deadline as stored beside every
/// deadline they write (the sweep finds rows by it).
pub trait Dialect: Send + Sync + 'static {
    /// The sqlx connection type (`PgConnection`, `MySqlConnection`).
    type Connection: MigrationConnection;

    /// The public name of the store type (for its `Debug` output).
    const STORE_NAME: &'static str;
    /// Which statements are re-run after a deadlock.
    const RERUN: Rerun;
    /// Refines the shared SQLSTATE classification of server errors.
    const ERROR_HOOK: DbErrorHook;

    /// The schema version this build creates and expects.
    const SCHEMA_VERSION: i64;
    /// Every schema step, oldest first, the last one at [`SCHEMA_VERSION`](Self::SCHEMA_VERSION).
    const MIGRATIONS: &'static [Migration];
    /// The SQLSTATE of "no such table" (reading the version of a table never migrated).
    const UNDEFINED_TABLE: &'static str;

    /// The statement texts for `table`.
    fn statements(table: &TableName) -> Statements;

    /// [`Statements::load`]: the row of `key`, if any, whatever its deadline — the
    /// store drops a row whose deadline is not after its clock's now (one place for
    /// that rule), so the statement is a bare primary-key lookup.
    fn load(
        conn: &mut Self::Connection,
        sql: &Statements,
        key: &StorageKey,
    ) -> impl Future<Output = Result<Option<RawRecord>, sqlx::Error>> + Send;

    /// [`Statements::create`]: `true` when the row was written (fresh, or over an
    /// expired one), `false` when a live row holds the key.
    fn create(
        conn: &mut Self::Connection,
        sql: &Statements,
        key: &StorageKey,
        record: &NewRecord,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// [`Statements::update`]: `true` when the live row at version `expected` was
    /// written (and its version bumped).
    fn update(
        conn: &mut Self::Connection,
        sql: &Statements,
        key: &StorageKey,
        record: &NewRecord,
        expected: i64,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// [`Statements::is_live`]: whether a live row holds `key` at `now`.
    fn is_live(
        conn: &mut Self::Connection,
        sql: &Statements,
        key: &StorageKey,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// [`Statements::expire`]: deletes the row of `key`.
    fn expire(
        conn: &mut Self::Connection,
        sql: &Statements,
        key: &StorageKey,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// [`Statements::touch`]: `true` when a live row held `key` (its deadline is now
    /// `expires_at`).
    fn touch(
        conn: &mut Self::Connection,
        sql: &Statements,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// [`Statements::load_and_touch`]: the live row of `key` at `now`, its deadline
    /// moved to `expires_at` when it was before `due_before`. Called only when the
    /// dialect's statements have one; the default is an error for a dialect that
    /// sets the statement but forgot the method.
    fn load_and_touch(
        conn: &mut Self::Connection,
        sql: &Statements,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<RefreshedRow>, sqlx::Error>> + Send {
        let _ = (conn, sql, key, expires_at, due_before, now);
        async {
            Err(sqlx::Error::Protocol(
                "the dialect has a load_and_touch statement but no method to run it".into(),
            ))
        }
    }

    /// [`Statements::purge`]: deletes at most `batch` rows expired at `now`; returns
    /// how many.
    fn purge(
        conn: &mut Self::Connection,
        sql: &Statements,
        now: OffsetDateTime,
        batch: i64,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// Whether a migration statement failed only because an earlier run of the same
    /// step applied it already (for DDL that cannot say `IF NOT EXISTS` on every
    /// server the dialect supports); the runner then goes on with the next statement.
    /// The default accepts nothing.
    fn already_applied(e: &dyn DatabaseError) -> bool {
        let _ = e;
        false
    }

    /// The migration-log statements for `table`.
    fn migration_sql(table: &TableName) -> MigrationSql;

    /// Applies the pending migrations under the dialect's lock (and transaction, where
    /// DDL can be transactional), by calling [`migrate::apply`](crate::migrate::apply)
    /// while holding it.
    fn migrate(
        conn: &mut Self::Connection,
        table: &TableName,
    ) -> impl Future<Output = Result<MigrationOutcome, sqlx::Error>> + Send;
}
