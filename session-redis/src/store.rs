//! [`RedisStore`]: the [`SessionInterface`] over Redis and Redis Cluster.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Cmd, ErrorKind, ServerErrorKind, Value};
use session_core::time::OffsetDateTime;
use session_core::{
    Capabilities, DecodeError, Error, FIRST_VERSION, NewRecord, Refreshed, SaveMode,
    SessionInterface, StorageKey, StoredRecord, Version, load_then_touch,
};

use crate::config::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_LARGE_UPDATE_THRESHOLD, RedisConfig, validate_key_prefix,
};
use crate::connection::{Connection, Request};
use crate::error::{RedisStoreError, exec_abort_cause, from_redis};
use crate::record::{self, HEADER_LEN};
use crate::scripts::{self, Arg, Scripts};

/// What stores made from one another share: the connections and the scripts.
#[derive(Debug)]
struct Shared {
    conn: Connection,
    scripts: Scripts,
}

/// A [`SessionInterface`] on Redis or Redis Cluster.
///
/// Every operation is one command, one Lua script, or (an update of a payload above
/// [`RedisConfig::large_update_threshold`]) one `MULTI`/`EXEC` transaction on exactly
/// one key, `prefix + storage key`, so the same type serves a single server and a
/// cluster.
/// Records expire by themselves (`PXAT` / `PEXPIREAT`), so
/// [`delete_expired`](SessionInterface::delete_expired) has nothing to do and returns 0.
///
/// Cloning is cheap and clones share the connections; so do stores made with
/// [`with_key_prefix`](Self::with_key_prefix).
#[derive(Debug, Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
    prefix: Arc<str>,
    command_timeout: Duration,
    durable: bool,
    large_update_threshold: usize,
}

/// What a reply of the update and touch scripts means (see `scripts.rs`).
const WRITTEN: i64 = 1;
const ABSENT: i64 = 0;
const OTHER_VERSION: i64 = -1;
const NOT_A_RECORD: i64 = -2;
/// What the touch-if-due step of a load-and-touch returns for a live record whose
/// deadline was not due (`WRITTEN`: moved).
const NOT_DUE: i64 = 2;

/// What the cleanup step of the update transaction returns when it deleted the
/// placeholder.
const PLACEHOLDER_DELETED: i64 = 1;

impl RedisStore {
    /// Validates `config`, connects, and returns the store.
    ///
    /// Fails with [`Error::Config`] on an invalid setting, and with a retryable
    /// [`Error::Backend`] if the server cannot be reached within the connect timeout.
    /// Once connected, the store reconnects by itself: a store value outlives any
    /// number of server restarts.
    pub async fn connect(config: RedisConfig) -> Result<Self, Error> {
        config.validate()?;
        let conn = Connection::open(&config).await?;
        let mut store = Self::assemble(
            conn,
            &config.key_prefix,
            config.command_timeout,
            config.durable,
        );
        store.large_update_threshold = config.large_update_threshold;
        Ok(store)
    }

    /// A store on a caller's `deadpool-redis` pool (standalone server), with the
    /// default command timeout and `key_prefix`.
    ///
    /// Every operation checks a connection out of the pool, and `deadpool-redis`
    /// 0.23 recycles each checkout by sending `UNWATCH` + `PING` first: one extra
    /// round trip per operation. Measured on 2 cores with 32 tasks that takes a GET+SET
    /// cycle from ~150k/s (one multiplexed connection) to ~45k/s. Prefer
    /// [`connect`](Self::connect) unless the pool is shared with other code that needs
    /// it, or lower the cost with the pool's `RecyclingMethod`.
    pub fn from_pool(pool: deadpool_redis::Pool, key_prefix: &str) -> Result<Self, Error> {
        validate_key_prefix(key_prefix)?;
        Ok(Self::assemble(
            Connection::Pool(pool),
            key_prefix,
            DEFAULT_COMMAND_TIMEOUT,
            true,
        ))
    }

    fn assemble(conn: Connection, prefix: &str, command_timeout: Duration, durable: bool) -> Self {
        Self {
            shared: Arc::new(Shared {
                conn,
                scripts: Scripts::new(),
            }),
            prefix: prefix.into(),
            command_timeout,
            durable,
            large_update_threshold: DEFAULT_LARGE_UPDATE_THRESHOLD,
        }
    }

