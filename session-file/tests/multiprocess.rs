//! Tests with a second *process* on the same directory: exactly-once creates,
//! lost-update-free compare-and-set, and crash safety under SIGKILL.
//!
//! The second process is this test binary itself, started with the role in
//! [`CHILD_ENV`]; a custom (libtest-compatible) harness dispatches on it before
//! running any test, so no dummy test entry is needed.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration as StdDuration;

use libtest_mimic::{Arguments, Failed, Trial};
use session_core::time::{Duration, OffsetDateTime};
use session_core::{Bytes, Error, NewRecord, SaveMode, SessionInterface, StorageKey};
use session_file::FileStore;

const CHILD_ENV: &str = "SESSION_FILE_TEST_CHILD";
const CAS_UPDATES: u64 = 1000;
const CREATE_KEYS: u64 = 300;
const CHURN_KEYS: u64 = 4;
const KILLS: usize = 60;

fn main() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        child(&role);
        return;
    }
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test(
            "two_processes_compare_and_set_lose_no_update",
            cas_two_processes,
        ),
        Trial::test(
            "two_processes_create_each_key_exactly_once",
            creates_two_processes,
        ),
        Trial::test(
            "sigkill_during_updates_leaves_only_whole_records",
            sigkill_crash_safety,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn nth_key(i: u64) -> StorageKey {
    // Spread over shards via the leading digits.
    StorageKey::parse(&format!("{:02x}{:062x}", i % 256, i)).unwrap()
}

fn far() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

fn arg(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child needs {name}"))
}

/// Starts this binary as a child in `role`, waits until it says it is ready.
fn spawn_child(role: &str, dir: &Path) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, role)
        .env("SF_DIR", dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "child did not start");
    (child, out)
}

fn child(role: &str) {
    let dir = arg("SF_DIR");
    runtime().block_on(async {
        let store = FileStore::open(&dir).await.unwrap();
        println!("ready");
        match role {
            "cas" => {
                let (done, conflicts) = increment(&store, &nth_key(0), CAS_UPDATES).await;
                println!("{done} {conflicts}");
            }
            "create" => {
                for i in 0..CREATE_KEYS {
                    if try_create(&store, i).await {
                        println!("{i}");
                    }
                }
            }
            "churn" => churn(&store).await,
            other => panic!("unknown child role {other}"),
        }
    });
}

/// Makes `n` successful compare-and-set increments of a decimal counter, retrying
/// on conflicts. Returns (successes, conflicts).
async fn increment(store: &FileStore, key: &StorageKey, n: u64) -> (u64, u64) {
    let (mut done, mut conflicts) = (0, 0);
    while done < n {
        let rec = store.load(key).await.unwrap().expect("record vanished");
        let value: u64 = std::str::from_utf8(&rec.payload).unwrap().parse().unwrap();
        let next = NewRecord {
            payload: Bytes::from((value + 1).to_string()),
            expires_at: far(),
        };
        let mode = SaveMode::Update {
            expected_version: rec.version,
        };
        match store.save(key, &next, mode).await {
            Ok(v) => {
                assert_eq!(v, rec.version + 1);
                done += 1;
            }
            Err(Error::Conflict) => conflicts += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    (done, conflicts)
}

async fn try_create(store: &FileStore, i: u64) -> bool {
    let rec = NewRecord {
        payload: Bytes::from(std::process::id().to_string()),
        expires_at: far(),
    };
    match store.save(&nth_key(i), &rec, SaveMode::Create).await {
        Ok(1) => true,
        Err(Error::Collision) => false,
        other => panic!("{other:?}"),
    }
}

fn cas_two_processes() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let rt = runtime();
    let store = rt.block_on(FileStore::open(tmp.path()))?;
    let key = nth_key(0);
    let first = NewRecord {
        payload: Bytes::from_static(b"0"),
        expires_at: far(),
    };
    rt.block_on(store.save(&key, &first, SaveMode::Create))?;

    let (mut child, mut out) = spawn_child("cas", tmp.path());
    let (mine, my_conflicts) = rt.block_on(increment(&store, &key, CAS_UPDATES));
    let mut line = String::new();
    out.read_line(&mut line)?;
    assert!(child.wait()?.success(), "child failed");
    let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().unwrap());
    let (theirs, their_conflicts) = (fields.next().unwrap(), fields.next().unwrap());

    let last = rt.block_on(store.load(&key))?.unwrap();
    let value: u64 = std::str::from_utf8(&last.payload)?.parse()?;
    assert_eq!((mine, theirs), (CAS_UPDATES, CAS_UPDATES));
    // Every successful update is in the counter, and the version counts them too.
    assert_eq!(value, mine + theirs, "lost updates");
    assert_eq!(last.version, 1 + mine + theirs);
    eprintln!("conflicts: parent {my_conflicts}, child {their_conflicts}");
    Ok(())
}

