//! The Lua scripts behind compare-and-set and touch, and how they are sent.
//!
//! Each script reads and writes exactly one key, declared in `KEYS`, so it runs on
//! the node that owns the key's slot and can never raise `CROSSSLOT`. Redis runs a
//! script as one atomic step: no other client's command interleaves, which is what
//! makes the version check and the write a single compare-and-set.
//!
//! Scripts go out as `EVALSHA`; a server that does not have the script cached (a
//! restart, `SCRIPT FLUSH`, a failover to a fresh replica) answers `NOSCRIPT`, and the
//! same call is repeated once as `EVAL` with the source, which also caches it there.
//! Unlike `SCRIPT LOAD` + retry (what `redis::Script` does) the fallback is one round
//! trip and goes to the key's own node, which matters on a cluster.
//!
//! Create and expire need no script: `SET key value NX PXAT deadline` and `DEL key`
//! are single atomic commands.
//!
//! A large update keeps its payload out of Lua: every byte a script receives costs
//! the server ≈1.2 µs per KiB (measured on Redis 7.0, see BENCHMARKS.md), so
//! above [`RedisConfig::large_update_threshold`](crate::RedisConfig::large_update_threshold)
//! compare-and-set is one `MULTI`/`EXEC` on the record's key of [`CHECK`], a plain
//! `SET key record NX PXAT deadline`, and [`CLEANUP`]; see [`transaction`].

use std::io::Write as _;

use redis::{Cmd, RedisWrite, ToRedisArgs};

/// A Lua script together with its SHA-1, computed once.
#[derive(Debug)]
pub(crate) struct Script {
    source: &'static str,
    sha1: String,
}

impl Script {
    fn new(source: &'static str) -> Self {
        let sha1 = redis::Script::new(source).get_hash().to_owned();
        Self { source, sha1 }
    }

    /// `EVALSHA sha 1 key args…`.
    pub(crate) fn evalsha(&self, key: &Arg<'_>, args: &[Arg<'_>]) -> Cmd {
        self.command("EVALSHA", self.sha1.as_bytes(), key, args)
    }

    /// `EVAL source 1 key args…`: the `NOSCRIPT` fallback.
    pub(crate) fn eval(&self, key: &Arg<'_>, args: &[Arg<'_>]) -> Cmd {
        self.command("EVAL", self.source.as_bytes(), key, args)
    }

    fn command(&self, verb: &str, body: &[u8], key: &Arg<'_>, args: &[Arg<'_>]) -> Cmd {
        let data = body.len() + 1 + key.len() + args.iter().map(Arg::len).sum::<usize>();
        let mut cmd = sized_cmd(verb, 3 + args.len(), data);
        cmd.arg(body).arg(1).arg(key);
        for a in args {
            cmd.arg(a);
        }
        cmd
    }
}

/// Compare-and-set.
///
/// `KEYS[1]` the record; `ARGV[1]` the format tag and expected version (9 bytes);
/// `ARGV[2]` the new record; `ARGV[3]` its deadline in Unix ms.
/// Returns 1 written, 0 absent or expired, -1 another version, -2 not a record of ours.
const UPDATE: &str = r"
local head = redis.call('GETRANGE', KEYS[1], 0, 16)
if #head == 17 and string.sub(head, 1, 9) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
  return 1
end
if #head == 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if #head == 17 and string.byte(head, 1) == 1 then
  return -1
end
return -2
";

/// What [`CHECK`] writes under an absent key so that the `SET … NX` after it in the
/// same transaction does nothing, and what [`CLEANUP`] removes again. Nobody ever sees
/// it: `MULTI`/`EXEC` runs the three commands with nothing in between. Shorter than a
/// record header, with format byte 0, so even a value left behind by a bug would read
/// as "not a record" rather than as a session. The Lua sources spell it as
/// `'\0session-redis'`.
#[cfg(test)] // The Lua sources spell it; the tests check they agree.
pub(crate) const PLACEHOLDER: &[u8] = b"\0session-redis";

/// Step 1 of a large compare-and-set (see [`transaction`]).
///
/// `KEYS[1]` the record; `ARGV[1]` the format tag and expected version (9 bytes).
/// Same tests, in the same order, as [`UPDATE`], but instead of writing the record it
/// prepares the key for the `SET … NX` that follows: the expected record → `DEL`, 1;
/// absent or expired → the placeholder, 0; another version → -1 and not a record of
/// ours → -2, the key left alone (it exists, so the `SET … NX` is a no-op).
const CHECK: &str = r"
local head = redis.call('GETRANGE', KEYS[1], 0, 16)
if #head == 17 and string.sub(head, 1, 9) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
if #head == 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], '\0session-redis')
  return 0
