# Shared helpers for integration tests: temp dirs, free ports, pebble-challtestsrv,
# and the real attesta binary on an ephemeral port. Source it; set ATTESTA_BIN.
set -euo pipefail

: "${ATTESTA_BIN:?ATTESTA_BIN must point at the attesta binary}"
T=$(mktemp -d /tmp/attesta-it.XXXXXX)
T_TOP=$T   # what cleanup removes, even while a test points T at a second server's subdirectory
PIDS=()

cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    echo "--- test failed (rc=$rc); server log:" >&2
    tail -n 80 "$T/attesta.log" 2>/dev/null >&2 || true
  fi
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$T_TOP"
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "skip: $1 not installed"; exit 77; }; }

# free_port: a TCP+UDP port nobody holds right now on 127.0.0.1.
free_port() {
  /usr/bin/python3 - <<'PY'
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        t.close(); continue
    u.close(); t.close(); print(p); break
PY
}

# start_challtestsrv: DNS (answers 127.0.0.1 for every A query), http-01, tls-alpn-01
# responders and the management API on fresh ports.
start_challtestsrv() {
  need pebble-challtestsrv
  DNS_PORT=$(free_port); CT_HTTP_PORT=$(free_port); CT_TLS_PORT=$(free_port); MGMT_PORT=$(free_port)
  pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
    -dns01 "127.0.0.1:$DNS_PORT" -http01 "127.0.0.1:$CT_HTTP_PORT" \
    -https01 "" -tlsalpn01 "127.0.0.1:$CT_TLS_PORT" \
    -management "127.0.0.1:$MGMT_PORT" >"$T/challtestsrv.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$MGMT_PORT/" && return 0
    sleep 0.1
  done
  fail "pebble-challtestsrv did not start"
}
mgmt() { curl -sf -d "$2" "http://127.0.0.1:$MGMT_PORT/$1" >/dev/null; }

# write_config HTTP01_PORT TLSALPN01_PORT [extra yaml]: a config for a test server.
write_config() {
  mkdir -p -m 0700 "$T/data"
  cat >"$T/config.yaml" <<YAML
server:
  listen: "127.0.0.1:0"
  data_dir: "$T/data"
  workers: 2
storage:
  driver: sqlite
acme:
  challenges:
    resolver: "127.0.0.1:$DNS_PORT"
    http01_port: $1
    tls_alpn01_port: $2
    attempts: 2
    timeout: 5
    retry_delay: 1
${3:-}
YAML
}

# start_attesta: runs `attesta serve -c $T/config.yaml`, waits for its banner,
# sets PORT, BASE (https://127.0.0.1:PORT) and ROOT (the dev root CA file, or $ATTESTA_ROOT).
start_attesta() {
  : >"$T/attesta.out"   # exists before the child opens it, so the poll below never races it
  "$ATTESTA_BIN" serve -c "$T/config.yaml" >"$T/attesta.out" 2>"$T/attesta.log" &
  ATTESTA_PID=$!
  PIDS+=($ATTESTA_PID)
  for _ in $(seq 100); do
    PORT=$(sed -n 's/.*listening on https:\/\/[^:]*:\([0-9]*\).*/\1/p' "$T/attesta.out" | head -n1)
    [ -n "$PORT" ] && break
    kill -0 "$ATTESTA_PID" 2>/dev/null || { cat "$T/attesta.log" >&2; fail "attesta exited at start"; }
    sleep 0.1
  done
  [ -n "${PORT:-}" ] || fail "attesta printed no listening line"
  BASE="https://127.0.0.1:$PORT"
  ROOT="${ATTESTA_ROOT:-$T/data/root.pem}"   # a config without a "default" CA: its first CA
  [ -f "$ROOT" ] || fail "no root CA at $ROOT"
  local first_dir
  first_dir=$(sed -n 's/^directory: //p' "$T/attesta.out" | head -n1)
  curl -sf --cacert "$ROOT" "$first_dir" >/dev/null || fail "directory $first_dir not served"
}

# pg_bin: the directory holding PostgreSQL's initdb and postgres, empty when not installed.
pg_bin() {
  local d b=""
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && b=$d; done
  echo "$b"
}

# start_postgres: a private cluster under $T/pg on a unix socket only (as the postgres user
# when we are root: postgres refuses root); exports ATTESTA_PG_DSN. Exits 77 (skip) when
# root has no postgres user to run it as.
start_postgres() {
  local bin pgdir="$T/pg" run=() port
  bin=$(pg_bin)
  mkdir -p "$pgdir/data" "$pgdir/sock"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "skip: no postgres user to run the server as"; exit 77; }
    chown -R postgres "$pgdir"; chmod 755 "$T"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bin/initdb" -D "$pgdir/data" -A trust -U attesta >"$T/initdb.log" 2>&1 \
    || { cat "$T/initdb.log"; fail "initdb"; }
  port=$(free_port)
  "${run[@]}" "$bin/postgres" -D "$pgdir/data" -k "$pgdir/sock" -p "$port" \
    -c listen_addresses='' -c fsync=on >"$T/postgres.log" 2>&1 &
  PIDS+=($!)
  export ATTESTA_PG_DSN="host=$pgdir/sock port=$port user=attesta dbname=postgres"
  for _ in $(seq 100); do
    [ -S "$pgdir/sock/.s.PGSQL.$port" ] && break
    sleep 0.1
  done
  [ -S "$pgdir/sock/.s.PGSQL.$port" ] || { cat "$T/postgres.log"; fail "postgres did not start"; }
  sleep 0.5
}

# use_postgres: points $T/config.yaml at the cluster start_postgres made.
use_postgres() {
  sed -i 's/^  driver: sqlite$/  driver: postgres\n  dsn_env: ATTESTA_PG_DSN/' "$T/config.yaml"
  grep -q '^  dsn_env: ATTESTA_PG_DSN$' "$T/config.yaml" || fail "storage.driver not switched"
}

stop_attesta() {
  kill -TERM "$ATTESTA_PID"
  wait "$ATTESTA_PID" || fail "attesta exited non-zero after SIGTERM"
}

# check_cert FILE NAME: the certificate chains to ROOT and names NAME.
check_cert() {
  openssl verify -CAfile "$ROOT" -untrusted "$1" "$1" >/dev/null 2>&1 || fail "$1 does not verify against the root"
  openssl x509 -in "$1" -noout -ext subjectAltName | grep -q "$2" || fail "$1 lacks SAN $2"
}
