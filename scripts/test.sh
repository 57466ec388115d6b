#!/usr/bin/env bash
# README command 2 (and .ci/run): install what is missing, build twice (release with
# -Werror, and ASan+UBSan), run every test (unit + integration) on both builds.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/checksrc.sh

jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTESTA_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DATTESTA_WERROR=ON -DATTESTA_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
# clang sees warnings gcc does not (e.g. -Wstring-concatenation); -Werror fails CI on any.
echo "== clang -Werror build"
CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTESTA_WERROR=ON \
  -DATTESTA_TESTS=ON >/dev/null
cmake --build build-clang -j"$jobs"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
echo "== release build: all tests"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 600) || status=1
echo "== ASan+UBSan build: all tests"
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 900) || status=1
# libFuzzer drivers, 30 s each on a scratch copy of tests/fuzz/corpus (about 4 minutes).
echo "== fuzz (${ATTESTA_FUZZ_SECONDS:-30} s per target)"
scripts/fuzz.sh "${ATTESTA_FUZZ_SECONDS:-30}" || status=1
exit $status
