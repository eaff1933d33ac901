//! The mix's tables: throughput ours vs tower-sessions, store calls per request by
//! kind, and the issue-22 targets.

use std::fmt::Write as _;

use super::{KINDS, Kind, Method, Row};
use crate::Args;
use crate::backends::Backend;
use crate::harness::{Sample, median};
use crate::workload::label;

/// The throughput target: ours at least this many times tower-sessions' rate on
/// every server backend at the largest task count.
pub const SPEED_TARGET: f64 = 1.5;
/// The round-trip target: at most this many store calls per request on average.
pub const CALLS_TARGET: f64 = 1.1;

/// Ours' rate over tower-sessions', run by run (the runs of one round ran side
/// by side): median, smallest, largest. `None` without a tower-sessions side.
pub fn paired(row: &Row) -> Option<(f64, f64, f64)> {
    let mut r: Vec<f64> = row
        .ours
        .iter()
        .zip(&row.tower)
        .filter(|(_, t)| t.rate > 0.0)
        .map(|(o, t)| o.rate / t.rate)
        .collect();
    r.sort_by(f64::total_cmp);
    let n = r.len();
    let (&min, &max) = (r.first()?, r.last()?);
    Some(((r[(n - 1) / 2] + r[n / 2]) / 2.0, min, max))
}

fn per_request(calls: u64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| calls as f64 / requests as f64)
}

fn fmt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "—".to_owned(), |x| format!("{x:.digits$}"))
}

fn rate(s: &[Sample]) -> Option<f64> {
    (!s.is_empty()).then(|| median(s).rate)
}

/// One line for the progress log.
pub fn summary(row: &Row) -> String {
    format!(
        "{} {} {:>2} users  mix: ours {:.0}/s, {} calls/req; tower {}/s, {} calls/req; ours÷tower {}",
        row.backend.name(),
        label(row.size),
        row.tasks,
        rate(&row.ours).unwrap_or(0.0),
        fmt(
            per_request(
                row.ours_counts.total_calls(),
                row.ours_counts.total_requests()
            ),
            3
        ),
        fmt(rate(&row.tower), 0),
        fmt(
            per_request(
                row.tower_counts.total_calls(),
                row.tower_counts.total_requests()
            ),
            3
        ),
        fmt(paired(row).map(|p| p.0), 2),
    )
}

/// What the requests of `kind` called, per request ("load_and_touch 1.00, update 1.00").
fn methods(c: &super::Counts, kind: Kind) -> String {
    let n = c.requests[kind.index()];
    let list: Vec<String> = Method::ALL
        .iter()
        .filter(|m| c.method(kind, **m) > 0)
        .map(|m| format!("{} {:.2}", m.label(), c.method(kind, *m) as f64 / n as f64))
        .collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(" + ")
    }
}