    /// A store on the same connections whose keys start with `key_prefix` instead:
    /// one connection for many applications or tenants, or a fresh namespace per
    /// test case.
    pub fn with_key_prefix(&self, key_prefix: &str) -> Result<Self, Error> {
        validate_key_prefix(key_prefix)?;
        Ok(Self {
            prefix: key_prefix.into(),
            ..self.clone()
        })
    }

    /// This store with another command timeout (see
    /// [`RedisConfig::command_timeout`]). A zero timeout is rejected.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Result<Self, Error> {
        if timeout.is_zero() {
            return Err(session_core::ConfigError::Invalid {
                setting: "command timeout",
                reason: "must be positive".into(),
            }
            .into());
        }
        self.command_timeout = timeout;
        Ok(self)
    }

    /// This store with another large-update threshold (see
    /// [`RedisConfig::large_update_threshold`]): payloads longer than `bytes` are
    /// updated by a `MULTI`/`EXEC` transaction, shorter ones by one Lua script.
    pub fn with_large_update_threshold(mut self, bytes: usize) -> Self {
        self.large_update_threshold = bytes;
        self
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key a session is stored under: the prefix followed by the 64 hex
    /// characters of the storage key.
    pub fn redis_key(&self, key: &StorageKey) -> String {
        [&*self.prefix, key.as_str()].concat()
    }

    /// `verb key`, for the commands whose only argument is the record's key.
    fn key_cmd(&self, verb: &str, key: &StorageKey) -> Cmd {
        let rkey = Arg(&[self.prefix.as_bytes(), key.as_str().as_bytes()]);
        let mut cmd = scripts::sized_cmd(verb, 1, rkey.len());
        cmd.arg(rkey);
        cmd
    }

    /// Sends one request, bounded by the command timeout.
    async fn send(&self, operation: &'static str, req: Request<'_>) -> Result<Value, Error> {
        self.bounded(operation, self.shared.conn.send(req)).await
    }

    /// Runs `call` under the command timeout; past it, a retryable
    /// [`RedisStoreError::Timeout`] for `operation`.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let after = self.command_timeout;
        tokio::time::timeout(after, call).await.unwrap_or_else(|_| {
            Err(Error::retryable(RedisStoreError::Timeout {
                operation,
                after,
            }))
        })
    }
}

/// A cluster node answered the update transaction with a redirect (`MOVED`/`ASK`:
/// the slot map is stale or the slot is migrating). The cluster client follows
/// redirects for single commands but not inside `MULTI`, and the aborted transaction
/// ran nothing, so the caller repeats the update as the script (under a command
/// timeout of its own), which also makes the client refresh its slot map.
struct Redirected;

impl RedisStore {
    /// A compare-and-set through [`scripts::transaction`], for large payloads.
    ///
    /// Outcomes as for the script: `Ok(())` written, `NotFound`, `Conflict`, not a
    /// record. `EXEC` is all-or-nothing, so a connection lost before it, a timeout, or
    /// a command refused while queueing leaves the key as it was; a command timeout
    /// after `EXEC` was sent leaves the outcome unknown, exactly as for the script.
    async fn update_in_transaction(
        &self,
        key: Arg<'_>,
        expected: &[u8],
        record: Arg<'_>,
        deadline_ms: i64,
    ) -> Result<Result<(), Error>, Redirected> {
        let pipe = scripts::transaction(&self.shared.scripts, &key, expected, &record, deadline_ms);
        Ok(self
            .send_transaction("save", &pipe)
            .await?
            .and_then(transaction_outcome))
    }

    /// Sends `pipe` as one `MULTI`/`EXEC` transaction. A cluster redirect of the
    /// whole transaction (`MOVED`/`ASK`: nothing ran) is `Err(Redirected)`, for the
    /// caller to fall back to commands that follow it.
    async fn send_transaction(
        &self,
        operation: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<Result<Value, Error>, Redirected> {
        let sent = self
            .bounded(
                operation,
                self.shared.conn.send_raw(Request::Transaction(pipe)),
            )
            .await;
        let reply = match sent {
            Err(checkout_or_timeout) => return Ok(Err(checkout_or_timeout)),
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                let redirect = exec_abort_cause(&e).is_some_and(|cause| {
                    matches!(
                        cause.kind(),
                        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
                    )
                });
                if redirect && self.shared.conn.is_cluster() {
                    return Err(Redirected);
                }
                return Ok(Err(from_redis(e)));
            }
        };
        Ok(Ok(reply))
    }
}

