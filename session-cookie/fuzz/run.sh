#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 s each):
#   session-cookie/fuzz/run.sh [SECONDS] [TARGET...]
# Targets: cookie_open (cookie decoding), record_open (encrypted records at rest),
# envelope_decode (session-core's envelope). Needs the nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz --locked`); exits non-zero on the first
# crash, leaving the input under fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(cookie_open record_open envelope_decode)
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    exit 2
fi
for t in "${targets[@]}"; do
    echo "fuzz: $t for ${secs}s"
    mkdir -p "corpus/$t"
    cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=9000
done
echo "fuzz: ${#targets[@]} targets ran ${secs}s each without a crash"
