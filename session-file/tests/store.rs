//! In-process tests of the file store beyond the shared conformance suite: layout,
//! permissions, hostile directory contents, crash leftovers, sweeping, locking and
//! the async runtime.

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, Clock, ConfigError, DecodeError, Error, ManualClock, NewRecord, SaveMode,
    SessionInterface, SessionToken, StorageKey,
};
use session_file::{FileStore, TouchMode};

fn key() -> StorageKey {
    SessionToken::generate().unwrap().storage_key()
}

fn rec(payload: &'static [u8], expires_at: OffsetDateTime) -> NewRecord {
    NewRecord {
        payload: Bytes::from_static(payload),
        expires_at,
    }
}

fn record_path(dir: &Path, key: &StorageKey) -> PathBuf {
    dir.join(&key.as_str()[..2]).join(key.as_str())
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

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

async fn store_with_clock(dir: &Path) -> (FileStore, ManualClock) {
    let clock = ManualClock::starting_now();
    let store = FileStore::builder(dir)
        .clock(clock.shared())
        .open()
        .await
        .unwrap();
    (store, clock)
}

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn contract_basics_with_a_manual_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, clock) = store_with_clock(tmp.path()).await;
    let k = key();
    let hour = clock.now() + Duration::hours(1);

    assert_eq!(store.load(&k).await.unwrap(), None);
    assert_eq!(
        store
            .save(&k, &rec(b"a", hour), SaveMode::Create)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store.save(&k, &rec(b"b", hour), SaveMode::Create).await,
        Err(Error::Collision)
    ));
    let loaded = store.load(&k).await.unwrap().unwrap();
    assert_eq!(
        (&loaded.payload[..], loaded.version, loaded.expires_at),
        (&b"a"[..], 1, hour)
    );

    let upd = SaveMode::Update {
        expected_version: 1,
    };
    assert_eq!(store.save(&k, &rec(b"c", hour), upd).await.unwrap(), 2);
    assert!(matches!(
        store.save(&k, &rec(b"d", hour), upd).await,
        Err(Error::Conflict)
    ));
    assert_eq!(&store.load(&k).await.unwrap().unwrap().payload[..], b"c");

    // Expired but still on disk: never returned, never updated, replaceable by create.
    clock.advance(Duration::hours(2));
    assert!(record_path(tmp.path(), &k).exists());
    assert_eq!(store.load(&k).await.unwrap(), None);
    let upd2 = SaveMode::Update {
        expected_version: 2,
    };
    assert!(matches!(
        store.save(&k, &rec(b"e", hour), upd2).await,
        Err(Error::NotFound)
    ));
    assert!(
        !store
            .touch(&k, clock.now() + Duration::hours(1))
            .await
            .unwrap()
    );
    let later = clock.now() + Duration::hours(1);
    assert_eq!(
        store
            .save(&k, &rec(b"f", later), SaveMode::Create)
            .await
            .unwrap(),
        1
    );

    store.expire(&k).await.unwrap();
    store.expire(&k).await.unwrap();
    assert_eq!(store.load(&k).await.unwrap(), None);
    let upd1 = SaveMode::Update {
        expected_version: 1,
    };
    assert!(matches!(
        store.save(&k, &rec(b"g", later), upd1).await,
        Err(Error::NotFound)
    ));
    assert!(
        !record_path(tmp.path(), &k).exists(),
        "update resurrected the record"
    );
    // No lock or temporary file outlives the record.
    assert_eq!(tree(tmp.path()), vec![k.as_str()[..2].to_owned()]);

    let caps = store.capabilities();
    assert!(caps.touch && caps.delete_expired && caps.durable && !caps.native_ttl);
    let _dyn: Arc<dyn SessionInterface> = Arc::new(store);
}

