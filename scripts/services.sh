#!/usr/bin/env bash
# The servers the session stores are tested against: PostgreSQL 15, MariaDB 10.11 and
# Redis 7 (standalone, a 3-master cluster, and a TLS-only standalone server), on
# 127.0.0.1 only, without systemd or Docker. PostgreSQL and MariaDB accept TLS too (and
# plain connections); every TLS server presents a certificate for 127.0.0.1 from a
# throwaway CA. Debian 12 (bookworm); installs the packages with apt-get when missing.
#
#   services.sh start    # install if missing, init if needed, start (idempotent), print URLs
#   services.sh stop     # stop everything this script started (by PID from pidfiles)
#   services.sh status   # show what is running
#   services.sh env      # print the SESSION_TEST_* export lines (eval "$(services.sh env)")
#   services.sh destroy  # stop + delete all data
#   services.sh restart postgres|mysql|redis   # stop one server (fast shutdown), start it
#                        # again on the same data: the tests' real-restart fault
#
# Env overrides: SVC_DIR (default /tmp/session-services), PG_PORT (15432),
# MYSQL_PORT (13306), REDIS_PORT (16379), REDIS_CLUSTER_PORTS ("17001 17002 17003";
# the cluster bus of each node listens on port+10000), REDIS_CLUSTER=0 to skip it,
# REDIS_TLS_PORT (16380), REDIS_TLS=0 to skip the TLS Redis. The CA certificate (made
# with openssl on the first start, kept with the data) is $SVC_DIR/tls/ca.crt.
#
# The default ports, and the cluster bus ports, lie below Linux's ephemeral range
# (net.ipv4.ip_local_port_range, 32768-60999 by default): a port inside it can be taken
# as the source port of any outgoing connection on the machine while a server is down,
# and the (re)start then fails with "Address already in use". start warns about ports
# inside the range.
set -euo pipefail

SVC_DIR=${SVC_DIR:-/tmp/session-services}
PG_PORT=${PG_PORT:-15432}
MYSQL_PORT=${MYSQL_PORT:-13306}
REDIS_PORT=${REDIS_PORT:-16379}
REDIS_CLUSTER=${REDIS_CLUSTER:-1}
REDIS_CLUSTER_PORTS=${REDIS_CLUSTER_PORTS:-"17001 17002 17003"}
REDIS_TLS=${REDIS_TLS:-1}
REDIS_TLS_PORT=${REDIS_TLS_PORT:-16380}
DB_USER=sess DB_PASS=sess DB_NAME=sess
PG_BIN=/usr/lib/postgresql/15/bin

