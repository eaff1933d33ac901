//! Blocking file-system primitives, all relative to directory descriptors.
//!
//! Every file is opened with `openat` against the shard directory's descriptor and
//! `O_NOFOLLOW`, and shard directories themselves with `O_DIRECTORY | O_NOFOLLOW`
//! against the root's descriptor, so a symbolic link planted anywhere inside the
//! store is never followed out of it. Nothing here may run on an async worker: the
//! store calls it from `spawn_blocking`.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use session_core::{Bytes, ConfigError, DecodeError, Error, StorageKey, StoredRecord};

use crate::format::{self, HEADER_LEN, Header};
use crate::layout;
use crate::trust;

/// A failed file-system call, with the step that failed, as the `source` of
/// [`Error::Backend`].
#[derive(Debug, thiserror::Error)]
#[error("file store: {op}: {source}")]
pub(crate) struct FsError {
    op: &'static str,
    #[source]
    source: io::Error,
}

/// Wraps an I/O failure into the core error, marking the ones a later retry may
/// get past (resource exhaustion, interruption) as retryable.
pub(crate) fn fs_error(op: &'static str, source: impl Into<io::Error>) -> Error {
    let source = source.into();
    let retryable = matches!(
        Errno::from_io_error(&source),
        Some(
            Errno::AGAIN
                | Errno::INTR
                | Errno::MFILE
                | Errno::NFILE
                | Errno::NOSPC
                | Errno::DQUOT
                | Errno::NOMEM
                | Errno::BUSY
                | Errno::TIMEDOUT
        )
    );
    let e = FsError { op, source };
    if retryable {
        Error::retryable(e)
    } else {
        Error::backend(e)
    }
}

fn malformed(reason: &'static str) -> Error {
    Error::Decode(DecodeError::Malformed { reason })
}

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
const SHARDS: usize = 256;

/// The store's directory: its descriptor and lazily opened shard descriptors.
pub(crate) struct Root {
    path: PathBuf,
    fd: OwnedFd,
    /// The operator accepts directories of other owners and group-writable ones
    /// (see [`trust`]).
    shared: bool,
    /// Shard directories, opened and checked once, then kept: saves one `openat`
    /// and one `fstat` per operation. No one but their owner or root can change
    /// their owner or mode afterwards.
    shards: Box<[OnceLock<OwnedFd>]>,
}

impl std::fmt::Debug for Root {
    // Not derived: 256 shard cells would flood every `Debug` of the store.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root")
            .field("path", &self.path)
            .field("shared", &self.shared)
            .field(
                "open_shards",
                &self.shards.iter().filter(|c| c.get().is_some()).count(),
            )
            .finish_non_exhaustive()
    }
}

fn invalid_dir(reason: String) -> Error {
    Error::Config(ConfigError::Invalid {
        setting: "session-file directory",
        reason,
    })
}

impl Root {
    /// Opens (creating with mode 0700 if missing) and validates the store directory:
    /// its owner and mode (see [`trust`]; `shared` is the operator's opt-in) and that
    /// this process can write to it.
    pub fn open(path: &Path, shared: bool) -> Result<Self, Error> {
        if path.as_os_str().is_empty() {
            return Err(invalid_dir("the path is empty".into()));
        }
        if !path.exists() {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(path)
                .map_err(|e| invalid_dir(format!("cannot create {}: {e}", path.display())))?;
        }
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            invalid_dir(format!(
                "cannot open {} as a directory: {e}",
                path.display()
            ))
        })?;
        // fstat of the opened descriptor: what is checked is what is used.
        let st = rustix::fs::fstat(&fd).map_err(|e| fs_error("stat store directory", e))?;
        trust::check_dir(&st, shared, || path.to_owned())
            .map_err(|e| invalid_dir(e.to_string()))?;
        rustix::fs::accessat(
            &fd,
            ".",
            rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
            AtFlags::empty(),
        )
        .map_err(|e| invalid_dir(format!("{} is not writable: {e}", path.display())))?;
        Ok(Self {
            path: path.to_owned(),
            fd,
            shared,
            shards: (0..SHARDS).map(|_| OnceLock::new()).collect(),
        })
    }

    /// The directory's path as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root directory's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The shard directory of `key`, or `None` if it does not exist (nothing was
    /// ever stored there). A shard directory another user owns or can write to is
    /// refused with an [`UntrustedDirectory`](trust::UntrustedDirectory) error.
    pub fn shard(&self, key: &StorageKey) -> Result<Option<BorrowedFd<'_>>, Error> {
        self.shard_by_index(layout::shard_index(key), false)
    }

    /// The shard directory of `key`, made (mode 0700) if missing, with the root
    /// synced so the new directory entry is durable before any record in it is.
    pub fn shard_or_create(&self, key: &StorageKey) -> Result<BorrowedFd<'_>, Error> {
        self.shard_by_index(layout::shard_index(key), true)?
            // Only a concurrent removal of the fresh directory gets here.
            .ok_or_else(|| fs_error("open shard directory", Errno::NOENT))
    }

    /// A shard directory by index (0..256); see [`Root::shard`] and
    /// [`Root::shard_or_create`].
    pub fn shard_by_index(
        &self,
        index: usize,
        create: bool,
    ) -> Result<Option<BorrowedFd<'_>>, Error> {
        let cell = &self.shards[index];
        if let Some(fd) = cell.get() {
            return Ok(Some(fd.as_fd()));
        }
        let name = format!("{index:02x}");
        let mut created = false;
        if create {
            match rustix::fs::mkdirat(&self.fd, &name, Mode::from_raw_mode(DIR_MODE)) {
                Ok(()) => created = true,
                Err(Errno::EXIST) => {}
                Err(e) => return Err(fs_error("create shard directory", e)),
            }
        }
        let fd = match rustix::fs::openat(
            &self.fd,
            &name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            // A symlink or a file planted where a shard directory belongs.
            Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                return Err(fs_error("shard path is not a directory", e));
            }
            Err(e) => return Err(fs_error("open shard directory", e)),
        };
        // Checked when first used (and then kept): a shard directory planted after
        // the store was opened is refused like a planted store directory.
        let st = rustix::fs::fstat(&fd).map_err(|e| fs_error("stat shard directory", e))?;
        trust::check_dir(&st, self.shared, || self.path.join(&name)).map_err(Error::backend)?;
        if created {
            rustix::fs::fsync(&self.fd).map_err(|e| fs_error("sync store directory", e))?;
            #[cfg(test)]
            synced::note("store directory");
        }
        Ok(Some(cell.get_or_init(|| fd).as_fd()))
    }
}

