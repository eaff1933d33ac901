//! The ladders: the payload sizes and record counts a size- or count-dependent clause
//! is checked at. Each rung sits on, or one step either side of, a threshold where a
//! store may switch paths; the thorough run adds the expensive rungs.

use session_core::{Bytes, StorageKey};

use crate::check::{CaseError, Ctx, key, key_from};

/// One payload size and why it is on the ladder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rung {
    /// The payload length in bytes.
    pub(crate) size: usize,
    /// The threshold it probes, for failure messages.
    pub(crate) why: &'static str,
}

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// The default ladder: empty, one byte, and each side of 4 KiB (session-redis's
/// large-update threshold), 64 KiB (a MySQL `BLOB`, common buffer sizes) and
/// 256 KiB, up to 1 MiB.
const DEFAULT_SIZES: [Rung; 12] = [
    Rung {
        size: 0,
        why: "empty",
    },
    Rung {
        size: 1,
        why: "one byte",
    },
    Rung {
        size: 4 * KIB - 1,
        why: "4 KiB - 1",
    },
    Rung {
        size: 4 * KIB,
        why: "4 KiB",
    },
    Rung {
        size: 4 * KIB + 1,
        why: "4 KiB + 1",
    },
    Rung {
        size: 64 * KIB - 1,
        why: "64 KiB - 1",
    },
    Rung {
        size: 64 * KIB,
        why: "64 KiB",
    },
    Rung {
        size: 64 * KIB + 1,
        why: "64 KiB + 1",
    },
    Rung {
        size: 256 * KIB - 1,
        why: "256 KiB - 1",
    },
    Rung {
        size: 256 * KIB,
        why: "256 KiB",
    },
    Rung {
        size: 256 * KIB + 1,
        why: "256 KiB + 1",
    },
    Rung {
        size: MIB,
        why: "1 MiB",
    },
];

/// What the thorough run adds on top.
const THOROUGH_SIZES: [Rung; 1] = [Rung {
    size: 8 * MIB,
    why: "8 MiB",
}];

/// The payload sizes a size-dependent clause is checked at, smallest first.
pub(crate) fn sizes(ctx: &Ctx) -> Vec<Rung> {
    let mut out = DEFAULT_SIZES.to_vec();
    if ctx.thorough {
        out.extend(THOROUGH_SIZES);
    }
    out
}

/// One round of a sweep: records written with deadlines around the round's
/// instant, `expired` of them past it and `live` of them not yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SweepRound {
    pub(crate) expired: usize,
    pub(crate) live: usize,
}

/// The default sweep rounds: 1 expired record, then 257 (one past a file-store
/// batch of 256) next to 300 live ones — over 560 records in one file shard, so the
/// sweep crosses two of its batch boundaries.
const DEFAULT_SWEEP: [SweepRound; 2] = [
    SweepRound {
        expired: 1,
        live: 3,
    },
    SweepRound {
        expired: 257,
        live: 300,
    },
];

/// The thorough run adds rounds of 1,000 (exactly one SQL purge batch, plus the
/// previous round's live records) and 2,600 (three SQL batches, over twenty file
/// batches).
const THOROUGH_SWEEP: [SweepRound; 2] = [
    SweepRound {
        expired: 1000,
        live: 1000,
    },
    SweepRound {
        expired: 2600,
        live: 1200,
    },
];

/// The sweep rounds of this run.
pub(crate) fn sweep_rounds(ctx: &Ctx) -> Vec<SweepRound> {
    let mut out = DEFAULT_SWEEP.to_vec();
    if ctx.thorough {
        out.extend(THOROUGH_SWEEP);
    }
    out
}

/// A fresh key whose first eight hex digits are `prefix`'s: session-memory and
/// session-file pick a key's shard from those digits, so such keys crowd into one
/// shard (and one file-store directory) and a sweep of them crosses its batches.
pub(crate) fn crowded_key(prefix: &StorageKey) -> Result<StorageKey, CaseError> {
    let fresh = key()?;
    key_from(&format!(
        "{}{}",
        &prefix.as_str()[..8],
        &fresh.as_str()[8..]
    ))
}

/// `base` with its first and last byte marked by writer `t`, so which writer's
/// payload a record holds is recognisable (when there is a byte to mark).
pub(crate) fn marked(base: &Bytes, t: usize) -> Bytes {
    let mut p = base.to_vec();
    let mark = (t + 1) as u8;
    if let Some(first) = p.first_mut() {
        *first ^= mark;
    }
    if p.len() > 1 {
        let last = p.len() - 1;
        p[last] ^= mark;
    }
    p.into()
}
