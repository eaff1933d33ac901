//! Security-review and fuzzing regressions for the file store (see HARDENING.md at
//! the workspace root): what an attacker who can read the store's directory sees,
//! and inputs the `file_record` fuzz target found.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, Clock, CookieDecision, ManualClock, NewRecord, SaveMode, SessionConfig,
    SessionInterface, SessionManager, SessionToken, StorageKey, TOKEN_BYTES,
};
use session_file::{FileStore, TouchMode};

/// Decodes unpadded base64url (the cookie alphabet), by hand so the test needs no
/// extra dependency.
fn base64url_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => panic!("not base64url: {c:?}"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        acc = (acc << 6) | u32::from(value(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Every file under `dir` (recursively) with its path relative to `dir`.
fn files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push((rel, p));
        }
    }
    out
}

/// `mkdir -p` with mode 0700 whatever the umask: a shard directory its group can
/// write to would be refused by the store (see tests/ownership.rs).
fn private_dir(path: impl AsRef<Path>) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn set_value(decision: &CookieDecision) -> String {
    match decision {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected a Set-Cookie, got {other:?}"),
    }
}

/// Hashing at rest, checked on the raw directory: sessions created, rotated
/// (`cycle_id`, which leaves a pointer to the new id behind) and updated through
/// the manager leave no cookie value and no raw token bytes in any file name or
/// file content; the record files are named by the SHA-256 storage key.
#[tokio::test]
async fn the_raw_store_directory_holds_no_cookie_value_or_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).await.unwrap();
    let manager = SessionManager::new(Arc::new(store), SessionConfig::default());

    let mut cookies = Vec::new();
    for i in 0..16 {
        let s = manager.session(None);
        s.insert("user", &format!("user-{i}")).await.unwrap();
        let cookie = set_value(&manager.finish(&s).await.unwrap());
        cookies.push(cookie.clone());
        if i % 2 == 0 {
            // Login: rotate the id; both the old and the new cookie must stay secret.
            let s = manager.session(Some(&cookie));
            s.insert("role", &"admin").await.unwrap();
            s.cycle_id().await.unwrap();
            cookies.push(set_value(&manager.finish(&s).await.unwrap()));
        } else {
            // A plain update rewrites the record.
            let s = manager.session(Some(&cookie));
            s.insert("visits", &i).await.unwrap();
            let _ = manager.finish(&s).await.unwrap();
        }
    }

    let live_names: Vec<String> = cookies
        .iter()
        .map(|c| {
            SessionToken::parse(c)
                .expect("the manager sets a valid token")
                .storage_key()
                .as_str()
                .to_owned()
        })
        .collect();
    let all = files(dir.path());
    let records: Vec<&String> = all
        .iter()
        .map(|(rel, _)| rel)
        .filter(|rel| rel.len() == 2 + 1 + 64)
        .collect();
    assert!(!records.is_empty(), "no record files in {all:?}");
    for rel in &records {
        let name = &rel[3..];
        assert!(
            StorageKey::parse(name).is_some(),
            "{rel} is not a storage key"
        );
        assert!(
            live_names.iter().any(|k| k == name),
            "{rel} is named by no session's hash"
        );
    }

    for cookie in &cookies {
        assert_eq!(cookie.len(), 43);
        let token = base64url_decode(cookie);
        assert_eq!(token.len(), TOKEN_BYTES);
        for (rel, path) in &all {
            assert!(
                !rel.contains(cookie.as_str()),
                "cookie in a file name: {rel}"
            );
            if fs::symlink_metadata(path).unwrap().is_file() {
                let bytes = fs::read(path).unwrap();
                assert!(!contains(&bytes, cookie.as_bytes()), "cookie in {rel}");
                assert!(!contains(&bytes, &token), "raw token bytes in {rel}");
            }
        }
    }
    // The data itself is there (the test reads the right files).
    assert!(
        records
            .iter()
            .any(|rel| contains(&fs::read(dir.path().join(rel)).unwrap(), b"user-3"))
    );
}

const SLOT0: usize = 32;

