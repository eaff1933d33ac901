#!/usr/bin/env bash
# Runs the side-by-side benchmarks (package session-bench) and writes BENCHMARKS.md at
# the workspace root: the machine, the versions, the exact command and the tables.
#
#   bash scripts/bench.sh                      # everything, default run lengths (~10-15 min on 2 cores)
#   bash scripts/bench.sh --repeats 5 --duration 1      # longer, steadier runs
#   bash scripts/bench.sh --backends memory,redis --sizes 16 --quick   # a smoke run
#
# Every argument is passed to the benchmark binary (see `--help` or
# session-bench/README.md). The servers come from scripts/services.sh, which is
# started here (idempotent) and never stopped. BENCHMARKS_OUT overrides the output
# path (default: BENCHMARKS.md beside this script's parent).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${BENCHMARKS_OUT:-$ROOT/BENCHMARKS.md}

log() { echo "[bench.sh] $*" >&2; }

log "starting the servers (scripts/services.sh start)"
bash scripts/services.sh start >&2
eval "$(bash scripts/services.sh env)"

log "building session-bench (release)"
cargo build --release -p session-bench >&2

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START=$(loadavg)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T0=$(date +%s)

TABLES=$(mktemp)
trap 'rm -f "$TABLES"' EXIT
log "running: cargo run --release -p session-bench -- --out <tables> $*"
status=0
cargo run --release -q -p session-bench -- --out "$TABLES" "$@" || status=$?

LOAD_END=$(loadavg)
ELAPSED=$(($(date +%s) - T0))

# --- what ran where --------------------------------------------------------------
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
first_line() { "$@" 2>/dev/null | head -n1 || true; }
redis_v=$(first_line redis-server --version)
pg_bin=/usr/lib/postgresql/15/bin/postgres
pg_v=$( { [ -x "$pg_bin" ] && first_line "$pg_bin" --version; } || first_line postgres --version)
if command -v psql >/dev/null && [ -n "${SESSION_TEST_POSTGRES_URL:-}" ]; then
  pg_server=$(psql "$SESSION_TEST_POSTGRES_URL" -Atc 'SHOW server_version' 2>/dev/null || true)
  [ -n "$pg_server" ] && pg_v="$pg_v (server reports $pg_server)"
fi
maria_v=$(first_line mariadbd --version)
[ -z "$maria_v" ] && maria_v=$(first_line /usr/sbin/mariadbd --version)
# The versions cargo resolved (Cargo.lock), for the crates that decide the numbers.
lock_versions() {
  awk -v want="$1" '
    /^\[\[package\]\]/ { name = ""; next }
    /^name = / { gsub(/"/, "", $3); name = $3; next }
    /^version = / && name == want { gsub(/"/, "", $3); printf "%s%s", sep, $3; sep = ", " }
  ' Cargo.lock
}
crates=""
for c in session-core session-memory session-file session-redis session-postgres session-mysql \
  tower-sessions-core tower-sessions-memory-store tower-sessions-redis-store \
  tower-sessions-sqlx-store redis deadpool-redis fred sqlx dashmap tokio serde_json; do
  v=$(lock_versions "$c")
  [ -n "$v" ] && crates="$crates\n| \`$c\` | $v |"
done
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -qv '^??' && echo " + uncommitted changes" || true)
args_shown=${*:-(defaults)}

{
  cat <<EOF
# Benchmarks: ours vs the raw drivers (the limit) vs tower-sessions (the incumbent)

Written by \`bash scripts/bench.sh\` — do not edit by hand; run it again instead. What is
measured and why is described in [session-bench/README.md](session-bench/README.md).

The machine is shared and noisy (other builds run beside the benchmark), so read the
**ratios**, which compare contestants measured side by side in the same process, in
the same minute, against the same server, alternating run by run. Absolute numbers
move with the neighbours; the load averages below say how busy the machine was.

## Command

\`\`\`text
bash scripts/bench.sh $*
# = scripts/services.sh start; eval "\$(scripts/services.sh env)";
#   cargo run --release -p session-bench -- --out <tables> $*
\`\`\`

Arguments: $args_shown. Started $STARTED, took ${ELAPSED} s. Exit status of the benchmark: $status.

## Machine

| | |
|---|---|
| CPUs (\`nproc\`) | $(nproc) |
| CPU model | ${cpu_model:-unknown} |
| memory | $mem_total |
| kernel | $(uname -sr) |
| load average at start (1, 5, 15 min) | $LOAD_START |
| load average at end (1, 5, 15 min) | $LOAD_END |

The servers (PostgreSQL, MariaDB, Redis) run on the same machine, on loopback, and
share its cores with the benchmark. Linux counts threads waiting on disk flushes in the
load average, so the file backend's own \`fdatasync\` threads raise it too.

## Versions

| | |
|---|---|
| rustc | $(rustc --version) |
| redis-server | ${redis_v:-not found} |
| PostgreSQL | ${pg_v:-not found} |
| MariaDB | ${maria_v:-not found} |
| workspace commit | $commit$dirty |

| crate | version (Cargo.lock) |
|---|---|
EOF
  printf '%b\n\n' "${crates#\\n}"
  cat "$TABLES"
} >"$OUT"

log "wrote $OUT (${ELAPSED} s)"
exit "$status"