fn creates_two_processes() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let rt = runtime();
    let store = rt.block_on(FileStore::open(tmp.path()))?;
    let (mut child, out) = spawn_child("create", tmp.path());
    let mine: Vec<u64> = (0..CREATE_KEYS)
        .filter(|&i| rt.block_on(try_create(&store, i)))
        .collect();
    let theirs: Vec<u64> = out.lines().map(|l| l.unwrap().parse().unwrap()).collect();
    assert!(child.wait()?.success(), "child failed");
    let mut all: Vec<u64> = mine.iter().chain(&theirs).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..CREATE_KEYS).collect::<Vec<_>>(),
        "a key won twice or never"
    );
    // Each record holds its winner's payload.
    let me = std::process::id().to_string();
    for i in 0..CREATE_KEYS {
        let rec = rt.block_on(store.load(&nth_key(i)))?.unwrap();
        assert_eq!(rec.version, 1);
        assert_eq!(mine.contains(&i), rec.payload == me.as_bytes());
    }
    eprintln!("wins: parent {}, child {}", mine.len(), theirs.len());
    Ok(())
}

/// The payload written for counter value `n`: `n`, a colon, and a filler whose
/// length and bytes are derived from `n`, so any mix of two writes is detectable.
fn churn_payload(n: u64) -> Vec<u8> {
    let mut v = format!("{n}:").into_bytes();
    let len = 500 + (n % 7) * 700;
    v.extend((0..len).map(|i| (n.wrapping_mul(31).wrapping_add(i)) as u8));
    v
}

fn parse_churn_payload(p: &[u8]) -> Option<u64> {
    let colon = p.iter().position(|&b| b == b':')?;
    let n: u64 = std::str::from_utf8(&p[..colon]).ok()?.parse().ok()?;
    (churn_payload(n) == p).then_some(n)
}

/// Updates and touches the churn keys forever (until killed).
async fn churn(store: &FileStore) {
    loop {
        for i in 0..CHURN_KEYS {
            let key = nth_key(i);
            let rec = store.load(&key).await.unwrap().unwrap();
            let n = parse_churn_payload(&rec.payload).unwrap();
            let next = NewRecord {
                payload: churn_payload(n + 1).into(),
                expires_at: far(),
            };
            let mode = SaveMode::Update {
                expected_version: rec.version,
            };
            store.save(&key, &next, mode).await.unwrap();
            assert!(store.touch(&key, far()).await.unwrap());
        }
    }
}

fn sigkill_crash_safety() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let rt = runtime();
    let store = rt.block_on(FileStore::open(tmp.path()))?;
    for i in 0..CHURN_KEYS {
        let rec = NewRecord {
            payload: churn_payload(0).into(),
            expires_at: far(),
        };
        rt.block_on(store.save(&nth_key(i), &rec, SaveMode::Create))?;
    }
    let mut seen = vec![0u64; CHURN_KEYS as usize];
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    for kill in 0..KILLS {
        let (mut child, _out) = spawn_child("churn", tmp.path());
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(StdDuration::from_micros(2_000 + rng % 30_000));
        child.kill()?; // SIGKILL
        let status = child.wait()?;
        assert!(
            !status.success(),
            "kill {kill}: child exited by itself: {status}"
        );
        for i in 0..CHURN_KEYS {
            let rec = rt
                .block_on(store.load(&nth_key(i)))
                .map_err(|e| format!("kill {kill}, key {i}: {e:?}"))?
                .ok_or_else(|| format!("kill {kill}, key {i}: record lost"))?;
            let n = parse_churn_payload(&rec.payload)
                .ok_or_else(|| format!("kill {kill}, key {i}: payload is not a written value"))?;
            // Version and payload always come from the same write...
            assert_eq!(rec.version, n + 1, "kill {kill}, key {i}");
            // ...and a completed write is never undone.
            assert!(n >= seen[i as usize], "kill {kill}, key {i}: went back");
            seen[i as usize] = n;
        }
    }
    let total: u64 = seen.iter().sum();
    // Otherwise the children were killed before doing anything and proved nothing.
    assert!(total >= KILLS as u64, "children made only {total} updates");
    // Leftover temporary files (from kills mid-write) are swept; no record is.
    assert_eq!(rt.block_on(store.delete_expired())?, 0);
    let mut names = Vec::new();
    for shard in std::fs::read_dir(tmp.path())? {
        for f in std::fs::read_dir(shard?.path())? {
            names.push(f?.file_name().to_string_lossy().into_owned());
        }
    }
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    eprintln!("{KILLS} kills, {total} updates survived");
    Ok(())
}