/// Renders the mix section (nothing without rows).
pub fn render(md: &mut String, args: &Args, rows: &[Row]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## Request mix through the tower layers (issue 22)\n");
    let _ = writeln!(
        md,
        "Each task is one user with a cookie jar, calling the layered service directly \
         (`ServiceExt::oneshot`, no TCP). A signed-in user's next request is a read \
         (32 in 39), a change (6 in 39) or a logout (1 in 39); a signed-out user's next \
         request is a login: in the long run 80% reads (`get` of one key), 15% changes \
         (`get` of one key, `insert` of a counter), 2.5% logouts (ours `destroy`, \
         tower-sessions `flush`) and 2.5% logins (a new session holding the workload's \
         data and a user id). Ours: session-tower's `SessionLayer` over `SessionManager` \
         with `refresh_each_request(true)`, the default `refresh_threshold` 0.5 and a \
         24 h idle lifetime. tower-sessions 0.14: `SessionManagerLayer` with \
         `Expiry::OnInactivity(24 h)` and `with_always_save(true)`, its way to slide the \
         deadline on every request (it has no threshold). Store calls are counted by a \
         wrapper around `SessionInterface` (ours; `load_and_touch` is one call) and \
         around `SessionStore` (tower-sessions); one call may be more than one network \
         round trip inside the store. {} runs of {} s per cell, the two sides \
         alternating; the ratio is the median of the run-by-run ratios, with their range.\n",
        args.repeats, args.duration
    );
    if args.mix_refresh_threshold != 0.5 {
        let _ = writeln!(
            md,
            "**`--mix-refresh-threshold {}`**: ours' manager refreshes with this \
             threshold instead of its default 0.5{}.\n",
            args.mix_refresh_threshold,
            if args.mix_refresh_threshold == 0.0 {
                " (every read of a session moves its deadline, as tower-sessions' does)"
            } else {
                ""
            }
        );
    }
    if args.mix_two_step {
        let _ = writeln!(
            md,
            "**`--mix-two-step`**: ours' manager is not shown the stores' one-step \
             `load_and_touch`, so it loads with a plain `load` and touches only when a \
             refresh is due.\n"
        );
    }
    let _ = writeln!(
        md,
        "| backend | login payload | users | ours req/s | tower req/s | ours÷tower (range) | store calls/req ours / tower | p50 µs ours / tower | p99 µs ours / tower | CPU µs/req ours / tower |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---|---|---|---|---|");
    for row in rows {
        let o = median(&row.ours);
        let t = (!row.tower.is_empty()).then(|| median(&row.tower));
        let pair = |f: fn(&Sample) -> f64| match &t {
            Some(t) => format!("{:.0} / {:.0}", f(&o), f(t)),
            None => format!("{:.0} / —", f(&o)),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} | {} / {} | {} | {} | {} |",
            row.backend.name(),
            label(row.size),
            row.tasks,
            o.rate,
            fmt(t.as_ref().map(|t| t.rate), 0),
            paired(row).map_or_else(
                || "—".to_owned(),
                |(m, lo, hi)| format!("{m:.2} ({lo:.2}–{hi:.2})")
            ),
            fmt(
                per_request(
                    row.ours_counts.total_calls(),
                    row.ours_counts.total_requests()
                ),
                3
            ),
            fmt(
                per_request(
                    row.tower_counts.total_calls(),
                    row.tower_counts.total_requests()
                ),
                3
            ),
            pair(|s| s.p50),
            pair(|s| s.p99),
            pair(|s| s.cpu_us),
        );
    }

    let _ = writeln!(md, "\n### Store calls per request, by kind\n");
    let _ = writeln!(
        md,
        "Counted over every run of the cell, warm-ups included: calls per request of \
         each kind, and in brackets that kind's share of the requests.\n"
    );
    let _ = writeln!(
        md,
        "| backend | users | side | read | change | login | logout | all | which calls |"
    );
    let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|---|");
    for row in rows {
        let sides = [("ours", &row.ours_counts), ("tower", &row.tower_counts)];
        for (side, c) in sides {
            let total = c.total_requests();
            if total == 0 {
                continue;
            }
            let mut line = format!("| {} | {} | {side} |", row.backend.name(), row.tasks);
            for kind in KINDS {
                let n = c.requests[kind.index()];
                let _ = write!(
                    line,
                    " {} ({:.1}%) |",
                    fmt(per_request(c.calls_of(kind), n), 2),
                    n as f64 * 100.0 / total as f64
                );
            }
            let which: Vec<String> = KINDS
                .iter()
                .map(|k| format!("{}: {}", k.label(), methods(c, *k)))
                .collect();
            let _ = writeln!(
                line,
                " {} | {}{} |",
                fmt(per_request(c.total_calls(), total), 3),
                which.join("; "),
                if c.untagged() > 0 {
                    format!("; {} calls outside a request", c.untagged())
                } else {
                    String::new()
                }
            );
            md.push_str(&line);
        }
    }

    let _ = writeln!(md, "\n### Targets\n");
    let _ = writeln!(md, "| target | backend | users | measured | verdict |");
    let _ = writeln!(md, "|---|---|---:|---|---|");
    let most = args.tasks.iter().copied().max().unwrap_or(1);
    for row in rows {
        let server = !matches!(row.backend, Backend::Memory | Backend::File);
        if server
            && row.tasks == most
            && let Some((m, lo, hi)) = paired(row)
        {
            let _ = writeln!(
                md,
                "| ≥ {SPEED_TARGET}× tower-sessions | {} | {} | {m:.2}× ({lo:.2}–{hi:.2}) | {} |",
                row.backend.name(),
                row.tasks,
                verdict(m >= SPEED_TARGET)
            );
        }
    }
    for row in rows {
        let c = &row.ours_counts;
        if let Some(x) = per_request(c.total_calls(), c.total_requests()) {
            let _ = writeln!(
                md,
                "| ≤ {CALLS_TARGET} store calls/request (ours) | {} | {} | {x:.3} | {} |",
                row.backend.name(),
                row.tasks,
                verdict(x <= CALLS_TARGET)
            );
        }
    }
    let floor = super::calls_floor();
    if floor > CALLS_TARGET {
        let _ = writeln!(
            md,
            "\nNo store can meet ≤ {CALLS_TARGET} store calls/request on this mix: its floor \
             is {floor:.3} (reads 1, logins 1, logouts 1, and changes 2, because a change's \
             handler reads the session and its compare-and-set needs the version that load \
             returned)."
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}
