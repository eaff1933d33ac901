//! Issue #20, item 1 (outside security review): the file store must not trust a
//! directory, shard directory, record or lock file that another user owns or can
//! write to — a local user who creates `/tmp/sessions` first would otherwise plant
//! a record under a token of their choosing and be signed in as anyone.
//!
//! Run as root (as CI does), the tests make "another user" by `chown`ing what they
//! plant to [`OTHER_UID`] — a bare number: no account needs to exist — and one of
//! them starts this test binary again under that uid, to check the rules for an
//! unprivileged server (where root's files count as another user's). Run as an
//! unprivileged user, the tests that need `chown` print a `skipped:` line; the
//! permission tests run either way.
//!
//! A custom (libtest-compatible) harness, so the unprivileged child is this binary
//! started with [`CHILD_ENV`] set, without a dummy test entry.

use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _, chown};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, ConfigError, CookieDecision, DecodeError, Error, NewRecord, SaveMode, SessionConfig,
    SessionInterface, SessionManager, SessionToken, StorageKey,
};
use session_file::{FileStore, UntrustedDirectory};

/// The uid (and gid) that stands for another local user. Any number but ours and
/// 0 would do; no passwd entry is needed to own files or run a process.
const OTHER_UID: u32 = 65_534;
/// A third user, owner of the shared directory the unprivileged child may opt in to.
const THIRD_UID: u32 = 65_533;
const CHILD_ENV: &str = "SESSION_FILE_OWNERSHIP_CHILD";