#[tokio::test]
async fn touch_moves_only_the_deadline_in_both_modes() {
    for mode in [TouchMode::InPlace, TouchMode::Rewrite] {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::starting_now();
        let store = FileStore::builder(tmp.path())
            .clock(clock.shared())
            .touch_mode(mode)
            .open()
            .await
            .unwrap();
        let k = key();
        let payload: Vec<u8> = (0..=255u8).cycle().take(20_000).collect();
        let rec = NewRecord {
            payload: payload.clone().into(),
            expires_at: clock.now() + Duration::minutes(1),
        };
        store.save(&k, &rec, SaveMode::Create).await.unwrap();
        store
            .save(
                &k,
                &rec,
                SaveMode::Update {
                    expected_version: 1,
                },
            )
            .await
            .unwrap();
        // Several touches, so the in-place writer alternates its two slots.
        let mut deadline = clock.now();
        for i in 1..=5 {
            deadline = clock.now() + Duration::hours(i);
            assert!(store.touch(&k, deadline).await.unwrap(), "{mode:?}");
            let got = store.load(&k).await.unwrap().unwrap();
            assert_eq!((got.expires_at, got.version), (deadline, 2), "{mode:?}");
            assert_eq!(got.payload, payload, "{mode:?}");
        }
        clock.advance(Duration::minutes(90));
        assert!(
            store.load(&k).await.unwrap().is_some(),
            "{mode:?}: touch did not last"
        );
        // A deadline in the past kills the record at once.
        assert!(
            store
                .touch(&k, clock.now() - Duration::hours(1))
                .await
                .unwrap()
        );
        assert_eq!(store.load(&k).await.unwrap(), None, "{mode:?}");
        assert!(!store.touch(&k, deadline).await.unwrap(), "{mode:?}");
        // Touching an absent key creates nothing.
        let absent = key();
        assert!(!store.touch(&absent, deadline).await.unwrap());
        assert!(!record_path(tmp.path(), &absent).exists());
        assert!(
            !tmp.path()
                .join(&absent.as_str()[..2])
                .join(format!("{absent}.lock"))
                .exists()
        );
    }
}

#[tokio::test]
async fn layout_and_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/sessions");
    let store = FileStore::open(&dir).await.unwrap();
    assert_eq!(store.dir(), dir);
    assert_eq!(mode(&dir), 0o700);
    let k = key();
    let far = OffsetDateTime::now_utc() + Duration::days(1);
    store
        .save(&k, &rec(b"x", far), SaveMode::Create)
        .await
        .unwrap();
    let shard = dir.join(&k.as_str()[..2]);
    assert_eq!(mode(&shard), 0o700);
    let file = record_path(&dir, &k);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&shard.join(format!("{k}.lock"))), 0o600);
    // Survives a new store instance (and so a restart).
    drop(store);
    let again = FileStore::open(&dir).await.unwrap();
    assert_eq!(&again.load(&k).await.unwrap().unwrap().payload[..], b"x");
}

#[tokio::test]
async fn every_path_stays_inside_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let outer = tmp.path();
    let dir = outer.join("store");
    let (store, clock) = store_with_clock(&dir).await;
    let far = clock.now() + Duration::hours(1);
    // Adversarial-looking but valid keys, plus random ones.
    let mut keys: Vec<StorageKey> = ["0".repeat(64), "f".repeat(64), "2e".repeat(32)]
        .iter()
        .map(|s| StorageKey::parse(s).unwrap())
        .collect();
    keys.extend((0..50).map(|_| key()));
    for k in &keys {
        store
            .save(k, &rec(b"v", far), SaveMode::Create)
            .await
            .unwrap();
        store.touch(k, far).await.unwrap();
    }
    store.expire(&keys[3]).await.unwrap();
    clock.advance(Duration::hours(2));
    assert_eq!(store.delete_expired().await.unwrap(), keys.len() as u64 - 1);
    for k in &keys {
        store
            .save(
                k,
                &rec(b"w", clock.now() + Duration::hours(1)),
                SaveMode::Create,
            )
            .await
            .unwrap();
    }
    // Nothing was written beside the store's directory...
    assert_eq!(tree(outer), tree_with_prefix("store", &dir));
    // ...and inside it only <2 hex>/<64 hex>[.lock], in the key's own shard.
    for p in tree(&dir) {
        let parts: Vec<&str> = p.split('/').collect();
        match parts.as_slice() {
            [shard] => assert!(shard.len() == 2 && shard.bytes().all(|b| b.is_ascii_hexdigit())),
            [shard, file] => {
                let k = file.strip_suffix(".lock").unwrap_or(file);
                let k = StorageKey::parse(k).unwrap_or_else(|| panic!("foreign name {p}"));
                assert_eq!(&k.as_str()[..2], *shard);
            }
            _ => panic!("unexpected depth: {p}"),
        }
    }
}

