#!/usr/bin/env bash
# attesta-bench smoke test: a two-second nonce comparison against pebble and attesta
# (started by the bench itself, one after the other, on 127.0.0.1) must print both rows
# and the attesta/pebble ratio line.
set -euo pipefail
: "${ATTESTA_BIN:?ATTESTA_BIN must point at the attesta binary}"
: "${BENCH_BIN:?BENCH_BIN must point at attesta-bench}"
command -v pebble >/dev/null 2>&1 || { echo "skip: pebble not installed"; exit 77; }

out=$(mktemp /tmp/attesta-bench-test.XXXXXX)
trap 'rm -f "$out"' EXIT
"$BENCH_BIN" compare --workload nonce --duration 2 --clients 2 --attesta "$ATTESTA_BIN" \
  >"$out" 2>&1 || { cat "$out"; echo "FAIL: attesta-bench exited non-zero" >&2; exit 1; }
grep -Eq '^pebble +nonce ' "$out" || { cat "$out"; echo "FAIL: no pebble row" >&2; exit 1; }
grep -Eq '^attesta +nonce ' "$out" || { cat "$out"; echo "FAIL: no attesta row" >&2; exit 1; }
grep -Eq '^ratio attesta/pebble \(nonce\): throughput [0-9.]+x' "$out" \
  || { cat "$out"; echo "FAIL: no ratio line" >&2; exit 1; }
grep -E '^(pebble|attesta|ratio)' "$out"
echo "ok - attesta-bench compare prints the ratio"
