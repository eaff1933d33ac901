//! The `conformance` binary: JSON output, exit status, argument errors.

use std::process::Command;

fn conformance(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(args)
        .env_remove("SESSION_TEST_REQUIRE")
        .env_remove("SESSION_TEST_THOROUGH")
        .output()
        .expect("run the conformance binary")
}

/// The JSON schema the README documents, key by key: one object per backend with
/// exactly `backend`, `thorough`, `passed`, `failed`, `skipped` and `cases`; each case
/// with exactly `name`, `result`, `duration_ms`, and `detail` only when it did not
/// pass (the skip reason or the failure message).
fn check_schema(json: &serde_json::Value) {
    check_schema_of(json, None);
}

/// [`check_schema`] for a run of only `selected` cases (`None`: all of them).
fn check_schema_of(json: &serde_json::Value, selected: Option<&[&str]>) {
    let backends = json.as_array().expect("an array of backend objects");
    for b in backends {
        let obj = b.as_object().expect("a backend object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "backend", "cases", "failed", "passed", "skipped", "thorough"
            ],
            "{b}"
        );
        assert!(
            b["backend"].is_string() && b["thorough"].is_boolean(),
            "{b}"
        );
        let cases = b["cases"].as_array().expect("cases is an array");
        let count = |result: &str| cases.iter().filter(|c| c["result"] == result).count();
        assert_eq!(b["passed"].as_u64(), Some(count("passed") as u64), "{b}");
        assert_eq!(b["failed"].as_u64(), Some(count("failed") as u64), "{b}");
        assert_eq!(b["skipped"].as_u64(), Some(count("skipped") as u64), "{b}");
        let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
        let registry: Vec<&str> = conformance_tests::cases()
            .iter()
            .map(|c| c.name())
            .collect();
        assert_eq!(
            names,
            selected.unwrap_or(&registry),
            "cases in registry order"
        );
        for c in cases {
            let obj = c.as_object().expect("a case object");
            let passed = c["result"] == "passed";
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            let expected: &[&str] = if passed {
                &["duration_ms", "name", "result"]
            } else {
                &["detail", "duration_ms", "name", "result"]
            };
            assert_eq!(keys, expected, "{c}");
            assert!(
                ["passed", "failed", "skipped"].contains(&c["result"].as_str().unwrap()),
                "{c}"
            );
            assert!(c["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{c}");
            if !passed {
                assert!(!c["detail"].as_str().unwrap().is_empty(), "{c}");
            }
        }
    }
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
    check_schema(&json);
    let backends = json.as_array().unwrap();
    assert_eq!(backends.len(), 1);
    let memory = &backends[0];
    assert_eq!(memory["backend"], "memory");
    assert_eq!(memory["thorough"], false);
    assert_eq!(memory["failed"], 0);
    let cases = memory["cases"].as_array().unwrap();
    let skipped: Vec<&serde_json::Value> =
        cases.iter().filter(|c| c["result"] == "skipped").collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["name"], "native_ttl_evicts");
    // The README's example is this run: its counts must be today's.
    let readme = include_str!("../README.md");
    let example_count = |field: &str| -> u64 {
        let after = readme
            .split_once(&format!("\"{field}\": "))
            .unwrap_or_else(|| panic!("the README's JSON example has no {field}"))
            .1;
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    };
    assert_eq!(
        (example_count("passed"), example_count("skipped")),
        (
            memory["passed"].as_u64().unwrap(),
            memory["skipped"].as_u64().unwrap()
        ),
        "the README's JSON example (memory, default run)"
    );
    assert!(
        skipped[0]["detail"]
            .as_str()
            .unwrap()
            .contains("native_ttl"),
        "the skip reason: {}",
        skipped[0]
    );
}

/// `--thorough` climbs every rung and says so (`"thorough": true`); `--case` runs
/// only the named cases, in the order given, with the same schema.
#[test]
fn thorough_flag_and_case_filter() {
    let selected = ["payload_ladder_round_trip", "native_ttl_evicts"];
    let mut args = vec!["--backend", "memory", "--format", "json", "--thorough"];
    for case in selected {
        args.extend(["--case", case]);
    }
    let out = conformance(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    check_schema_of(&json, Some(&selected));
    assert_eq!(json[0]["thorough"], true);
    assert_eq!(
        (json[0]["passed"].as_u64(), json[0]["skipped"].as_u64()),
        (Some(1), Some(1))
    );
    let out = conformance(&["--case", "no_such_case"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown case `no_such_case`"));
}

/// A failed case carries its message in `detail`; the schema is the same.
#[test]
fn failed_cases_carry_their_message() {
    if !cfg!(feature = "redis") {
        return;
    }
    let out = conformance(&[
        "--backend",
        "redis=redis://127.0.0.1:1/0",
        "--format",
        "json",
        "--case",
        "round_trip",
    ]);
    assert!(!out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    check_schema_of(&json, Some(&["round_trip"]));
    let cases = json[0]["cases"].as_array().unwrap();
    assert!(cases.iter().all(|c| c["result"] == "failed"), "{json}");
    assert!(
        cases[0]["detail"].as_str().unwrap().contains("round_trip"),
        "{}",
        cases[0]
    );
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
