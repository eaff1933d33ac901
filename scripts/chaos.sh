#!/usr/bin/env bash
# Chaos run for the session stores (issue 9): under a bounded concurrent load through
# SessionManager, pause (SIGSTOP/SIGCONT) and stop/restart each server in turn —
# Redis standalone, one Redis Cluster node, PostgreSQL, MariaDB — then SIGKILL the load
# process, verify every acknowledged update from its fsync'd journal, and run a short
# clean load to show the service resumed.
#
# Uses a PRIVATE set of servers (scripts/services.sh with env overrides); the shared
# servers (15432, 13306, 16379, 17001-17003) are never touched or signalled.
#
#   scripts/chaos.sh                 # all four servers, destroy the private set at the end
#   KEEP_SERVICES=1 scripts/chaos.sh # leave the private servers running
#   CASES="redis postgres" scripts/chaos.sh
#
# Tunables (env): PAUSE (s, SIGSTOP length, default 6), SESSIONS (400), WORKERS (32),
# OUT (log dir, default /tmp/session-chaos-out). Exit 0 iff every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib/private-services.sh
. scripts/lib/private-services.sh
private_services /tmp/session-chaos-services 15532 13406 16479 "18001 18002 18003"
PAUSE=${PAUSE:-6} SESSIONS=${SESSIONS:-400} WORKERS=${WORKERS:-32}
OUT=${OUT:-/tmp/session-chaos-out}
CASES=${CASES:-"redis redis-cluster postgres mysql"}
mkdir -p "$OUT"
log() { echo "[chaos $(date +%T)] $*" >&2; }

cargo build -q --release -p session-chaos
BIN=target/release/session-chaos

log "starting private servers in $SVC_DIR"
bash scripts/services.sh start >"$OUT/services.log" 2>&1 || { cat "$OUT/services.log" >&2; exit 1; }
cleanup() {
  [ -n "${LOAD_PID:-}" ] && kill -KILL "$LOAD_PID" 2>/dev/null || true
  # never leave a private server stopped
  [ ${#STOPPED_PIDS[@]} -gt 0 ] && kill -CONT "${STOPPED_PIDS[@]}" 2>/dev/null || true
  if [ "${KEEP_SERVICES:-0}" = 1 ]; then log "private servers left running ($SVC_DIR)"
  else bash scripts/services.sh destroy >>"$OUT/services.log" 2>&1 || true; log "private servers destroyed"; fi
}
STOPPED_PIDS=()
trap cleanup EXIT

CLUSTER_VICTIM=$(echo $REDIS_CLUSTER_PORTS | awk '{print $2}')

# pidfile, process name and stop signal of each server (as services.sh starts them)
server_pidfile() {
  case $1 in
    redis) echo "$SVC_DIR/redis/standalone/redis.pid" ;;
    redis-cluster) echo "$SVC_DIR/redis/cluster-$CLUSTER_VICTIM/redis.pid" ;;
    postgres) echo "$SVC_DIR/pg/data/postmaster.pid" ;;
    mysql) echo "$SVC_DIR/mysql/mysqld.pid" ;;
  esac
}
server_comm() { case $1 in redis|redis-cluster) echo redis-server ;; postgres) echo postgres ;; mysql) echo mariadbd ;; esac; }
stop_signal() { case $1 in postgres) echo INT ;; *) echo TERM ;; esac; }   # PG: fast shutdown
backend_url() { private_url "$1"; }

