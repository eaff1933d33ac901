#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and reports executions
# and findings per target:
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s each, every target)
#
# Installs cargo-fuzz if it is missing. Works on a stable toolchain: libFuzzer's
# sanitizer flags are nightly-only, so the build runs with RUSTC_BOOTSTRAP=1 (set
# FUZZ_TOOLCHAIN=nightly to use a real nightly instead). Each target's corpus
# lives in fuzz/corpus/TARGET (kept between runs), its log in fuzz/logs/TARGET.log,
# and a crashing input in fuzz/artifacts/TARGET/. Exits 1 if any target found a
# crash, after running all of them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

secs="${1:-60}"
shift || true
case "$secs" in
    '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$secs'" >&2; exit 2 ;;
esac

if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    cargo_fuzz=(cargo "+$FUZZ_TOOLCHAIN" fuzz)
else
    export RUSTC_BOOTSTRAP=1
    cargo_fuzz=(cargo fuzz)
fi
if ! "${cargo_fuzz[@]}" --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("${cargo_fuzz[@]}" list)
fi

# Seeds that start the fuzzer at valid inputs (it finds them alone, but slowly).
mkdir -p corpus/token_parse corpus/file_record
printf '%s' 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8' > corpus/token_parse/seed-valid
# file_record: flags 0x47 (repair magic, length, checksums; live deadline), a
# touch one hour ahead, an all-zero header and a payload.
{ printf '\x47\x10\x0e\x00\x00'; head -c 80 /dev/zero; printf 'payload'; } \
    > corpus/file_record/seed-live

echo "fuzz.sh: building ${#targets[@]} targets"
"${cargo_fuzz[@]}" build

mkdir -p logs
failed=()
printf '\n%-16s %12s %8s %s\n' target executions seconds findings > logs/summary.txt
for t in "${targets[@]}"; do
    echo "fuzz.sh: $t for ${secs}s"
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | sort)
    status=0
    "${cargo_fuzz[@]}" run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=9000 -print_final_stats=1 \
        >"logs/$t.log" 2>&1 || status=$?
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "logs/$t.log" | grep -oE '[0-9]+$' | tail -1 || true)
    [ -n "$runs" ] || runs=$(grep -oE 'Done [0-9]+ runs' "logs/$t.log" | grep -oE '[0-9]+' | tail -1 || true)
    took=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "logs/$t.log" | grep -oE '[0-9]+ second' | grep -oE '[0-9]+' || true)
    new=$(comm -13 <(printf '%s\n' "$before") <(find "artifacts/$t" -type f | sort) | tr '\n' ' ')
    if [ "$status" -ne 0 ] || [ -n "$new" ]; then
        found="CRASH (exit $status): ${new:-see logs/$t.log}"
        grep -m3 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "logs/$t.log" | sed 's/^/    /' || true
        failed+=("$t")
    else
        found="none"
    fi
    printf '%-16s %12s %8s %s\n' "$t" "${runs:-?}" "${took:-$secs}" "$found" | tee -a logs/summary.txt
done
cat logs/summary.txt
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz.sh: crashes in: ${failed[*]} (inputs under fuzz/artifacts/, logs under fuzz/logs/)" >&2
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets ran ${secs}s each without a finding"