/// Regression for the first `file_record` fuzz finding: a record whose current
/// deadline slot holds the sequence number `u64::MAX` (only a crafted or corrupted
/// file can) made an in-place `touch` a silent no-op: it returned `true`, but the
/// slot it wrote tied with the current one and the reader kept the old deadline,
/// so a session "touched" into the past stayed live. Fixed in `format.rs`:
/// sequence numbers now increment wrapping and compare in serial-number
/// arithmetic, so the slot a touch writes is always the newer one.
#[tokio::test]
async fn touch_moves_the_deadline_even_from_a_slot_at_the_maximum_sequence() {
    let now = OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap();
    for (mode, to) in [
        (TouchMode::InPlace, now - Duration::hours(1)),
        (TouchMode::InPlace, now + Duration::hours(5)),
        (TouchMode::Rewrite, now - Duration::hours(1)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(now);
        let store = FileStore::builder(dir.path())
            .clock(clock.shared())
            .touch_mode(mode)
            .open()
            .await
            .unwrap();
        let key = SessionToken::generate().unwrap().storage_key();
        let record = NewRecord {
            payload: Bytes::from_static(b"payload"),
            expires_at: now + Duration::hours(1),
        };
        store.save(&key, &record, SaveMode::Create).await.unwrap();

        // Slot 0 (current) gets the highest sequence number, with a valid checksum.
        let path = dir.path().join(&key.as_str()[..2]).join(key.as_str());
        let mut file = fs::read(&path).unwrap();
        file[SLOT0..SLOT0 + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let crc = crc32fast::hash(&file[SLOT0..SLOT0 + 20]);
        file[SLOT0 + 20..SLOT0 + 24].copy_from_slice(&crc.to_le_bytes());
        fs::write(&path, &file).unwrap();
        let before = store.load(&key).await.unwrap().expect("still live");
        assert_eq!(before.expires_at, now + Duration::hours(1));

        assert!(store.touch(&key, to).await.unwrap(), "{mode:?}");
        let after = store.load(&key).await.unwrap();
        if to > now {
            let after = after.expect("touched into the future");
            assert_eq!(after.expires_at, to, "{mode:?}: the deadline did not move");
            assert_eq!(
                (after.payload, after.version),
                (before.payload, before.version)
            );
        } else {
            assert!(
                after.is_none(),
                "{mode:?}: touched into the past, still live"
            );
        }
    }
}

/// How long one hostile-path case may take. Each takes milliseconds; a regression
/// that blocks (a FIFO opened without `O_NONBLOCK` waits for a writer forever)
/// fails the test at this limit instead of stalling the whole run.
const HANG_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs `f` on a thread of its own with a current-thread runtime and fails the
/// test if it has not finished within [`HANG_LIMIT`]. A hung thread is left
/// behind (it blocks in a system call no one can interrupt); the test binary exits
/// all the same.
fn finishes<F>(what: String, f: impl FnOnce() -> F + Send + 'static) -> F::Output
where
    F: std::future::Future,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _ = tx.send(rt.block_on(f()));
    });
    match rx.recv_timeout(HANG_LIMIT) {
        Ok(out) => out,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still blocked after {HANG_LIMIT:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// What a hostile local user (or a stray tool) can leave where a store file
/// belongs.
#[derive(Debug, Clone, Copy)]
enum Planted {
    Fifo,
    Directory,
    Symlink,
    Socket,
}

impl Planted {
    fn plant(self, at: &Path, outside: &Path) {
        match self {
            Planted::Fifo => {
                let status = std::process::Command::new("mkfifo")
                    .arg(at)
                    .status()
                    .unwrap();
                assert!(status.success(), "mkfifo {at:?}");
            }
            Planted::Directory => fs::create_dir(at).unwrap(),
            Planted::Symlink => std::os::unix::fs::symlink(outside, at).unwrap(),
            // The listener is dropped at once; the socket file stays (and opening
            // it fails with ENXIO).
            Planted::Socket => drop(std::os::unix::net::UnixListener::bind(at).unwrap()),
        }
    }
}

fn is_decode(r: &Result<impl std::fmt::Debug, session_core::Error>) -> bool {
    matches!(r, Err(session_core::Error::Decode(_)))
}

/// Regression for issue #20, item 2: a FIFO planted as a key's *lock* file hung
/// every operation that locks the key (save, touch, expire) and the sweeper —
/// `<key>.lock` was opened without `O_NONBLOCK`, and opening a FIFO for reading
/// waits for a writer. A directory there made `delete_expired` fail for the whole
/// store. Now anything but a regular file at the lock path is refused for that key
/// (a decode error, like a malformed record), quickly; the sweep skips the key.
/// Record paths (already opened non-blocking) are checked the same way, with the
/// same time limit. A Unix socket is refused at both places too.
#[test]
fn non_regular_files_at_lock_and_record_paths_are_refused_without_hanging() {
    for planted in [
        Planted::Fifo,
        Planted::Directory,
        Planted::Symlink,
        Planted::Socket,
    ] {
        for mode in [TouchMode::InPlace, TouchMode::Rewrite] {
            finishes(format!("{planted:?} as lock file, {mode:?}"), move || {
                planted_lock(planted, mode)
            });
            finishes(format!("{planted:?} as record, {mode:?}"), move || {
                planted_record(planted, mode)
            });
        }
    }
}

/// A store in a fresh directory, a file outside it (the target of planted
/// symlinks, which must never change) and its contents.
async fn hostile_fixture(
    mode: TouchMode,
) -> (tempfile::TempDir, PathBuf, FileStore, ManualClock, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let outside = tmp.path().join("outside");
    fs::write(&outside, b"not a session").unwrap();
    let clock = ManualClock::starting_now();
    let store = FileStore::builder(&dir)
        .clock(clock.shared())
        .touch_mode(mode)
        .open()
        .await
        .unwrap();
    (tmp, dir, store, clock, outside)
}

async fn planted_lock(planted: Planted, mode: TouchMode) {
    let (_tmp, dir, store, clock, outside) = hostile_fixture(mode).await;
    let far = clock.now() + Duration::hours(1);
    let k = SessionToken::generate().unwrap().storage_key();
    let shard = dir.join(&k.as_str()[..2]);
    let record = NewRecord {
        payload: Bytes::from_static(b"live"),
        expires_at: far,
    };
    store.save(&k, &record, SaveMode::Create).await.unwrap();
    let lock = shard.join(format!("{}.lock", k.as_str()));
    fs::remove_file(&lock).unwrap();
    planted.plant(&lock, &outside);
    // A key whose only file is the planted lock: the sweeper looks at it too.
    let lonely = loop {
        let other = SessionToken::generate().unwrap().storage_key();
        if other.as_str()[..2] != k.as_str()[..2] {
            break other;
        }
    };
    private_dir(dir.join(&lonely.as_str()[..2])).unwrap();
    planted.plant(
        &dir.join(&lonely.as_str()[..2])
            .join(format!("{}.lock", lonely.as_str())),
        &outside,
    );

    // Loads take no lock: the record itself is fine.
    assert_eq!(store.load(&k).await.unwrap().unwrap().payload, "live");
    let update = SaveMode::Update {
        expected_version: 1,
    };
    let r = store.save(&k, &record, update).await;
    assert!(is_decode(&r), "{planted:?}: save: {r:?}");
    let r = store.save(&lonely, &record, SaveMode::Create).await;
    assert!(is_decode(&r), "{planted:?}: create: {r:?}");
    let r = store.touch(&k, far).await;
    assert!(is_decode(&r), "{planted:?}: touch: {r:?}");
    let r = store.expire(&k).await;
    assert!(is_decode(&r), "{planted:?}: expire: {r:?}");
    // The sweep skips the keys (live or dead) and finishes.
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    clock.advance(Duration::hours(2));
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    assert_eq!(fs::read(&outside).unwrap(), b"not a session");
}

async fn planted_record(planted: Planted, mode: TouchMode) {
    let (_tmp, dir, store, clock, outside) = hostile_fixture(mode).await;
    let far = clock.now() + Duration::hours(1);
    let k = SessionToken::generate().unwrap().storage_key();
    private_dir(dir.join(&k.as_str()[..2])).unwrap();
    let path = dir.join(&k.as_str()[..2]).join(k.as_str());
    planted.plant(&path, &outside);
    let record = NewRecord {
        payload: Bytes::from_static(b"new"),
        expires_at: far,
    };

    let r = store.load(&k).await;
    assert!(is_decode(&r), "{planted:?}: load: {r:?}");
    let r = store.save(&k, &record, SaveMode::Create).await;
    assert!(is_decode(&r), "{planted:?}: create: {r:?}");
    let r = store.touch(&k, far).await;
    assert!(is_decode(&r), "{planted:?}: touch: {r:?}");
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    // Expire removes a planted FIFO or symlink (never what a symlink points to);
    // a directory it cannot remove is an error, not a hang.
    let r = store.expire(&k).await;
    match planted {
        Planted::Directory => assert!(r.is_err(), "{planted:?}: expire: {r:?}"),
        _ => {
            r.unwrap();
            assert!(fs::symlink_metadata(&path).is_err(), "{planted:?} left");
            assert_eq!(store.load(&k).await.unwrap(), None);
        }
    }
    assert_eq!(fs::read(&outside).unwrap(), b"not a session");
}

/// Loads take no lock: while another process holds a key's `flock` (say, one that hangs mid-save), `load` and a `load_and_touch` that is not due still return the record.
#[test]
fn reads_never_wait_for_a_held_key_lock() {
    for mode in [TouchMode::InPlace, TouchMode::Rewrite] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let far = OffsetDateTime::now_utc() + Duration::hours(1);
        let k = SessionToken::generate().unwrap().storage_key();
        let record = NewRecord {
            payload: Bytes::from_static(b"live"),
            expires_at: far,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = FileStore::open(&dir).await.unwrap();
            store.save(&k, &record, SaveMode::Create).await.unwrap();
        });
        // The other process's lock: a `flock` on its own open of the lock file.
        let lock_path = dir.join(&k.as_str()[..2]).join(format!("{k}.lock"));
        let held = fs::File::open(&lock_path).unwrap();
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let (store_dir, key) = (dir.clone(), k.clone());
        finishes(
            format!("reads under a held lock, {mode:?}"),
            move || async move {
                let store = FileStore::builder(&store_dir)
                    .touch_mode(mode)
                    .open()
                    .await
                    .unwrap();
                let loaded = store.load(&key).await.unwrap().unwrap();
                assert_eq!(&loaded.payload[..], b"live");
                // Due only before now: the deadline stays, nothing to lock.
                let now = OffsetDateTime::now_utc();
                let refreshed = store.load_and_touch(&key, far, now).await.unwrap().unwrap();
                assert!(!refreshed.touched);
                assert_eq!(&refreshed.record.payload[..], b"live");
            },
        );
        drop(held);
    }
}

/// A sweep never waits for a key whose lock another process holds and never touches its files (its temporary file may be a save in progress); the next sweep after the lock is released cleans it.
#[test]
fn sweeps_skip_keys_whose_lock_is_held_and_never_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let clock = ManualClock::starting_now();
    let soon = clock.now() + Duration::minutes(5);
    let (busy, idle) = (
        SessionToken::generate().unwrap().storage_key(),
        SessionToken::generate().unwrap().storage_key(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let open = {
        let (dir, clock) = (dir.clone(), clock.clone());
        move || {
            let (dir, clock) = (dir.clone(), clock.clone());
            async move {
                FileStore::builder(&dir)
                    .clock(clock.shared())
                    .open()
                    .await
                    .unwrap()
            }
        }
    };
    rt.block_on(async {
        let store = open().await;
        for k in [&busy, &idle] {
            let r = NewRecord {
                payload: Bytes::from_static(b"x"),
                expires_at: soon,
            };
            store.save(k, &r, SaveMode::Create).await.unwrap();
        }
    });
    clock.advance(Duration::minutes(10));
    let shard = dir.join(&busy.as_str()[..2]);
    // Another process, mid-save of `busy`: its lock held, its temporary file written.
    let held = fs::File::open(shard.join(format!("{busy}.lock"))).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let in_progress = shard.join(format!("{busy}.tmp"));
    fs::write(&in_progress, b"a save in progress").unwrap();

    let sweeping = open.clone();
    let removed = finishes(
        "a sweep with a key's lock held".into(),
        move || async move { sweeping().await.delete_expired().await.unwrap() },
    );
    assert_eq!(removed, 1, "only the idle key's record");
    assert_eq!(
        fs::read(&in_progress).ok().as_deref(),
        Some(&b"a save in progress"[..]),
        "the temporary file of the save in progress"
    );
    assert!(shard.join(busy.as_str()).exists());
    assert!(!dir.join(&idle.as_str()[..2]).join(idle.as_str()).exists());

    drop(held);
    let removed = rt.block_on(async { open().await.delete_expired().await.unwrap() });
    assert_eq!(removed, 1);
    assert!(!in_progress.exists() && !shard.join(busy.as_str()).exists());
}