/// Opens a record for reading (or also writing), refusing anything but a regular
/// file of this process's user. `Ok(None)`: no record. A symlink, directory, FIFO,
/// socket or device where the record belongs, or a file another user owns, is a
/// decode error for this key.
fn open_record(
    shard: BorrowedFd<'_>,
    key: &StorageKey,
    write: bool,
) -> Result<Option<(File, u64)>, Error> {
    let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
    // NONBLOCK: opening a planted FIFO must not hang; it has no effect on regular files.
    let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(shard, layout::record_name(key), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => return Err(malformed("record path is a symbolic link")),
        Err(Errno::ISDIR | Errno::NXIO) => {
            return Err(malformed("record path is not a regular file"));
        }
        Err(e) => return Err(fs_error("open record", e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| fs_error("stat record", e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(malformed("record path is not a regular file"));
    }
    // Not written by this store: a planted session, never returned as one.
    if !trust::owned_by_this_user(&st) {
        return Err(malformed("record file is owned by another user"));
    }
    Ok(Some((File::from(fd), st.st_size as u64)))
}

/// Reads and decodes the whole record of `key`. Files larger than `max_len` are not
/// read (a decode error), so a planted huge file cannot exhaust memory.
pub(crate) fn read_record(
    shard: BorrowedFd<'_>,
    key: &StorageKey,
    max_len: u64,
) -> Result<Option<StoredRecord>, Error> {
    Ok(read_whole(shard, key, max_len, false)?.map(|(_, record, _)| record))
}

/// [`read_record`] through a read-write descriptor, returned with the header, so a
/// deadline can be written in place into the very file that was read (one open for
/// a load and a touch).
pub(crate) fn read_record_rw(
    shard: BorrowedFd<'_>,
    key: &StorageKey,
    max_len: u64,
) -> Result<Option<(Header, StoredRecord, File)>, Error> {
    read_whole(shard, key, max_len, true)
}

/// The current header of `file`, if it is still `key`'s record: a save replaces a
/// record by rename and an expire removes it, after which the descriptor names a
/// file that is no longer the record (`None`). For a check under the key's lock.
pub(crate) fn reread_header(
    shard: BorrowedFd<'_>,
    key: &StorageKey,
    file: &File,
) -> Result<Option<Header>, Error> {
    let held = rustix::fs::fstat(file).map_err(|e| fs_error("stat record", e))?;
    match rustix::fs::statat(shard, layout::record_name(key), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(now) if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) => {}
        Ok(_) | Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(fs_error("stat record", e)),
    }
    let mut buf = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fs_error("read record header", e)),
        }
    }
    Ok(Some(format::decode_header(
        &buf[..got],
        held.st_size as u64,
    )?))
}