fn tree_with_prefix(prefix: &str, dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = tree(dir)
        .into_iter()
        .map(|p| format!("{prefix}/{p}"))
        .collect();
    v.push(prefix.to_owned());
    v.sort();
    v
}

/// A symlinked store path is resolved once, at `open`: the target is what is checked, and repointing the link afterwards never moves a read or write.
#[tokio::test]
async fn a_symlinked_store_path_is_checked_and_pinned_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (real, other, link) = (
        tmp.path().join("real"),
        tmp.path().join("other"),
        tmp.path().join("link"),
    );
    private_dir(&real).unwrap();
    private_dir(&other).unwrap();
    symlink(&real, &link).unwrap();
    let (store, clock) = store_with_clock(&link).await;
    assert_eq!(store.dir(), link);
    let far = clock.now() + Duration::hours(1);
    let (a, b) = (
        StorageKey::parse(&format!("a{}", "1".repeat(63))).unwrap(),
        StorageKey::parse(&format!("b{}", "2".repeat(63))).unwrap(),
    );
    store
        .save(&a, &rec(b"a", far), SaveMode::Create)
        .await
        .unwrap();

    // Repointed after open (by an operator, or by whoever can write its parent).
    fs::remove_file(&link).unwrap();
    symlink(&other, &link).unwrap();
    // A new shard, a write to the old one, reads, a sweep.
    store
        .save(&b, &rec(b"b", far), SaveMode::Create)
        .await
        .unwrap();
    let upd = SaveMode::Update {
        expected_version: 1,
    };
    store.save(&a, &rec(b"a2", far), upd).await.unwrap();
    assert_eq!(&store.load(&a).await.unwrap().unwrap().payload[..], b"a2");
    assert_eq!(&store.load(&b).await.unwrap().unwrap().payload[..], b"b");
    clock.advance(Duration::hours(2));
    assert_eq!(store.delete_expired().await.unwrap(), 2);
    assert!(tree(&other).is_empty(), "{:?}", tree(&other));
    // Both shards were made in the directory the link named at `open`.
    assert_eq!(tree(&real), ["a1", "b2"]);

    // The target is what is judged: a link to a directory others can write is
    // refused like that directory.
    for (mode, what) in [(0o777, "world-writable"), (0o770, "group-writable")] {
        let shared = tmp.path().join(what);
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(mode)).unwrap();
        let to_shared = tmp.path().join(format!("link-to-{what}"));
        symlink(&shared, &to_shared).unwrap();
        let r = FileStore::open(&to_shared).await;
        assert!(
            matches!(r, Err(Error::Config(ConfigError::Invalid { .. }))),
            "{what}: {r:?}"
        );
    }
}

#[tokio::test]
async fn constructor_validates_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let world = tmp.path().join("world");
    fs::create_dir(&world).unwrap();
    fs::set_permissions(&world, fs::Permissions::from_mode(0o777)).unwrap();
    for (path, what) in [
        (file.clone(), "a file"),
        (file.join("below"), "below a file"),
        (world, "world-writable"),
        (PathBuf::new(), "empty"),
    ] {
        let r = FileStore::open(&path).await;
        assert!(
            matches!(r, Err(Error::Config(ConfigError::Invalid { .. }))),
            "{what}: {r:?}"
        );
    }
    for b in [
        FileStore::builder(tmp.path()).sweep_batch(0),
        FileStore::builder(tmp.path()).max_payload_bytes(0),
    ] {
        assert!(matches!(
            b.open().await,
            Err(Error::Config(ConfigError::Invalid { .. }))
        ));
    }
}

