#!/usr/bin/env bash
# Crash durability (issue 9, complement to scripts/chaos.sh, which pauses and cleanly
# stops the servers): under load through SessionManager, SIGKILL each server — Redis
# standalone, one Redis Cluster node, PostgreSQL (postmaster and every backend at once),
# MariaDB — restart it, and check that every update acknowledged before the crash is
# still there (in the running load, right after the restart, and by `verify --durable
# true` on the fsync'd journal afterwards), that errors were typed and retryable, and
# that the service resumed.
#
# The servers are made durable first, since services.sh runs them for speed:
#   Redis:      CONFIG SET appendonly yes + appendfsync always; restarted by this script
#               with the same flags as services.sh plus --appendonly yes --appendfsync always
#   PostgreSQL: ALTER ROLE sess SET synchronous_commit = on (beats the -c on the
#               command line; fsync=off only matters for an OS crash, not a process crash)
#   MariaDB:    SET GLOBAL innodb_flush_log_at_trx_commit = 1 (again after each restart)
#
# PRIVATE servers only (default: the set below, never the shared ports or the set
# scripts/chaos.sh uses); destroyed at the end unless KEEP_SERVICES=1.
#   session-chaos/scripts/crash.sh                     # all four
#   CASES="postgres mysql" session-chaos/scripts/crash.sh
#   DURABLE=0 CASES=mysql session-chaos/scripts/crash.sh   # teeth: services.sh's fast,
#       non-durable settings kept; the checks are expected to FAIL (lost acknowledged
#       updates), proving they can
# Exit 0 iff every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib/private-services.sh
. scripts/lib/private-services.sh
private_services /tmp/session-crash-services 15632 13506 16579 "19001 19002 19003"

CASES=${CASES:-"redis redis-cluster postgres mysql"}
OUT=${OUT:-/tmp/session-crash-out}
DURABLE=${DURABLE:-1} DURATION=${DURATION:-30} CRASH_AT=${CRASH_AT:-6} DOWN=${DOWN:-3}
mkdir -p "$OUT"
log() { echo "[crash $(date +%T)] $*" >&2; }

cargo build -q --release -p session-chaos
cp target/release/session-chaos "$OUT/session-chaos"   # immune to concurrent rebuilds
BIN=$OUT/session-chaos

log "starting private servers in $SVC_DIR"
bash scripts/services.sh start >"$OUT/services.log" 2>&1 || { cat "$OUT/services.log" >&2; exit 1; }
LOAD_PID=
cleanup() {
  [ -n "$LOAD_PID" ] && kill -KILL "$LOAD_PID" 2>/dev/null || true
  if [ "${KEEP_SERVICES:-0}" = 1 ]; then log "private servers left running ($SVC_DIR)"
  else bash scripts/services.sh destroy >>"$OUT/services.log" 2>&1 || true; log "private servers destroyed"; fi
}
trap cleanup EXIT

pid_of() { # PIDFILE COMM -> pid, only if that process is alive and named COMM
  local pid; pid=$(head -n1 "$1" 2>/dev/null | tr -d ' ')
  [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ] && echo "$pid"
}

# --- durability settings -------------------------------------------------------------
redis_dir() { [ "$1" = "$REDIS_PORT" ] && echo "$SVC_DIR/redis/standalone" || echo "$SVC_DIR/redis/cluster-$1"; }
redis_durable() { # PORT: AOF with fsync before every reply, at run time
  redis-cli -p "$1" CONFIG SET appendfsync always >/dev/null
  redis-cli -p "$1" CONFIG SET appendonly yes >/dev/null
  for _ in $(seq 100); do
    redis-cli -p "$1" INFO persistence | grep -q '^aof_rewrite_in_progress:0' &&
      redis-cli -p "$1" INFO persistence | grep -q '^aof_enabled:1' && return 0
    sleep 0.1
  done
  log "redis $1: AOF did not come up"; return 1
}
redis_start() { # PORT: as services.sh's start_redis_one, plus AOF
  local port=$1 d; d=$(redis_dir "$1")
  local extra=()
  [ "$port" != "$REDIS_PORT" ] && extra=(--cluster-enabled yes --cluster-config-file "$d/nodes.conf" --cluster-node-timeout 2000)
  local aof=(--appendonly yes --appendfsync always)
  [ "$DURABLE" = 1 ] || aof=(--appendonly no)
  redis-server --bind 127.0.0.1 --port "$port" --save '' "${aof[@]}" --dir "$d" \
    --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" "${extra[@]}"
  for _ in $(seq 100); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
  log "redis $port did not restart"; return 1
}
pg_durable() {
  PGPASSWORD=postgres psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
    -c "ALTER ROLE sess SET synchronous_commit = on"
}
mysql_durable() {
  mariadb --no-defaults -S "$SVC_DIR/mysql/mysqld.sock" -uroot -e "SET GLOBAL innodb_flush_log_at_trx_commit = 1"
}

