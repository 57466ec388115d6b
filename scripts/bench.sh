#!/usr/bin/env bash
# Builds attesta and attesta-bench in a fresh build directory and runs every benchmark:
# pebble vs attesta (nonce, directory, http01), simulated Apple device flows against the
# crypto-bound limit, and server memory with 10,000 idle accounts. Only 127.0.0.1 is used.
# Usage: scripts/bench.sh [BUILD_DIR] [extra attesta-bench options, e.g. --duration 10]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-bench}
shift || true
# RelWithDebInfo: the build every published figure came from, and the one CI compiles
# with -Werror, so this command cannot break on a warning CI never saw.
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target attesta attesta-bench
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
exec "$build/tools/attesta-bench" all --attesta "$build/server/attesta" "$@"
