//! Workspace maintenance commands, run as `cargo xtask COMMAND` (an alias in
//! `.cargo/config.toml`).
//!
//! `public-api [--bless] [CRATE...]`: the public API of every published crate
//! (every workspace member without `publish = false` that has a library), one item per
//! line, compared with `api/<crate>.txt`; `--bless` writes the files instead. The API
//! is read from rustdoc JSON (an unstable rustdoc output, enabled on the stable
//! toolchain with `RUSTC_BOOTSTRAP=1`), built with the features the crate's
//! `[package.metadata.docs.rs]` names, so the listing is what docs.rs will show.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde_json::Value;

/// The rustdoc JSON format versions `public-api` 0.52 reads exactly: it is built on
/// format 59, and 58 and 59 only added optional fields to `Item`, which a format-57
/// file (rustdoc 1.95) leaves absent.
const FORMATS: std::ops::RangeInclusive<u64> = 57..=59;

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.split_first() {
        Some((cmd, rest)) if cmd == "public-api" => public_api(rest),
        _ => Err("usage: cargo xtask public-api [--bless] [CRATE...]".to_owned()),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A published library crate of the workspace.
struct Crate {
    name: String,
    /// Arguments selecting the docs.rs features.
    features: Vec<String>,
}

/// Checks (or with `--bless` writes) the listings; `Ok(false)` when one differs.
fn public_api(args: &[String]) -> Result<bool> {
    let bless = args.iter().any(|a| a == "--bless");
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let metadata = cargo_metadata()?;
    let root = PathBuf::from(str_field(&metadata, "workspace_root")?);
    let target = PathBuf::from(str_field(&metadata, "target_directory")?);
    let crates = published_crates(&metadata)?;
    for name in &only {
        if !crates.iter().any(|c| &&c.name == name) {
            return Err(format!(
                "{name} is not a published library crate of the workspace"
            ));
        }
    }

    let mut all_match = true;
    for krate in crates
        .iter()
        .filter(|c| only.is_empty() || only.contains(&&c.name))
    {
        let listing = listing(krate, &target)?;
        let path = root.join("api").join(format!("{}.txt", krate.name));
        if bless {
            std::fs::create_dir_all(path.parent().expect("api/ has a parent"))
                .map_err(|e| format!("creating api/: {e}"))?;
            std::fs::write(&path, &listing)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            println!("wrote {}", path.display());
            continue;
        }
        let recorded = std::fs::read_to_string(&path).unwrap_or_default();
        if recorded == listing {
            println!("{}: public API unchanged", krate.name);
        } else {
            all_match = false;
            println!(
                "{}: public API differs from api/{}.txt:",
                krate.name, krate.name
            );
            print_difference(&recorded, &listing);
        }
    }
    if !all_match {
        println!("If the change is intended: cargo xtask public-api --bless, and commit api/.");
    }
    Ok(all_match)
}

fn cargo_metadata() -> Result<Value> {
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .output()
        .map_err(|e| format!("running cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("reading cargo metadata: {e}"))
}

/// Members that may be published (`publish` unset) and have a library target.
fn published_crates(metadata: &Value) -> Result<Vec<Crate>> {
    let packages = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata has no packages")?;
    let mut crates = Vec::new();
    for package in packages {
        let publishable = package["publish"].is_null();
        let has_lib = package["targets"].as_array().is_some_and(|targets| {
            targets.iter().any(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "lib"))
            })
        });
        if !(publishable && has_lib) {
            continue;
        }
        let docs_rs = &package["metadata"]["docs"]["rs"];
        let features = match docs_rs["features"].as_array() {
            Some(list) => {
                let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
                vec!["--features".to_owned(), names.join(",")]
            }
            None if docs_rs["all-features"] == Value::Bool(true) => {
                vec!["--all-features".to_owned()]
            }
            None => Vec::new(),
        };
        crates.push(Crate {
            name: str_field(package, "name")?.to_owned(),
            features,
        });
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(crates)
}

/// The crate's public API, one item per line, sorted, blanket impls left out (they
/// list every generic impl of every dependency, e.g. `impl<T> From<T> for T`; auto
/// traits such as `Send` stay, since losing one breaks users).
fn listing(krate: &Crate, target: &Path) -> Result<String> {
    let status = Command::new(cargo())
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["rustdoc", "-q", "--locked", "--lib", "-p", &krate.name])
        .args(&krate.features)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"])
        .status()
        .map_err(|e| format!("running cargo rustdoc: {e}"))?;
    if !status.success() {
        return Err(format!("cargo rustdoc -p {} failed", krate.name));
    }
    let json = target
        .join("doc")
        .join(format!("{}.json", krate.name.replace('-', "_")));
    let text =
        std::fs::read_to_string(&json).map_err(|e| format!("reading {}: {e}", json.display()))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", json.display()))?;
    let format = value["format_version"].as_u64().unwrap_or(0);
    if !FORMATS.contains(&format) {
        return Err(format!(
            "{}: rustdoc JSON format {format}; public-api 0.52 reads {FORMATS:?}: \
             move xtask to the public-api release for this toolchain",
            json.display()
        ));
    }
    let api = public_api::Builder::from_rustdoc_json(&json)
        .omit_blanket_impls(true)
        .build()
        .map_err(|e| format!("{}: {e}", krate.name))?;
    let mut out = String::new();
    for item in api.items() {
        out.push_str(&item.to_string());
        out.push('\n');
    }
    Ok(out)
}

/// The lines only in the recorded listing (`-`) and only in the new one (`+`).
fn print_difference(recorded: &str, current: &str) {
    let old: BTreeSet<&str> = recorded.lines().collect();
    let new: BTreeSet<&str> = current.lines().collect();
    for line in old.difference(&new) {
        println!("-{line}");
    }
    for line in new.difference(&old) {
        println!("+{line}");
    }
}

fn str_field<'a>(value: &'a Value, field: &str) -> Result<&'a str> {
    value[field]
        .as_str()
        .ok_or_else(|| format!("cargo metadata: no {field}"))
}

/// The cargo that runs this command (so `cargo +toolchain xtask` stays on it).
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}