fn main() {
    if let Ok(dirs) = std::env::var(CHILD_ENV) {
        unprivileged_child(&dirs);
        return;
    }
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test(
            "a_store_directory_another_user_planted_is_refused_at_open",
            planted_store_directory,
        ),
        Trial::test(
            "a_shard_directory_another_user_planted_is_refused_when_first_used",
            planted_shard_directory,
        ),
        Trial::test(
            "records_and_lock_files_another_user_owns_are_never_used",
            foreign_files,
        ),
        Trial::test(
            "group_or_world_writable_directories_are_refused_unless_shared",
            writable_directories,
        ),
        Trial::test(
            "an_unprivileged_server_refuses_files_root_or_others_planted",
            unprivileged_server,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `true` (after printing why) when the test cannot run: making files another
/// user owns takes root.
fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    println!(
        "skipped: {test}: needs root to create files owned by another user (chown); \
         the permission tests still ran"
    );
    true
}

fn far() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

fn record(payload: &'static str) -> NewRecord {
    NewRecord {
        payload: Bytes::from_static(payload.as_bytes()),
        expires_at: far(),
    }
}

fn shard_of(dir: &Path, key: &StorageKey) -> PathBuf {
    dir.join(&key.as_str()[..2])
}

fn record_path(dir: &Path, key: &StorageKey) -> PathBuf {
    shard_of(dir, key).join(key.as_str())
}

fn lock_path(dir: &Path, key: &StorageKey) -> PathBuf {
    shard_of(dir, key).join(format!("{}.lock", key.as_str()))
}

/// A directory with exactly `mode` (the umask does not apply to `chmod`).
fn mkdir(path: &Path, mode: u32) {
    fs::DirBuilder::new().mode(0o700).create(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `chown -R uid:uid path` without following symlinks.
fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

/// Every rendering of an error a log could show: `Display`, `Debug`, the sources.
fn renderings(e: &Error) -> String {
    let mut out = format!("{e} | {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!(" | {s}"));
        source = s.source();
    }
    out
}

/// The shard-directory refusal inside a store error, if that is what it is.
fn untrusted(e: &Error) -> Option<&UntrustedDirectory> {
    match e {
        Error::Backend {
            retryable: false,
            source,
        } => source.downcast_ref::<UntrustedDirectory>(),
        _ => None,
    }
}

fn set_value(decision: &CookieDecision) -> String {
    match decision {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected a Set-Cookie, got {other:?}"),
    }
}

/// What an attacker does with a store of their own: a session signed in as
/// `admin`, and its cookie, which they will present to the victim's server.
async fn plant_admin_session(dir: &Path) -> String {
    let store = FileStore::open(dir).await.unwrap();
    let manager = SessionManager::new(Arc::new(store), SessionConfig::default());
    let s = manager.session(None);
    s.insert("user", &"admin").await.unwrap();
    set_value(&manager.finish(&s).await.unwrap())
}

/// The user the victim's server sees for `cookie` (an error fails the request).
async fn signed_in_as(store: FileStore, cookie: &str) -> Result<Option<String>, Error> {
    let manager = SessionManager::new(Arc::new(store), SessionConfig::default());
    let s = manager.session(Some(cookie));
    s.get::<String>("user").await
}

/// The attack as the issue describes it: a local user creates the store's path
/// (here with a shard, a record and its lock file) before the server starts.
/// `open` refuses it with a configuration error naming the path; with the opt-in
/// the directory is accepted but the planted record is still never a session.
fn planted_store_directory() -> Result<(), Failed> {
    if skip_unless_root("a_store_directory_another_user_planted_is_refused_at_open") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("sessions");
    let rt = runtime();
    let cookie = rt.block_on(plant_admin_session(&dir));
    let key = SessionToken::parse(&cookie).unwrap().storage_key();
    assert!(record_path(&dir, &key).is_file());
    chown_tree(&dir, OTHER_UID);

    let err = rt.block_on(FileStore::open(&dir)).unwrap_err();
    let Error::Config(ConfigError::Invalid { reason, .. }) = &err else {
        panic!("not a configuration error: {err:?}");
    };
    assert!(
        reason.contains(&dir.display().to_string()) && reason.contains("owned by uid 65534"),
        "the reason names neither the path nor the owner: {reason}"
    );
    let all = renderings(&err);
    assert!(
        !all.contains(&cookie) && !all.contains(key.as_str()),
        "{all}"
    );

    // Opted in: the directory is used, the planted record is not.
    let shared = rt.block_on(FileStore::builder(&dir).allow_shared_directory(true).open())?;
    let r = rt.block_on(shared.load(&key));
    assert!(
        matches!(r, Err(Error::Decode(DecodeError::Malformed { .. }))),
        "the planted record was read: {r:?}"
    );
    assert_eq!(rt.block_on(signed_in_as(shared, &cookie))?, None);
    Ok(())
}

/// A shard directory planted (with a session in it) after the server opened its
/// store is refused when the store first uses it: loads and saves of its keys fail
/// with an [`UntrustedDirectory`] error naming it, nothing is written into it, and
/// the sweep leaves it alone but still cleans the other shards.
fn planted_shard_directory() -> Result<(), Failed> {
    if skip_unless_root("a_shard_directory_another_user_planted_is_refused_when_first_used") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("sessions");
    let donor = tmp.path().join("attacker");
    let rt = runtime();
    let clock = session_core::ManualClock::starting_now();
    let store = rt.block_on(FileStore::builder(&dir).clock(clock.shared()).open())?;
    // An expired record elsewhere, for the sweep to remove.
    let dead = SessionToken::generate()?.storage_key();
    let soon = NewRecord {
        payload: Bytes::from_static(b"dead"),
        expires_at: OffsetDateTime::now_utc() + Duration::minutes(1),
    };
    rt.block_on(store.save(&dead, &soon, SaveMode::Create))?;

    let (cookie, key) = loop {
        let cookie = rt.block_on(plant_admin_session(&donor));
        let key = SessionToken::parse(&cookie).unwrap().storage_key();
        // The shard must be one the store has not used yet.
        if key.as_str()[..2] != dead.as_str()[..2] {
            break (cookie, key);
        }
    };
    let shard = shard_of(&dir, &key);
    mkdir(&shard, 0o700);
    fs::copy(record_path(&donor, &key), record_path(&dir, &key))?;
    chown_tree(&shard, OTHER_UID);

    let r = rt.block_on(store.load(&key));
    let e = r.expect_err("the planted shard was read");
    let refused = untrusted(&e).unwrap_or_else(|| panic!("not an UntrustedDirectory: {e:?}"));
    assert_eq!(refused.path(), shard);
    let all = renderings(&e);
    assert!(all.contains(&shard.display().to_string()), "{all}");
    assert!(all.contains("owned by uid 65534"), "{all}");
    assert!(
        !all.contains(&cookie) && !all.contains(key.as_str()),
        "{all}"
    );

    // Another key of the same shard: no save into it, no lock file created in it.
    let neighbour = loop {
        let k = SessionToken::generate()?.storage_key();
        if k.as_str()[..2] == key.as_str()[..2] {
            break k;
        }
    };
    let r = rt.block_on(store.save(&neighbour, &record("x"), SaveMode::Create));
    assert!(r.as_ref().is_err_and(|e| untrusted(e).is_some()), "{r:?}");
    let r = rt.block_on(store.touch(&key, far()));
    assert!(r.as_ref().is_err_and(|e| untrusted(e).is_some()), "{r:?}");
    let r = rt.block_on(store.expire(&key));
    assert!(r.as_ref().is_err_and(|e| untrusted(e).is_some()), "{r:?}");
    assert_eq!(
        fs::read_dir(&shard)?.count(),
        1,
        "wrote into the planted shard"
    );

    clock.advance(Duration::hours(2));
    assert_eq!(rt.block_on(store.delete_expired())?, 1);
    assert!(record_path(&dir, &key).exists());
    // The request with the attacker's cookie fails; it is never signed in.
    let r = rt.block_on(signed_in_as(store, &cookie));
    assert!(r.as_ref().is_err_and(|e| untrusted(e).is_some()), "{r:?}");

    // A store that opted in uses the shard but not the planted record in it.
    let shared = rt.block_on(FileStore::builder(&dir).allow_shared_directory(true).open())?;
    let r = rt.block_on(shared.load(&key));
    assert!(matches!(r, Err(Error::Decode(_))), "{r:?}");
    Ok(())
}

/// In the server's own (trusted) directory, a record file or a lock file owned by
/// another user is never used: the record is a decode error (no session for the
/// manager), the lock is refused before `flock`. `expire` still removes a foreign
/// record (unlinking needs no trust in its contents).
fn foreign_files() -> Result<(), Failed> {
    if skip_unless_root("records_and_lock_files_another_user_owns_are_never_used") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("sessions");
    let rt = runtime();
    let cookie = rt.block_on(plant_admin_session(&dir));
    let key = SessionToken::parse(&cookie).unwrap().storage_key();
    let store = rt.block_on(FileStore::open(&dir))?;
    assert_eq!(
        rt.block_on(signed_in_as(store.clone(), &cookie))?
            .as_deref(),
        Some("admin"),
        "the fixture's session must work before it is chowned"
    );

    // The record changes hands.
    chown(record_path(&dir, &key), Some(OTHER_UID), Some(OTHER_UID))?;
    let r = rt.block_on(store.load(&key));
    assert!(
        matches!(r, Err(Error::Decode(DecodeError::Malformed { .. }))),
        "the foreign record was read: {r:?}"
    );
    assert!(!renderings(&r.unwrap_err()).contains(&cookie));
    assert_eq!(rt.block_on(signed_in_as(store.clone(), &cookie))?, None);
    let r = rt.block_on(store.touch(&key, far()));
    assert!(matches!(r, Err(Error::Decode(_))), "touch: {r:?}");
    let update = SaveMode::Update {
        expected_version: 1,
    };
    let r = rt.block_on(store.save(&key, &record("y"), update));
    assert!(matches!(r, Err(Error::Decode(_))), "update: {r:?}");
    rt.block_on(store.expire(&key))?;
    assert!(!record_path(&dir, &key).exists());

    // Only the lock file changes hands: every locking operation refuses it.
    let k = SessionToken::generate()?.storage_key();
    rt.block_on(store.save(&k, &record("mine"), SaveMode::Create))?;
    chown(lock_path(&dir, &k), Some(OTHER_UID), Some(OTHER_UID))?;
    for (what, r) in [
        (
            "update",
            rt.block_on(store.save(&k, &record("z"), update)).map(drop),
        ),
        ("touch", rt.block_on(store.touch(&k, far())).map(drop)),
        ("expire", rt.block_on(store.expire(&k))),
    ] {
        assert!(
            matches!(r, Err(Error::Decode(DecodeError::Malformed { .. }))),
            "{what} used the foreign lock file: {r:?}"
        );
    }
    // The record itself is ours and still readable (loads take no lock).
    assert_eq!(rt.block_on(store.load(&k))?.unwrap().payload, "mine");
    assert_eq!(rt.block_on(store.delete_expired())?, 0);
    Ok(())
}

/// Needs no root: directories the server's own user owns but others may write
/// to. Group-writable ones (store or shard) are refused unless the operator opts
/// in; world-writable ones always.
fn writable_directories() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let rt = runtime();
    for (mode, default_ok, shared_ok) in [
        (0o700, true, true),
        (0o750, true, true),
        (0o755, true, true),
        (0o770, false, true),
        (0o2770, false, true),
        (0o775, false, true),
        (0o777, false, false),
        (0o1777, false, false),
    ] {
        let dir = tmp.path().join(format!("store-{mode:o}"));
        mkdir(&dir, mode);
        for (shared, ok) in [(false, default_ok), (true, shared_ok)] {
            let r = rt.block_on(
                FileStore::builder(&dir)
                    .allow_shared_directory(shared)
                    .open(),
            );
            match r {
                Ok(store) => {
                    assert!(ok, "mode {mode:o}, shared {shared}: opened");
                    // And it works.
                    let k = SessionToken::generate()?.storage_key();
                    rt.block_on(store.save(&k, &record("ok"), SaveMode::Create))?;
                    assert_eq!(rt.block_on(store.load(&k))?.unwrap().payload, "ok");
                }
                Err(Error::Config(ConfigError::Invalid { reason, .. })) => {
                    assert!(!ok, "mode {mode:o}, shared {shared}: {reason}");
                    assert!(
                        reason.contains(&dir.display().to_string())
                            && reason.contains(&format!("{mode:04o}")),
                        "the reason names neither the path nor the mode: {reason}"
                    );
                }
                Err(e) => panic!("mode {mode:o}, shared {shared}: {e:?}"),
            }
        }
    }

    // A group-writable shard directory appearing after open.
    let dir = tmp.path().join("shards");
    let store = rt.block_on(FileStore::open(&dir))?;
    let shared = rt.block_on(FileStore::builder(&dir).allow_shared_directory(true).open())?;
    for (mode, default_ok, shared_ok) in [(0o770, false, true), (0o777, false, false)] {
        let k = loop {
            let k = SessionToken::generate()?.storage_key();
            if !shard_of(&dir, &k).exists() {
                break k;
            }
        };
        mkdir(&shard_of(&dir, &k), mode);
        for (store, ok) in [(&store, default_ok), (&shared, shared_ok)] {
            let r = rt.block_on(store.save(&k, &record("s"), SaveMode::Create));
            if ok {
                r?;
                rt.block_on(store.expire(&k))?;
            } else {
                let e = r.expect_err("saved into a writable shard");
                let refused = untrusted(&e).unwrap_or_else(|| panic!("{e:?}"));
                assert_eq!(refused.path(), shard_of(&dir, &k));
                assert!(!renderings(&e).contains(k.as_str()), "{e:?}");
                assert!(
                    matches!(rt.block_on(store.load(&k)), Err(ref e) if untrusted(e).is_some())
                );
            }
        }
    }
    Ok(())
}

/// The directories the unprivileged child checks, passed in [`CHILD_ENV`] as
/// `own|shared|mine-key|planted-key`.
struct ChildDirs {
    own: PathBuf,
    shared: PathBuf,
    mine: StorageKey,
    planted: StorageKey,
}

impl ChildDirs {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.own.display(),
            self.shared.display(),
            self.mine,
            self.planted
        )
    }

    fn decode(s: &str) -> Self {
        let parts: Vec<&str> = s.split('|').collect();
        Self {
            own: parts[0].into(),
            shared: parts[1].into(),
            mine: StorageKey::parse(parts[2]).unwrap(),
            planted: StorageKey::parse(parts[3]).unwrap(),
        }
    }
}

