//! The conformance suite against `session-file`: every case on a fresh sub-directory
//! of a temporary root, with a manual clock — once per way `touch` writes (the
//! deadline in place, the default; or the whole record rewritten).

mod in_place {
    conformance_tests::conformance_suite!(
        conformance_tests::backends::FileHarness::temporary().expect("a temporary directory")
    );
}

mod rewrite {
    conformance_tests::conformance_suite!(
        conformance_tests::backends::FileHarness::temporary()
            .expect("a temporary directory")
            .touch_mode(session_file::TouchMode::Rewrite)
    );
}