#[tokio::test]
async fn payloads_of_any_size_and_content_and_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::builder(tmp.path())
        .max_payload_bytes(4 << 20)
        .open()
        .await
        .unwrap();
    let far = OffsetDateTime::now_utc() + Duration::hours(1);
    for len in [0usize, 1, 255, 256, 4096, 3 << 20, 4 << 20] {
        let k = key();
        let payload: Bytes = (0..len)
            .map(|i| (i * 7 + i / 256) as u8)
            .collect::<Vec<_>>()
            .into();
        let r = NewRecord {
            payload: payload.clone(),
            expires_at: far,
        };
        store.save(&k, &r, SaveMode::Create).await.unwrap();
        assert_eq!(
            store.load(&k).await.unwrap().unwrap().payload,
            payload,
            "len {len}"
        );
    }
    let big = NewRecord {
        payload: vec![0u8; (4 << 20) + 1].into(),
        expires_at: far,
    };
    let k = key();
    assert!(matches!(
        store.save(&k, &big, SaveMode::Create).await,
        Err(Error::PayloadTooLarge { size, limit }) if size == (4 << 20) + 1 && limit == 4 << 20
    ));
    assert!(!record_path(tmp.path(), &k).exists());
}

/// A record file larger than the payload limit allows is never read: `load` and `load_and_touch` report `Malformed` (a file of exactly the limit still loads).
#[tokio::test]
async fn record_files_over_the_limit_are_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let far = OffsetDateTime::now_utc() + Duration::hours(1);
    // Written by a store with a higher limit (or planted by anyone who can).
    let roomy = FileStore::builder(tmp.path())
        .max_payload_bytes(2048)
        .open()
        .await
        .unwrap();
    let (over, at) = (key(), key());
    for (k, len) in [(&over, 1025), (&at, 1024)] {
        let r = NewRecord {
            payload: vec![7u8; len].into(),
            expires_at: far,
        };
        roomy.save(k, &r, SaveMode::Create).await.unwrap();
    }
    for mode in [TouchMode::InPlace, TouchMode::Rewrite] {
        let store = FileStore::builder(tmp.path())
            .max_payload_bytes(1024)
            .touch_mode(mode)
            .open()
            .await
            .unwrap();
        // (The error, or only that there was none: a payload is too long to print.)
        let r = store.load(&over).await.map(|_| "a record");
        assert!(
            matches!(r, Err(Error::Decode(DecodeError::Malformed { .. }))),
            "load, {mode:?}: {r:?}"
        );
        let r = store
            .load_and_touch(&over, far, far)
            .await
            .map(|_| "a record");
        assert!(
            matches!(r, Err(Error::Decode(DecodeError::Malformed { .. }))),
            "load_and_touch, {mode:?}: {r:?}"
        );
        assert_eq!(store.load(&at).await.unwrap().unwrap().payload.len(), 1024);
    }
}