end
if #head == 17 and string.byte(head, 1) == 1 then
  return -1
end
return -2
";

/// Step 3 of a large compare-and-set (see [`transaction`]): deletes the placeholder.
///
/// `KEYS[1]` the record. Returns 1 when the value was exactly `PLACEHOLDER` (and is
/// now deleted), else 0 and the key is left alone. The exact comparison — not "shorter
/// than a header" — keeps a short foreign string under a session key intact; `pcall`
/// keeps a key of another type from turning into an error; `GET` runs only when the
/// length already matches, so a large record is never copied into Lua.
const CLEANUP: &str = r"
if redis.pcall('STRLEN', KEYS[1]) == 14 and redis.call('GET', KEYS[1]) == '\0session-redis' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// Moves a record's deadline without rewriting its payload.
///
/// `KEYS[1]` the record; `ARGV[1]` the new deadline as the 8 header bytes;
/// `ARGV[2]` the same deadline in Unix ms.
/// Returns 1 moved, 0 absent or expired, -2 not a record of ours.
///
/// The header is rewritten before `PEXPIREAT`: a deadline in the past deletes the key
/// there and then, and a `SETRANGE` after it would create the key anew.
const TOUCH: &str = r"
local head = redis.call('GETRANGE', KEYS[1], 0, 16)
if #head == 17 and string.byte(head, 1) == 1 then
  redis.call('SETRANGE', KEYS[1], 9, ARGV[1])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return 1
end
if #head == 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
return -2
";

/// Step 2 of a load-and-touch (see [`load_and_touch`]): moves a record's deadline
/// only when it is due.
///
/// `KEYS[1]` the record; `ARGV[1]` the new deadline as the 8 header bytes;
/// `ARGV[2]` the same deadline in Unix ms; `ARGV[3]` the due-before bound as 8
/// big-endian bytes (never negative, so comparing the strings compares the numbers,
/// like the version in [`UPDATE`]).
/// Returns 1 moved, 2 live but not due (nothing written), 0 absent or expired, -2
/// not a record of ours. Header before `PEXPIREAT`, as in [`TOUCH`].
const TOUCH_IF_DUE: &str = r"
local head = redis.call('GETRANGE', KEYS[1], 0, 16)
if #head == 17 and string.byte(head, 1) == 1 then
  if string.sub(head, 10, 17) >= ARGV[3] then
    return 2
  end
  redis.call('SETRANGE', KEYS[1], 9, ARGV[1])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return 1
end
if #head == 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
return -2
";

/// The load and a due touch in one round trip: one `MULTI`/`EXEC` on `key` of
///
/// 1. `GET key` — the record as it is before the touch (its header holds the
///    previous deadline);
/// 2. `EVAL TOUCH_IF_DUE 1 key new-header-deadline new-deadline-ms due-before`.
///
/// The payload reaches the client from a plain `GET`, never through Lua, so a large
/// record costs what a `load` costs (the large-payload concern of [`transaction`]).
/// `EXEC` runs both with nothing in between. The script goes as `EVAL`, not
/// `EVALSHA`, for the reason given at [`transaction`]. Both commands name the same
/// key, so the transaction is valid on a cluster.
pub(crate) fn load_and_touch(
    scripts: &Scripts,
    get: Cmd,
    key: &Arg<'_>,
    args: &[Arg<'_>],
) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .ignore_errors()
        .add_command(get)
        .add_command(scripts.touch_if_due.eval(key, args));
    pipe
}

/// The store's scripts, built once per store.
#[derive(Debug)]
pub(crate) struct Scripts {
    /// See [`UPDATE`].
    pub(crate) update: Script,
    /// See [`TOUCH`].
    pub(crate) touch: Script,
    /// See [`CHECK`].
    pub(crate) check: Script,
    /// See [`CLEANUP`].
    pub(crate) cleanup: Script,
    /// See [`TOUCH_IF_DUE`].
    pub(crate) touch_if_due: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            update: Script::new(UPDATE),
            touch: Script::new(TOUCH),
            check: Script::new(CHECK),
            cleanup: Script::new(CLEANUP),
            touch_if_due: Script::new(TOUCH_IF_DUE),
        }
    }
}