/// A server that runs as an ordinary user ([`OTHER_UID`]), started as a child
/// process by the test below. For it, root is "another user" for files (root could
/// plant a readable record), though a root-owned directory is fine. Panics (a
/// failed exit status) on any broken rule.
fn unprivileged_child(dirs: &str) {
    let dirs = ChildDirs::decode(dirs);
    assert!(!is_root(), "the child must not run as root");
    runtime().block_on(async {
        let store = FileStore::open(&dirs.own).await.unwrap();
        assert_eq!(
            store.load(&dirs.mine).await.unwrap().unwrap().payload,
            "mine"
        );
        let r = store.load(&dirs.planted).await;
        assert!(
            matches!(r, Err(Error::Decode(DecodeError::Malformed { .. }))),
            "read a record root planted: {r:?}"
        );
        let k = SessionToken::generate().unwrap().storage_key();
        store
            .save(&k, &record("new"), SaveMode::Create)
            .await
            .unwrap();
        assert_eq!(store.load(&k).await.unwrap().unwrap().payload, "new");

        // A group directory of another owner: only with the opt-in.
        let r = FileStore::open(&dirs.shared).await;
        assert!(
            matches!(&r, Err(Error::Config(ConfigError::Invalid { reason, .. }))
                if reason.contains("owned by uid 65533")),
            "{r:?}"
        );
        let store = FileStore::builder(&dirs.shared)
            .allow_shared_directory(true)
            .open()
            .await
            .unwrap();
        store
            .save(&k, &record("shared"), SaveMode::Create)
            .await
            .unwrap();
        assert_eq!(store.load(&k).await.unwrap().unwrap().payload, "shared");
    });
    println!("unprivileged checks passed");
}

