#![doc = include_str!("../README.md")]

pub mod backends;
mod cases;
mod check;
mod harness;
mod runner;
pub mod servers;

pub use harness::{Fixture, Harness, InvalidNamespace, MAX_NAMESPACE_LEN, Namespace, SetupError};
pub use runner::{
    CASE_TIMEOUT, CLEANUP_TIMEOUT, Case, CaseReport, Depth, MAX_CONCURRENT_CASES, Outcome, Report,
    THOROUGH_ENV, cases, find_case, run_all, run_all_at, run_case, run_case_at,
};

/// The one list of cases. Both the registry ([`cases()`]) and the tests that
/// [`conformance_suite!`] generates are expanded from it, so they cannot drift.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ([$($callback:tt)*] $($args:tt)*) => {
        $($callback)*! {
            $($args)*
            // create
            round_trip,
            create_returns_first_version,
            load_absent_key,
            live_record_visible,
            create_on_live_key_collides,
            create_over_expired_succeeds,
            // update
            update_bumps_version,
            update_chain_increments,
            update_replaces_deadline,
            update_stale_version_conflicts,
            update_future_version_conflicts,
            update_absent_not_found,
            update_expired_not_found,
            update_ladder_match_writes,
            update_ladder_stale_conflicts,
            update_ladder_future_conflicts,
            update_ladder_absent_not_found,
            update_ladder_expired_not_found,
            // removal
            update_into_past_removes_on_match,
            update_into_past_wrong_version_conflicts,
            update_into_past_absent_not_found,
            update_into_past_racing_updates_one_winner,
            // expire
            expired_record_invisible,
            expire_idempotent,
            expire_then_load_none,
            update_after_expire_not_found,
            create_after_expire_restarts_version,
            expire_leaves_other_keys,
            // touch
            touch_moves_deadline,
            touch_absent_returns_false,
            touch_expired_returns_false,
            touch_into_past_kills_record,
            touch_then_update_same_version,
            touch_ladder_keeps_payload,
            capabilities_touch_honest,
            // sweep
            delete_expired_counts_exactly,
            delete_expired_empty_returns_zero,
            sweep_spares_records_near_their_deadline,
            sweep_crosses_batch_boundaries,
            sweep_racing_creates_keeps_new_records,
            capabilities_delete_expired_honest,
            native_ttl_evicts,
            // payload
            payload_empty,
            payload_single_bytes,
            payload_all_byte_values,
            payload_1_mib,
            payload_8_mib,
            payload_grow_and_shrink_on_update,
            payload_ladder_round_trip,
            // isolation
            thousand_keys_isolated,
            many_live_records_all_kept,
            namespaces_isolated,
            namespace_isolated_on_load,
            namespace_isolated_on_create,
            namespace_isolated_on_update,
            namespace_isolated_on_touch,
            namespace_isolated_on_load_and_touch,
            namespace_isolated_on_expire,
            namespace_isolated_on_delete_expired,
            hex_neighbour_keys_isolated,
            case_like_neighbour_keys_isolated,
            prefix_sharing_keys_isolated,
            // concurrency
            concurrent_creates_one_winner,
            concurrent_updates_one_winner,
            expire_racing_update_stays_gone,
            touch_racing_update_keeps_payload,
            // load and refresh in one step
            load_and_touch_moves_a_due_deadline,
            load_and_touch_leaves_a_deadline_not_due,
            load_and_touch_absent_or_expired_is_none,
            load_and_touch_into_past_kills_record,
            load_and_touch_racing_updates_keeps_payload,
            load_and_touch_read_only_request_store_calls,
            // clock
            clock_advanced_expiry,
            clock_deadline_is_exclusive,
            clock_deadline_at_now_is_dead,
            clock_touch_extends_life,
            deadline_precision_round_trip,
            deadline_far_future,
            deadline_far_past,
            deadline_with_offset,
            deadline_with_offset_on_update,
            deadline_with_offset_on_touch,
            deadline_with_offset_on_load_and_touch,
            deadline_with_offset_on_removal,
            // rotation
            rotation_after_period_not_before,
            rotation_old_cookie_in_window_merges,
            rotation_old_cookie_dead_after_window,
            rotation_racing_one_new_id,
            rotation_destroy_not_resurrected,
            rotation_cycle_id_leaves_no_pointer,
        }
    };
}

