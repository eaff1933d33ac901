//! Security review (HARDENING.md): the raw store on disk, after a whole session
//! lifecycle through the manager (create, update, touch, login rotation, periodic
//! rotation with its pointer record, logout), holds no cookie value in any form —
//! not in a file name, not in a file's bytes — and every entry is private to the
//! server's user (directories 0700, files 0600).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use session_core::time::Duration;
use session_core::{CookieDecision, ManualClock, SessionConfig, SessionManager, SessionToken};
use session_file::FileStore;

fn set_value(d: &CookieDecision) -> String {
    match d {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected Set, got {other:?}"),
    }
}

/// Every entry under `dir` (not following symlinks), depth first.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(&path, out);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The cookie string, its raw bytes and their hex.
fn encodings(cookie: &str) -> Vec<Vec<u8>> {
    // The raw bytes, recovered without a base64 dependency: the storage key is the
    // hash of exactly these, so decode by hand.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut raw = Vec::new();
    for c in cookie.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            raw.push((bits >> n) as u8);
        }
    }
    assert_eq!(raw.len(), 32);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    vec![cookie.as_bytes().to_vec(), raw, hex.into_bytes()]
}

#[tokio::test]
async fn no_cookie_value_on_disk_and_every_entry_is_private() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("sessions");
    let clock = ManualClock::new(session_core::time::macros::datetime!(2030-01-01 0:00 UTC));
    let store = FileStore::builder(&dir)
        .clock(clock.shared())
        .open()
        .await
        .unwrap();
    let config = SessionConfig::builder()
        .refresh_each_request(true)
        .rotate_every(Some(Duration::hours(1)))
        .rotation_grace(Duration::minutes(5))
        .build()
        .unwrap();
    let manager = SessionManager::with_clock(Arc::new(store), config, clock.shared());

    let mut cookies = Vec::new();
    let s = manager.session(None);
    s.insert("cart", &"marker-value").await.unwrap();
    cookies.push(set_value(&manager.finish(&s).await.unwrap()));
    clock.advance(Duration::minutes(10));
    let s = manager.session(Some(&cookies[0]));
    s.insert("visits", &2).await.unwrap();
    let _ = manager.finish(&s).await.unwrap();
    let s = manager.session(Some(&cookies[0]));
    s.insert("user", &"alice").await.unwrap();
    s.cycle_id().await.unwrap();
    cookies.push(set_value(&manager.finish(&s).await.unwrap()));
    clock.advance(Duration::minutes(61));
    let s = manager.session(Some(&cookies[1]));
    assert!(s.exists().await.unwrap());
    cookies.push(set_value(&manager.finish(&s).await.unwrap()));
    // A second, untouched session that stays on disk next to the first.
    let other = manager.session(None);
    other.insert("cart", &"marker-value").await.unwrap();
    cookies.push(set_value(&manager.finish(&other).await.unwrap()));

    // The raw directory, read while the sessions (and the rotation pointer) exist.
    let mut entries = Vec::new();
    walk(&dir, &mut entries);
    let keys: Vec<String> = cookies
        .iter()
        .map(|c| {
            SessionToken::parse(c)
                .unwrap()
                .storage_key()
                .as_str()
                .to_owned()
        })
        .collect();
    let mut records = 0;
    let mut marker_seen = false;
    for path in &entries {
        let meta = fs::symlink_metadata(path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            continue;
        }
        assert!(
            meta.is_file(),
            "only files and directories: {}",
            path.display()
        );
        assert_eq!(mode, 0o600, "{}", path.display());
        let bytes = fs::read(path).unwrap();
        if keys.contains(&name) {
            records += 1;
            marker_seen |= contains(&bytes, b"marker-value");
        }
        for cookie in &cookies {
            for form in encodings(cookie) {
                assert!(!contains(name.as_bytes(), &form), "a token in a file name");
                assert!(!contains(&bytes, &form), "a token in {}", path.display());
            }
        }
    }
    assert!(
        marker_seen,
        "the session data was found (the check is not vacuous)"
    );
    assert!(
        records >= 3,
        "the sessions and the rotation pointer: {records}"
    );
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700,
        "the store directory it created"
    );

    // Logout removes the record file itself, not only its data.
    let s = manager.session(Some(&cookies[2]));
    s.destroy();
    let _ = manager.finish(&s).await.unwrap();
    let mut after = Vec::new();
    walk(&dir, &mut after);
    assert!(
        after
            .iter()
            .all(|p| p.file_name().unwrap().to_str() != Some(keys[2].as_str())),
        "the destroyed session's file is gone"
    );
}