/// Runs [`unprivileged_child`] under [`OTHER_UID`] against: its own store (made
/// by root, then handed over), with a readable record root planted in it; and a
/// directory owned by [`THIRD_UID`] that the child's group may write (the case
/// `allow_shared_directory` exists for).
fn unprivileged_server() -> Result<(), Failed> {
    if skip_unless_root("an_unprivileged_server_refuses_files_root_or_others_planted") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))?;
    let rt = runtime();

    // The child runs a copy of this binary: the build directory may not be
    // reachable for another user.
    let exe = tmp.path().join("ownership-test");
    fs::copy(std::env::current_exe()?, &exe)?;
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755))?;

    let own = tmp.path().join("own");
    let store = rt.block_on(FileStore::open(&own))?;
    let mine = SessionToken::generate()?.storage_key();
    rt.block_on(store.save(&mine, &record("mine"), SaveMode::Create))?;
    // A valid record, root's and readable by all, in the child's shard.
    let planted = loop {
        let k = SessionToken::generate()?.storage_key();
        if k.as_str()[..2] == mine.as_str()[..2] {
            break k;
        }
    };
    rt.block_on(store.save(&planted, &record("root's"), SaveMode::Create))?;
    drop(store);
    chown_tree(&own, OTHER_UID);
    chown(record_path(&own, &planted), Some(0), Some(0))?;
    fs::set_permissions(
        record_path(&own, &planted),
        fs::Permissions::from_mode(0o644),
    )?;

    let shared = tmp.path().join("shared");
    mkdir(&shared, 0o2770);
    chown(&shared, Some(THIRD_UID), Some(OTHER_UID))?;

    let dirs = ChildDirs {
        own,
        shared,
        mine,
        planted,
    };
    use std::os::unix::process::CommandExt as _;
    let out = std::process::Command::new(&exe)
        .env(CHILD_ENV, dirs.encode())
        .uid(OTHER_UID)
        .gid(OTHER_UID)
        .current_dir(tmp.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("unprivileged checks passed"),
        "the unprivileged child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