/// `FileStore::open` refuses payloads over 64 MiB (`DEFAULT_MAX_PAYLOAD_BYTES`) with `PayloadTooLarge`, writing nothing.
#[tokio::test]
async fn the_default_payload_limit_is_64_mib() {
    assert_eq!(session_file::DEFAULT_MAX_PAYLOAD_BYTES, 64 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let store = FileStore::open(tmp.path()).await.unwrap();
    let k = key();
    let big = NewRecord {
        payload: vec![0u8; (64 << 20) + 1].into(),
        expires_at: OffsetDateTime::now_utc() + Duration::hours(1),
    };
    assert!(matches!(
        store.save(&k, &big, SaveMode::Create).await,
        Err(Error::PayloadTooLarge { size, limit }) if size == (64 << 20) + 1 && limit == 64 << 20
    ));
    assert!(!record_path(tmp.path(), &k).exists());
}

/// Damaged records: a typed decode error for that key, other keys unaffected.
#[tokio::test]
async fn corrupted_and_truncated_records_fail_only_their_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, clock) = store_with_clock(tmp.path()).await;
    let far = clock.now() + Duration::hours(1);
    let good = key();
    store
        .save(&good, &rec(b"good", far), SaveMode::Create)
        .await
        .unwrap();

    // (what, damage, whether the header is hit). Saves and touch check only the
    // header (they never need the payload), so they notice header damage only.
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let damage: Vec<(&str, Damage, bool)> = vec![
        (
            "truncated in the payload",
            Box::new(|b| b.truncate(b.len() - 3)),
            true,
        ),
        (
            "truncated in the header",
            Box::new(|b| b.truncate(40)),
            true,
        ),
        ("version byte flipped", Box::new(|b| b[8] ^= 1), true),
        (
            "trailing garbage",
            Box::new(|b| b.extend_from_slice(b"junk")),
            true,
        ),
        (
            "payload byte flipped",
            Box::new(|b| *b.last_mut().unwrap() ^= 0x20),
            false,
        ),
    ];
    for (what, f, header_hit) in damage {
        let k = key();
        store
            .save(&k, &rec(b"payload bytes", far), SaveMode::Create)
            .await
            .unwrap();
        let path = record_path(tmp.path(), &k);
        let mut bytes = fs::read(&path).unwrap();
        f(&mut bytes);
        fs::write(&path, &bytes).unwrap();
        let r = store.load(&k).await;
        assert!(
            matches!(r, Err(Error::Decode(DecodeError::Malformed { .. }))),
            "{what}: {r:?}"
        );
        if header_hit {
            for mode in [
                SaveMode::Create,
                SaveMode::Update {
                    expected_version: 1,
                },
            ] {
                let r = store.save(&k, &rec(b"new", far), mode).await;
                assert!(matches!(r, Err(Error::Decode(_))), "{what} {mode:?}: {r:?}");
            }
            assert!(
                matches!(store.touch(&k, far).await, Err(Error::Decode(_))),
                "{what}"
            );
        }
        // The damaged file is left alone by saves and sweeps...
        assert_eq!(store.delete_expired().await.unwrap(), 0);
        assert_eq!(fs::read(&path).unwrap(), bytes, "{what}");
        // ...and other keys work.
        assert_eq!(
            &store.load(&good).await.unwrap().unwrap().payload[..],
            b"good"
        );
        let other = key();
        store
            .save(&other, &rec(b"o", far), SaveMode::Create)
            .await
            .unwrap();
        // `expire` is the way out: it removes what it cannot read.
        store.expire(&k).await.unwrap();
        assert_eq!(store.load(&k).await.unwrap(), None);
        store
            .save(&k, &rec(b"fresh", far), SaveMode::Create)
            .await
            .unwrap();
    }
}

/// What a crash can leave behind: a torn temporary file beside an intact record,
/// a temporary file with no record, an orphaned lock file.
#[tokio::test]
async fn crash_leftovers_are_harmless_and_swept() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, clock) = store_with_clock(tmp.path()).await;
    let far = clock.now() + Duration::hours(1);
    let k = key();
    store
        .save(&k, &rec(b"committed", far), SaveMode::Create)
        .await
        .unwrap();
    let shard = tmp.path().join(&k.as_str()[..2]);
    // A torn temporary file: the first bytes of a newer record.
    let record = fs::read(record_path(tmp.path(), &k)).unwrap();
    fs::write(shard.join(format!("{k}.tmp")), &record[..50]).unwrap();
    let lonely = StorageKey::parse(&format!("{}{}", &k.as_str()[..2], "1".repeat(62))).unwrap();
    fs::write(shard.join(format!("{lonely}.tmp")), b"half").unwrap();
    let orphan = StorageKey::parse(&format!("{}{}", &k.as_str()[..2], "2".repeat(62))).unwrap();
    fs::write(shard.join(format!("{orphan}.lock")), b"").unwrap();

    assert_eq!(
        &store.load(&k).await.unwrap().unwrap().payload[..],
        b"committed"
    );
    assert_eq!(store.load(&lonely).await.unwrap(), None);
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    // Only the live record and its lock file remain.
    assert_eq!(
        tree(&shard),
        vec![k.to_string(), format!("{k}.lock")],
        "sweep left crash debris"
    );
    // Updates still work over the debris-free state.
    let upd = SaveMode::Update {
        expected_version: 1,
    };
    assert_eq!(store.save(&k, &rec(b"next", far), upd).await.unwrap(), 2);
    // And a leftover temp file does not block a write either.
    fs::write(shard.join(format!("{k}.tmp")), b"torn").unwrap();
    let upd = SaveMode::Update {
        expected_version: 2,
    };
    assert_eq!(store.save(&k, &rec(b"third", far), upd).await.unwrap(), 3);
    assert!(!shard.join(format!("{k}.tmp")).exists());
}

