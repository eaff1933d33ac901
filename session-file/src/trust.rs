//! Whose directories and files the store may use (issue #20).
//!
//! A local user who creates the store's path before the server does (say
//! `/tmp/sessions`), or a shard directory inside it, could otherwise plant a record
//! under a token of their choosing and be signed in as anyone. So every directory
//! and file the store opens is checked with `fstat` on the opened descriptor (a
//! `stat` of the path could be raced by a rename in between):
//!
//! - **Directories** (the store's and each shard): owned by the process's effective
//!   user or by root, and not writable by group or others. With
//!   [`FileStoreBuilder::allow_shared_directory`](crate::FileStoreBuilder::allow_shared_directory)
//!   the operator accepts any owner and group write; writable by others is refused
//!   always.
//! - **Record and lock files**: owned by the process's effective user, always (see
//!   [`owned_by_this_user`]).

use std::fmt;
use std::path::{Path, PathBuf};

use rustix::fs::Stat;

const GROUP_WRITE: u32 = 0o020;
const OTHER_WRITE: u32 = 0o002;

/// What is wrong with a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    /// Owned by someone other than this process's effective user and root.
    Owner { owner: u32, euid: u32 },
    /// Its group may create, rename and remove entries in it.
    GroupWritable { mode: u32 },
    /// Every user may create, rename and remove entries in it.
    WorldWritable { mode: u32 },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const OPT_IN: &str = "if that is intended, opt in with \
                              FileStoreBuilder::allow_shared_directory";
        match *self {
            Problem::Owner { owner, euid } => write!(
                f,
                "it is owned by uid {owner}, not by this process's user (uid {euid}) or \
                 root; {OPT_IN}"
            ),
            Problem::GroupWritable { mode } => write!(
                f,
                "its group can write to it (mode {mode:04o}); use mode 0700, or {OPT_IN}"
            ),
            Problem::WorldWritable { mode } => write!(
                f,
                "every user can write to it (mode {mode:04o}); use a directory only the \
                 server's user can write"
            ),
        }
    }
}

/// A store or shard directory the file store refused to use: another user owns
/// it, or users other than the server's can write to it, so they could have
/// planted records in it (see the crate documentation, "Ownership").
///
/// The store directory's problems are reported by `open` as
/// [`ConfigError::Invalid`](session_core::ConfigError::Invalid) with this message;
/// a shard directory's, when the store first uses it, as the `source` of a
/// non-retryable [`Error::Backend`](session_core::Error::Backend), which
/// `downcast_ref::<UntrustedDirectory>()` recognises. The message names the path,
/// its owner or mode, and the remedy; never any session data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file store: refusing directory {}: {problem}", path.display())]
pub struct UntrustedDirectory {
    path: PathBuf,
    problem: Problem,
}

impl UntrustedDirectory {
    /// The refused directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The process's effective user id, asked each time: a server that drops root
/// after opening the store creates its files as the new user.
fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Checks a directory's owner and mode (from `fstat` of its descriptor). `shared`:
/// the operator opted in to directories of other owners and group-writable ones.
pub(crate) fn check_dir(
    st: &Stat,
    shared: bool,
    path: impl FnOnce() -> PathBuf,
) -> Result<(), UntrustedDirectory> {
    match judge_dir(st.st_uid, st.st_mode, euid(), shared) {
        None => Ok(()),
        Some(problem) => Err(UntrustedDirectory {
            path: path(),
            problem,
        }),
    }
}

/// The rule itself, on plain numbers so it can be tested for any user.
fn judge_dir(owner: u32, mode: u32, euid: u32, shared: bool) -> Option<Problem> {
    let mode = mode & 0o7777;
    if mode & OTHER_WRITE != 0 {
        Some(Problem::WorldWritable { mode })
    } else if shared {
        None
    } else if owner != euid && owner != 0 {
        Some(Problem::Owner { owner, euid })
    } else if mode & GROUP_WRITE != 0 {
        Some(Problem::GroupWritable { mode })
    } else {
        None
    }
}

/// Whether a record or lock file (from `fstat` of its descriptor) belongs to this
/// process's effective user. Anything else was not written by this store (or was
/// written by the server under another identity) and is never used — root's files
/// included, since root never needs to plant a session.
pub(crate) fn owned_by_this_user(st: &Stat) -> bool {
    st.st_uid == euid()
}

/// Whether `e` is a refused shard directory (which the sweep skips).
pub(crate) fn is_untrusted(e: &session_core::Error) -> bool {
    matches!(e, session_core::Error::Backend { source, .. }
        if source.downcast_ref::<UntrustedDirectory>().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The directory rule for any effective user, root or not — the integration
    /// tests (tests/ownership.rs) can only run it as the users that exist.
    #[test]
    fn directory_rule() {
        const DIR: u32 = 0o040_000;
        let ok = None;
        for (owner, mode, euid, shared, want) in [
            (1000, 0o700, 1000, false, ok),
            (1000, 0o755, 1000, false, ok),
            (1000, 0o2750, 1000, false, ok),
            // Root's directories are trusted by everyone (root could do anything).
            (0, 0o755, 1000, false, ok),
            (0, 0o700, 0, false, ok),
            (
                1001,
                0o700,
                1000,
                false,
                Some(Problem::Owner {
                    owner: 1001,
                    euid: 1000,
                }),
            ),
            (
                1000,
                0o700,
                0,
                false,
                Some(Problem::Owner {
                    owner: 1000,
                    euid: 0,
                }),
            ),
            (
                1000,
                0o770,
                1000,
                false,
                Some(Problem::GroupWritable { mode: 0o770 }),
            ),
            (
                0,
                0o2775,
                1000,
                false,
                Some(Problem::GroupWritable { mode: 0o2775 }),
            ),
            (
                1000,
                0o707,
                1000,
                false,
                Some(Problem::WorldWritable { mode: 0o707 }),
            ),
            (
                1000,
                0o1777,
                1000,
                true,
                Some(Problem::WorldWritable { mode: 0o1777 }),
            ),
            // The opt-in: any owner, group write, never world write.
            (1001, 0o700, 1000, true, ok),
            (1001, 0o2770, 1000, true, ok),
            (0, 0o770, 1000, true, ok),
            (
                1001,
                0o777,
                1000,
                true,
                Some(Problem::WorldWritable { mode: 0o777 }),
            ),
        ] {
            assert_eq!(
                judge_dir(owner, DIR | mode, euid, shared),
                want,
                "owner {owner}, mode {mode:o}, euid {euid}, shared {shared}"
            );
        }
    }

    #[test]
    fn messages_name_the_path_the_problem_and_the_remedy() {
        let e = UntrustedDirectory {
            path: "/tmp/sessions/ab".into(),
            problem: Problem::Owner {
                owner: 1001,
                euid: 1000,
            },
        };
        assert_eq!(
            e.to_string(),
            "file store: refusing directory /tmp/sessions/ab: it is owned by uid 1001, not \
             by this process's user (uid 1000) or root; if that is intended, opt in with \
             FileStoreBuilder::allow_shared_directory"
        );
        let e = UntrustedDirectory {
            path: "/srv/s".into(),
            problem: Problem::WorldWritable { mode: 0o1777 },
        };
        assert_eq!(
            e.to_string(),
            "file store: refusing directory /srv/s: every user can write to it (mode 1777); \
             use a directory only the server's user can write"
        );
    }
}
