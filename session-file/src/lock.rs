//! Per-key mutual exclusion: within the process and across processes.
//!
//! Two layers, always taken in this order:
//!
//! 1. [`KeyLocks`]: an async mutex per key, so tasks of this process queue on the
//!    runtime instead of parking blocking-pool threads on the OS lock.
//! 2. [`OsLock`]: `flock` on `<key>.lock` in the key's shard, so several processes
//!    sharing the directory exclude each other. The lock file, not the record, is
//!    locked because records are replaced by rename, which would swap the locked
//!    inode under a waiter.
//!
//! Lock files are removed when their record is gone, so they do not accumulate.
//! That is safe because removal happens only while holding the lock, and a locker
//! checks after `flock` that the path still names the inode it locked; if not
//! (someone removed or replaced it meanwhile), it starts over.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use session_core::{DecodeError, Error, StorageKey};
use tokio::sync::OwnedMutexGuard;

use crate::fsio::fs_error;
use crate::layout;

type KeyMutex = tokio::sync::Mutex<()>;

fn malformed(reason: &'static str) -> Error {
    Error::Decode(DecodeError::Malformed { reason })
}

const LOCK_SHARDS: usize = 64;
/// A map shard is cleaned of unused entries once it has this many (or twice its
/// size after the last cleaning).
const MIN_CLEAN_LEN: usize = 256;

#[derive(Default)]
struct LockShard {
    /// Weak, so an entry costs nothing once its last holder and waiter are gone;
    /// dead entries are dropped in amortised batches. This also stays correct when
    /// a task waiting for a lock is cancelled.
    map: HashMap<StorageKey, Weak<KeyMutex>>,
    clean_at: usize,
}

/// In-process per-key async locks.
pub(crate) struct KeyLocks {
    shards: Box<[Mutex<LockShard>]>,
}

impl fmt::Debug for KeyLocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLocks").finish_non_exhaustive()
    }
}

/// Holds a key's in-process lock until dropped.
pub(crate) type KeyGuard = OwnedMutexGuard<()>;

impl KeyLocks {
    pub fn new() -> Self {
        Self {
            shards: (0..LOCK_SHARDS)
                .map(|_| {
                    Mutex::new(LockShard {
                        map: HashMap::new(),
                        clean_at: MIN_CLEAN_LEN,
                    })
                })
                .collect(),
        }
    }

    fn mutex(&self, key: &StorageKey) -> Arc<KeyMutex> {
        // Keys are uniform hex; bytes 2.. are independent of the file shard.
        let idx = usize::from_str_radix(&key.as_str()[2..6], 16).unwrap_or(0) % LOCK_SHARDS;
        // A panic while this std mutex is held cannot leave the map inconsistent
        // (single map calls), so poisoning is ignored.
        let mut shard = self.shards[idx].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = shard.map.get(key).and_then(Weak::upgrade) {
            return m;
        }
        if shard.map.len() >= shard.clean_at {
            shard.map.retain(|_, w| w.strong_count() > 0);
            shard.clean_at = (shard.map.len() * 2).max(MIN_CLEAN_LEN);
        }
        let m = Arc::new(KeyMutex::new(()));
        shard.map.insert(key.clone(), Arc::downgrade(&m));
        m
    }

    /// Waits for `key`'s in-process lock.
    pub async fn lock(&self, key: &StorageKey) -> KeyGuard {
        self.mutex(key).lock_owned().await
    }

    /// Takes `key`'s in-process lock if it is free (for the sweeper, which skips
    /// busy keys rather than waiting).
    pub fn try_lock(&self, key: &StorageKey) -> Option<KeyGuard> {
        self.mutex(key).try_lock_owned().ok()
    }
}

/// A held `flock` on a key's lock file. Dropping it releases the lock (by closing
/// the descriptor) and leaves the lock file; [`OsLock::release`] removes the file
/// first when the key has no record any more.
#[derive(Debug)]
pub(crate) struct OsLock<'a> {
    shard: BorrowedFd<'a>,
    name: String,
    fd: OwnedFd,
}

impl<'a> OsLock<'a> {
    /// Takes the cross-process lock of `key`, waiting for other holders.
    pub fn acquire(shard: BorrowedFd<'a>, key: &StorageKey) -> Result<Self, Error> {
        // A waiting flock never reports "would block"; mapped anyway to stay total.
        Self::take(shard, key, true)?.ok_or_else(|| fs_error("lock key", Errno::WOULDBLOCK))
    }

    /// Takes the cross-process lock of `key` if no one holds it; `None` otherwise.
    pub fn try_acquire(shard: BorrowedFd<'a>, key: &StorageKey) -> Result<Option<Self>, Error> {
        Self::take(shard, key, false)
    }

    fn take(shard: BorrowedFd<'a>, key: &StorageKey, wait: bool) -> Result<Option<Self>, Error> {
        let name = layout::lock_name(key);
        let op = if wait {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::NonBlockingLockExclusive
        };
        loop {
            // NONBLOCK: opening a FIFO planted as the lock file would otherwise wait
            // for a writer forever (it does not make `flock` non-blocking; `op`
            // decides that).
            let fd = rustix::fs::openat(
                shard,
                &name,
                OFlags::RDONLY
                    | OFlags::CREATE
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| match e {
                // Something planted as the lock file: never followed or used, and
                // reported for this key only, like a malformed record.
                Errno::LOOP => malformed("lock path is a symbolic link"),
                Errno::ISDIR | Errno::NXIO => malformed("lock path is not a regular file"),
                e => fs_error("open lock file", e),
            })?;
            let held = rustix::fs::fstat(&fd).map_err(|e| fs_error("stat lock file", e))?;
            if FileType::from_raw_mode(held.st_mode) != FileType::RegularFile {
                return Err(malformed("lock path is not a regular file"));
            }
            // Someone else's file is never locked (its owner could hold the lock
            // forever, or have linked it to a file of theirs).
            if !crate::trust::owned_by_this_user(&held) {
                return Err(malformed("lock file is owned by another user"));
            }
            match rustix::fs::flock(&fd, op) {
                Ok(()) => {}
                Err(Errno::WOULDBLOCK) if !wait => return Ok(None),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(fs_error("lock key", e)),
            }
            match rustix::fs::statat(shard, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(now) if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) => {
                    return Ok(Some(Self { shard, name, fd }));
                }
                // Removed or replaced while we waited: that inode locks nothing now.
                Ok(_) | Err(Errno::NOENT) => continue,
                Err(e) => return Err(fs_error("stat lock file", e)),
            }
        }
    }

    /// Releases the lock; if `record_exists` is false, removes the lock file first
    /// (while still holding it, see the module docs).
    pub fn release(self, record_exists: bool) -> Result<(), Error> {
        if !record_exists {
            crate::fsio::remove(self.shard, &self.name, "remove lock file")?;
        }
        drop(self.fd);
        Ok(())
    }
}
