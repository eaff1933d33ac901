# Sourced by scripts/chaos.sh, soak.sh and crash.sh: each runs its own PRIVATE set of
# servers (scripts/services.sh with env overrides), never the shared one that the tests
# use (scripts/services.sh's defaults).

# private_services SVC_DIR PG_PORT MYSQL_PORT REDIS_PORT "CLUSTER PORTS"
# Exports the set (values already in the environment win), refuses the shared set's
# ports and directory, and takes the set's lock: a second run against the same set
# waits here instead of restarting or destroying servers under the first.
private_services() {
  export SVC_DIR=${SVC_DIR:-$1}
  export PG_PORT=${PG_PORT:-$2} MYSQL_PORT=${MYSQL_PORT:-$3} REDIS_PORT=${REDIS_PORT:-$4}
  export REDIS_CLUSTER_PORTS=${REDIS_CLUSTER_PORTS:-$5}
  # The private sets exercise faults on plain connections; no TLS server.
  export REDIS_TLS=${REDIS_TLS:-0}
  local p
  for p in $PG_PORT $MYSQL_PORT $REDIS_PORT $REDIS_CLUSTER_PORTS; do
    case $p in 15432|13306|16379|17001|17002|17003) echo "refusing shared port $p" >&2; exit 2 ;; esac
  done
  [ "$SVC_DIR" != /tmp/session-services ] || { echo "refusing the shared SVC_DIR" >&2; exit 2; }
  mkdir -p "$(dirname "$SVC_DIR")"
  exec 9>"$SVC_DIR.lock"
  flock -w 900 9 || { echo "another run holds $SVC_DIR.lock" >&2; exit 2; }
}

# private_url BACKEND: the session-chaos --backend URL of the private set's server
# (redis, redis-cluster, postgres, mysql).
private_url() {
  local nodes; nodes=$(for p in $REDIS_CLUSTER_PORTS; do printf '127.0.0.1:%s,' "$p"; done)
  case $1 in
    redis) echo "redis://127.0.0.1:$REDIS_PORT/0" ;;
    redis-cluster) echo "redis-cluster://${nodes%,}" ;;
    postgres) echo "postgres://sess:sess@127.0.0.1:$PG_PORT/sess" ;;
    mysql) echo "mysql://sess:sess@127.0.0.1:$MYSQL_PORT/sess" ;;
  esac
}