impl RedisStore {
    /// [`SessionInterface::load_and_touch`] through [`scripts::load_and_touch`]; a
    /// cluster redirect (nothing ran) falls back to `load` + `touch`, which follow it.
    async fn load_and_touch_in_transaction(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Result<Result<Option<Refreshed>, Error>, Redirected> {
        let deadline = record::deadline_ms(expires_at);
        let header_bytes = deadline.to_be_bytes();
        let deadline_text = deadline.to_string();
        // Header deadlines are at least 1 ms; a bound at or before 0 is never due.
        let due = record::deadline_ms(due_before).to_be_bytes();
        let due = if due_before.unix_timestamp_nanos() <= 0 {
            [0; 8]
        } else {
            due
        };
        let args = [
            Arg(&[&header_bytes]),
            Arg(&[deadline_text.as_bytes()]),
            Arg(&[&due]),
        ];
        let rkey = Arg(&[self.prefix.as_bytes(), key.as_str().as_bytes()]);
        let pipe =
            scripts::load_and_touch(&self.shared.scripts, self.key_cmd("GET", key), &rkey, &args);
        Ok(self
            .send_transaction("load_and_touch", &pipe)
            .await?
            .and_then(|reply| load_and_touch_outcome(reply, deadline)))
    }
}

/// Maps `EXEC`'s reply to the two commands of [`scripts::load_and_touch`].
fn load_and_touch_outcome(reply: Value, deadline_ms: i64) -> Result<Option<Refreshed>, Error> {
    let unexpected = || unexpected("load_and_touch");
    let Value::Array(replies) = reply else {
        return Err(unexpected());
    };
    let [get, touched] = <[Value; 2]>::try_from(replies).map_err(|_| unexpected())?;
    let step = |v: Value| match v {
        Value::ServerError(e) => Err(from_redis(e.into())),
        v => Ok(v),
    };
    let mut record = match step(get)? {
        Value::Nil => return Ok(None),
        Value::BulkString(raw) => record::decode(raw)?,
        _ => return Err(unexpected()),
    };
    let previous_expires_at = record.expires_at;
    let touched = match step(touched)? {
        Value::Int(WRITTEN) => true,
        Value::Int(NOT_DUE) => false,
        // The GET saw a record, so nothing else ran in between: the script agrees.
        Value::Int(NOT_A_RECORD) => return Err(not_a_record()),
        _ => return Err(unexpected()),
    };
    if touched {
        // What the header now holds: the deadline rounded down to the millisecond.
        record.expires_at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(deadline_ms) * 1_000_000)
                .map_err(|_| unexpected())?;
    }
    Ok(Some(Refreshed {
        record,
        previous_expires_at,
        touched,
    }))
}

/// Maps `EXEC`'s reply to the three commands of [`scripts::transaction`].
fn transaction_outcome(reply: Value) -> Result<(), Error> {
    let Value::Array(replies) = reply else {
        return Err(unexpected("save"));
    };
    let [check, set, cleanup] = <[Value; 3]>::try_from(replies).map_err(|_| unexpected("save"))?;
    let step = |v: Value| match v {
        Value::ServerError(e) => Err(from_redis(e.into())),
        v => Ok(v),
    };
    // Step 1 decides; a refusal there (e.g. `WRONGTYPE` under a key of another type)
    // also made steps 2 and 3 no-ops, since the key exists.
    let (check, set, cleanup) = (step(check)?, step(set), step(cleanup));
    match check {
        Value::Int(WRITTEN) => match set? {
            Value::Okay => Ok(()),
            _ => Err(unexpected("save")),
        },
        Value::Int(ABSENT) => match cleanup? {
            Value::Int(PLACEHOLDER_DELETED) => Err(Error::NotFound),
            _ => Err(unexpected("save")),
        },
        Value::Int(OTHER_VERSION) => Err(Error::Conflict),
        Value::Int(NOT_A_RECORD) => Err(not_a_record()),
        _ => Err(unexpected("save")),
    }
}