#[tokio::test]
async fn hostile_directory_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let (store, clock) = store_with_clock(&dir).await;
    let far = clock.now() + Duration::hours(1);

    // A valid record outside the directory, to be planted via symlinks.
    let donor = key();
    store
        .save(&donor, &rec(b"secret", far), SaveMode::Create)
        .await
        .unwrap();
    let target = outside.join("victim");
    fs::copy(record_path(&dir, &donor), &target).unwrap();
    let victim_bytes = fs::read(&target).unwrap();

    // Stray files at the root and in a shard: ignored.
    fs::write(dir.join("README"), b"hello").unwrap();
    fs::write(dir.join(&donor.as_str()[..2]).join("notes.txt"), b"hi").unwrap();
    fs::create_dir(dir.join("zz")).unwrap();

    // An empty file and a future format version where records belong.
    let empty = key();
    private_dir(dir.join(&empty.as_str()[..2])).unwrap();
    fs::write(record_path(&dir, &empty), b"").unwrap();
    let future = key();
    store
        .save(&future, &rec(b"f", far), SaveMode::Create)
        .await
        .unwrap();
    let mut bytes = fs::read(record_path(&dir, &future)).unwrap();
    bytes[4..6].copy_from_slice(&9u16.to_le_bytes());
    fs::write(record_path(&dir, &future), &bytes).unwrap();

    // A symlinked record, a symlinked temp file, a symlinked lock file.
    let linked = key();
    private_dir(dir.join(&linked.as_str()[..2])).unwrap();
    symlink(&target, record_path(&dir, &linked)).unwrap();
    let tmp_linked = key();
    store
        .save(&tmp_linked, &rec(b"t", far), SaveMode::Create)
        .await
        .unwrap();
    let tmp_path = dir
        .join(&tmp_linked.as_str()[..2])
        .join(format!("{tmp_linked}.tmp"));
    symlink(&target, &tmp_path).unwrap();
    let lock_linked = key();
    private_dir(dir.join(&lock_linked.as_str()[..2])).unwrap();
    symlink(
        &target,
        dir.join(&lock_linked.as_str()[..2])
            .join(format!("{lock_linked}.lock")),
    )
    .unwrap();
    // A directory and a FIFO where a record belongs (the FIFO must not hang a load).
    let as_dir = key();
    private_dir(record_path(&dir, &as_dir)).unwrap();
    let fifo = key();
    private_dir(dir.join(&fifo.as_str()[..2])).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(record_path(&dir, &fifo))
        .status()
        .unwrap();
    assert!(status.success());

    let r = store.load(&empty).await;
    assert!(
        matches!(r, Err(Error::Decode(DecodeError::Malformed { .. }))),
        "empty: {r:?}"
    );
    let r = store.load(&future).await;
    assert!(
        matches!(r, Err(Error::Decode(DecodeError::UnknownVersion(9)))),
        "future: {r:?}"
    );
    for (k, what) in [
        (&linked, "symlink"),
        (&as_dir, "directory"),
        (&fifo, "fifo"),
    ] {
        let r = store.load(k).await;
        assert!(
            matches!(r, Err(Error::Decode(DecodeError::Malformed { .. }))),
            "{what}: {r:?}"
        );
        let r = store.save(k, &rec(b"x", far), SaveMode::Create).await;
        assert!(matches!(r, Err(Error::Decode(_))), "{what}: {r:?}");
        assert!(
            matches!(store.touch(k, far).await, Err(Error::Decode(_))),
            "{what}"
        );
        assert!(
            matches!(
                store.load_and_touch(k, far, far).await,
                Err(Error::Decode(_))
            ),
            "load_and_touch of a {what}"
        );
    }
    // The planted temp file is replaced, not written through.
    store
        .save(
            &tmp_linked,
            &rec(b"t2", far),
            SaveMode::Update {
                expected_version: 1,
            },
        )
        .await
        .unwrap();
    // The planted lock file is refused, not followed.
    let r = store
        .save(&lock_linked, &rec(b"l", far), SaveMode::Create)
        .await;
    assert!(matches!(r, Err(Error::Decode(_))), "lock symlink: {r:?}");

    // A sweep runs past all of it; expire removes the symlink, not its target.
    clock.advance(Duration::hours(2));
    store.delete_expired().await.unwrap();
    store.expire(&linked).await.unwrap();
    assert!(fs::symlink_metadata(record_path(&dir, &linked)).is_err());
    assert_eq!(
        fs::read(&target).unwrap(),
        victim_bytes,
        "followed a symlink out"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(fs::read(dir.join("README")).unwrap(), b"hello");
    assert!(dir.join(&donor.as_str()[..2]).join("notes.txt").exists());
}

