//! async-session's tests (`src/memory_store.rs`, `src/cookie_store.rs`, and the
//! examples of `src/session.rs`, which are its doc tests) re-expressed against this
//! layer, for the behaviours no test of `session-tower` or `session-core` covers yet.
//!
//! Where this workspace deliberately differs, the tests check the documented
//! behaviour here (session-core/README.md, `SessionManager::finish`):
//!
//! - A session never lives without a deadline: async-session's `Session::new()` has no
//!   expiry, here every session has an idle lifetime (24 h by default) and an absolute
//!   one (7 days). `expire_in` maps to the per-session `set_idle_lifetime`.
//! - `clearing_the_whole_store` has no counterpart: there is no "log everyone out"
//!   call on the store contract (`expire` per session, `delete_expired` for the dead).
//! - `cookie_store.rs` (the whole session in the cookie) is `SessionManager::
//!   client_side`, tested in session-core's `tests/client_side.rs`.
//! - "Reverting the data still counts as a change": not a promise here. Inserting a
//!   value equal to the current one is not a change and writes nothing (session-core's
//!   `reading_without_changes_writes_nothing`).

mod common;

use std::sync::atomic::Ordering;

use common::{call, cookie_pair, manager, manager_at, parse, set_cookie};
use session_core::time::Duration;
use session_core::{SessionConfig, SessionManager};

/// A session holding `key = value`, created through the layer; its cookie pair.
async fn start(manager: &SessionManager, value: &'static str) -> String {
    let response = call(manager, None, move |s| async move {
        s.insert("key", value).await.unwrap();
        String::new()
    })
    .await;
    cookie_pair(&set_cookie(&response).expect("a new session sets its cookie"))
}

/// What a request with `pair` reads under "key" ("None" for a fresh session).
async fn read(manager: &SessionManager, pair: &str) -> String {
    let response = call(manager, Some(pair), |s| async move {
        format!("{:?}", s.get::<String>("key").await.unwrap())
    })
    .await;
    response.into_body()
}

/// `updating_a_session_extending_expiry`: a per-session lifetime extended by a later request moves the session's end to the new deadline.
#[tokio::test]
async fn extending_a_sessions_lifetime_later_moves_its_end() {
    let (manager, _store, clock) = manager_at(SessionConfig::default());
    let response = call(&manager, None, |s| async move {
        s.insert("key", "value").await.unwrap();
        s.set_idle_lifetime(Some(Duration::minutes(10)))
            .await
            .unwrap();
        String::new()
    })
    .await;
    let pair = cookie_pair(&set_cookie(&response).unwrap());

    clock.advance(Duration::minutes(5));
    call(&manager, Some(&pair), |s| async move {
        s.set_idle_lifetime(Some(Duration::minutes(30)))
            .await
            .unwrap();
        String::new()
    })
    .await;

    // Past the first deadline (minute 10), before the new one (minute 35).
    clock.advance(Duration::minutes(15));
    assert_eq!(read(&manager, &pair).await, "Some(\"value\")");
    // Past the new one.
    clock.advance(Duration::minutes(16));
    assert_eq!(read(&manager, &pair).await, "None");
}

/// `destroying_a_single_session`: logout ends only its own session, and repeating it is harmless (removal cookie again).
#[tokio::test]
async fn logout_ends_only_its_own_session_and_repeating_it_is_harmless() {
    let (manager, store) = manager();
    let others = [
        start(&manager, "a").await,
        start(&manager, "b").await,
        start(&manager, "c").await,
    ];
    let pair = start(&manager, "mine").await;
    assert_eq!(store.records(), 4);

    for attempt in 0..2 {
        let response = call(&manager, Some(&pair), |s| async move {
            s.destroy();
            String::from("bye")
        })
        .await;
        assert_eq!(response.body(), "bye", "logout {attempt}");
        let header = set_cookie(&response).expect("a removal cookie");
        assert_eq!(parse(&header).max_age(), Some(Duration::ZERO), "{header}");
        assert_eq!(store.records(), 3, "logout {attempt}");
    }
    assert_eq!(read(&manager, &pair).await, "None");
    for (other, value) in others.iter().zip(["a", "b", "c"]) {
        assert_eq!(read(&manager, other).await, format!("Some({value:?})"));
    }
}

/// `Session::remove` change tracking: removing a key the session does not hold is not a change (no write, no cookie).
#[tokio::test]
async fn removing_an_absent_key_is_not_a_change() {
    let (manager, store) = manager();
    let pair = start(&manager, "value").await;
    let saves = store.saves.load(Ordering::SeqCst);

    let response = call(&manager, Some(&pair), |s| async move {
        let removed = s.remove("nonexistent key").await.unwrap();
        format!("{removed} {}", s.is_modified())
    })
    .await;
    assert_eq!(response.body(), "false false");
    assert_eq!(set_cookie(&response), None);
    assert_eq!(store.saves.load(Ordering::SeqCst), saves, "no write");
    assert_eq!(read(&manager, &pair).await, "Some(\"value\")");
}
