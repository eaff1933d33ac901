//! The conformance suite against `session-file`: every case on a fresh sub-directory
//! of a temporary root, with a manual clock.

conformance_tests::conformance_suite!(
    conformance_tests::backends::FileHarness::temporary().expect("a temporary directory")
);
