//! The value each chaos session holds, and a tiny deterministic PRNG.

use serde::{Deserialize, Serialize};

/// The session key the value is stored under.
pub const KEY: &str = "v";

/// A session's value: it embeds the session's own logical id, so a session that
/// ever returns another session's data is caught, and a counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Val {
    /// The logical id of the session that wrote this value.
    pub id: u32,
    /// Incremented by every update.
    pub n: u64,
    /// Filler, so records have a realistic size; derived from `id`.
    pub pad: String,
}

impl Val {
    /// The value of session `id` at counter `n`, padded to about `pad_len` bytes.
    pub fn new(id: u32, n: u64, pad_len: usize) -> Self {
        Val {
            id,
            n,
            pad: pad_for(id, pad_len),
        }
    }

    /// Whether the filler matches the id (a torn or mixed record would not).
    pub fn pad_ok(&self) -> bool {
        self.pad == pad_for(self.id, self.pad.len())
    }
}

fn pad_for(id: u32, len: usize) -> String {
    let seed = format!("{id:08x}");
    seed.chars().cycle().take(len).collect()
}

/// xorshift64*: enough randomness to pick operations, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_embeds_id() {
        let v = Val::new(42, 3, 40);
        assert_eq!(v.pad.len(), 40);
        assert!(v.pad_ok());
        let mut w = v.clone();
        w.id = 43;
        assert!(!w.pad_ok());
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Val>(&json).unwrap(), v);
    }

    #[test]
    fn rng_spreads() {
        let mut r = Rng::new(1);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[r.below(10) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }
}
