#!/usr/bin/env bash
# Banned functions (style guide 8.8): sprintf strcpy strcat atoi gets strtok, and raw
# malloc/calloc/realloc/strdup outside common/xalloc.c. Exits 1 listing offenders.
set -euo pipefail
cd "$(dirname "$0")/.."
dirs=(common acme attest mdm pki policy config store server tools)
bad=$(grep -nE '\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|gets|strtok)\s*\(' \
        --include='*.c' --include='*.h' -r "${dirs[@]}" 2>/dev/null || true)
raw=$(grep -nE '(^|[^_a-z])(malloc|calloc|realloc|strdup)\s*\(' --include='*.c' -r "${dirs[@]}" 2>/dev/null \
        | grep -v '^common/xalloc.c:' | grep -vE 'OPENSSL_|//|/\*' || true)
if [ -n "$bad$raw" ]; then
  echo "checksrc: banned functions used:" >&2
  [ -n "$bad" ] && echo "$bad" >&2
  [ -n "$raw" ] && echo "$raw" >&2
  exit 1
fi
echo "checksrc: ok"
