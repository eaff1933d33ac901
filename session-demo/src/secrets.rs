//! Secret keys: read from the environment (`SESSION_SECRET_KEYS`) or a file
//! (`--secret-key-file`), never from the command line, where every local user sees
//! them in the process list.
//!
//! The format (the same in the variable and the file) is one key per line,
//! `ID:BASE64`, newest first: `ID` is 1 to 32 characters of `[A-Za-z0-9._-]`, and
//! `BASE64` the secret in standard base64 (padding optional), at least 32 bytes once
//! decoded (`openssl rand -base64 32`). Neither part can contain a comma or
//! whitespace, so keys may also be separated by commas or spaces (handy in a
//! one-line variable) and no separator can split a secret. Blank lines and lines
//! starting with `#` are ignored.

use std::io::Read as _;
use std::path::Path;

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use session_crypto::{Key, KeyError, KeyRing};
use zeroize::Zeroizing;

use crate::DemoError;

/// The environment variable that may hold the keys.
pub const ENV_VAR: &str = "SESSION_SECRET_KEYS";
/// A key file larger than this is refused (a key line is under 100 bytes).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Standard base64, padded or not (`openssl rand -base64 32` pads; some tools don't).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One configured key: its id and its secret bytes (wiped when dropped).
pub struct SecretKey {
    /// The key id.
    pub id: String,
    /// The decoded secret.
    pub secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Reads the keys from `env_text` (the variable's value) or the file at `file`;
/// both at once is an error (which one would win is a trap). An empty list when
/// neither is given.
pub fn load(env_text: Option<&str>, file: Option<&Path>) -> Result<Vec<SecretKey>, DemoError> {
    match (env_text, file) {
        (Some(_), Some(_)) => Err(DemoError::SecretKey(format!(
            "give the keys in {ENV_VAR} or in --secret-key-file, not both"
        ))),
        (Some(text), None) => parse(text),
        (None, Some(path)) => parse(&read_file(path)?),
        (None, None) => Ok(Vec::new()),
    }
}

/// The file's text, refusing anything but a regular file of at most
/// [`MAX_FILE_BYTES`] (a FIFO or a device would hang or never end).
fn read_file(path: &Path) -> Result<Zeroizing<String>, DemoError> {
    let shown = path.display();
    let fail = |what: String| DemoError::SecretKey(format!("--secret-key-file {shown}: {what}"));
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".to_owned()));
    }
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    Ok(text)
}

/// Parses the key list (see the module documentation). Errors name the key by its
/// position and never quote the text, which may be a secret.
pub fn parse(text: &str) -> Result<Vec<SecretKey>, DemoError> {
    let mut keys = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        for spec in line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let number = keys.len() + 1;
            let fail = |what: &str| DemoError::SecretKey(format!("key {number}: {what}"));
            let (id, encoded) = spec.split_once(':').ok_or_else(|| {
                fail("expected ID:BASE64 (e.g. 2025-06:<openssl rand -base64 32>)")
            })?;
            let secret = Zeroizing::new(BASE64.decode(encoded).map_err(|_| {
                fail("the secret after `:` is not base64 (encode it: openssl rand -base64 32)")
            })?);
            keys.push(SecretKey {
                id: id.to_owned(),
                secret,
            });
        }
    }
    Ok(keys)
}

