use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue, SET_COOKIE};

use super::*;

#[test]
fn the_stream_is_80_15_and_2_5_2_5_with_a_login_after_every_logout() {
    let mut rng = Rng::new(22);
    let mut signed_in = false;
    let mut counts = [0u64; 4];
    let n = 400_000;
    let mut previous = None;
    for _ in 0..n {
        let kind = next_kind(&mut rng, signed_in);
        if previous == Some(Kind::Logout) {
            assert_eq!(kind, Kind::Login);
        }
        counts[kind.index()] += 1;
        signed_in = kind != Kind::Logout;
        previous = Some(kind);
    }
    let share = |k: Kind| counts[k.index()] as f64 / n as f64;
    // Binomial standard deviations at n = 400,000 are ≤ 0.07 points: 0.3 is > 4σ.
    for (kind, want) in [
        (Kind::Read, 0.80),
        (Kind::Change, 0.15),
        (Kind::Login, 0.025),
        (Kind::Logout, 0.025),
    ] {
        assert!(
            (share(kind) - want).abs() < 0.003,
            "{kind:?}: {} instead of {want}",
            share(kind)
        );
    }
    // Logins and logouts pair up (the first request was a login).
    assert!(counts[Kind::Login.index()] - counts[Kind::Logout.index()] <= 1);
}

#[test]
fn a_signed_out_user_always_logs_in() {
    let mut rng = Rng::new(1);
    assert!((0..1000).all(|_| next_kind(&mut rng, false) == Kind::Login));
}

fn headers(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(SET_COOKIE, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn the_jar_keeps_sets_and_drops_removals() {
    let old = Some("old".to_owned());
    assert_eq!(next_jar("id", old.clone(), &HeaderMap::new()), old);
    let set = headers(&["other=x", "id=new; Path=/; HttpOnly"]);
    assert_eq!(next_jar("id", old.clone(), &set).as_deref(), Some("new"));
    let removal = headers(&["id=gone; Path=/; Max-Age=0"]);
    assert_eq!(next_jar("id", old.clone(), &removal), None);
    let empty = headers(&["id=; Path=/"]);
    assert_eq!(next_jar("id", old, &empty), None);
}

/// Drives user 0 of `service` through `kinds` and returns the counts.
async fn drive(service: impl setup::App, name: &str, calls: &Arc<Calls>, kinds: &[Kind]) -> Counts {
    let mix = Mix::new(service, name, 1, calls.clone(), 1);
    for &kind in kinds {
        mix.request(0, kind).await.unwrap();
    }
    calls.snapshot()
}

const SCRIPT: [Kind; 7] = [
    Kind::Login,
    Kind::Read,
    Kind::Read,
    Kind::Change,
    Kind::Read,
    Kind::Logout,
    Kind::Login,
];

/// What the benchmark runs without options.
const DEFAULTS: setup::OursSettings = setup::OursSettings {
    two_step: false,
    refresh_threshold: 0.5,
};

#[tokio::test]
async fn store_calls_per_kind_on_both_layers() {
    let app = AppState::new(vec![("k00".to_owned(), Value::from("v"))]);
    let calls = Arc::new(Calls::default());
    let store = Arc::new(session_memory::MemoryStore::new());
    let (service, name) = setup::ours_service(store, &calls, &app, DEFAULTS).unwrap();
    let c = drive(service, &name, &calls, &SCRIPT).await;
    assert_eq!(c.requests, [3, 1, 2, 1]);
    // Reads: one `load_and_touch` each (the memory store does it in one step).
    assert_eq!(c.calls_of(Kind::Read), 3);
    assert_eq!(c.method(Kind::Read, Method::LoadAndTouch), 3);
    // Changes: the load and a compare-and-set; logins: a create; logouts: an expire.
    assert_eq!(c.method(Kind::Change, Method::LoadAndTouch), 1);
    assert_eq!(c.method(Kind::Change, Method::Update), 1);
    assert_eq!(c.method(Kind::Login, Method::Create), 2);
    assert_eq!(c.method(Kind::Logout, Method::Delete), 1);
    assert_eq!((c.total_calls(), c.untagged()), (8, 0));

    // Without the one step: a plain load, and no touch (the refresh is not due).
    let calls = Arc::new(Calls::default());
    let store = Arc::new(session_memory::MemoryStore::new());
    let (service, name) = setup::ours_service(
        store,
        &calls,
        &app,
        setup::OursSettings {
            two_step: true,
            ..DEFAULTS
        },
    )
    .unwrap();
    let c = drive(service, &name, &calls, &SCRIPT).await;
    assert_eq!(c.method(Kind::Read, Method::Load), 3);
    assert_eq!(c.method(Kind::Read, Method::LoadAndTouch), 0);
    assert_eq!(c.method(Kind::Read, Method::Touch), 0);
    assert_eq!((c.total_calls(), c.untagged()), (8, 0));

    let calls = Arc::new(Calls::default());
    let store = tower_sessions_memory_store::MemoryStore::default();
    let (service, name) = setup::tower_service(store, &calls, &app);
    let c = drive(service, &name, &calls, &SCRIPT).await;
    // Reads and changes: a load and a save (always_save); logins a create,
    // logouts a delete.
    assert_eq!(c.method(Kind::Read, Method::Load), 3);
    assert_eq!(c.method(Kind::Read, Method::Update), 3);
    assert_eq!(c.calls_of(Kind::Change), 2);
    assert_eq!(c.method(Kind::Login, Method::Create), 2);
    assert_eq!(c.method(Kind::Logout, Method::Delete), 1);
    assert_eq!((c.total_calls(), c.untagged()), (11, 0));
}

/// The floor the report states: reads, logins and logouts one call, changes two,
/// at the long-run shares of the stream above.
#[test]
fn the_calls_floor_of_the_mix_is_1_15() {
    let weighted = 0.80 * 1.0 + 0.15 * 2.0 + 0.025 * 1.0 + 0.025 * 1.0;
    assert!(
        (calls_floor() - weighted).abs() < 1e-12,
        "{}",
        calls_floor()
    );
}