/// The error for a reply outside what the command or script can return.
fn unexpected(operation: &'static str) -> Error {
    Error::backend(RedisStoreError::UnexpectedReply { operation })
}

fn not_a_record() -> Error {
    Error::Decode(DecodeError::Malformed {
        reason: "the redis value under the key is not a session record",
    })
}

#[async_trait]
impl SessionInterface for RedisStore {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        let cmd = self.key_cmd("GET", key);
        match self.send("load", Request::Command(&cmd)).await? {
            Value::Nil => Ok(None),
            Value::BulkString(raw) => Ok(Some(record::decode(raw)?)),
            _ => Err(unexpected("load")),
        }
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        let rkey = [self.prefix.as_bytes(), key.as_str().as_bytes()];
        let deadline = record::deadline_ms(record.expires_at);
        match mode {
            SaveMode::Create => {
                // SET NX treats an expired key as absent, and a deadline already in the
                // past makes Redis drop the value at once (the create still "succeeds",
                // as it would have and then expired).
                let header = record::header(FIRST_VERSION, deadline);
                let cmd = scripts::set_nx(&Arg(&rkey), &Arg(&[&header, &record.payload]), deadline);
                match self.send("save", Request::Command(&cmd)).await? {
                    Value::Okay => Ok(FIRST_VERSION),
                    Value::Nil => Err(Error::Collision),
                    _ => Err(unexpected("save")),
                }
            }
            SaveMode::Update { expected_version } => {
                // A record at u64::MAX cannot be bumped; no sequence of updates gets
                // there, so whatever holds that version is not ours to overwrite.
                let new_version = expected_version.checked_add(1).ok_or(Error::Conflict)?;
                let expected = record::version_prefix(expected_version);
                let header = record::header(new_version, deadline);
                let rkey = Arg(&rkey);
                let rec = Arg(&[&header, &record.payload]);
                if record.payload.len() > self.large_update_threshold {
                    // `Err(Redirected)`: nothing ran, and the script below follows
                    // the redirect itself.
                    if let Ok(reply) = self
                        .update_in_transaction(rkey, &expected, rec, deadline)
                        .await
                    {
                        return reply.map(|()| new_version);
                    }
                }
                let deadline = deadline.to_string();
                let args = [Arg(&[&expected]), rec, Arg(&[deadline.as_bytes()])];
                let req = Request::Script {
                    script: &self.shared.scripts.update,
                    key: rkey,
                    args: &args,
                };
                match self.send("save", req).await? {
                    Value::Int(WRITTEN) => Ok(new_version),
                    Value::Int(ABSENT) => Err(Error::NotFound),
                    Value::Int(OTHER_VERSION) => Err(Error::Conflict),
                    Value::Int(NOT_A_RECORD) => Err(not_a_record()),
                    _ => Err(unexpected("save")),
                }
            }
        }
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        let cmd = self.key_cmd("DEL", key);
        match self.send("expire", Request::Command(&cmd)).await? {
            Value::Int(_) => Ok(()),
            _ => Err(unexpected("expire")),
        }
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        let deadline = record::deadline_ms(expires_at);
        let header_bytes = deadline.to_be_bytes();
        let deadline = deadline.to_string();
        let args = [Arg(&[&header_bytes]), Arg(&[deadline.as_bytes()])];
        let req = Request::Script {
            script: &self.shared.scripts.touch,
            key: Arg(&[self.prefix.as_bytes(), key.as_str().as_bytes()]),
            args: &args,
        };
        match self.send("touch", req).await? {
            Value::Int(WRITTEN) => Ok(true),
            Value::Int(ABSENT) => Ok(false),
            Value::Int(NOT_A_RECORD) => Err(not_a_record()),
            _ => Err(unexpected("touch")),
        }
    }

    async fn load_and_touch(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Result<Option<Refreshed>, Error> {
        // A bound before the new deadline means a refresh is due only now and then
        // (with the manager's default threshold, once per half an idle lifetime):
        // read with a plain GET and touch only when due. The one-step transaction runs
        // a script on every read, which at 32 tasks cost the single-threaded server
        // more than the rare second round trip (BENCHMARKS.md, the request mix). A
        // bound at or after the new deadline (refresh on every request) makes nearly
        // every live record due: then one transaction does both. Not every one: a
        // record whose deadline is already at or past the bound is not due, and the
        // transaction answers it untouched (the conformance case
        // `load_and_touch_leaves_a_deadline_not_due` calls with such a bound).
        if due_before < expires_at {
            return load_then_touch(self, key, expires_at, due_before).await;
        }
        match self
            .load_and_touch_in_transaction(key, expires_at, due_before)
            .await
        {
            Ok(answer) => answer,
            Err(Redirected) => load_then_touch(self, key, expires_at, due_before).await,
        }
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        // Every key carries its deadline as a Redis TTL; the server evicts it.
        Ok(0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
            .with_native_ttl(true)
            .with_durable(self.durable)
            .with_load_and_touch(true)
    }
}

// The header length is part of the record layout the scripts assume.
const _: () = assert!(HEADER_LEN == 17);

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> Value {
        let v = redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
        assert!(matches!(v, Value::ServerError(_)), "{v:?}");
        v
    }

    fn exec(check: Value, set: Value, cleanup: Value) -> Result<(), Error> {
        transaction_outcome(Value::Array(vec![check, set, cleanup]))
    }

    #[test]
    fn each_outcome_of_the_check_maps_like_the_script() {
        assert!(exec(Value::Int(1), Value::Okay, Value::Int(0)).is_ok());
        let absent = exec(Value::Int(0), Value::Nil, Value::Int(1));
        assert!(matches!(absent, Err(Error::NotFound)), "{absent:?}");
        let other = exec(Value::Int(-1), Value::Nil, Value::Int(0));
        assert!(matches!(other, Err(Error::Conflict)), "{other:?}");
        let foreign = exec(Value::Int(-2), Value::Nil, Value::Int(0));
        assert!(matches!(foreign, Err(Error::Decode(_))), "{foreign:?}");
    }

    #[test]
    fn per_command_errors_inside_exec_are_typed() {
        // The check hit a key of another type.
        let wrongtype = exec(
            err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            Value::Nil,
            Value::Int(0),
        );
        assert!(matches!(wrongtype, Err(Error::Decode(_))), "{wrongtype:?}");
        // The SET after a matching check failed: the driver's error, not "written".
        let set_failed = exec(Value::Int(1), err("ERR something broke"), Value::Int(0));
        assert!(
            matches!(
                set_failed,
                Err(Error::Backend {
                    retryable: false,
                    ..
                })
            ),
            "{set_failed:?}"
        );
        // A transient refusal stays retryable.
        let busy = exec(err("TRYAGAIN later"), Value::Nil, Value::Int(0));
        assert!(
            matches!(
                busy,
                Err(Error::Backend {
                    retryable: true,
                    ..
                })
            ),
            "{busy:?}"
        );
        // The cleanup failed after the placeholder was written.
        let cleanup_failed = exec(Value::Int(0), Value::Nil, err("ERR cleanup broke"));
        assert!(
            matches!(cleanup_failed, Err(Error::Backend { .. })),
            "{cleanup_failed:?}"
        );
    }

    #[test]
    fn impossible_replies_are_unexpected_not_success() {
        for reply in [
            Value::Nil,                                                   // EXEC aborted by WATCH
            Value::Array(vec![Value::Int(1), Value::Okay]),               // wrong arity
            Value::Array(vec![Value::Int(1), Value::Nil, Value::Int(0)]), // SET NX refused after DEL
            Value::Array(vec![Value::Int(0), Value::Nil, Value::Int(0)]), // placeholder not removed
            Value::Array(vec![Value::Int(7), Value::Nil, Value::Int(0)]),
        ] {
            let got = transaction_outcome(reply.clone());
            match got {
                Err(Error::Backend { source, .. }) => assert!(
                    matches!(
                        source.downcast_ref::<RedisStoreError>(),
                        Some(RedisStoreError::UnexpectedReply { operation: "save" })
                    ),
                    "{reply:?}: {source:?}"
                ),
                other => panic!("{reply:?}: {other:?}"),
            }
        }
    }
}
