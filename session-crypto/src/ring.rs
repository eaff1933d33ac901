//! The key ring: which key seals, which keys open.

use std::fmt;
use std::sync::Arc;

use crate::{Key, KeyError};

/// An ordered set of named [`Key`]s: the newest seals (signs and encrypts), every
/// key opens (verifies and decrypts).
///
/// Rotation is a new ring: [`rotated`](Self::rotated) puts a new key in front, so new
/// cookies and records use it while those sealed with the older keys stay readable;
/// once they have all been re-sealed or have expired, [`without`](Self::without)
/// drops the old key and anything still sealed with it stops opening.
///
/// Cheap to clone (the keys are shared). `Debug` lists key ids only.
///
/// ```
/// use session_crypto::{Key, KeyRing};
///
/// let ring = KeyRing::new(Key::generate("a")?);
/// let ring = ring.rotated(Key::generate("b")?)?;
/// assert_eq!(ring.newest().id(), "b");
/// assert!(ring.get("a").is_some());
/// assert_eq!(format!("{ring:?}"), r#"KeyRing { ids: ["b", "a"] }"#);
/// let ring = ring.without("a")?;
/// assert!(ring.get("a").is_none());
/// # Ok::<(), session_core::Error>(())
/// ```
#[derive(Clone)]
pub struct KeyRing {
    /// Newest first; never empty, ids unique.
    keys: Arc<[Key]>,
}

impl KeyRing {
    /// A ring of one key.
    pub fn new(key: Key) -> Self {
        Self {
            keys: Arc::from(vec![key]),
        }
    }

    /// A ring of `keys`, **newest first**. Fails if it is empty or two keys share
    /// an id.
    pub fn from_keys(keys: impl IntoIterator<Item = Key>) -> Result<Self, KeyError> {
        let keys: Vec<Key> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        for (position, k) in keys.iter().enumerate() {
            if keys[..position]
                .iter()
                .any(|earlier| earlier.id() == k.id())
            {
                return Err(KeyError::DuplicateId { position });
            }
        }
        Ok(Self { keys: keys.into() })
    }

    /// This ring with `newest` in front: it seals from now on, the others still
    /// open. Fails if its id is already in the ring.
    pub fn rotated(&self, newest: Key) -> Result<Self, KeyError> {
        Self::from_keys(std::iter::once(newest).chain(self.keys.iter().cloned()))
    }

    /// This ring without the key `id`. Fails if there is no such key or it is the
    /// only one.
    pub fn without(&self, id: &str) -> Result<Self, KeyError> {
        if self.get(id).is_none() {
            return Err(KeyError::UnknownId);
        }
        Self::from_keys(self.keys.iter().filter(|k| k.id() != id).cloned())
    }

    /// The key that seals.
    pub fn newest(&self) -> &Key {
        // `keys` is never empty (every constructor checks).
        &self.keys[0]
    }

    /// The key named `id`, if it is in the ring.
    pub fn get(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id() == id)
    }

    /// The key whose id is the bytes `id`, as read from a cookie or a record
    /// (untrusted: anything that is not an id in the ring is `None`).
    pub fn get_by_bytes(&self, id: &[u8]) -> Option<&Key> {
        self.keys.iter().find(|k| k.id().as_bytes() == id)
    }

    /// All keys, newest first.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The ids, newest first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(Key::id)
    }
}

impl From<Key> for KeyRing {
    fn from(key: Key) -> Self {
        Self::new(key)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}