fn read_whole(
    shard: BorrowedFd<'_>,
    key: &StorageKey,
    max_len: u64,
    write: bool,
) -> Result<Option<(Header, StoredRecord, File)>, Error> {
    let Some((file, len)) = open_record(shard, key, write)? else {
        return Ok(None);
    };
    if len > max_len {
        return Err(malformed("record file larger than the configured limit"));
    }
    // Records are replaced by rename, never resized in place, so the size from the
    // stat is the size to read: one `read` for the whole file where `read_to_end`
    // probes with three. Neither can happen to a file we wrote, but: a file that
    // shrank since is malformed; one appended to reads as it was at the stat (a
    // consistent record, or not, which the header's length and checksums decide).
    let mut buf = vec![0; len as usize];
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => malformed("record file shorter than its stat"),
            _ => fs_error("read record", e),
        })?;
    let (header, record) = format::decode(Bytes::from(buf))?;
    Ok(Some((header, record, file)))
}

/// Reads only the header of `key`'s record (for the checks under the lock, which
/// do not need the payload). Returns the open file for an in-place update.
pub(crate) fn read_header(
    shard: BorrowedFd<'_>,
    key: &StorageKey,
    write: bool,
) -> Result<Option<(Header, File)>, Error> {
    let Some((file, len)) = open_record(shard, key, write)? else {
        return Ok(None);
    };
    let mut buf = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fs_error("read record header", e)),
        }
    }
    let header = format::decode_header(&buf[..got], len)?;
    Ok(Some((header, file)))
}

/// Moves the deadline in place: writes one deadline slot and syncs it (see
/// [`format`] for why a torn slot write is harmless).
pub(crate) fn write_slot(file: &File, offset: u64, slot: &[u8]) -> Result<(), Error> {
    file.write_all_at(slot, offset)
        .map_err(|e| fs_error("write deadline", e))?;
    file.sync_data().map_err(|e| fs_error("sync record", e))?;
    #[cfg(test)]
    synced::note("record");
    Ok(())
}

/// Replaces `key`'s record with `bytes` atomically and durably: write a temporary
/// file in the same directory, sync it, rename it over the record, sync the
/// directory. A crash at any instant leaves the old record or the new one. The
/// caller holds the key's lock, which makes the temporary name its own.
pub(crate) fn write_atomic(
    shard: BorrowedFd<'_>,
    key: &StorageKey,
    bytes: &[u8],
) -> Result<(), Error> {
    let tmp = layout::tmp_name(key);
    let create = || {
        rustix::fs::openat(
            shard,
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        )
    };
    // O_EXCL refuses whatever is at the path, a planted symlink included. Something
    // there is a leftover of a writer that crashed (no one else can be writing it:
    // we hold the lock), so it is removed and the create tried once more. Removing
    // only then saves a path lookup on every write.
    let fd = match create() {
        Err(Errno::EXIST) => {
            remove(shard, &tmp, "remove stale temporary file")?;
            create()
        }
        other => other,
    }
    .map_err(|e| fs_error("create temporary file", e))?;
    let mut file = File::from(fd);
    let written = file
        .write_all(bytes)
        .map_err(|e| fs_error("write temporary file", e))
        .and_then(|()| {
            file.sync_data()
                .map_err(|e| fs_error("sync temporary file", e))
        });
    if let Err(e) = written {
        // Best effort: a full disk should not keep a half file around. The next
        // writer or sweep removes it anyway.
        let _ = rustix::fs::unlinkat(shard, &tmp, AtFlags::empty());
        return Err(e);
    }
    #[cfg(test)]
    synced::note("temporary file");
    drop(file);
    rustix::fs::renameat(shard, &tmp, shard, layout::record_name(key))
        .map_err(|e| fs_error("rename record into place", e))?;
    sync_dir(shard)
}

/// Removes `name` from `shard`; a missing file is fine. Returns whether it existed.
pub(crate) fn remove(shard: BorrowedFd<'_>, name: &str, op: &'static str) -> Result<bool, Error> {
    match rustix::fs::unlinkat(shard, name, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(fs_error(op, e)),
    }
}

/// Makes renames and removals in `dir` durable.
pub(crate) fn sync_dir(dir: BorrowedFd<'_>) -> Result<(), Error> {
    rustix::fs::fsync(dir).map_err(|e| fs_error("sync shard directory", e))?;
    #[cfg(test)]
    synced::note("shard directory");
    Ok(())
}

/// The names in a directory, without `.` and `..`.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, Error> {
    let entries = rustix::fs::Dir::read_from(dir).map_err(|e| fs_error("read directory", e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| fs_error("read directory", e))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}

/// For the unit tests: which durability steps (each `fsync`/`fdatasync` that
/// returned) ran on this thread, in order. A black-box test cannot see a missing
/// sync short of a power cut; this log lets the store's tests check every write
/// path makes its syncs.
#[cfg(test)]
pub(crate) mod synced {
    use std::cell::RefCell;

    thread_local! {
        static LOG: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn note(step: &'static str) {
        LOG.with_borrow_mut(|log| log.push(step));
    }

    /// The steps since the last call, oldest first.
    pub(crate) fn take() -> Vec<&'static str> {
        LOG.with_borrow_mut(std::mem::take)
    }
}