# --- crash and restart ---------------------------------------------------------------
crash() { # CASE -> SIGKILL every process of that server
  local pid pids
  case $1 in
    redis) pids=$(pid_of "$SVC_DIR/redis/standalone/redis.pid" redis-server) ;;
    redis-cluster) pids=$(pid_of "$(redis_dir "$VICTIM")/redis.pid" redis-server) ;;
    postgres) pid=$(pid_of "$SVC_DIR/pg/data/postmaster.pid" postgres); pids="$pid $(pgrep -P "$pid" | tr '\n' ' ')" ;;
    mysql) pids=$(pid_of "$SVC_DIR/mysql/mysqld.pid" mariadbd) ;;
  esac
  [ -n "${pids// /}" ] || { log "no live $1 to crash"; return 1; }
  log "SIGKILL $1 (pids $pids)"
  # shellcheck disable=SC2086
  kill -KILL $pids
  for p in $pids; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
}
restart() { # CASE
  case $1 in
    redis) redis_start "$REDIS_PORT" ;;
    redis-cluster) redis_start "$VICTIM" ;;
    postgres) bash scripts/services.sh start >>"$OUT/services.log" 2>&1 ;;
    mysql) bash scripts/services.sh start >>"$OUT/services.log" 2>&1 && { [ "$DURABLE" != 1 ] || mysql_durable; } ;;
  esac
}
url_of() { private_url "$1"; }
VICTIM=$(echo $REDIS_CLUSTER_PORTS | awk '{print $2}')

if [ "$DURABLE" = 1 ]; then
  for p in $REDIS_PORT $REDIS_CLUSTER_PORTS; do redis_durable "$p"; done
  pg_durable
  mysql_durable
  log "durable settings applied (Redis AOF always, PG synchronous_commit=on for sess, InnoDB flush at commit)"
else
  for p in $REDIS_PORT $REDIS_CLUSTER_PORTS; do redis-cli -p "$p" CONFIG SET appendonly no >/dev/null; done
  PGPASSWORD=postgres psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "ALTER ROLE sess RESET synchronous_commit"
  mariadb --no-defaults -S "$SVC_DIR/mysql/mysqld.sock" -uroot -e "SET GLOBAL innodb_flush_log_at_trx_commit = 0"
  log "DURABLE=0: services.sh's non-durable settings; failures are EXPECTED (teeth check)"
fi

FAILED=0
check() { # DESC CMD...
  local desc=$1; shift
  if "$@"; then log "  ok   $desc"; echo "ok   $CASE: $desc" >>"$OUT/checks"
  else log "  FAIL $desc"; echo "FAIL $CASE: $desc" >>"$OUT/checks"; FAILED=1; fi
}
json_num() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" | tail -n1; }
: >"$OUT/checks"

for CASE in $CASES; do
  url=$(url_of "$CASE") ns="crash_${CASE//-/_}_$(date +%s)"
  log "=== $CASE ($url)"
  "$BIN" load --backend "$url" --namespace "$ns" --journal "$OUT/$CASE.journal" \
    --sessions 400 --workers 32 --cycles 100000000 --duration "$DURATION" \
    >"$OUT/$CASE.load.log" 2>"$OUT/$CASE.load.err" &
  LOAD_PID=$!
  sleep "$CRASH_AT"
  before=$(grep '^progress' "$OUT/$CASE.load.log" | tail -n1)
  log "before the crash: $before"
  crash "$CASE"
  sleep "$DOWN"
  restart "$CASE"
  log "restarted $CASE"
  rc=0; wait "$LOAD_PID" || rc=$?; LOAD_PID=
  log "load: $(tail -n1 "$OUT/$CASE.load.log" | cut -c1-600)"
  vrc=0
  "$BIN" verify --backend "$url" --namespace "$ns" --journal "$OUT/$CASE.journal" --durable true \
    >"$OUT/$CASE.verify.log" 2>&1 || vrc=$?
  log "verify: $(tail -n1 "$OUT/$CASE.verify.log")"

  check "load exit 0 (no lost ack, no foreign data, no lower counter, only retryable errors)" test "$rc" -eq 0
  check "no panic" bash -c "! grep -q panicked '$OUT/$CASE.load.err' '$OUT/$CASE.verify.log'"
  check "no session vanished (lost_non_durable = 0)" test "$(json_num "$OUT/$CASE.load.log" lost_non_durable)" = 0
  check "errors seen during the crash" bash -c "grep -q '\"timeouts\":[1-9]' '$OUT/$CASE.load.log' || grep -q '\"errors\":{\"counts\":{\"' '$OUT/$CASE.load.log'"
  check "service resumed (acked after the last failure > 0)" test "$(json_num "$OUT/$CASE.load.log" acked_after_last_failure)" -gt 0
  check "verify --durable true: exit 0, missing = 0" bash -c "[ $vrc -eq 0 ] && grep -q '\"missing\":0' '$OUT/$CASE.verify.log'"
done
log "checks in $OUT/checks; logs in $OUT"
[ $FAILED -eq 0 ] && log "ALL CHECKS PASSED" || log "SOME CHECKS FAILED"
exit $FAILED
