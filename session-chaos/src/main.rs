//! Chaos and soak drivers for the session stores (issue 9).
//!
//! ```text
//! session-chaos load   --backend URL --journal FILE [--sessions N] [--workers N] [--cycles N] [--duration S]
//! session-chaos verify --backend URL --journal FILE
//! session-chaos soak   --backend URL [--cycles N] [--window N] [--slots N] [--idle-ms MS]
//! ```
//!
//! Backends: `memory`, `file:///dir`, `redis://…`, `redis-cluster://h:p,h:p,…`,
//! `postgres://…`, `mysql://…`. Exit status 0 iff no violation was found; the last
//! stdout line is `SUMMARY {json}`.

mod backend;
mod journal;
mod load;
mod soak;
mod stats;
mod value;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use session_core::{SessionConfig, SessionManager};

#[derive(Parser)]
#[command(about = "Chaos and soak drivers for the session stores")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// memory | file:///dir | redis://… | redis-cluster://h:p,… | postgres://… | mysql://…
    #[arg(long)]
    backend: String,
    /// Redis key prefix / SQL table suffix / file sub-directory (`[a-z0-9_]`).
    #[arg(long, default_value = "run")]
    namespace: String,
    /// Worker threads of the runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bounded concurrent request cycles; every acknowledged update is journaled.
    Load {
        #[command(flatten)]
        common: Common,
        /// Journal of acknowledged updates (truncated).
        #[arg(long)]
        journal: PathBuf,
        /// Distinct sessions.
        #[arg(long, default_value_t = 400)]
        sessions: u32,
        /// Concurrent workers (each owns its own sessions).
        #[arg(long, default_value_t = 32)]
        workers: u32,
        /// Stop after this many request cycles...
        #[arg(long, default_value_t = 1_000_000)]
        cycles: u64,
        /// ...or this many seconds.
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// Client-side deadline of one request cycle, milliseconds.
        #[arg(long, default_value_t = 5_000)]
        request_timeout_ms: u64,
    },
    /// Checks every acknowledged update of a journal against the store.
    Verify {
        #[command(flatten)]
        common: Common,
        /// The journal `load` wrote.
        #[arg(long)]
        journal: PathBuf,
        /// Treat the backend as durable (default: by kind; Redis as run by
        /// services.sh has no persistence).
        #[arg(long)]
        durable: Option<bool>,
    },
    /// A bounded churning loop reporting RSS and latency per window.
    Soak {
        #[command(flatten)]
        common: Common,
        /// Request cycles in total.
        #[arg(long, default_value_t = 100_000)]
        cycles: u64,
        /// Cycles per window (0: a tenth of the total).
        #[arg(long, default_value_t = 0)]
        window: u64,
        /// Session slots.
        #[arg(long, default_value_t = 1_000)]
        slots: u32,
        /// Concurrent workers.
        #[arg(long, default_value_t = 32)]
        workers: u32,
        /// Idle lifetime of sessions (abandoned ones expire after it), ms.
        #[arg(long, default_value_t = 3_000)]
        idle_ms: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = match &cli.cmd {
        Cmd::Load { common, .. } | Cmd::Verify { common, .. } | Cmd::Soak { common, .. } => {
            common.clone()
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(common.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli.cmd, common)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("session-chaos: {e}");
            ExitCode::from(2)
        }
    }
}

fn summary<T: serde::Serialize>(report: &T) {
    println!(
        "SUMMARY {}",
        serde_json::to_string(report).expect("reports serialize")
    );
}

fn manager(
    store: Arc<dyn session_core::SessionInterface>,
    idle: Duration,
) -> Result<Arc<SessionManager>, String> {
    let idle = session_core::time::Duration::try_from(idle).map_err(|e| e.to_string())?;
    let config = SessionConfig::builder()
        .idle_lifetime(idle)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(SessionManager::new(store, config)))
}

async fn run(cmd: Cmd, common: Common) -> Result<bool, String> {
    let backend = backend::open(&common.backend, &common.namespace)
        .await
        .map_err(|e| format!("opening {}: {}", common.backend, stats::error_chain(&e)))?;
    match cmd {
        Cmd::Load {
            journal,
            sessions,
            workers,
            cycles,
            duration,
            request_timeout_ms,
            ..
        } => {
            let m = manager(backend.store.clone(), Duration::from_secs(3600))?;
            let opts = load::LoadOpts {
                sessions,
                workers,
                cycles,
                duration: Duration::from_secs_f64(duration),
                request_timeout: Duration::from_millis(request_timeout_ms),
                pad: 200,
                journal,
            };
            let r = load::run(m, backend.kind, backend.durable, opts)
                .await
                .map_err(|e| format!("journal: {e}"))?;
            summary(&r);
            Ok(r.violations.total() == 0)
        }
        Cmd::Verify {
            journal, durable, ..
        } => {
            let m = manager(backend.store.clone(), Duration::from_secs(3600))?;
            let durable = durable.unwrap_or(backend.durable);
            let r = verify::run(&m, durable, &journal, 32)
                .await
                .map_err(|e| format!("journal: {e}"))?;
            summary(&r);
            Ok(r.violations.total() == 0)
        }
        Cmd::Soak {
            cycles,
            window,
            slots,
            workers,
            idle_ms,
            ..
        } => {
            let idle = Duration::from_millis(idle_ms);
            let m = manager(backend.store.clone(), idle)?;
            let opts = soak::SoakOpts {
                cycles,
                window: if window == 0 {
                    (cycles / 10).max(1)
                } else {
                    window
                },
                slots,
                workers,
                idle,
                pad: 200,
                seed: 0x5eed,
            };
            let r = soak::run(m, backend.memory.clone(), backend.kind, opts).await;
            summary(&r);
            Ok(r.violations.total() == 0)
        }
    }
}
