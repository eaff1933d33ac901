//! Latency of load, update and touch (both touch modes) at 1 KiB and 16 KiB, one
//! task, through the public API (so including the `spawn_blocking` hop and every
//! fsync). Prints a Markdown table for BENCHMARKS.md.
//!
//! `cargo bench -p session-file --bench file_store`
//! (`SESSION_FILE_BENCH_DIR` picks the file system to measure; default: the
//! system temporary directory.)

use std::time::{Duration as StdDuration, Instant};

use session_core::time::{Duration, OffsetDateTime};
use session_core::{NewRecord, SaveMode, SessionInterface, SessionToken};
use session_file::{FileStore, TouchMode};

struct Stats {
    median: StdDuration,
    p99: StdDuration,
    per_sec: f64,
}

fn stats(mut samples: Vec<StdDuration>) -> Stats {
    let total: StdDuration = samples.iter().sum();
    samples.sort_unstable();
    Stats {
        median: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
        per_sec: samples.len() as f64 / total.as_secs_f64(),
    }
}

fn us(d: StdDuration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

async fn measure<F, Fut>(iterations: usize, mut op: F) -> Stats
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..iterations / 10 {
        op(i).await; // warm-up
    }
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let t = Instant::now();
        op(i).await;
        samples.push(t.elapsed());
    }
    stats(samples)
}

async fn bench_size(base: &std::path::Path, size: usize, scale: usize) -> Vec<(String, Stats)> {
    let dir = tempfile::tempdir_in(base).unwrap();
    let store = FileStore::open(dir.path()).await.unwrap();
    let rewrite = FileStore::builder(dir.path())
        .touch_mode(TouchMode::Rewrite)
        .open()
        .await
        .unwrap();
    let key = SessionToken::generate().unwrap().storage_key();
    let far = OffsetDateTime::now_utc() + Duration::hours(1);
    let rec = NewRecord {
        payload: vec![0x5a; size].into(),
        expires_at: far,
    };
    store.save(&key, &rec, SaveMode::Create).await.unwrap();
    let mut out = Vec::new();

    let s = measure(5000 / scale, |_| async {
        assert!(store.load(&key).await.unwrap().is_some());
    })
    .await;
    out.push(("load".to_owned(), s));

    let version = std::cell::Cell::new(1);
    let s = measure(500 / scale, |_| async {
        let mode = SaveMode::Update {
            expected_version: version.get(),
        };
        version.set(store.save(&key, &rec, mode).await.unwrap());
    })
    .await;
    out.push(("update (CAS, atomic rewrite)".to_owned(), s));

    for (name, s) in [
        ("touch, in place", &store),
        ("touch, atomic rewrite", &rewrite),
    ] {
        let key = &key;
        let stats = measure(500 / scale, |i| async move {
            let at = far + Duration::seconds(i as i64);
            assert!(s.touch(key, at).await.unwrap());
        })
        .await;
        out.push((name.to_owned(), stats));
    }
    out
}

fn main() {
    // `cargo bench` passes `--bench`. Without it (`cargo test --all-targets` runs
    // this binary too) every operation runs a few times only, as a smoke test.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let scale = if std::env::args().any(|a| a == "--bench") {
        1
    } else {
        50
    };
    let base = std::env::var_os("SESSION_FILE_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    println!("| payload | operation | median µs | p99 µs | ops/s (1 task) |");
    println!("|---|---|---:|---:|---:|");
    for (label, size) in [("1 KiB", 1024), ("16 KiB", 16 * 1024)] {
        for (op, s) in rt.block_on(bench_size(&base, size, scale)) {
            println!(
                "| {label} | {op} | {} | {} | {:.0} |",
                us(s.median),
                us(s.p99),
                s.per_sec
            );
        }
    }
}