/// The large-payload compare-and-set: one `MULTI`/`EXEC` on `key` of
///
/// 1. `EVAL CHECK 1 key expected` — on the expected record `DEL`s it (1); on an absent
///    key writes `PLACEHOLDER` (0); otherwise leaves the key alone (-1, -2);
/// 2. `SET key record NX PXAT deadline` — writes only where step 1 deleted the key;
/// 3. `EVAL CLEANUP 1 key` — deletes the placeholder again (1 exactly when step 1
///    returned 0).
///
/// `record` (header + payload) reaches the server only as an argument of a plain
/// `SET`, never as a Lua string. `EXEC` runs the three commands as one isolated step,
/// so no client observes the deleted key or the placeholder, and a connection lost
/// before `EXEC` discards all of it. Both scripts go as `EVAL` with their source, not
/// `EVALSHA`: inside `MULTI` a `NOSCRIPT` cannot be retried, and a failed step 1 would
/// let step 2 create a record under an absent key. Every command names the same key,
/// so the transaction is valid on a cluster (one slot, one node).
///
/// The pipeline ignores per-command errors (`ignore_errors`), so the reply is the
/// array of the three results, errors included, for the caller to map one by one.
pub(crate) fn transaction(
    scripts: &Scripts,
    key: &Arg<'_>,
    expected: &[u8],
    record: &Arg<'_>,
    deadline_ms: i64,
) -> redis::Pipeline {
    let set = set_nx(key, record, deadline_ms);
    let mut pipe = redis::pipe();
    pipe.atomic()
        .ignore_errors()
        .add_command(scripts.check.eval(key, &[Arg(&[expected])]))
        .add_command(set)
        .add_command(scripts.cleanup.eval(key, &[]));
    pipe
}

/// A command `verb` whose buffers already hold `args` more arguments of `data` bytes
/// in all. `redis::cmd` starts empty and doubles its buffer while a payload is
/// appended: for a 1 KiB record that was a fifth of the client's instructions per
/// update (callgrind), all of it `realloc` and copying.
pub(crate) fn sized_cmd(verb: &str, args: usize, data: usize) -> Cmd {
    let mut cmd = Cmd::with_capacity(1 + args, verb.len() + data);
    cmd.arg(verb);
    cmd
}

/// `SET key record NX PXAT deadline_ms`: writes only where the key is absent (or
/// expired), with the record's deadline. A create, and step 2 of [`transaction`].
pub(crate) fn set_nx(key: &Arg<'_>, record: &Arg<'_>, deadline_ms: i64) -> Cmd {
    // An i64 has at most 20 characters.
    let mut cmd = sized_cmd("SET", 5, key.len() + record.len() + "NXPXAT".len() + 20);
    cmd.arg(key)
        .arg(record)
        .arg("NX")
        .arg("PXAT")
        .arg(deadline_ms);
    cmd
}

/// One command argument assembled from several byte slices (a key prefix and a
/// storage key; a record header and a payload), written straight into the command
/// buffer so a payload is copied once, not first into a temporary `Vec`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arg<'a>(pub(crate) &'a [&'a [u8]]);

impl Arg<'_> {
    /// The argument's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.0.iter().map(|part| part.len()).sum()
    }
}