log() { echo "[services] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# run a command as a service user when we are root (postgres refuses to run as root)
as_user() { local u=$1; shift; if [ "$(id -u)" -eq 0 ]; then runuser -u "$u" -- "$@"; else "$@"; fi; }

# wait_for SECONDS DESC CMD... : poll CMD every 0.1s
wait_for() {
  local secs=$1 desc=$2; shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "timed out after ${secs}s waiting for $desc"
}

# pid_alive PIDFILE COMM : true if pidfile names a live process whose comm is COMM
pid_alive() {
  local f=$1 comm=$2 pid
  [ -s "$f" ] || return 1
  pid=$(head -n1 "$f" | tr -d ' ')
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$comm" ]
}

# signal_pidfile PIDFILE COMM SIGNAL : signal the pid if it is ours; remember it in STOPPING
STOPPING=()
signal_pidfile() {
  local f=$1 comm=$2 sig=$3 pid
  pid_alive "$f" "$comm" || return 0
  pid=$(head -n1 "$f" | tr -d ' ')
  log "stopping $comm (pid $pid, SIG$sig)"
  kill "-$sig" "$pid" 2>/dev/null || true
  STOPPING+=("$pid")
}

# wait (in parallel) up to 30s for all signalled pids, then SIGKILL stragglers
wait_stopped() {
  local i pid alive
  for ((i = 0; i < 300; i++)); do
    alive=0
    for pid in "${STOPPING[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && return 0
    sleep 0.1
  done
  for pid in "${STOPPING[@]}"; do kill -0 "$pid" 2>/dev/null && { log "pid $pid still alive; SIGKILL"; kill -KILL "$pid" || true; }; done
  return 0
}

# warn_if_ephemeral PORT DESC : a listening port inside the ephemeral range can be
# taken by an outgoing connection's source port while its server is down.
warn_if_ephemeral() {
  local lo hi
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || return 0
  if [ "$1" -ge "$lo" ] && [ "$1" -le "$hi" ]; then
    log "warning: port $1 ($2) is inside the ephemeral range $lo-$hi; a restart may fail with 'Address already in use'"
  fi
  return 0
}

install_pkgs() {
  local need=()
  [ -x "$PG_BIN/postgres" ] || need+=(postgresql-15 postgresql-client-15)
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v redis-cli >/dev/null || need+=(redis-tools)
  command -v openssl >/dev/null || need+=(openssl)
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
  command -v mariadb >/dev/null || need+=(mariadb-client)
  [ ${#need[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages (${need[*]}) and not root"
  log "installing: ${need[*]}"
  # keep the packages' init scripts from auto-starting daemons on the default ports
  local policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy_added=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ $policy_added -eq 1 ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

prepare_dirs() {
  mkdir -p "$SVC_DIR"/{pg,mysql,redis}
  chmod 755 "$SVC_DIR"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$SVC_DIR/pg"
    chown mysql:mysql "$SVC_DIR/mysql"
  fi
}

start_pg() {
  local d=$SVC_DIR/pg
  if [ ! -s "$d/data/PG_VERSION" ]; then
    log "initdb $d/data"
    rm -rf "$d/data"
    as_user postgres bash -c "umask 077; echo postgres >'$d/pwfile'"
    as_user postgres "$PG_BIN/initdb" -D "$d/data" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth=scram-sha-256 --pwfile="$d/pwfile" >"$d/initdb.log" 2>&1 || { cat "$d/initdb.log" >&2; die "initdb failed"; }
  fi
  if ! pid_alive "$d/data/postmaster.pid" postgres; then
    log "starting postgres on 127.0.0.1:$PG_PORT"
    install_server_cert "$d" postgres
    as_user postgres "$PG_BIN/pg_ctl" -D "$d/data" -l "$d/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $d -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c ssl=on -c ssl_cert_file=$d/server.crt -c ssl_key_file=$d/server.key" \
      start >/dev/null || { tail -n 20 "$d/postgres.log" >&2; die "postgres failed to start"; }
  fi
  # idempotent role/db creation
  local psql=(env PGPASSWORD=postgres psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
  "${psql[@]}" -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='$DB_USER') THEN CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASS'; END IF; END\$\$;"
  if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'")" != 1 ]; then
    "${psql[@]}" -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
  fi
}

start_mysql() {
  local d=$SVC_DIR/mysql sock=$SVC_DIR/mysql/mysqld.sock
  if [ ! -d "$d/data/mysql" ]; then
    log "mariadb-install-db $d/data"
    rm -rf "$d/data"
    local u=(); [ "$(id -u)" -eq 0 ] && u=(--user=mysql)
    mariadb-install-db --no-defaults "${u[@]}" --datadir="$d/data" \
      --auth-root-authentication-method=normal --skip-test-db >"$d/install.log" 2>&1 \
      || { cat "$d/install.log" >&2; die "mariadb-install-db failed"; }
  fi
  if ! pid_alive "$d/mysqld.pid" mariadbd; then
    log "starting mariadbd on 127.0.0.1:$MYSQL_PORT"
    local u=(); [ "$(id -u)" -eq 0 ] && u=(--user=mysql)   # mariadbd drops privileges itself
    install_server_cert "$d" mysql
    setsid /usr/sbin/mariadbd --no-defaults "${u[@]}" --datadir="$d/data" \
      --ssl-cert="$d/server.crt" --ssl-key="$d/server.key" \
      --bind-address=127.0.0.1 --port="$MYSQL_PORT" --socket="$sock" --pid-file="$d/mysqld.pid" \
      --log-error="$d/error.log" --skip-log-bin --skip-name-resolve --max-connections=500 \
      --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --character-set-server=utf8mb4 \
      </dev/null >/dev/null 2>&1 &
    wait_for 60 "mariadbd" mariadb-admin --no-defaults -S "$sock" -uroot ping
  fi
  mariadb --no-defaults -S "$sock" -uroot -e "
    CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`;
    CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON *.* TO '$DB_USER'@'127.0.0.1';
    GRANT ALL ON *.* TO '$DB_USER'@'localhost';"
}

start_redis_one() { # PORT DIR [extra args...]
  local port=$1 d=$2; shift 2
  mkdir -p "$d"
  pid_alive "$d/redis.pid" redis-server && return 0
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$d" \
    --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" "$@"
  wait_for 10 "redis on $port" bash -c "redis-cli -h 127.0.0.1 -p $port ping | grep -q PONG"
}

start_redis() {
  log "redis on 127.0.0.1:$REDIS_PORT"
  start_redis_one "$REDIS_PORT" "$SVC_DIR/redis/standalone"
  [ "$REDIS_CLUSTER" = 1 ] || return 0
  local p nodes=()
  for p in $REDIS_CLUSTER_PORTS; do
    [ "$p" -le 55535 ] || die "cluster port $p > 55535 (bus port = port+10000)"
    warn_if_ephemeral "$((p + 10000))" "cluster bus of $p"
    start_redis_one "$p" "$SVC_DIR/redis/cluster-$p" --cluster-enabled yes \
      --cluster-config-file "$SVC_DIR/redis/cluster-$p/nodes.conf" --cluster-node-timeout 2000
    nodes+=("127.0.0.1:$p")
  done
  local first=${REDIS_CLUSTER_PORTS%% *}
  if redis-cli -p "$first" cluster info | grep -q '^cluster_slots_assigned:0'; then
    log "creating redis cluster ${nodes[*]}"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$SVC_DIR/redis/cluster-create.log" 2>&1 \
      || { cat "$SVC_DIR/redis/cluster-create.log" >&2; die "cluster create failed"; }
  fi
  wait_for 30 "redis cluster_state:ok" bash -c "redis-cli -p $first cluster info | grep -q '^cluster_state:ok'"
}

# A throwaway CA and a certificate for 127.0.0.1 signed by it, made once per SVC_DIR:
# the TLS servers' identity, which a client can verify only with this ca.crt.
make_tls_certs() {
  local d=$SVC_DIR/tls
  [ -s "$d/ca.crt" ] && [ -s "$d/server.crt" ] && [ -s "$d/server.key" ] && return 0
  log "making a test CA and a server certificate in $d"
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=session-services test CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
}

# install_server_cert DIR OWNER : a copy of the server certificate and key in DIR that
# only OWNER (the server's user) can read, as PostgreSQL and MariaDB demand.
install_server_cert() {
  local o=(); [ "$(id -u)" -eq 0 ] && o=(-o "$2" -g "$2")
  install "${o[@]}" -m 600 "$SVC_DIR/tls/server.crt" "$1/server.crt"
  install "${o[@]}" -m 600 "$SVC_DIR/tls/server.key" "$1/server.key"
}

start_redis_tls() {
  [ "$REDIS_TLS" = 1 ] || return 0
  local d=$SVC_DIR/redis/tls c=$SVC_DIR/tls
  mkdir -p "$d"
  log "redis (TLS only) on 127.0.0.1:$REDIS_TLS_PORT"
  pid_alive "$d/redis.pid" redis-server && return 0
  redis-server --bind 127.0.0.1 --port 0 --tls-port "$REDIS_TLS_PORT" \
    --tls-cert-file "$c/server.crt" --tls-key-file "$c/server.key" \
    --tls-ca-cert-file "$c/ca.crt" --tls-auth-clients no \
    --save '' --appendonly no --dir "$d" \
    --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log"
  wait_for 10 "redis (TLS) on $REDIS_TLS_PORT" bash -c \
    "redis-cli --tls --cacert '$c/ca.crt' -h 127.0.0.1 -p $REDIS_TLS_PORT ping | grep -q PONG"
}

print_env() {
  local nodes="" p
  for p in $REDIS_CLUSTER_PORTS; do nodes+="${nodes:+,}redis://127.0.0.1:$p"; done
  echo "export SESSION_TEST_POSTGRES_URL=postgres://$DB_USER:$DB_PASS@127.0.0.1:$PG_PORT/$DB_NAME"
  echo "export SESSION_TEST_MYSQL_URL=mysql://$DB_USER:$DB_PASS@127.0.0.1:$MYSQL_PORT/$DB_NAME"
  echo "export SESSION_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
  [ "$REDIS_CLUSTER" = 1 ] && echo "export SESSION_TEST_REDIS_CLUSTER_URLS=$nodes"
  if [ "$REDIS_TLS" = 1 ]; then
    echo "export SESSION_TEST_REDIS_TLS_URL=rediss://127.0.0.1:$REDIS_TLS_PORT/0"
  fi
  echo "export SESSION_TEST_TLS_CA=$SVC_DIR/tls/ca.crt"
  return 0
}

stop_all() {
  local p
  signal_pidfile "$SVC_DIR/pg/data/postmaster.pid" postgres INT   # SIGINT = fast shutdown
  signal_pidfile "$SVC_DIR/mysql/mysqld.pid" mariadbd TERM
  signal_pidfile "$SVC_DIR/redis/standalone/redis.pid" redis-server TERM
  signal_pidfile "$SVC_DIR/redis/tls/redis.pid" redis-server TERM
  for p in $REDIS_CLUSTER_PORTS; do
    signal_pidfile "$SVC_DIR/redis/cluster-$p/redis.pid" redis-server TERM
  done
  [ ${#STOPPING[@]} -eq 0 ] || wait_stopped
}

# restart_one NAME : stop one server by PID and start it again on the same data
restart_one() {
  case $1 in
    postgres) signal_pidfile "$SVC_DIR/pg/data/postmaster.pid" postgres INT ;;
    mysql) signal_pidfile "$SVC_DIR/mysql/mysqld.pid" mariadbd TERM ;;
    redis) signal_pidfile "$SVC_DIR/redis/standalone/redis.pid" redis-server TERM ;;
    *) die "restart: expected postgres, mysql or redis, got '${1:-}'" ;;
  esac
  [ ${#STOPPING[@]} -eq 0 ] || wait_stopped
  case $1 in
    postgres) start_pg ;;
    mysql) start_mysql ;;
    redis) start_redis_one "$REDIS_PORT" "$SVC_DIR/redis/standalone" ;;
  esac
  log "restarted $1"
}

status() {
  local f
  for f in pg/data/postmaster.pid:postgres mysql/mysqld.pid:mariadbd redis/standalone/redis.pid:redis-server \
           redis/tls/redis.pid:redis-server \
           $(for p in $REDIS_CLUSTER_PORTS; do echo "redis/cluster-$p/redis.pid:redis-server"; done); do
    if pid_alive "$SVC_DIR/${f%%:*}" "${f##*:}"; then echo "up   ${f##*:} pid $(head -n1 "$SVC_DIR/${f%%:*}") ($f)"
    else echo "down ${f##*:} ($f)"; fi
  done
}

case "${1:-start}" in
  start)
    install_pkgs
    prepare_dirs
    warn_if_ephemeral "$PG_PORT" postgres; warn_if_ephemeral "$MYSQL_PORT" mariadb
    warn_if_ephemeral "$REDIS_PORT" redis
    [ "$REDIS_TLS" = 1 ] && warn_if_ephemeral "$REDIS_TLS_PORT" "redis (TLS)"
    make_tls_certs
    start_pg
    start_mysql
    start_redis
    start_redis_tls
    print_env >"$SVC_DIR/env.sh"
    cat "$SVC_DIR/env.sh" >&2
    log "ready; stop with: $0 stop   (data in $SVC_DIR)"
    ;;
  stop) stop_all ;;
  status) status ;;
  env) print_env ;;
  destroy) stop_all; rm -rf "$SVC_DIR" ;;
  restart) restart_one "${2:-}" ;;
  *) die "usage: $0 start|stop|status|env|destroy|restart postgres|mysql|redis" ;;
esac
