#!/usr/bin/env bash
# README command 1: install what is missing, build, and start `attesta serve` on its
# embedded defaults (./attesta-data, SQLite, generated dev root + intermediate,
# HTTPS on localhost:8443). Extra arguments go to `attesta serve` (e.g. -c FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DATTESTA_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"
exec build/server/attesta serve "$@"
