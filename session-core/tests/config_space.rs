//! Every configuration `build()` accepts is usable: no lifetime, clock reading or
//! stored per-session override makes a request panic (issue #20, item 4). The rest
//! is a typed `ConfigError`.

use std::sync::Arc;

use proptest::prelude::*;
use session_core::time::{Duration, OffsetDateTime, PrimitiveDateTime};
use session_core::{ConfigError, CookieDecision, ManualClock, SessionConfig, SessionManager};
use session_memory::MemoryStore;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn lifetimes_past_the_maximum_are_typed_errors() {
    let huge = [
        Duration::MAX,
        Duration::days(365 * 1000),
        SessionConfig::MAX_LIFETIME + Duration::SECOND,
    ];
    for value in huge {
        let cases: [(&str, session_core::SessionConfigBuilder); 4] = [
            (
                "idle lifetime",
                SessionConfig::builder()
                    .idle_lifetime(value)
                    .absolute_lifetime(Duration::MAX),
            ),
            (
                "absolute lifetime",
                SessionConfig::builder().absolute_lifetime(value),
            ),
            (
                "rotation period",
                SessionConfig::builder().rotate_every(Some(value)),
            ),
            (
                "rotation grace",
                SessionConfig::builder().rotation_grace(value),
            ),
        ];
        for (which, builder) in cases {
            assert_eq!(
                builder.build(),
                Err(ConfigError::LifetimeTooLong { which }),
                "{which} = {value}"
            );
        }
    }
    // The maximum itself is fine.
    let max = SessionConfig::MAX_LIFETIME;
    SessionConfig::builder()
        .idle_lifetime(max)
        .absolute_lifetime(max)
        .rotate_every(Some(max))
        .rotation_grace(max)
        .build()
        .unwrap();
}

/// A whole session life under `config` with the clock at `start`: create, read with
/// refresh, a huge per-session idle lifetime, update, `cycle_id`, a rotation, logout.
/// Every step must answer (a value or a typed error), never panic.
async fn live_a_session(config: SessionConfig, start: OffsetDateTime, idle: Duration) {
    let clock = ManualClock::new(start);
    let store = Arc::new(MemoryStore::with_clock(clock.shared()));
    let manager = SessionManager::with_clock(store, config, clock.shared());
    let s = manager.session(None);
    s.insert("k", &1).await.unwrap();
    let _ = s.expires_at().await.unwrap();
    let Ok(CookieDecision::Set(cookie)) = manager.finish(&s).await else {
        return;
    };
    let cookie = cookie.value().to_owned();
    for step in 0..4 {
        clock.advance(Duration::days(400));
        let s = manager.session(Some(&cookie));
        let _ = s.get::<i64>("k").await;
        let _ = s.has_expired().await;
        let _ = s.expires_at().await;
        match step {
            0 => {
                let _ = s.set_idle_lifetime(Some(idle)).await;
                let _ = s.set_permanent(Some(true)).await;
            }
            1 => {
                let _ = s.insert("k", &2).await;
            }
            2 => {
                let _ = s.cycle_id().await;
            }
            _ => s.destroy(),
        }
        let _ = manager.finish(&s).await;
    }
}

fn instant() -> impl Strategy<Value = OffsetDateTime> {
    let min = PrimitiveDateTime::MIN.assume_utc().unix_timestamp();
    let max = PrimitiveDateTime::MAX.assume_utc().unix_timestamp();
    prop_oneof![
        // Near the ends of what `OffsetDateTime` holds, and anywhere between.
        (0i64..1_000_000_000).prop_map(move |s| min + s),
        (0i64..1_000_000_000).prop_map(move |s| max - s),
        min..=max,
    ]
    .prop_map(|s| OffsetDateTime::from_unix_timestamp(s).unwrap())
}

fn lifetime() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::MAX),
        Just(Duration::MIN),
        Just(SessionConfig::MAX_LIFETIME),
        any::<i64>().prop_map(Duration::seconds),
        (1i64..100_000_000).prop_map(Duration::seconds),
    ]
}

/// An idle and an absolute lifetime: mostly a valid pair (idle ≤ absolute ≤ the
/// maximum), sometimes anything.
fn lifetimes() -> impl Strategy<Value = (Duration, Duration)> {
    let max = SessionConfig::MAX_LIFETIME.whole_seconds();
    prop_oneof![
        3 => (1..=max, 0..=max).prop_map(move |(idle, extra)| {
            (Duration::seconds(idle), Duration::seconds((idle + extra).min(max)))
        }),
        1 => (lifetime(), lifetime()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_accepted_configuration_is_usable(
        (idle, absolute) in lifetimes(),
        rotate in proptest::option::of(lifetime()),
        grace in lifetime(),
        start in instant(),
        override_idle in lifetime(),
    ) {
        let built = SessionConfig::builder()
            .idle_lifetime(idle)
            .absolute_lifetime(absolute)
            .rotate_every(rotate)
            .rotation_grace(grace)
            .refresh_each_request(true)
            .build();
        if let Ok(config) = built {
            runtime().block_on(live_a_session(config, start, override_idle));
        }
    }
}
