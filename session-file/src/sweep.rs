//! `delete_expired`: walk the shards, remove expired records and crash leftovers.

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;
use session_core::time::OffsetDateTime;
use session_core::{Error, StorageKey};

use crate::fsio::{self, fs_error};
use crate::layout::{self, Entry};
use crate::lock::OsLock;
use crate::store::{Inner, run_blocking};
use crate::trust;

/// What a shard directory holds for one key.
#[derive(Debug, Default, Clone, Copy)]
struct Found {
    record: bool,
    tmp: bool,
    lock: bool,
}

/// Removes every expired record and every stale temporary or orphaned lock file,
/// and returns how many records it removed.
///
/// One blocking call lists a shard; then its keys are handled `sweep_batch` at a
/// time, each batch one blocking call, so a huge directory never ties up a
/// blocking thread or any lock for long. Keys in use (either lock held) are skipped
/// and left for the next sweep, so the sweeper never waits on a request.
pub(crate) async fn delete_expired(inner: Arc<Inner>) -> Result<u64, Error> {
    let shards = {
        let inner = Arc::clone(&inner);
        run_blocking(move || list_shards(&inner)).await?
    };
    let mut removed = 0;
    for shard in shards {
        let keys = {
            let inner = Arc::clone(&inner);
            run_blocking(move || list_shard(&inner, shard)).await?
        };
        for batch in keys.chunks(inner.sweep_batch) {
            let inner = Arc::clone(&inner);
            let batch = batch.to_vec();
            removed += run_blocking(move || sweep_batch(&inner, shard, &batch)).await?;
        }
    }
    Ok(removed)
}

/// The shard directories that exist. Anything else in the root (stray files,
/// symlinks, foreign names) is ignored.
fn list_shards(inner: &Inner) -> Result<Vec<usize>, Error> {
    let root = inner.root.fd();
    let mut shards = Vec::new();
    for name in fsio::list_dir(root)? {
        let Some(index) = layout::parse_shard_name(&name) else {
            continue;
        };
        // lstat: a symlink named like a shard is not followed.
        match rustix::fs::statat(root, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                shards.push(index);
            }
            Ok(_) | Err(Errno::NOENT) => {}
            Err(e) => return Err(fs_error("stat shard directory", e)),
        }
    }
    shards.sort_unstable();
    Ok(shards)
}

