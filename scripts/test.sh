#!/usr/bin/env bash
# Every check and test of the workspace, as CI runs it:
#   1. start the test servers (PostgreSQL, MariaDB, Redis + cluster + a TLS-only
#      Redis) on 127.0.0.1,
#      installing them with apt-get on a fresh machine (scripts/services.sh), and
#      install headless Chromium for the demo's browser test;
#   2. rustfmt and clippy (warnings are errors);
#   3. build the opt-in testcontainers path and clippy the TLS features; check that
#      every library crate builds on its own (a user depends on one crate, where no
#      sibling's dependency features are unified in);
#   4. every test of every crate but the benchmarks (cargo nextest when installed,
#      then the doctests; `scripts/bench.sh` runs the benchmarks),
#      with every server backend required: a missing server fails, it never skips;
#      then the stores with their rustls features against the servers' TLS ports
#      (Redis TLS-only; PostgreSQL and MariaDB accept both), certificates verified,
#      and the SQL stores once more with native-tls (OpenSSL; libssl-dev and
#      pkg-config are installed with apt-get when missing);
#   5. the SQL fault tests again with a real server restart (scripts/services.sh
#      restart) instead of killed connections, alone, since a restart would disturb
#      the other tests;
#   6. the conformance CLI (the project's main command) over every backend;
#   7. what publishing needs: the docs build without warnings (every README is its
#      crate's documentation), each published crate's public API matches its listing
#      in api/ (`cargo xtask public-api --bless` regenerates them), its package holds
#      both license texts, the code builds with the declared rust-version (1.94) when
#      rustup can install it, and `cargo package --workspace` builds every crate
#      from its packaged form.
set -euo pipefail
cd "$(dirname "$0")/.."
# A test run builds most of the workspace once; incremental state would add ~3 GB to
# target/ for little gain (a caller may still set CARGO_INCREMENTAL=1).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

bash scripts/services.sh start
eval "$(bash scripts/services.sh env)"
bash scripts/install-browser.sh
# The SQL stores' tls-native-tls feature builds openssl-sys against the system OpenSSL.
source scripts/apt-install.sh
pkg-config --exists openssl 2>/dev/null || apt_install --no-install-recommends libssl-dev pkg-config
export SESSION_TEST_REQUIRE=${SESSION_TEST_REQUIRE:-redis,redis-cluster,redis-tls,postgres,postgres-tls,mysql,mysql-tls,browser}

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== containers feature (build only: no Docker engine here)"
cargo check -p conformance-tests --features containers --locked
echo "== clippy with the TLS features"
cargo clippy --locked --all-targets -p session-redis -p session-sql-common -p session-postgres -p session-mysql \
  -p conformance-tests --features session-redis/tls,session-sql-common/tls-rustls,conformance-tests/servers,conformance-tests/tls \
  -- -D warnings
cargo clippy --locked --all-targets -p session-sql-common -p conformance-tests \
  --features session-sql-common/tls-native-tls,conformance-tests/servers,conformance-tests/tls-native-tls -- -D warnings

echo "== every library crate on its own"
for manifest in session-*/Cargo.toml conformance-tests/Cargo.toml examples/*/Cargo.toml; do
  [ -f "$(dirname "$manifest")/src/lib.rs" ] || continue
  crate=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$manifest" | head -n1)
  echo "   $crate"
  cargo check -q --locked -p "$crate" --lib
done

echo "== tests"
TLS_TESTS=(-p session-redis -p session-sql-common -p conformance-tests --lib --test tls --test sql_tls
  --features session-redis/tls,session-sql-common/tls-rustls,conformance-tests/servers,conformance-tests/tls)
NATIVE_TLS_TESTS=(-p session-sql-common -p conformance-tests --lib --test sql_native_tls
  --features session-sql-common/tls-native-tls,conformance-tests/servers,conformance-tests/tls-native-tls)
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --exclude session-bench --locked --no-fail-fast
  cargo test --workspace --exclude session-bench --doc --locked
  cargo nextest run "${TLS_TESTS[@]}" --locked --no-fail-fast
  cargo nextest run "${NATIVE_TLS_TESTS[@]}" --locked --no-fail-fast
else
  cargo test --workspace --exclude session-bench --locked --no-fail-fast
  cargo test "${TLS_TESTS[@]}" --locked --no-fail-fast
  cargo test "${NATIVE_TLS_TESTS[@]}" --locked --no-fail-fast
fi

# session-redis's README shows its TLS configuration in a doctest compiled only with `tls`.
cargo test -p session-redis --features tls --doc --locked

echo "== SQL fault tests with a real restart of PostgreSQL and MariaDB"
export SESSION_TEST_POSTGRES_RESTART_CMD="bash $PWD/scripts/services.sh restart postgres"
export SESSION_TEST_MYSQL_RESTART_CMD="bash $PWD/scripts/services.sh restart mysql"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run -p session-postgres -p session-mysql --locked --no-capture \
    connection_loss_gives_retryable_errors_then_recovers
else
  cargo test -p session-postgres -p session-mysql --locked \
    connection_loss_gives_retryable_errors_then_recovers -- --nocapture
fi
unset SESSION_TEST_POSTGRES_RESTART_CMD SESSION_TEST_MYSQL_RESTART_CMD

echo "== conformance CLI over every backend, thorough (8 MiB rungs, sweeps of thousands)"
# The test runs above use the default depth; this is where every rung of the
# conformance ladders is climbed, on every backend (under 2 minutes here).
cargo run -q -p conformance-tests --features servers --locked -- --thorough \
  --backend memory --backend file --backend redis --backend redis-cluster \
  --backend postgres --backend mysql

echo "== docs (every README is its crate's documentation; its examples ran as doctests above)"
# --all-features: both SQL TLS stacks build together (sqlx then uses native-tls).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked

echo "== public API of the published crates against api/"
cargo xtask public-api

echo "== license texts in every published crate's package"
for manifest in session-*/Cargo.toml conformance-tests/Cargo.toml; do
  grep -q '^publish = false' "$manifest" && continue
  dir=$(dirname "$manifest")
  listed=$(cargo package --list --locked --allow-dirty -p "$dir")
  for license in LICENSE-MIT LICENSE-APACHE; do
    cmp -s "$license" "$dir/$license" || { echo "$dir/$license differs from the root's $license" >&2; exit 1; }
    grep -qx "$license" <<<"$listed" || { echo "$dir: $license is not in the package" >&2; exit 1; }
  done
done

echo "== rust-version 1.94"
# Clippy's incompatible_msrv lint (in the clippy runs above) already refuses std APIs
# newer than the declared rust-version. When rustup can install 1.94, the library and
# binary targets are also checked with it (its own target directory: another
# compiler shares no artifacts).
if rustup toolchain install 1.94 --profile minimal >/dev/null 2>&1; then
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/msrv" cargo +1.94 check --workspace --lib --bins --locked
else
  echo "   rustup could not install 1.94: only clippy's incompatible_msrv lint checked it"
fi

echo "== packaging: every crate built from its packaged form"
cargo package --workspace --locked --allow-dirty
