//! The sessions every contestant works on: the same data, the same sizes.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;
use session_core::StorageKey;
use time::{Duration, OffsetDateTime};

use crate::harness::{Rng, random_hex};

/// How long every benchmark record lives: far beyond any run, short enough that a
/// crashed run leaves nothing behind for long on a shared server.
pub const TTL: Duration = Duration::hours(1);

/// A fresh deadline, [`TTL`] from now.
pub fn deadline() -> OffsetDateTime {
    OffsetDateTime::now_utc() + TTL
}

/// Length of each string value of the session data.
const VALUE_LEN: usize = 240;

/// One structured value: two cart lines, about as long as a string value.
fn cart(rng: &mut Rng) -> Value {
    let line = |rng: &mut Rng| {
        serde_json::json!({
            "sku": random_hex(rng, 6),
            "qty": rng.below(9) + 1,
            "price_cents": rng.below(100_000),
            "tags": ["gift", "sale"],
            "meta": { "added": 1_767_225_600 + rng.below(1_000_000), "note": null }
        })
    };
    Value::Array(vec![line(rng), line(rng)])
}

/// One payload size's session: a map of values as a web application keeps them —
/// strings (tokens, flash messages) and structured values (cart lines), alternating.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The nominal size (1 KiB, 16 KiB).
    pub size: usize,
    /// The values, by key (`k00`, `k01`, …; `k00` is a string).
    pub data: HashMap<String, Value>,
    /// The same map as JSON bytes: the opaque payload of the store-level tables.
    pub payload: Bytes,
}

impl Workload {
    /// A session of about `size` bytes of JSON; with `strings_only`, every value is
    /// a string (the least favourable data for a lazy codec: nothing to skip building).
    pub fn new(size: usize, strings_only: bool, rng: &mut Rng) -> Self {
        // Each entry costs its value plus about 10 bytes of key, quotes and commas.
        let entry = VALUE_LEN + 10;
        let n = (size / entry).max(1);
        let mut data = HashMap::new();
        for i in 0..n {
            let value = if strings_only || i % 2 == 0 {
                Value::String(random_hex(rng, VALUE_LEN / 2))
            } else {
                cart(rng)
            };
            data.insert(format!("k{i:02}"), value);
        }
        // Pad the first value (a string) so the JSON is `size` bytes (or just above).
        let mut json = serde_json::to_vec(&data).unwrap_or_default();
        if json.len() < size {
            if let Some(Value::String(s)) = data.get_mut("k00") {
                s.push_str(&"x".repeat(size - json.len()));
            }
            json = serde_json::to_vec(&data).unwrap_or_default();
        }
        Self {
            size,
            data,
            payload: json.into(),
        }
    }

    /// "1 KiB", "16 KiB".
    pub fn label(&self) -> String {
        label(self.size)
    }
}

/// "1 KiB" for 1024.
pub fn label(size: usize) -> String {
    if size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// `n` random storage keys (64 hex characters, like SHA-256 output).
pub fn storage_keys(n: usize, rng: &mut Rng) -> Vec<StorageKey> {
    (0..n)
        .map(|_| StorageKey::parse(&random_hex(rng, 32)).expect("64 lowercase hex characters"))
        .collect()
}

/// `n` random tower-sessions ids.
pub fn tower_ids(n: usize, rng: &mut Rng) -> Vec<tower_sessions_core::session::Id> {
    (0..n)
        .map(|_| {
            let hi = u128::from(rng.next_u64()) << 64;
            tower_sessions_core::session::Id((hi | u128::from(rng.next_u64())) as i128)
        })
        .collect()
}

/// Runs `f(i)` for every `i < n` with `concurrency` tasks at a time (setup only).
pub async fn for_each_concurrent<F, Fut>(
    n: usize,
    concurrency: usize,
    f: F,
) -> Result<(), crate::harness::BoxError>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), crate::harness::BoxError>> + Send,
{
    let concurrency = concurrency.max(1);
    let mut handles = Vec::with_capacity(concurrency);
    for t in 0..concurrency {
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            let mut i = t;
            while i < n {
                f(i).await?;
                i += concurrency;
            }
            Ok::<(), crate::harness::BoxError>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok(())
}
