#!/usr/bin/env bash
# Builds the libFuzzer drivers of tests/fuzz with clang and runs each for SECONDS
# (default 30) on a scratch copy of its seed corpus, so the committed corpus only grows
# when someone copies a finding in on purpose. Fails if any driver crashes, leaks, hits
# UB or times out. One summary line per target.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      e.g. scripts/fuzz.sh 120 jws csr
# Environment: ATTESTA_FUZZ_BUILD (build dir, default build-fuzz), FUZZ_JOBS (make -j, 2).
# Crash inputs are kept in $ATTESTA_FUZZ_BUILD/fuzz-artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
shift || true
build=${ATTESTA_FUZZ_BUILD:-build-fuzz}
jobs=${FUZZ_JOBS:-2}

if ! command -v clang >/dev/null; then
  echo "fuzz: clang not installed" >&2
  exit 1
fi
# Warnings are the clang -Werror step's business (scripts/test.sh); here they must not
# stop the fuzzers from running.
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTESTA_FUZZ=ON \
  -DATTESTA_TESTS=OFF -DATTESTA_WERROR=OFF >/dev/null

# Drivers whose library is not built yet are skipped by tests/fuzz/CMakeLists.txt.
all=(json jws attobj csr config template mdm_eval mdm_template)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
have=$(cmake --build "$build" --target help | grep -oE '\bfuzz_[a-z_]+' | sort -u)
built=()
for t in "${targets[@]}"; do
  if grep -qx "fuzz_$t" <<<"$have"; then
    built+=("fuzz_$t")
  else
    echo "fuzz: $t skipped (not configured; see cmake output)"
  fi
done
[ ${#built[@]} -eq 0 ] && { echo "fuzz: nothing to run" >&2; exit 1; }
cmake --build "$build" -j"$jobs" --target "${built[@]}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for bin in "${built[@]}"; do
  t=${bin#fuzz_}
  seeds=tests/fuzz/corpus/$t
  art=$build/fuzz-artifacts/$t
  mkdir -p "$work/$t" "$art"
  [ -d "$seeds" ] && cp -R "$seeds/." "$work/$t/"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
  log=$build/fuzz-$t.log
  rc=0
  "$build/tests/fuzz/$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$art/" "${dict[@]}" \
    "$work/$t" >"$log" 2>&1 || rc=$?
  runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
  if [ "$rc" -eq 0 ]; then
    printf 'fuzz: %-12s ok     %8s runs  cov %5s  %ss\n' "$t" "$runs" "$cov" "$secs"
  else
    status=1
    printf 'fuzz: %-12s FAILED (exit %s) after %s runs; log %s, input in %s\n' \
      "$t" "$rc" "$runs" "$log" "$art"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -3 | sed 's/^/      /'
  fi
done
exit $status