impl ToRedisArgs for Arg<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut w = out.writer_for_next_arg();
        for part in self.0 {
            // The writer appends to the command's in-memory buffer, which cannot fail.
            let _ = w.write_all(part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{DEADLINE_OFFSET, FORMAT, HEADER_LEN};

    #[test]
    fn scripts_agree_with_the_record_layout() {
        // The scripts spell the layout as Lua literals; keep them in step.
        assert_eq!((FORMAT, HEADER_LEN, DEADLINE_OFFSET), (1, 17, 9));
        assert!(UPDATE.contains("GETRANGE', KEYS[1], 0, 16"));
        assert!(TOUCH.contains("SETRANGE', KEYS[1], 9,"));
        assert!(TOUCH_IF_DUE.contains("GETRANGE', KEYS[1], 0, 16"));
        assert!(TOUCH_IF_DUE.contains("string.sub(head, 10, 17)"));
        assert!(TOUCH_IF_DUE.contains("SETRANGE', KEYS[1], 9,"));
    }

    #[test]
    fn placeholder_is_spelled_alike_everywhere() {
        // The Lua literal of PLACEHOLDER: `\0` then the printable rest.
        assert_eq!(PLACEHOLDER[0], 0);
        let rest = std::str::from_utf8(&PLACEHOLDER[1..]).unwrap();
        assert!(rest.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'));
        let literal = format!("'\\0{rest}'");
        assert_eq!(CHECK.matches(&literal).count(), 1);
        assert_eq!(CLEANUP.matches(&literal).count(), 1);
        assert!(CLEANUP.contains(&format!("STRLEN', KEYS[1]) == {}", PLACEHOLDER.len())));
        // Never mistaken for a record, even if it were ever seen.
        assert!(PLACEHOLDER.len() < HEADER_LEN);
        assert!(CHECK.contains("GETRANGE', KEYS[1], 0, 16"));
    }

    #[test]
    fn transaction_is_multi_eval_set_eval_exec_on_one_key() {
        let scripts = Scripts::new();
        let key = Arg(&[b"p:", b"k"]);
        let record = Arg(&[b"HEAD", b"payload"]);
        let pipe = transaction(&scripts, &key, b"tag", &record, 42);
        assert!(pipe.is_transaction());
        let packed = pipe.get_packed_pipeline();
        let text = String::from_utf8_lossy(&packed);
        let verbs: Vec<&str> = ["MULTI", "EVAL", "SET", "EXEC"]
            .into_iter()
            .filter(|v| text.contains(&format!("\r\n{v}\r\n")))
            .collect();
        assert_eq!(verbs, ["MULTI", "EVAL", "SET", "EXEC"], "{text}");
        assert!(!text.contains("EVALSHA"), "{text}");
        // The record goes only to SET, as one argument.
        assert_eq!(text.matches("HEADpayload").count(), 1);
        assert!(text.contains("$11\r\nHEADpayload\r\n$2\r\nNX\r\n$4\r\nPXAT\r\n$2\r\n42\r\n"));
        // Every command names the key.
        assert_eq!(text.matches("$3\r\np:k\r\n").count(), 3);
    }

    #[test]
    fn load_and_touch_is_multi_get_eval_exec_on_one_key() {
        let scripts = Scripts::new();
        let key = Arg(&[b"p:", b"k"]);
        let mut get = redis::cmd("GET");
        get.arg(key);
        let args = [Arg(&[b"HDR8BYTE"]), Arg(&[b"42"]), Arg(&[b"DUE8BYTE"])];
        let pipe = load_and_touch(&scripts, get, &key, &args);
        assert!(pipe.is_transaction());
        let text = String::from_utf8_lossy(&pipe.get_packed_pipeline()).into_owned();
        let order: Vec<usize> = [
            "\r\nMULTI\r\n",
            "\r\nGET\r\n",
            "\r\nEVAL\r\n",
            "\r\nEXEC\r\n",
        ]
        .iter()
        .map(|verb| text.find(verb).unwrap_or(usize::MAX))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(!text.contains("EVALSHA"), "{text}");
        assert!(
            text.contains(TOUCH_IF_DUE),
            "the script goes with its source"
        );
        // Both commands name the key.
        assert_eq!(text.matches("$3\r\np:k\r\n").count(), 2);
    }

    #[test]
    fn arg_joins_its_parts_into_one_argument() {
        let mut cmd = redis::cmd("SET");
        cmd.arg(Arg(&[b"pre:", b"abc"])).arg(Arg(&[b"", b"v"]));
        assert_eq!(
            cmd.get_packed_command(),
            b"*3\r\n$3\r\nSET\r\n$7\r\npre:abc\r\n$1\r\nv\r\n".to_vec()
        );
    }

    #[test]
    fn sized_commands_pack_like_plain_ones() {
        let scripts = Scripts::new();
        let key = Arg(&[b"pre:", b"abc"]);
        let args = [Arg(&[b"tag"]), Arg(&[b"HEAD", &[7; 1000]]), Arg(&[b"42"])];
        let mut plain = redis::cmd("EVALSHA");
        plain.arg(&scripts.update.sha1).arg(1).arg(key);
        for a in &args {
            plain.arg(a);
        }
        let sized = scripts.update.evalsha(&key, &args);
        assert_eq!(sized.get_packed_command(), plain.get_packed_command());

        let record = Arg(&[b"HEAD", b"payload"]);
        for deadline in [1, i64::MAX, i64::MIN] {
            let set = set_nx(&key, &record, deadline);
            let plain = format!(
                "*6\r\n$3\r\nSET\r\n$7\r\npre:abc\r\n$11\r\nHEADpayload\r\n$2\r\nNX\r\n\
                 $4\r\nPXAT\r\n${}\r\n{deadline}\r\n",
                deadline.to_string().len()
            );
            assert_eq!(set.get_packed_command(), plain.as_bytes());
            // The estimate holds every argument but the verb.
            let data: usize = set.args_iter().skip(1).map(|a| arg_len(&a)).sum();
            assert!(data <= key.len() + record.len() + "NXPXAT".len() + 20);
        }
        assert_eq!(key.len(), 7);
    }

    fn arg_len(a: &redis::Arg<&[u8]>) -> usize {
        match a {
            redis::Arg::Simple(bytes) => bytes.len(),
            _ => 0,
        }
    }

    #[test]
    fn sha_matches_redis() {
        // SHA-1 of the exact source is what the server caches under.
        let s = Script::new("return 1");
        assert_eq!(s.sha1, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    }
}