/// The keys in one shard that have anything on disk, and what.
fn list_shard(inner: &Inner, shard: usize) -> Result<Vec<(StorageKey, Found)>, Error> {
    let dir = match inner.root.shard_by_index(shard, false) {
        Ok(Some(dir)) => dir,
        Ok(None) => return Ok(Vec::new()),
        // A shard directory another user owns or can write to: left alone, like an
        // undecodable record; requests for its keys get the error.
        Err(e) if trust::is_untrusted(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut keys: BTreeMap<StorageKey, Found> = BTreeMap::new();
    for name in fsio::list_dir(dir)? {
        match layout::parse_entry(shard, &name) {
            Some(Entry::Record(k)) => keys.entry(k).or_default().record = true,
            Some(Entry::Tmp(k)) => keys.entry(k).or_default().tmp = true,
            Some(Entry::Lock(k)) => keys.entry(k).or_default().lock = true,
            None => {}
        }
    }
    Ok(keys.into_iter().collect())
}

/// What the lock-free look at a record says to do.
fn needs_lock(dir: BorrowedFd<'_>, key: &StorageKey, found: Found, now: OffsetDateTime) -> bool {
    if found.tmp {
        return true;
    }
    if !found.record {
        // Only a lock file: orphaned by a crash, or in use right now.
        return found.lock;
    }
    match fsio::read_header(dir, key, false) {
        Ok(Some((header, _))) => !header.is_live(now),
        // Removed meanwhile: maybe an orphaned lock file is left.
        Ok(None) => found.lock,
        // Unreadable records are left for an operator (or `expire`); they never
        // stop the sweep of other keys.
        Err(_) => false,
    }
}

fn sweep_batch(inner: &Inner, shard: usize, batch: &[(StorageKey, Found)]) -> Result<u64, Error> {
    let Some(dir) = inner.root.shard_by_index(shard, false)? else {
        return Ok(0);
    };
    let now = inner.clock.now();
    let mut removed = 0;
    let mut changed = false;
    for (key, found) in batch {
        if !needs_lock(dir, key, *found, now) {
            continue;
        }
        #[cfg(test)]
        tests::BETWEEN_LOOK_AND_LOCK.with_borrow_mut(|hook| {
            if let Some(hook) = hook {
                hook(key);
            }
        });
        let Some(_guard) = inner.locks.try_lock(key) else {
            continue;
        };
        let lock = match OsLock::try_acquire(dir, key) {
            Ok(Some(lock)) => lock,
            Ok(None) => continue,
            // A planted symlink as lock file: leave the key alone, sweep the rest.
            Err(Error::Decode(_)) => continue,
            Err(e) => return Err(e),
        };
        // Re-check under the lock: a create may have replaced the expired record.
        let exists = match fsio::read_header(dir, key, false) {
            Ok(Some((header, _))) if !header.is_live(now) => {
                if fsio::remove(dir, layout::record_name(key), "remove expired record")? {
                    removed += 1;
                    changed = true;
                }
                false
            }
            Ok(Some(_)) | Err(Error::Decode(_)) => true,
            Ok(None) => false,
            Err(e) => return Err(e),
        };
        // Holding the lock proves no writer is using the temporary file: it is a
        // leftover of a crash, however young.
        if fsio::remove(dir, &layout::tmp_name(key), "remove stale temporary file")? {
            changed = true;
        }
        lock.release(exists)?;
    }
    if changed {
        fsio::sync_dir(dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;

    use session_core::time::Duration;
    use session_core::{Clock, SaveMode, SessionInterface, SessionToken};

    use super::*;
    use crate::store::tests::TestStore;

    /// A hook at the race window of `sweep_batch`: after the lock-free look said
    /// "expired", before the key's locks are taken. Per thread, so a test that
    /// calls `sweep_batch` on its own thread sees only its own hook.
    type Hook = Box<dyn FnMut(&StorageKey)>;
    thread_local! {
        pub(crate) static BETWEEN_LOOK_AND_LOCK: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// A create that lands between the sweep's lock-free look at an expired record
    /// and its lock replaces that record with a live one: the re-check under the
    /// lock must see it and keep it. (The suite's `sweep_racing_creates_keeps_new_records`
    /// races the same way but cannot hit a window of microseconds; this places the
    /// create inside it.) Also: the removal a sweep makes is synced (the shard
    /// directory) before the batch returns.
    #[test]
    fn a_create_between_the_look_and_the_lock_is_kept() -> Result<(), Error> {
        let TestStore {
            rt,
            clock,
            store,
            dir: _dir,
        } = TestStore::open()?;
        let key = SessionToken::generate()?.storage_key();
        let record = TestStore::record;
        let old = record(b"old", clock.now() + Duration::seconds(1));
        rt.block_on(store.save(&key, &old, SaveMode::Create))?;
        clock.advance(Duration::seconds(2));

        let shard = layout::shard_index(&key);
        let batch: Vec<_> = list_shard(store.inner(), shard)?
            .into_iter()
            .filter(|(k, _)| *k == key)
            .collect();
        assert_eq!(batch.len(), 1);

        let (creator, handle, raced) = (store.clone(), rt.handle().clone(), key.clone());
        let new = record(b"new", clock.now() + Duration::hours(1));
        BETWEEN_LOOK_AND_LOCK.with_borrow_mut(|hook| {
            *hook = Some(Box::new(move |k: &StorageKey| {
                if *k == raced {
                    let created = handle.block_on(creator.save(k, &new, SaveMode::Create));
                    assert!(
                        matches!(created, Ok(1)),
                        "the create over the expired record"
                    );
                }
            }));
        });
        let removed = sweep_batch(store.inner(), shard, &batch);
        BETWEEN_LOOK_AND_LOCK.with_borrow_mut(|hook| *hook = None);

        assert_eq!(removed?, 0);
        let kept = rt
            .block_on(store.load(&key))?
            .expect("the new record survives the sweep");
        assert_eq!(kept.payload.as_ref(), b"new");

        // And a removal the sweep makes is synced before the batch returns.
        let expired = SessionToken::generate()?.storage_key();
        let soon = record(b"soon", clock.now() + Duration::seconds(1));
        rt.block_on(store.save(&expired, &soon, SaveMode::Create))?;
        clock.advance(Duration::seconds(2));
        let shard = layout::shard_index(&expired);
        let batch: Vec<_> = list_shard(store.inner(), shard)?
            .into_iter()
            .filter(|(k, _)| *k == expired)
            .collect();
        crate::fsio::synced::take();
        assert_eq!(sweep_batch(store.inner(), shard, &batch)?, 1);
        assert_eq!(crate::fsio::synced::take(), ["shard directory"]);
        Ok(())
    }
}
