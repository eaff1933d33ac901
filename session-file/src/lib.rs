#![doc = include_str!("../README.md")]

mod format;
mod fsio;
mod layout;
mod lock;
mod store;
mod sweep;
mod trust;

pub use store::{
    DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_SWEEP_BATCH, FileStore, FileStoreBuilder, TouchMode,
};
pub use trust::UntrustedDirectory;
