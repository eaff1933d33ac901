//! `verify`: every acknowledged update in the journal is still there.

use std::path::Path;
use std::sync::Arc;

use session_core::SessionManager;
use tokio::task::JoinSet;

use crate::journal::{self, Entry};
use crate::stats::ErrorCounts;
use crate::value::{KEY, Val};

/// What verification found; `violations` must stay empty.
#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Journal lines read (and torn ones skipped).
    pub journal_lines: u64,
    /// Torn or malformed journal lines (a SIGKILL may leave one).
    pub torn_lines: u64,
    /// Sessions checked (the newest acknowledgement of each).
    pub checked: u64,
    /// Sessions holding exactly the acknowledged counter.
    pub exact: u64,
    /// Sessions holding a later counter (an update applied whose answer, or whose
    /// journal line, was lost to a fault).
    pub ahead: u64,
    /// Sessions not found (allowed only on a non-durable backend).
    pub missing: u64,
    /// Errors while loading.
    pub errors: ErrorCounts,
    /// Lost acknowledged updates (durable), foreign data, lower counters.
    pub violations: ErrorCounts,
}

enum Found {
    Value(Val),
    Missing,
    Error(session_core::Error),
}

/// Loads the newest acknowledged state of every session in the journal.
pub async fn run(
    manager: &Arc<SessionManager>,
    durable: bool,
    path: &Path,
    parallel: usize,
) -> std::io::Result<VerifyReport> {
    let replay = journal::replay(path)?;
    let mut report = VerifyReport {
        journal_lines: replay.lines,
        torn_lines: replay.bad_lines,
        ..VerifyReport::default()
    };
    let mut cookies = std::collections::HashSet::new();
    let mut entries: Vec<Entry> = replay.latest.into_values().collect();
    entries.sort_by_key(|e| e.id);
    for e in &entries {
        if !cookies.insert(e.cookie.clone()) {
            report.violations.add("shared_cookie", || {
                format!("cookie of session {} reused", e.id)
            });
        }
    }
    let mut set = JoinSet::new();
    let mut pending = entries.into_iter();
    loop {
        while set.len() < parallel.max(1) {
            let Some(e) = pending.next() else { break };
            let m = manager.clone();
            set.spawn(async move {
                let s = m.session(Some(&e.cookie));
                let found = match s.get::<Val>(KEY).await {
                    Ok(Some(v)) => Found::Value(v),
                    Ok(None) => Found::Missing,
                    Err(err) => Found::Error(err),
                };
                (e, found)
            });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (e, found) = match joined {
            Ok(x) => x,
            Err(err) => {
                report.violations.add("panic", || err.to_string());
                continue;
            }
        };
        report.checked += 1;
        match found {
            Found::Value(v) if v.id != e.id || !v.pad_ok() => report
                .violations
                .add("foreign_data", || format!("session {} holds {v:?}", e.id)),
            Found::Value(v) if v.n < e.counter => report.violations.add("lost_update", || {
                format!(
                    "session {} holds {} < acknowledged {}",
                    e.id, v.n, e.counter
                )
            }),
            Found::Value(v) if v.n == e.counter => report.exact += 1,
            Found::Value(_) => report.ahead += 1,
            Found::Missing => {
                report.missing += 1;
                if durable {
                    report.violations.add("lost_session", || {
                        format!("session {} (acknowledged {}) is gone", e.id, e.counter)
                    });
                }
            }
            Found::Error(err) => {
                report.errors.add_error(&err);
                report
                    .violations
                    .add("load_error", || crate::stats::error_chain(&err));
            }
        }
    }
    Ok(report)
}