/// Expands into one `#[test]` per conformance case, each running that case against
/// a fresh namespace of the given harness on a multi-threaded Tokio runtime with two
/// workers (what `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`
/// gives, without needing `tokio` as a dev-dependency or the crate's exact name).
///
/// The argument is an expression evaluated once per test, producing a value whose
/// type implements [`Harness`]. The tests are named after the cases
/// (`round_trip`, `concurrent_creates_one_winner`, …), so invoke the macro in its own
/// test file or module. A skipped case prints one line with the reason and passes;
/// a failed one panics with the case's message.
///
/// ```
/// # use std::sync::Arc;
/// # use conformance_tests::{Fixture, Harness, Namespace, SetupError};
/// # struct MyHarness;
/// # #[async_trait::async_trait]
/// # impl Harness for MyHarness {
/// #     fn name(&self) -> &str { "memory" }
/// #     async fn open(&self, _: &Namespace) -> Result<Fixture, SetupError> {
/// #         Ok(Fixture::new(Arc::new(session_memory::MemoryStore::new())))
/// #     }
/// # }
/// mod conformance {
///     use super::*;
///     conformance_tests::conformance_suite!(MyHarness);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($harness:expr $(,)?) => {
        $crate::__with_cases!([$crate::__conformance_suite_tests] $harness;);
    };
}

/// Implementation detail of [`conformance_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_suite_tests {
    ($harness:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::__private::run_test(
                    || -> ::std::sync::Arc<dyn $crate::Harness> {
                        ::std::sync::Arc::new($harness)
                    },
                    ::core::stringify!($name),
                );
            }
        )*
    };
}

/// Implementation details of the macros; not a public API.
#[doc(hidden)]
pub mod __private {
    use std::sync::Arc;

    use crate::{Harness, Outcome, run_case};

    /// Runs one case as a test: passes, prints a skip line, or panics.
    pub fn run_test(make: impl FnOnce() -> Arc<dyn Harness>, case: &str) {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("could not start a Tokio runtime for case `{case}`: {e}"),
        };
        let report = runtime.block_on(async {
            let harness = make();
            let backend = harness.name().to_owned();
            (backend, run_case(harness, case).await)
        });
        match report.1.outcome {
            Outcome::Passed => {}
            Outcome::Skipped(reason) => {
                println!("conformance: skipped `{case}` on `{}`: {reason}", report.0)
            }
            Outcome::Failed(msg) => panic!("{msg}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn registry_is_complete_and_unique() {
        let names: Vec<&str> = cases().iter().map(Case::name).collect();
        assert!(names.len() >= 40, "only {} cases", names.len());
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "duplicate case names");
        for n in &names {
            assert!(find_case(n).is_some());
        }
        assert!(find_case("no_such_case").is_none());
    }

    // The macro's test names come from the same list as the registry; this expands
    // that list a third way and checks it against the registry, so a change to the
    // expansion machinery cannot silently drop cases.
    macro_rules! names {
        ($($name:ident,)*) => {
            const MACRO_NAMES: &[&str] = &[$(stringify!($name)),*];
        };
    }
    __with_cases!([names]);

    #[test]
    fn macro_list_matches_registry() {
        let registry: Vec<&str> = cases().iter().map(Case::name).collect();
        assert_eq!(MACRO_NAMES, registry.as_slice());
    }

    /// The case sources, to read each case's doc line from.
    const CASE_SOURCES: &[&str] = &[
        include_str!("cases/clock.rs"),
        include_str!("cases/concurrency.rs"),
        include_str!("cases/create.rs"),
        include_str!("cases/expire.rs"),
        include_str!("cases/isolation.rs"),
        include_str!("cases/payload.rs"),
        include_str!("cases/refresh.rs"),
        include_str!("cases/removal.rs"),
        include_str!("cases/rotation.rs"),
        include_str!("cases/sweep.rs"),
        include_str!("cases/touch.rs"),
        include_str!("cases/update.rs"),
    ];

    /// The first doc line of the case function `name` (the clause it checks).
    fn clause(name: &str) -> Option<&'static str> {
        let signature = format!("pub(crate) async fn {name}(ctx: Ctx)");
        CASE_SOURCES.iter().find_map(|src| {
            let lines: Vec<&str> = src.lines().collect();
            let at = lines.iter().position(|l| l.starts_with(&signature))?;
            let first = lines[..at]
                .iter()
                .rposition(|l| !l.starts_with("///"))
                .map_or(0, |i| i + 1);
            lines.get(first)?.strip_prefix("/// ")
        })
    }

    /// Every case states its clause in one doc line, and the README lists every case
    /// with exactly that line, so the list a store author reads cannot drift from
    /// the cases that run.
    #[test]
    fn readme_lists_every_clause() {
        let readme = include_str!("../README.md");
        for case in cases() {
            let name = case.name();
            let Some(line) = clause(name) else {
                panic!("case `{name}` has no doc line");
            };
            assert!(
                line.ends_with('.') || line.ends_with(')'),
                "the doc line of `{name}` is not one whole clause: {line}"
            );
            let entry = format!("- `{name}`: {line}");
            assert!(readme.contains(&entry), "README.md lacks: {entry}");
        }
    }
}
