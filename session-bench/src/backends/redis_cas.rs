//! Two raw compare-and-set contestants on Redis, the yardsticks for ours' `save(Update)`
//! and `touch` (issue 22):
//!
//! - [`FairCas`]: what any correct compare-and-set with expiry must do on Redis 7 —
//!   a plain `GET` where the caller needs the record, then one minimal `EVALSHA` that
//!   compares an 8-byte version header and `SET`s with `PXAT`; all on one shared
//!   multiplexed connection, like ours. Its touch is a minimal script that checks
//!   the key exists and `PEXPIREAT`s it. That touch leaves the record alone, so the
//!   deadline lives in the key's TTL only, and a correct load (which must return
//!   the deadline with the record) is `GET` + `PEXPIRETIME`, pipelined in one round
//!   trip: the fair load. Ours keeps the deadline inside the record instead — a
//!   plain `GET` loads, and a touch also rewrites those 8 bytes — so its load and
//!   touch are measured against this pair together.
//! - [`WatchCas`]: the same compare-and-set without a script: `WATCH key` +
//!   `GETRANGE key 0 7` (the version header only), then `MULTI` / `SET … PXAT` /
//!   `EXEC`, each pair pipelined. `WATCH` belongs to a connection, so every task has
//!   a connection of its own (a pool of dedicated connections, never shared).
//!
//! Both store `version (8 bytes, big-endian) + payload`: the least a versioned record
//! can carry. Neither maps the failure outcomes ours tells apart (absent, another
//! version, not a record); the benchmark never produces them, and a failure is an
//! error that stops the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use session_redis::redis::{self, RedisWrite, ToRedisArgs, Value, aio::MultiplexedConnection};

use crate::contestants::SETUP_TASKS;
use crate::harness::{BoxError, Contestant, Op, Rng, random_hex};
use crate::workload::{deadline, for_each_concurrent};

/// Compare-and-set: `KEYS[1]` the record, `ARGV[1]` the expected 8-byte version,
/// `ARGV[2]` the new record, `ARGV[3]` its deadline in Unix ms. 1 written, else 0.
const FAIR_UPDATE: &str = r"
if redis.call('GETRANGE', KEYS[1], 0, 7) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
  return 1
end
return 0
";

/// Touch: `KEYS[1]` the record, `ARGV[1]` the deadline in Unix ms. 1 moved, else 0.
const FAIR_TOUCH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
return 0
";

/// Length of the version header.
const VERSION_LEN: usize = 8;

/// A record argument: the version header and the payload written straight into the
/// command buffer (one copy, as ours does).
struct Record<'a>(u64, &'a [u8]);

impl ToRedisArgs for Record<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        use std::io::Write as _;
        let mut w = out.writer_for_next_arg();
        let _ = w.write_all(&self.0.to_be_bytes());
        let _ = w.write_all(self.1);
    }
}

