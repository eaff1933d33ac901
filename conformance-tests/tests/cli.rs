//! The `conformance` binary: JSON output, exit status, argument errors.

use std::process::Command;

fn conformance(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(args)
        .env_remove("SESSION_TEST_REQUIRE")
        .output()
        .expect("run the conformance binary")
}

#[test]
fn memory_json_passes_and_exits_zero() {
    let out = conformance(&["--backend", "memory", "--format", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    let backends = json.as_array().expect("an array of backend objects");
    assert_eq!(backends.len(), 1);
    let memory = &backends[0];
    assert_eq!(memory["backend"], "memory");
    assert_eq!(memory["failed"], 0);
    let cases = memory["cases"].as_array().unwrap();
    assert_eq!(cases.len(), conformance_tests::cases().len());
    assert_eq!(
        memory["passed"].as_u64().unwrap() + memory["skipped"].as_u64().unwrap(),
        cases.len() as u64
    );
    for c in cases {
        assert!(c["name"].is_string() && c["duration_ms"].is_number(), "{c}");
        assert!(
            ["passed", "skipped"].contains(&c["result"].as_str().unwrap()),
            "{c}"
        );
    }
}

#[test]
fn default_runs_embedded_backends_as_a_table() {
    let out = conformance(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.lines().next().unwrap().starts_with("backend"),
        "{stdout}"
    );
    assert!(stdout.contains("memory   round_trip"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("total: ") && l.contains(" 0 failed")),
        "{stdout}"
    );
}

#[test]
fn unknown_backend_is_an_error() {
    let out = conformance(&["--backend", "sqlite"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown backend `sqlite`"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// A server backend that is not compiled in, or whose server does not answer, is a
/// failure (never a pass, never a silent skip). Which of the two depends on the
/// features this test was built with.
#[test]
fn missing_or_unreachable_server_backend_fails() {
    // Port 1 on loopback: nothing listens there.
    let out = conformance(&["--backend", "redis=redis://127.0.0.1:1/0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "redis") {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("redis: 0 passed"), "{stdout}\n{stderr}");
    } else {
        assert!(stderr.contains("`redis` is not available"), "{stderr}");
    }
}

#[test]
fn bad_format_and_url_for_memory_are_errors() {
    assert!(!conformance(&["--format", "xml"]).status.success());
    let out = conformance(&["--backend", "memory=/tmp/x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("takes no URL"));
}