#[tokio::test]
async fn a_symlinked_shard_directory_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let (store, clock) = store_with_clock(&dir).await;
    let k = key();
    symlink(&outside, dir.join(&k.as_str()[..2])).unwrap();
    let far = clock.now() + Duration::hours(1);
    assert!(store.load(&k).await.is_err());
    assert!(
        store
            .save(&k, &rec(b"x", far), SaveMode::Create)
            .await
            .is_err()
    );
    assert!(store.expire(&k).await.is_err());
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[tokio::test]
async fn delete_expired_works_in_batches_and_keeps_live_records() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();
    let store = FileStore::builder(tmp.path())
        .clock(clock.shared())
        .sweep_batch(3)
        .open()
        .await
        .unwrap();
    // Keys all in one shard, so batches within a shard are exercised.
    let same_shard: Vec<StorageKey> = (0..20)
        .map(|i| StorageKey::parse(&format!("ab{i:062x}")).unwrap())
        .collect();
    let short = clock.now() + Duration::minutes(10);
    let long = clock.now() + Duration::hours(10);
    for (i, k) in same_shard.iter().enumerate() {
        let deadline = if i % 2 == 0 { short } else { long };
        store
            .save(k, &rec(b"x", deadline), SaveMode::Create)
            .await
            .unwrap();
    }
    let spread: Vec<StorageKey> = (0..30).map(|_| key()).collect();
    for k in &spread {
        store
            .save(k, &rec(b"y", short), SaveMode::Create)
            .await
            .unwrap();
    }
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    clock.advance(Duration::hours(1));
    assert_eq!(store.delete_expired().await.unwrap(), 10 + 30);
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    for (i, k) in same_shard.iter().enumerate() {
        assert_eq!(store.load(k).await.unwrap().is_some(), i % 2 == 1);
        assert_eq!(record_path(tmp.path(), k).exists(), i % 2 == 1);
    }
    for k in &spread {
        assert!(!record_path(tmp.path(), k).exists());
        assert!(
            !tmp.path()
                .join(&k.as_str()[..2])
                .join(format!("{k}.lock"))
                .exists()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_and_updates_in_process() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(tmp.path()).await.unwrap());
    let far = OffsetDateTime::now_utc() + Duration::hours(1);
    let k = key();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (store, k) = (Arc::clone(&store), k.clone());
            tokio::spawn(async move { store.save(&k, &rec(b"c", far), SaveMode::Create).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(1) => wins += 1,
            Err(Error::Collision) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(wins, 1);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (store, k) = (Arc::clone(&store), k.clone());
            tokio::spawn(async move {
                store
                    .save(
                        &k,
                        &rec(b"u", far),
                        SaveMode::Update {
                            expected_version: 1,
                        },
                    )
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(2) => wins += 1,
            Err(Error::Conflict) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.load(&k).await.unwrap().unwrap().version, 2);
}

/// A key whose lock is held elsewhere (here: a plain thread holding the `flock`, as
/// another process would) must not stall the runtime: on a single-threaded runtime a
/// ticker keeps running while the save waits, and the save completes afterwards.
#[test]
fn a_contended_key_does_not_block_the_async_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileStore::open(tmp.path()).await.unwrap();
        let far = OffsetDateTime::now_utc() + Duration::hours(1);
        let k = key();
        store
            .save(&k, &rec(b"a", far), SaveMode::Create)
            .await
            .unwrap();

        let lock_path = tmp.path().join(&k.as_str()[..2]).join(format!("{k}.lock"));
        let lock_file = fs::File::open(&lock_path).unwrap();
        rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            held_rx.recv_timeout(StdDuration::from_millis(400)).ok();
            drop(lock_file);
        });

        let ticker = tokio::spawn(async {
            let mut iv = tokio::time::interval(StdDuration::from_millis(10));
            for _ in 0..15 {
                iv.tick().await;
            }
            std::time::Instant::now()
        });
        let started = std::time::Instant::now();
        let upd = SaveMode::Update {
            expected_version: 1,
        };
        let save = async {
            let r = store.save(&k, &rec(b"b", far), upd).await;
            (r, std::time::Instant::now())
        };
        let ((saved, saved_at), ticked_at) = tokio::join!(save, ticker);
        assert_eq!(saved.unwrap(), 2);
        // The save really waited for the OS lock...
        assert!(
            saved_at - started >= StdDuration::from_millis(300),
            "{:?}",
            saved_at - started
        );
        // ...and the ticker (on the same, only, worker thread) finished meanwhile.
        assert!(ticked_at.unwrap() < saved_at);
        drop(held_tx);
        holder.join().unwrap();
    });
}