fn deadline_ms() -> i64 {
    (deadline().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `SET key record PXAT deadline` with a buffer sized for the payload up front.
fn set_pxat(key: &str, version: u64, payload: &[u8]) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(5, key.len() + VERSION_LEN + payload.len() + 32);
    cmd.arg("SET")
        .arg(key)
        .arg(Record(version, payload))
        .arg("PXAT")
        .arg(deadline_ms());
    cmd
}

/// The version in a record's first 8 bytes.
fn version_of(record: &[u8]) -> Result<u64, BoxError> {
    let head = record
        .get(..VERSION_LEN)
        .ok_or("record shorter than its header")?;
    Ok(u64::from_be_bytes(head.try_into()?))
}

/// What both contestants share: keys, per-key versions, the payload.
struct Sessions {
    keys: Vec<String>,
    versions: Vec<AtomicU64>,
    payload: Bytes,
}

impl Sessions {
    /// Writes version 1 under `n` fresh keys.
    async fn create(
        conn: &MultiplexedConnection,
        prefix: &str,
        n: usize,
        payload: Bytes,
        rng: &mut Rng,
    ) -> Result<Arc<Self>, BoxError> {
        let me = Arc::new(Self {
            keys: (0..n)
                .map(|_| format!("{prefix}{}", random_hex(rng, 32)))
                .collect(),
            versions: (0..n).map(|_| AtomicU64::new(1)).collect(),
            payload,
        });
        let (m, conn) = (me.clone(), conn.clone());
        for_each_concurrent(n, SETUP_TASKS, move |i| {
            let (m, mut conn) = (m.clone(), conn.clone());
            async move {
                let () = set_pxat(&m.keys[i], 1, &m.payload)
                    .query_async(&mut conn)
                    .await?;
                Ok(())
            }
        })
        .await?;
        Ok(me)
    }

    async fn remove(&self, conn: &MultiplexedConnection) -> Result<(), BoxError> {
        let mut conn = conn.clone();
        for chunk in self.keys.chunks(1000) {
            let _: i64 = redis::cmd("UNLINK")
                .arg(chunk)
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }
}

/// The fair limit: `GET` + minimal `EVALSHA` on one multiplexed connection.
pub struct FairCas {
    conn: MultiplexedConnection,
    sessions: Arc<Sessions>,
    update: redis::Script,
    touch: redis::Script,
}

impl FairCas {
    /// Pre-creates `n` records under `prefix` and loads the two scripts.
    pub async fn setup(
        conn: MultiplexedConnection,
        prefix: &str,
        n: usize,
        payload: Bytes,
        rng: &mut Rng,
    ) -> Result<Arc<Self>, BoxError> {
        let sessions = Sessions::create(&conn, prefix, n, payload, rng).await?;
        let (update, touch) = (
            redis::Script::new(FAIR_UPDATE),
            redis::Script::new(FAIR_TOUCH),
        );
        let mut c = conn.clone();
        for s in [&update, &touch] {
            let _: String = s.prepare_invoke().load_async(&mut c).await?;
        }
        Ok(Arc::new(Self {
            conn,
            sessions,
            update,
            touch,
        }))
    }

    /// Removes every record.
    pub async fn teardown(&self) -> Result<(), BoxError> {
        self.sessions.remove(&self.conn).await
    }

    /// `EVALSHA update 1 key expected record deadline`; the new version on success.
    async fn cas(&self, slot: usize, expected: u64, payload: &[u8]) -> Result<u64, BoxError> {
        let key = &self.sessions.keys[slot];
        let new = expected + 1;
        let mut cmd =
            redis::Cmd::with_capacity(7, 40 + key.len() + 2 * VERSION_LEN + payload.len() + 32);
        cmd.arg("EVALSHA")
            .arg(self.update.get_hash())
            .arg(1)
            .arg(key)
            .arg(&expected.to_be_bytes()[..])
            .arg(Record(new, payload))
            .arg(deadline_ms());
        let written: i64 = cmd.query_async(&mut self.conn.clone()).await?;
        if written != 1 {
            return Err("fair compare-and-set refused".into());
        }
        Ok(new)
    }
}

impl Contestant for FairCas {
    async fn op(&self, op: Op, slot: usize, _task: usize) -> Result<(), BoxError> {
        let s = &self.sessions;
        match op {
            Op::Cycle => {
                let got: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&s.keys[slot])
                    .query_async(&mut self.conn.clone())
                    .await?;
                let got = got.ok_or("vanished")?;
                let v = self
                    .cas(slot, version_of(&got)?, &got[VERSION_LEN..])
                    .await?;
                s.versions[slot].store(v, Ordering::Relaxed);
            }
            Op::Update => {
                let expected = s.versions[slot].load(Ordering::Relaxed);
                let v = self.cas(slot, expected, &s.payload).await?;
                s.versions[slot].store(v, Ordering::Relaxed);
            }
            Op::Touch => {
                let moved: i64 = redis::cmd("EVALSHA")
                    .arg(self.touch.get_hash())
                    .arg(1)
                    .arg(&s.keys[slot])
                    .arg(deadline_ms())
                    .query_async(&mut self.conn.clone())
                    .await?;
                if moved != 1 {
                    return Err("vanished".into());
                }
            }
            Op::Load => {
                // Pipelined, not `MULTI`/`EXEC`: the cheapest way to read both, even
                // though a write between the two can pair a record with another
                // version's deadline (a limit need not be a snapshot).
                let (got, deadline): (Option<Vec<u8>>, i64) = redis::pipe()
                    .cmd("GET")
                    .arg(&s.keys[slot])
                    .cmd("PEXPIRETIME")
                    .arg(&s.keys[slot])
                    .query_async(&mut self.conn.clone())
                    .await?;
                version_of(&got.ok_or("vanished")?)?;
                if deadline < 0 {
                    return Err("no deadline".into());
                }
            }
            Op::Create => return Err("not a compare-and-set".into()),
        }
        Ok(())
    }

    async fn remove_created(&self, _n: usize) -> Result<(), BoxError> {
        Ok(())
    }
}

/// `WATCH` + `GETRANGE`, then `MULTI`/`SET … PXAT`/`EXEC`, on a connection per task.
pub struct WatchCas {
    /// One per task, each used by its task only (`WATCH` is per connection).
    conns: Vec<MultiplexedConnection>,
    sessions: Arc<Sessions>,
}

impl WatchCas {
    /// Opens `tasks` connections to `url` and pre-creates `n` records under `prefix`.
    pub async fn setup(
        url: &str,
        tasks: usize,
        prefix: &str,
        n: usize,
        payload: Bytes,
        rng: &mut Rng,
    ) -> Result<Arc<Self>, BoxError> {
        let client = redis::Client::open(url)?;
        let mut conns = Vec::with_capacity(tasks);
        for _ in 0..tasks.max(1) {
            conns.push(client.get_multiplexed_async_connection().await?);
        }
        let sessions = Sessions::create(&conns[0], prefix, n, payload, rng).await?;
        Ok(Arc::new(Self { conns, sessions }))
    }

    /// Removes every record.
    pub async fn teardown(&self) -> Result<(), BoxError> {
        self.sessions.remove(&self.conns[0]).await
    }

    /// Step 2: `MULTI`/`SET`/`EXEC`; `EXEC` answers nil when the watched key changed.
    async fn commit(
        conn: &mut MultiplexedConnection,
        key: &str,
        new: u64,
        payload: &[u8],
    ) -> Result<(), BoxError> {
        let mut pipe = redis::pipe();
        pipe.atomic().add_command(set_pxat(key, new, payload));
        let reply: Value = pipe.query_async(conn).await?;
        match reply {
            Value::Array(r) if matches!(r.as_slice(), [Value::Okay]) => Ok(()),
            Value::Nil => Err("watched key changed".into()),
            other => Err(format!("unexpected EXEC reply {other:?}").into()),
        }
    }
}

impl Contestant for WatchCas {
    async fn op(&self, op: Op, slot: usize, task: usize) -> Result<(), BoxError> {
        let s = &self.sessions;
        let key = &s.keys[slot];
        let mut conn = self
            .conns
            .get(task)
            .ok_or("no connection for task")?
            .clone();
        match op {
            Op::Cycle => {
                // The load is the GET, watched in the same round trip.
                let (_, got): ((), Option<Vec<u8>>) = redis::pipe()
                    .cmd("WATCH")
                    .arg(key)
                    .cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await?;
                let got = got.ok_or("vanished")?;
                let v = version_of(&got)? + 1;
                Self::commit(&mut conn, key, v, &got[VERSION_LEN..]).await?;
                s.versions[slot].store(v, Ordering::Relaxed);
            }
            Op::Update => {
                let expected = s.versions[slot].load(Ordering::Relaxed);
                let (_, head): ((), Vec<u8>) = redis::pipe()
                    .cmd("WATCH")
                    .arg(key)
                    .cmd("GETRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(VERSION_LEN - 1)
                    .query_async(&mut conn)
                    .await?;
                if head != expected.to_be_bytes() {
                    let () = redis::cmd("UNWATCH").query_async(&mut conn).await?;
                    return Err("another version".into());
                }
                Self::commit(&mut conn, key, expected + 1, &s.payload).await?;
                s.versions[slot].store(expected + 1, Ordering::Relaxed);
            }
            Op::Load | Op::Touch | Op::Create => return Err("not a compare-and-set".into()),
        }
        Ok(())
    }

    async fn remove_created(&self, _n: usize) -> Result<(), BoxError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The yardsticks must be real compare-and-sets, or the ratios against them mean
    /// nothing: each writes on the expected version and refuses any other.
    #[tokio::test]
    async fn both_yardsticks_refuse_a_stale_version() -> Result<(), BoxError> {
        let Ok(url) = std::env::var("SESSION_TEST_REDIS_URL") else {
            eprintln!("SESSION_TEST_REDIS_URL unset; skipped");
            return Ok(());
        };
        let mut rng = Rng::new(22);
        let prefix = format!("bench-test:{}:", random_hex(&mut rng, 8));
        let conn = redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        let payload = Bytes::from_static(b"payload");
        let fair = FairCas::setup(
            conn.clone(),
            &format!("{prefix}fair:"),
            1,
            payload.clone(),
            &mut rng,
        )
        .await?;
        let watch =
            WatchCas::setup(&url, 1, &format!("{prefix}watch:"), 1, payload, &mut rng).await?;

        // The expected version: written, and the version moves on.
        fair.op(Op::Update, 0, 0).await?;
        watch.op(Op::Update, 0, 0).await?;
        fair.op(Op::Cycle, 0, 0).await?;
        watch.op(Op::Cycle, 0, 0).await?;
        for s in [&fair.sessions, &watch.sessions] {
            assert_eq!(s.versions[0].load(Ordering::Relaxed), 3);
        }
        fair.op(Op::Touch, 0, 0).await?;
        fair.op(Op::Load, 0, 0).await?;

        // Someone else wrote version 9: both refuse, and the record stays theirs.
        let mut c = conn.clone();
        for s in [&fair.sessions, &watch.sessions] {
            let () = set_pxat(&s.keys[0], 9, b"theirs")
                .query_async(&mut c)
                .await?;
        }
        assert!(fair.op(Op::Update, 0, 0).await.is_err());
        assert!(watch.op(Op::Update, 0, 0).await.is_err());
        for s in [&fair.sessions, &watch.sessions] {
            let got: Vec<u8> = redis::cmd("GET")
                .arg(&s.keys[0])
                .query_async(&mut c)
                .await?;
            assert_eq!(version_of(&got)?, 9);
            assert_eq!(&got[VERSION_LEN..], b"theirs");
        }

        // The touch of an absent key moves nothing and says so; its load finds nothing.
        fair.teardown().await?;
        assert!(fair.op(Op::Touch, 0, 0).await.is_err());
        assert!(fair.op(Op::Load, 0, 0).await.is_err());
        watch.teardown().await?;
        Ok(())
    }
}
