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
        let mut cmd = redis::cmd(verb);
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

/// The store's scripts, built once per store.
#[derive(Debug)]
pub(crate) struct Scripts {
    /// See [`UPDATE`].
    pub(crate) update: Script,
    /// See [`TOUCH`].
    pub(crate) touch: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            update: Script::new(UPDATE),
            touch: Script::new(TOUCH),
        }
    }
}

/// One command argument assembled from several byte slices (a key prefix and a
/// storage key; a record header and a payload), written straight into the command
/// buffer so a payload is copied once, not first into a temporary `Vec`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arg<'a>(pub(crate) &'a [&'a [u8]]);

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
    fn sha_matches_redis() {
        // SHA-1 of the exact source is what the server caches under.
        let s = Script::new("return 1");
        assert_eq!(s.sha1, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    }
}
