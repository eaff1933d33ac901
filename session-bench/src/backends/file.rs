//! Files: `FileStore` vs plain files written the same durable way. There is no
//! tower-sessions file store.
//!
//! The limit does every system call a durable session file needs and nothing else:
//! no lock files, no checksums, no versions, no header parsing. A write is a
//! temporary file, `fdatasync`, `rename` over the record and an `fsync` of the
//! directory — the same durability ours promises, because a limit that skipped the
//! flushes would measure the disk, not the store. Touch writes an 8-byte deadline in
//! place and `fdatasync`s it (ours writes a checksummed deadline slot the same way).
//! Like ours, every call runs on tokio's blocking pool (`spawn_blocking`): that is
//! what any async server must do with blocking file I/O.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::backends::{Contestants, runner};
use crate::contestants::{Ours, SETUP_TASKS};
use crate::harness::{BoxError, Contestant, Op, Rng, random_hex};
use crate::manager::ManagerCycle;
use crate::workload::{Workload, deadline, for_each_concurrent, storage_keys};

struct Inner {
    root: PathBuf,
    /// The 256 shard directories, open for `fsync`.
    shards: Vec<File>,
    keys: Vec<String>,
    fresh: Vec<String>,
    payload: Bytes,
}

impl Inner {
    fn path(&self, key: &str) -> PathBuf {
        self.root.join(&key[..2]).join(key)
    }

    fn shard(&self, key: &str) -> &File {
        let i = usize::from_str_radix(&key[..2], 16).unwrap_or(0);
        &self.shards[i]
    }

    fn read(&self, key: &str) -> Result<Bytes, BoxError> {
        let bytes = std::fs::read(self.path(key))?;
        if bytes.len() < 8 {
            return Err("short file".into());
        }
        let deadline = i64::from_le_bytes(bytes[..8].try_into()?);
        if deadline <= time::OffsetDateTime::now_utc().unix_timestamp() {
            return Err("expired".into());
        }
        Ok(Bytes::from(bytes).slice(8..))
    }

    fn write(&self, key: &str, payload: &[u8]) -> Result<(), BoxError> {
        let path = self.path(key);
        let tmp = path.with_extension("tmp");
        let mut buf = Vec::with_capacity(8 + payload.len());
        buf.extend_from_slice(&deadline().unix_timestamp().to_le_bytes());
        buf.extend_from_slice(payload);
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_data()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        self.shard(key).sync_all()?;
        Ok(())
    }

    fn touch(&self, key: &str) -> Result<(), BoxError> {
        let f = OpenOptions::new().write(true).open(self.path(key))?;
        f.write_all_at(&deadline().unix_timestamp().to_le_bytes(), 0)?;
        f.sync_data()?;
        Ok(())
    }
}

/// The limit on files (see the module documentation).
pub struct RawFiles(Arc<Inner>);

impl RawFiles {
    async fn blocking<T, F>(&self, f: F) -> Result<T, BoxError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, BoxError> + Send + 'static,
    {
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await?
    }
}

impl Contestant for RawFiles {
    async fn op(&self, op: Op, slot: usize, _task: usize) -> Result<(), BoxError> {
        match op {
            Op::Cycle => {
                let got = self.blocking(move |i| i.read(&i.keys[slot])).await?;
                self.blocking(move |i| i.write(&i.keys[slot], &got)).await
            }
            Op::Load => {
                self.blocking(move |i| i.read(&i.keys[slot]).map(drop))
                    .await
            }
            Op::Update => {
                self.blocking(move |i| i.write(&i.keys[slot], &i.payload))
                    .await
            }
            Op::Touch => self.blocking(move |i| i.touch(&i.keys[slot])).await,
            Op::Create => {
                self.blocking(move |i| i.write(&i.fresh[slot], &i.payload))
                    .await
            }
        }
    }

    async fn remove_created(&self, n: usize) -> Result<(), BoxError> {
        self.blocking(move |i| {
            for k in &i.fresh[..n.min(i.fresh.len())] {
                let _ = std::fs::remove_file(i.path(k));
            }
            Ok(())
        })
        .await
    }
}

/// Builds the file contestants for `workload` in a new directory under `base`.
pub async fn contestants(
    base: &Path,
    workload: &Workload,
    sessions: usize,
    fresh: usize,
    rng: &mut Rng,
) -> Result<Contestants, BoxError> {
    let dir = tempfile::Builder::new()
        .prefix("session-bench-")
        .tempdir_in(base)?;
    let root = dir.path().join("raw");
    let mut shards = Vec::with_capacity(256);
    for i in 0..256 {
        let d = root.join(format!("{i:02x}"));
        std::fs::create_dir_all(&d)?;
        shards.push(File::open(&d)?);
    }
    let raw = RawFiles(Arc::new(Inner {
        root,
        shards,
        keys: (0..sessions).map(|_| random_hex(rng, 32)).collect(),
        fresh: (0..fresh).map(|_| random_hex(rng, 32)).collect(),
        payload: workload.payload.clone(),
    }));
    let inner = raw.0.clone();
    for_each_concurrent(sessions, SETUP_TASKS, move |i| {
        let inner = inner.clone();
        async move {
            tokio::task::spawn_blocking(move || inner.write(&inner.keys[i], &inner.payload)).await?
        }
    })
    .await?;

    let store = session_file::FileStore::open(dir.path().join("ours")).await?;
    let ours = Ours::setup(
        Arc::new(store),
        storage_keys(sessions, rng),
        storage_keys(fresh, rng),
        workload,
    )
    .await?;
    let manager_store = session_file::FileStore::open(dir.path().join("manager")).await?;
    let manager = ManagerCycle::setup(Arc::new(manager_store), sessions, workload).await?;
    Ok(Contestants {
        limit: runner(Arc::new(raw)),
        ours: runner(ours),
        tower: None,
        extra: Vec::new(),
        envelope: manager.envelope().await?,
        manager: runner(manager),
        manager_tower: None,
        teardown: Box::pin(async move {
            // Removing the directory removes every record.
            tokio::task::spawn_blocking(move || dir.close()).await??;
            Ok(())
        }),
    })
}