/// The key ring of `keys` (newest first), or `None` for no keys.
pub fn key_ring(keys: &[SecretKey]) -> Result<Option<KeyRing>, DemoError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let ring = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            Key::new(key.id.as_str(), key.secret.as_slice()).map_err(|e| {
                DemoError::SecretKey(match e {
                    // The id may be a secret typed without one: never echo it.
                    KeyError::InvalidId(_) => format!(
                        "key {}: the ID before `:` must be 1 to 32 characters of [A-Za-z0-9._-]",
                        i + 1
                    ),
                    e => format!("key {}: {e}", i + 1),
                })
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    KeyRing::from_keys(ring)
        .map(Some)
        .map_err(|e| DemoError::SecretKey(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_secret() -> Vec<u8> {
        let mut bytes = vec![0u8; 32];
        getrandom::fill(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn keys_parse_into_a_ring_newest_first() {
        let (a, b) = (random_secret(), random_secret());
        let text = format!(
            "# rotated 2026-01\nnew:{}\n\n  old:{}  \n",
            BASE64.encode(&a),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&b)
        );
        let keys = parse(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            (keys[0].secret.as_slice(), keys[1].secret.as_slice()),
            (&a[..], &b[..])
        );
        let ring = key_ring(&keys).unwrap().unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["new", "old"]);
        assert!(key_ring(&[]).unwrap().is_none());
        // Commas and spaces separate keys too; neither occurs in an id or in base64.
        let one_line = format!("new:{},old:{} ", BASE64.encode(&a), BASE64.encode(&b));
        assert_eq!(parse(&one_line).unwrap().len(), 2);
    }

    /// Security review (HARDENING.md, issue 20): secrets were raw text split at
    /// commas, so `k:<secret>,k2:<secret>` meant to be one secret with a comma became
    /// two keys. Secrets are base64 now: any bytes, commas included, come back exactly,
    /// and the raw text that used to be split is refused with an error that names the
    /// key by its position only.
    #[test]
    fn commas_cannot_split_a_secret() {
        let mut secret = random_secret();
        secret[3] = b',';
        secret[17] = b',';
        let keys = parse(&format!("k:{}", BASE64.encode(&secret))).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].secret.as_slice(), &secret[..]);

        let raw =
            "k:Tr0ub4dor-3-correct-horse-battery-staple-9f8e7d,k2:6c5b-4a39-2817-0615-f4e3-d2c1b0a";
        let Err(DemoError::SecretKey(message)) = parse(raw).and_then(|k| key_ring(&k)) else {
            panic!("a raw-text secret with a comma must not be accepted");
        };
        assert!(
            !message.contains("Tr0ub4dor") && !message.contains("6c5b"),
            "{message}"
        );
    }

    #[test]
    fn bad_keys_are_typed_errors_that_never_echo_the_secret() {
        let secret = BASE64.encode(random_secret());
        let short = BASE64.encode(&random_secret()[..16]);
        for bad in [
            "no-colon".to_owned(),
            format!("id:{short}"),
            format!(":{secret}"),
            format!("{secret}:{secret}"),
            "id:not*base64!".to_owned(),
        ] {
            let result = parse(&bad).and_then(|k| key_ring(&k));
            let Err(DemoError::SecretKey(message)) = result else {
                panic!("{bad} was accepted");
            };
            assert!(!message.contains(&secret[..12]), "{message}");
            assert!(message.contains("key 1"), "{message}");
        }
        let twice = format!("same:{secret}\nsame:{secret}");
        assert!(parse(&twice).and_then(|k| key_ring(&k)).is_err());
    }

    /// The README's example key file parses as documented.
    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../README.md");
        let start = readme.find("```text\n# ID:BASE64").expect("the example") + 8;
        let end = start + readme[start..].find("```").expect("its end");
        let keys = parse(&readme[start..end]).unwrap();
        let ring = key_ring(&keys).unwrap().unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["2026-12", "2026-06"]);
    }

    #[test]
    fn a_file_or_the_variable_but_not_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let secret = BASE64.encode(random_secret());
        std::fs::write(&path, format!("file-key:{secret}\n")).unwrap();
        let from_file = load(None, Some(&path)).unwrap();
        assert_eq!(from_file[0].id, "file-key");
        let from_env = load(Some(&format!("env-key:{secret}")), None).unwrap();
        assert_eq!(from_env[0].id, "env-key");
        assert!(load(None, None).unwrap().is_empty());
        assert!(matches!(
            load(Some(&format!("env-key:{secret}")), Some(&path)),
            Err(DemoError::SecretKey(_))
        ));
        // Not a regular file, missing, too large: typed errors.
        for bad in [dir.path().to_owned(), dir.path().join("missing")] {
            assert!(matches!(
                load(None, Some(&bad)),
                Err(DemoError::SecretKey(_))
            ));
        }
        let big = dir.path().join("big");
        std::fs::write(&big, "#".repeat(MAX_FILE_BYTES as usize + 1)).unwrap();
        assert!(matches!(
            load(None, Some(&big)),
            Err(DemoError::SecretKey(_))
        ));
    }
}
