//! The session-file record format, through the public API only: the fuzzer's bytes
//! are written as the record file of one key at the place the store looks for it
//! (`<dir>/<first two hex chars of the key>/<key>`, see session-file's layout.rs),
//! then `FileStore::load`, `touch` and `delete_expired` run on it.
//!
//! Checked on every input:
//! - every call returns a value or a typed error (`Error::Decode` for bad bytes),
//!   never panics;
//! - a loaded record is live, and is byte for byte what the file holds;
//! - `touch` agrees with `load` and the deadline it sets is the one read back;
//! - `delete_expired` never removes a live record;
//! - nothing outside the store's directory is touched, even when the record's
//!   place holds a symlink to a file outside it that contains a valid record.
//!
//! The first input byte is a set of flags that repair parts of the record (magic,
//! length, deadline, checksums) so the fuzzer gets past the checksums to the logic
//! behind them; the next four are the touch deadline's offset from "now" in
//! seconds; the rest is the file.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{Error, ManualClock, SessionInterface, StorageKey};
use session_file::{FileStore, TouchMode};

const FIX_MAGIC: u8 = 1;
const FIX_LENGTH: u8 = 2;
const FIX_CRCS: u8 = 4;
const REWRITE_TOUCH: u8 = 8;
const SYMLINK: u8 = 16;
const SWEEP: u8 = 32;
const LIVE_DEADLINE: u8 = 64;

const HEADER_LEN: usize = 80;
const SLOTS: [usize; 2] = [32, 56];
const SENTINEL: &str = "outside.txt";

struct Fixture {
    rt: tokio::runtime::Runtime,
    /// Holds the store directory and a file outside it; removed on exit.
    base: tempfile::TempDir,
    in_place: FileStore,
    rewrite: FileStore,
    key: StorageKey,
    record: PathBuf,
    now: OffsetDateTime,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    // tmpfs where there is one: `touch` syncs, and disks make that slow.
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir())
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let store_dir = base.path().join("store");
    let key = StorageKey::parse(&"5e".repeat(32)).unwrap();
    let shard = store_dir.join(&key.as_str()[..2]);
    std::fs::create_dir_all(&shard).unwrap();
    let record = shard.join(key.as_str());
    let now = OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap(); // 2030-01-01
    let clock = ManualClock::new(now);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let open = |mode| {
        rt.block_on(
            FileStore::builder(&store_dir)
                .clock(clock.shared())
                .touch_mode(mode)
                .max_payload_bytes(64 * 1024)
                .open(),
        )
        .unwrap()
    };
    let in_place = open(TouchMode::InPlace);
    let rewrite = open(TouchMode::Rewrite);
    Fixture {
        rt,
        base,
        in_place,
        rewrite,
        key,
        record,
        now,
    }
});

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Applies the repairs the flags ask for.
fn repair(flags: u8, file: &mut [u8], now: OffsetDateTime) {
    if file.len() < HEADER_LEN {
        return;
    }
    if flags & FIX_MAGIC != 0 {
        file[..8].copy_from_slice(b"SESF\x01\x00\x00\x00");
    }
    if flags & FIX_LENGTH != 0 {
        let len = (file.len() - HEADER_LEN) as u64;
        file[16..24].copy_from_slice(&len.to_le_bytes());
    }
    if flags & LIVE_DEADLINE != 0 {
        let at = SLOTS[0];
        let deadline = now + Duration::hours(1);
        file[at + 8..at + 16].copy_from_slice(&deadline.unix_timestamp().to_le_bytes());
        file[at + 16..at + 20].copy_from_slice(&0u32.to_le_bytes());
    }
    if flags & FIX_CRCS != 0 {
        let payload_crc = crc32fast::hash(&file[HEADER_LEN..]);
        put_u32(file, 24, payload_crc);
        let header_crc = crc32fast::hash(&file[..28]);
        put_u32(file, 28, header_crc);
        for at in SLOTS {
            let crc = crc32fast::hash(&file[at..at + 20]);
            put_u32(file, at + 20, crc);
        }
    }
}

/// Bad bytes must be a decode error (this key only), nothing else.
fn typed<T: std::fmt::Debug>(what: &str, r: Result<T, Error>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Error::Decode(_)) => None,
        Err(e) => panic!("{what}: not a decode error: {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, d0, d1, d2, d3, rest @ ..] = data else {
        return;
    };
    let fx = &*FIXTURE;
    let now = fx.now;
    let mut file = rest.to_vec();
    repair(*flags, &mut file, now);
    let touch_to = now + Duration::seconds(i64::from(i32::from_le_bytes([*d0, *d1, *d2, *d3])));
    let symlink = flags & SYMLINK != 0;

    // Lay out the record (or a symlink to a copy outside the store).
    let sentinel = fx.base.path().join(SENTINEL);
    let sentinel_bytes = if symlink {
        file.clone()
    } else {
        b"outside".to_vec()
    };
    match std::fs::remove_file(&fx.record) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove old record: {e}"),
    }
    std::fs::write(&sentinel, &sentinel_bytes).unwrap();
    if symlink {
        std::os::unix::fs::symlink(&sentinel, &fx.record).unwrap();
    } else {
        std::fs::write(&fx.record, &file).unwrap();
    }
    let store = if flags & REWRITE_TOUCH != 0 {
        &fx.rewrite
    } else {
        &fx.in_place
    };

    fx.rt.block_on(async {
        let loaded = typed("load", store.load(&fx.key).await);
        if let Some(Some(r)) = &loaded {
            assert!(!symlink, "a record was read through a symlink");
            assert!(r.expires_at > now, "an expired record was returned");
            assert_eq!(&r.payload[..], &file[HEADER_LEN..]);
            assert_eq!(r.version.to_le_bytes()[..], file[8..16]);
        }

        let touched = typed("touch", store.touch(&fx.key, touch_to).await);
        if let (Some(live), Some(touched)) = (&loaded, touched) {
            assert_eq!(live.is_some(), touched, "touch and load disagree");
        }
        let reloaded = typed("load after touch", store.load(&fx.key).await);
        if let (Some(Some(before)), Some(true)) = (&loaded, touched) {
            let after = reloaded
                .clone()
                .expect("a touched record became unreadable");
            if touch_to > now {
                let after = after.expect("a record touched into the future is gone");
                assert_eq!(
                    after.expires_at, touch_to,
                    "touch did not move the deadline"
                );
                assert_eq!(after.payload, before.payload);
                assert_eq!(after.version, before.version);
            } else {
                assert!(after.is_none(), "a record touched into the past is live");
            }
        }

        if flags & SWEEP != 0 {
            let swept = store.delete_expired().await;
            assert!(swept.is_ok(), "delete_expired failed: {swept:?}");
            if let Some(Some(_)) = reloaded {
                let again = store.load(&fx.key).await;
                assert!(
                    matches!(again, Ok(Some(_))),
                    "delete_expired removed a live record: {again:?}"
                );
            }
        }
    });

    // Nothing outside the store directory changed.
    assert_eq!(std::fs::read(&sentinel).unwrap(), sentinel_bytes);
    let mut names: Vec<_> = std::fs::read_dir(fx.base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["outside.txt", "store"]);
    assert!(
        std::fs::symlink_metadata(&sentinel)
            .unwrap()
            .file_type()
            .is_file()
    );
});