#[tokio::test]
async fn load_and_touch_reads_and_moves_the_deadline_in_both_modes() {
    for mode in [TouchMode::InPlace, TouchMode::Rewrite] {
        let tmp = tempfile::tempdir().unwrap();
        let clock = ManualClock::starting_now();
        let store = FileStore::builder(tmp.path())
            .clock(clock.shared())
            .touch_mode(mode)
            .open()
            .await
            .unwrap();
        // One step only where the deadline is written into the file that was read.
        assert_eq!(
            store.capabilities().load_and_touch,
            mode == TouchMode::InPlace
        );
        let k = key();
        let payload: Vec<u8> = (0..=255u8).cycle().take(20_000).collect();
        let rec = NewRecord {
            payload: payload.clone().into(),
            expires_at: clock.now() + Duration::minutes(1),
        };
        store.save(&k, &rec, SaveMode::Create).await.unwrap();
        // Several due refreshes, so the in-place writer alternates its two slots.
        let mut previous = rec.expires_at;
        for i in 1..=5 {
            let deadline = clock.now() + Duration::hours(i);
            let r = store
                .load_and_touch(&k, deadline, deadline)
                .await
                .unwrap()
                .unwrap();
            assert!(r.touched, "{mode:?} #{i}");
            assert_eq!(
                (r.previous_expires_at, r.record.expires_at, r.record.version),
                (previous, deadline, 1),
                "{mode:?} #{i}"
            );
            assert_eq!(r.record.payload, payload, "{mode:?} #{i}");
            let got = store.load(&k).await.unwrap().unwrap();
            assert_eq!((got.expires_at, got.payload), (deadline, r.record.payload));
            previous = deadline;
        }
        // Not due: nothing written.
        let before = fs::read(record_path(tmp.path(), &k)).unwrap();
        let r = store
            .load_and_touch(&k, clock.now() + Duration::hours(9), previous)
            .await
            .unwrap()
            .unwrap();
        assert!(!r.touched);
        assert_eq!(r.record.expires_at, previous);
        assert_eq!(fs::read(record_path(tmp.path(), &k)).unwrap(), before);
        // Absent: None, and no file or lock left behind.
        let absent = key();
        let far = clock.now() + Duration::hours(9);
        assert_eq!(store.load_and_touch(&absent, far, far).await.unwrap(), None);
        let shard = tmp.path().join(&absent.as_str()[..2]);
        assert!(!record_path(tmp.path(), &absent).exists());
        assert!(!shard.join(format!("{absent}.lock")).exists());
        store.expire(&k).await.unwrap();
        assert_eq!(
            tree(tmp.path()),
            vec![k.as_str()[..2].to_owned()],
            "{mode:?}"
        );
    }
}
