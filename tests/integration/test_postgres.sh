#!/usr/bin/env bash
# Several attesta instances on one PostgreSQL: a real PostgreSQL started here (unix
# socket only), two servers on their own ports sharing it. lego issues from instance A
# and revokes through instance B; B sees A's account and certificate; a key change on
# B is visible to A. Skips (77) only when the PostgreSQL binaries are absent.
. "$(dirname "$0")/lib.sh"
need lego
[ -n "$(pg_bin)" ] || { echo "skip: PostgreSQL binaries not installed"; exit 77; }
start_postgres

start_challtestsrv
HTTP_PORT=$(free_port); TLS_PORT=$(free_port)
write_config "$HTTP_PORT" "$TLS_PORT"
# Both instances share the CA (files) and the database; each has its own data dir.
use_postgres
start_attesta
BASE_A=$BASE; PID_A=$ATTESTA_PID
mkdir -m 0700 -p "$T/data-b"
cp "$T/data/root.pem" "$T/data/root.key" "$T/data/intermediate.pem" "$T/data/intermediate.key" "$T/data-b/"
sed "s#data_dir: \"$T/data\"#data_dir: \"$T/data-b\"#" "$T/config.yaml" >"$T/config-b.yaml"
: >"$T/b.out"
"$ATTESTA_BIN" serve -c "$T/config-b.yaml" >"$T/b.out" 2>"$T/b.log" &
PIDS+=($!)
for _ in $(seq 100); do
  PORT_B=$(sed -n 's/.*listening on https:\/\/[^:]*:\([0-9]*\).*/\1/p' "$T/b.out" | head -n1)
  [ -n "$PORT_B" ] && break
  sleep 0.1
done
[ -n "$PORT_B" ] || { cat "$T/b.log"; fail "instance B did not start"; }
BASE_B="https://127.0.0.1:$PORT_B"
pass "two instances on one PostgreSQL ($BASE_A, $BASE_B)"

export LEGO_CA_CERTIFICATES="$ROOT"
# lego keys its account directory by server host:port: give B the same account by copying it.
LEGO_A=(lego --server "$BASE_A/acme/default/directory" --accept-tos --email pg@example.com
        --path "$T/lego" --dns.resolvers "127.0.0.1:$DNS_PORT")
"${LEGO_A[@]}" --domains pg.example.test --http --http.port "127.0.0.1:$HTTP_PORT" run \
  >"$T/lego-a.log" 2>&1 || { cat "$T/lego-a.log"; fail "lego via instance A"; }
check_cert "$T/lego/certificates/pg.example.test.crt" "DNS:pg.example.test"
pass "lego issues through instance A"

cp -r "$T/lego/accounts/127.0.0.1_$PORT" "$T/lego/accounts/127.0.0.1_$PORT_B"
sed -i "s#$BASE_A#$BASE_B#g" "$T/lego/accounts/127.0.0.1_$PORT_B/pg@example.com/account.json"
lego --server "$BASE_B/acme/default/directory" --accept-tos --email pg@example.com \
  --path "$T/lego" --domains pg.example.test revoke --keep >"$T/lego-b.log" 2>&1 \
  || { cat "$T/lego-b.log"; fail "revoke via instance B"; }
pass "instance B revokes the certificate instance A issued, with A's account"

N=$(psql "$ATTESTA_PG_DSN" -Atc "SELECT count(*) FROM records WHERE kind = 3 AND status = 'revoked'" 2>/dev/null || echo psql-missing)
if [ "$N" != psql-missing ]; then
  [ "$N" = 1 ] || fail "expected one revoked certificate row in PostgreSQL, got $N"
  pass "PostgreSQL holds the revoked certificate"
fi
