#!/usr/bin/env bash
# Soak run for the session stores (issue 9): a bounded churning loop per backend
# (sessions created, updated, read, destroyed and abandoned to expire) through
# SessionManager, reporting RSS and p50/p99 latency per window; on memory the store's
# record count must return to 0 after delete_expired once everything has expired.
#
#   scripts/soak.sh [MEMORY_CYCLES] [SERVER_CYCLES]   # defaults 1000000 and 20000
#   scripts/soak.sh --full                              # the issue's counts: 1,000,000 / 100,000
#   BACKENDS="memory postgres" scripts/soak.sh
#
# Server backends run against a PRIVATE set of servers (scripts/services.sh with env
# overrides, never the shared ports); destroyed at the end unless KEEP_SERVICES=1.
# Exit 0 iff no backend reported a violation.
set -euo pipefail
cd "$(dirname "$0")/.."

MEM_CYCLES=1000000 SRV_CYCLES=20000
if [ "${1:-}" = --full ]; then SRV_CYCLES=100000
else MEM_CYCLES=${1:-$MEM_CYCLES}; SRV_CYCLES=${2:-$SRV_CYCLES}; fi
BACKENDS=${BACKENDS:-"memory file redis redis-cluster postgres mysql"}
OUT=${OUT:-/tmp/session-soak-out}
mkdir -p "$OUT"

# Its own defaults (not chaos.sh's), so the two scripts can run side by side.
# shellcheck source=lib/private-services.sh
. scripts/lib/private-services.sh
private_services /tmp/session-soaksh-services 15732 13606 16679 "18101 18102 18103"
log() { echo "[soak $(date +%T)] $*" >&2; }

cargo build -q --release -p session-chaos
BIN=target/release/session-chaos

needs_servers=0
for b in $BACKENDS; do case $b in memory|file) ;; *) needs_servers=1 ;; esac; done
if [ $needs_servers = 1 ]; then
  log "starting private servers in $SVC_DIR"
  bash scripts/services.sh start >"$OUT/services.log" 2>&1 || { cat "$OUT/services.log" >&2; exit 1; }
  if [ "${KEEP_SERVICES:-0}" != 1 ]; then
    trap 'bash scripts/services.sh destroy >>"$OUT/services.log" 2>&1 || true' EXIT
  fi
fi
FILE_DIR=$(mktemp -d /tmp/session-soak-file.XXXXXX)
trap_prev=$(trap -p EXIT | sed "s/^trap -- '\(.*\)' EXIT$/\1/")
trap "rm -rf '$FILE_DIR'; $trap_prev" EXIT

url_of() {
  case $1 in
    memory) echo memory ;;
    file) echo "file://$FILE_DIR" ;;
    *) private_url "$1" ;;
  esac
}

FAILED=0
for b in $BACKENDS; do
  cycles=$SRV_CYCLES; [ "$b" = memory ] && cycles=$MEM_CYCLES
  log "=== $b: $cycles cycles"
  rc=0
  "$BIN" soak --backend "$(url_of "$b")" --namespace "soak_${b//-/_}" --cycles "$cycles" \
    >"$OUT/$b.log" 2>&1 || rc=$?
  grep '^window' "$OUT/$b.log" >&2 || true
  tail -n1 "$OUT/$b.log" | python3 -c '
import json,sys
line=sys.stdin.read()
r=json.loads(line.split(" ",1)[1]) if line.startswith("SUMMARY") else None
if r is None: print("  no summary"); sys.exit()
w=r["windows"]
print("  %s: %.1fs, created=%d updated=%d read=%d destroyed=%d abandoned=%d expired_on_visit=%d errors=%s violations=%s" % (
  r["backend"], r["seconds"], r["created"], r["updated"], r["read"], r["destroyed"], r["abandoned"],
  r["expired_on_visit"], r["errors"]["counts"], r["violations"]["counts"]))
print("  rss first/last window: %d/%d KiB (growth %+d KiB); p50 first/last %d/%d us; p99 first/last %d/%d us; final store len %s" % (
  w[0]["rss_kib"], w[-1]["rss_kib"], r["rss_growth_kib"], w[0]["p50_us"], w[-1]["p50_us"], w[0]["p99_us"], w[-1]["p99_us"], r["final_store_len"]))
' >&2
  [ $rc -eq 0 ] || { log "  FAIL (exit $rc)"; FAILED=1; }
done
log "logs in $OUT"
exit $FAILED
