//! Where things live inside the store's directory, and how names are read back.
//!
//! ```text
//! <dir>/<k0 k1>/<key>        the record of `key` (64 hex characters)
//! <dir>/<k0 k1>/<key>.tmp    a record being written (renamed over <key> when complete)
//! <dir>/<k0 k1>/<key>.lock   the per-key lock file (flock)
//! ```
//!
//! Every name is built from a [`StorageKey`], which admits only 64 lowercase hex
//! characters, so no name can contain `/`, `..` or anything else that leaves the
//! shard directory. Names read back from a directory are parsed strictly; anything
//! else in the directory is ignored, never removed.

use session_core::StorageKey;

const TMP_SUFFIX: &str = ".tmp";
const LOCK_SUFFIX: &str = ".lock";

/// The shard directory of `key`: its first two hex characters, so keys (uniform
/// SHA-256 output) spread over 256 directories.
pub(crate) fn shard_name(key: &StorageKey) -> &str {
    &key.as_str()[..2]
}

/// The shard index (0..256) of `key`.
pub(crate) fn shard_index(key: &StorageKey) -> usize {
    usize::from_str_radix(shard_name(key), 16).unwrap_or(0)
}

/// The shard index named by a directory entry of the store's root, if it is one.
pub(crate) fn parse_shard_name(name: &[u8]) -> Option<usize> {
    let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    if name.len() != 2 || !name.iter().all(lower_hex) {
        return None;
    }
    usize::from_str_radix(std::str::from_utf8(name).ok()?, 16).ok()
}

/// The record's file name inside its shard.
pub(crate) fn record_name(key: &StorageKey) -> &str {
    key.as_str()
}

/// The temporary file a new record of `key` is written to before the rename.
pub(crate) fn tmp_name(key: &StorageKey) -> String {
    format!("{}{TMP_SUFFIX}", key.as_str())
}

/// The lock file of `key`.
pub(crate) fn lock_name(key: &StorageKey) -> String {
    format!("{}{LOCK_SUFFIX}", key.as_str())
}

/// What a file name in a shard directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `<key>`: a record.
    Record(StorageKey),
    /// `<key>.tmp`: a temporary file (live while a writer holds the key's lock,
    /// otherwise left behind by a crash).
    Tmp(StorageKey),
    /// `<key>.lock`: a lock file.
    Lock(StorageKey),
}

/// Classifies a file name found in the shard directory `shard`. Names that are not
/// ours, or whose key belongs to another shard, are `None`.
pub(crate) fn parse_entry(shard: usize, name: &[u8]) -> Option<Entry> {
    let name = std::str::from_utf8(name).ok()?;
    let (key, kind): (&str, fn(StorageKey) -> Entry) =
        if let Some(k) = name.strip_suffix(TMP_SUFFIX) {
            (k, Entry::Tmp)
        } else if let Some(k) = name.strip_suffix(LOCK_SUFFIX) {
            (k, Entry::Lock)
        } else {
            (name, Entry::Record)
        };
    let key = StorageKey::parse(key)?;
    (shard_index(&key) == shard).then(|| kind(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::SessionToken;

    #[test]
    fn names_stay_inside_the_shard_and_parse_back() {
        for _ in 0..200 {
            let key = SessionToken::generate().unwrap().storage_key();
            let shard = shard_index(&key);
            assert_eq!(parse_shard_name(shard_name(&key).as_bytes()), Some(shard));
            for (name, want) in [
                (record_name(&key).to_owned(), Entry::Record(key.clone())),
                (tmp_name(&key), Entry::Tmp(key.clone())),
                (lock_name(&key), Entry::Lock(key.clone())),
            ] {
                assert!(
                    name.bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b'.' || b.is_ascii_lowercase())
                );
                assert!(!name.contains('/') && !name.starts_with('.'));
                assert_eq!(parse_entry(shard, name.as_bytes()), Some(want));
                assert_eq!(parse_entry((shard + 1) % 256, name.as_bytes()), None);
            }
        }
    }

    #[test]
    fn foreign_names_are_ignored() {
        let key = "ab".repeat(32);
        for name in [
            "notes.txt".to_owned(),
            String::new(),
            "..".to_owned(),
            key.to_uppercase(),
            format!("{key}.bak"),
            format!("{key}.tmp.old"),
            format!(".{key}"),
            key[..63].to_owned(),
        ] {
            assert_eq!(parse_entry(0xab, name.as_bytes()), None, "{name}");
        }
        assert_eq!(parse_entry(0xab, &[0xff, 0xfe]), None);
        for name in ["", "a", "AB", "0g", "abc", ".."] {
            assert_eq!(parse_shard_name(name.as_bytes()), None, "{name}");
        }
        assert_eq!(parse_shard_name(b"ff"), Some(255));
    }
}