# The server's main pid, checked against its process name (never a stale pidfile).
main_pid() {
  local f; f=$(server_pidfile "$1")
  local pid; pid=$(head -n1 "$f" 2>/dev/null | tr -d ' ')
  [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$(server_comm "$1")" ] || { log "no live $1 server"; return 1; }
  echo "$pid"
}
# PostgreSQL serves each connection from a child of the postmaster: pause them all.
all_pids() {
  local pid; pid=$(main_pid "$1")
  echo "$pid"
  [ "$1" = postgres ] && pgrep -P "$pid" || true
}

last_progress() { grep '^progress' "$1" | tail -n1 || true; }
acked_of() { sed -n 's/.* acked=\([0-9]*\).*/\1/p' <<<"$1"; }

FAILED=0
check() { # DESC CONDITION...
  local desc=$1; shift
  if "$@"; then log "  ok   $desc"; echo "ok   $desc" >>"$OUT/$CASE.checks"
  else log "  FAIL $desc"; echo "FAIL $desc" >>"$OUT/$CASE.checks"; FAILED=1; fi
}

run_case() {
  CASE=$1
  local url ns load_log load_err journal
  url=$(backend_url "$CASE"); ns="chaos_${CASE//-/_}"
  load_log=$OUT/$CASE.load.log load_err=$OUT/$CASE.load.err journal=$OUT/$CASE.journal
  : >"$OUT/$CASE.checks"
  log "=== $CASE ($url)"
  "$BIN" load --backend "$url" --namespace "$ns" --journal "$journal" \
    --sessions "$SESSIONS" --workers "$WORKERS" --duration 180 >"$load_log" 2>"$load_err" &
  LOAD_PID=$!
  sleep 4
  log "before faults: $(last_progress "$load_log")"

  local pids
  pids=$(all_pids "$CASE" | tr '\n' ' ')
  log "SIGSTOP $CASE (pids $pids) for ${PAUSE}s"
  STOPPED_PIDS=($pids); kill -STOP $pids; sleep "$PAUSE"; kill -CONT $pids; STOPPED_PIDS=()
  sleep 4
  log "after SIGCONT: $(last_progress "$load_log")"

  local pid; pid=$(main_pid "$CASE")
  log "stopping $CASE (pid $pid, SIG$(stop_signal "$CASE"))"
  kill "-$(stop_signal "$CASE")" "$pid"
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { log "still alive after 30s"; FAILED=1; }
  sleep 2
  log "restarting $CASE"
  bash scripts/services.sh start >>"$OUT/services.log" 2>&1
  local at_restart; at_restart=$(last_progress "$load_log")
  log "at restart: $at_restart"
  sleep 6
  local at_kill; at_kill=$(last_progress "$load_log")
  log "before SIGKILL: $at_kill"
  kill -KILL "$LOAD_PID"; wait "$LOAD_PID" 2>/dev/null || true; LOAD_PID=

  log "verify"
  local vrc=0
  "$BIN" verify --backend "$url" --namespace "$ns" --journal "$journal" >"$OUT/$CASE.verify.log" 2>&1 || vrc=$?
  log "  $(tail -n1 "$OUT/$CASE.verify.log")"
  log "resume: short clean load"
  local rrc=0
  "$BIN" load --backend "$url" --namespace "${ns}_resume" --journal "$OUT/$CASE.resume.journal" \
    --sessions "$SESSIONS" --workers "$WORKERS" --duration 3 >"$OUT/$CASE.resume.log" 2>&1 || rrc=$?
  log "  $(tail -n1 "$OUT/$CASE.resume.log" | cut -c1-300)"

  check "load: no panic" bash -c "! grep -q 'panicked' '$load_err'"
  check "load: no violation (typed + retryable errors, no foreign data, no lost ack)" bash -c "! grep -q VIOLATION '$load_err'"
  check "load: errors were seen during the faults" bash -c "grep '^progress' '$load_log' | tail -n1 | grep -qv ' errors=0 '"
  check "load: updates acknowledged after the restart ($(acked_of "$at_restart") -> $(acked_of "$at_kill"))" \
    test "$(acked_of "$at_kill")" -gt "$(acked_of "$at_restart")"
  check "verify: exit 0" test "$vrc" -eq 0
  check "resume load: exit 0 and no errors" bash -c "[ $rrc -eq 0 ] && tail -n1 '$OUT/$CASE.resume.log' | grep -q '\"errors\":{\"counts\":{}'"
}

for c in $CASES; do run_case "$c"; done
log "logs in $OUT"
[ $FAILED -eq 0 ] && log "ALL CHECKS PASSED" || log "SOME CHECKS FAILED"
exit $FAILED
