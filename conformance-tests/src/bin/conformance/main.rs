//! `conformance`: runs the conformance suite against the selected backends and
//! prints a per-case table (or JSON) with totals. Exit status 0 if and only if no
//! selected case failed; 2 for a usage error or a backend this build cannot run.

mod backends;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use conformance_tests::{Depth, Harness, Outcome, Report, find_case, run_all_at, run_case_at};

use backends::{BackendName, harness_for};

#[derive(Debug, Parser)]
#[command(
    name = "conformance",
    about = "Run the session-store conformance suite against one or more backends",
    after_help = "NAME: memory | file | redis | redis-cluster | postgres | mysql\n\
                  Without --backend: the embedded backends compiled into this build.\n\
                  URL omitted: taken from SESSION_TEST_<BACKEND>_URL \
                  (SESSION_TEST_REDIS_CLUSTER_URLS for redis-cluster).\n\
                  SESSION_TEST_REQUIRE=redis,... makes a missing server a failure.\n\
                  SESSION_TEST_THOROUGH=1 is the same as --thorough."
)]
struct Args {
    /// A backend to test, as NAME or NAME=URL (repeatable).
    #[arg(long = "backend", value_name = "NAME[=URL]")]
    backends: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Climb every rung of the ladders: 8 MiB payloads on every size ladder, sweeps
    /// of thousands of records (also on when SESSION_TEST_THOROUGH is set).
    #[arg(long)]
    thorough: bool,
    /// Run only this case (repeatable); default: every case.
    #[arg(long = "case", value_name = "NAME")]
    cases: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let selected = match select(&args.backends) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("conformance: {msg}");
            return ExitCode::from(2);
        }
    };
    if let Some(unknown) = args.cases.iter().find(|c| find_case(c).is_none()) {
        eprintln!("conformance: unknown case `{unknown}`");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("conformance: could not start the Tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let depth = if args.thorough {
        Depth::Thorough
    } else {
        Depth::from_env()
    };
    let reports: Vec<Report> = runtime.block_on(async {
        let mut reports = Vec::new();
        for harness in selected {
            reports.push(run(harness, &args.cases, depth).await);
        }
        reports
    });
    match args.format {
        Format::Table => print_table(&reports),
        Format::Json => match serde_json::to_string_pretty(&reports) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("conformance: could not render JSON: {e}");
                return ExitCode::from(2);
            }
        },
    }
    if reports.iter().all(Report::is_success) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Every case against `harness`, or only `cases` when some are named (one after the
/// other, in the order given).
async fn run(harness: Arc<dyn Harness>, cases: &[String], depth: Depth) -> Report {
    if cases.is_empty() {
        return run_all_at(harness, depth).await;
    }
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        results.push(run_case_at(Arc::clone(&harness), case, depth).await);
    }
    Report {
        thorough: depth.is_thorough(),
        ..Report::new(harness.name(), results)
    }
}

/// The harnesses for the `--backend` arguments, or for the embedded backends that
/// this build has when there are none.
fn select(specs: &[String]) -> Result<Vec<Arc<dyn Harness>>, String> {
    if specs.is_empty() {
        let available: Vec<_> = BackendName::EMBEDDED
            .into_iter()
            .filter_map(|b| harness_for(b, None).ok())
            .collect();
        if available.is_empty() {
            return Err("no embedded backend is compiled into this build".to_owned());
        }
        return Ok(available);
    }
    let known = BackendName::ALL.map(BackendName::as_str).join(", ");
    specs
        .iter()
        .map(|spec| {
            let (name, url) = match spec.split_once('=') {
                Some((n, u)) => (n, Some(u.to_owned())),
                None => (spec.as_str(), None),
            };
            let backend = BackendName::parse(name)
                .ok_or_else(|| format!("unknown backend `{name}` (known: {known})"))?;
            if url.as_deref().is_some_and(|u| u.trim().is_empty()) {
                return Err(format!("`--backend {spec}`: the URL after `=` is empty"));
            }
            harness_for(backend, url).map_err(|e| e.to_string())
        })
        .collect()
}

fn print_table(reports: &[Report]) {
    let rows: Vec<[String; 4]> = reports
        .iter()
        .flat_map(|r| {
            r.cases.iter().map(|c| {
                let result = match &c.outcome {
                    Outcome::Passed => "passed",
                    Outcome::Failed(_) => "FAILED",
                    Outcome::Skipped(_) => "skipped",
                };
                [
                    r.backend.clone(),
                    c.name.clone(),
                    result.to_owned(),
                    format!("{:.1}", c.duration.as_secs_f64() * 1000.0),
                ]
            })
        })
        .collect();
    let header = ["backend", "case", "result", "ms"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String; 4]| {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
    };
    line(&header);
    line(&widths.map(|w| "-".repeat(w)));
    for row in &rows {
        line(row);
    }
    println!();
    for r in reports {
        for c in &r.cases {
            match &c.outcome {
                Outcome::Failed(msg) => println!("FAILED  {}/{}: {msg}", r.backend, c.name),
                Outcome::Skipped(reason) => {
                    println!("skipped {}/{}: {reason}", r.backend, c.name)
                }
                Outcome::Passed => {}
            }
        }
    }
    println!();
    for r in reports {
        println!(
            "{}: {} passed, {} failed, {} skipped",
            r.backend, r.passed, r.failed, r.skipped
        );
    }
    let total = |f: fn(&Report) -> usize| reports.iter().map(f).sum::<usize>();
    let depth = if reports.iter().any(|r| r.thorough) {
        "thorough run"
    } else {
        "default run; --thorough climbs every rung"
    };
    println!(
        "total: {} passed, {} failed, {} skipped ({depth})",
        total(|r| r.passed),
        total(|r| r.failed),
        total(|r| r.skipped)
    );
}
