use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use session_core::ManualClock;
use session_file::{FileStore, TouchMode};
use tempfile::TempDir;

use crate::{Fixture, Harness, Namespace, SetupError};

/// `session-file` on a manual clock; every namespace is a sub-directory of one root.
#[derive(Debug)]
pub struct FileHarness {
    root: PathBuf,
    touch_mode: TouchMode,
    /// Keeps a temporary root alive (and deletes it) for as long as the harness.
    _temp: Option<TempDir>,
}

impl FileHarness {
    /// A harness over a fresh temporary directory, deleted when the harness is.
    pub fn temporary() -> std::io::Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("session-conformance-")
            .tempdir()?;
        Ok(Self {
            root: temp.path().to_owned(),
            touch_mode: TouchMode::default(),
            _temp: Some(temp),
        })
    }

    /// A harness whose namespaces are created under `root` (kept afterwards).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            touch_mode: TouchMode::default(),
            _temp: None,
        }
    }

    /// Opens the stores with this [`TouchMode`] (default: the store's default), so
    /// the suite can check each way `touch` writes.
    pub fn touch_mode(mut self, mode: TouchMode) -> Self {
        self.touch_mode = mode;
        self
    }

    /// The directory the namespaces are created in.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[async_trait]
impl Harness for FileHarness {
    fn name(&self) -> &str {
        "file"
    }

    async fn open(&self, namespace: &Namespace) -> Result<Fixture, SetupError> {
        let clock = ManualClock::starting_now();
        let store = FileStore::builder(self.root.join(namespace.as_str()))
            .clock(clock.shared())
            .touch_mode(self.touch_mode)
            .open()
            .await?;
        Ok(Fixture::with_clock(Arc::new(store), clock))
    }
}
