#!/usr/bin/env bash
# SCIM conformance: scim2-tester (an implementation nobody here wrote) against /scim/v2 of
# the running axum server. Exits non-zero on any check that ends ERROR or CRITICAL.
#
# - scim2-tester (pinned below, with scim2-client's httpx2 engine) lives in a venv outside
#   the clone, reused between runs, installed again when missing;
# - the server is a private copy of the debug build of example-axum-portal on a fresh temp
#   SQLite file with the demo data, on a free loopback port; with PORTAL_TEST_POSTGRES_URL
#   set it also runs on a fresh Postgres schema (made and dropped here);
# - the token is an API key of the demo org `acme` with the scope `scim provision`, made
#   through the API by its owner ada@acme.example, as a customer would;
# - .ci/scim_tester.py runs every check and prints the counts per status and every check
#   that did not succeed; docs/scim.md lists the checks that do not apply and why.
set -euo pipefail
cd "$(dirname "$0")/.."

SCIM2_TESTER_VERSION=0.5.2
SCIM2_CLIENT_VERSION=0.13.2
VENV="${SCIM2_TESTER_VENV:-/var/tmp/portal-scim2-tester-$SCIM2_TESTER_VERSION}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/portal-core-target}"

if ! "$VENV/bin/python" -c "import scim2_tester, scim2_client.engines.httpx2, importlib.metadata as m; assert m.version('scim2-tester') == '$SCIM2_TESTER_VERSION'" 2>/dev/null; then
  echo "installing scim2-tester $SCIM2_TESTER_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "scim2-tester==$SCIM2_TESTER_VERSION" "scim2-client[httpx2]==$SCIM2_CLIENT_VERSION"
fi
if ! "$VENV/bin/python" -c "import scim2_tester, scim2_client.engines.httpx2" ; then
  echo "FATAL: scim2-tester could not be installed into $VENV" >&2
  exit 1
fi

# The same features as the workspace's test build, so nothing is rebuilt.
cargo build --workspace --all-features --bin example-axum-portal
# A private copy: a binary's name in the target directory carries no hash, so another
# checkout building into the same shared directory would replace it under the run.
BINDIR="$(mktemp -d)"
cp "$CARGO_TARGET_DIR/debug/example-axum-portal" "$BINDIR/"
BIN="$BINDIR/example-axum-portal"

# check_scim LABEL DATABASE_URL: the server on that database (seeded with the demo data),
# an API key made by acme's owner, scim2-tester against /scim/v2; returns its status.
check_scim() {
  echo "=== scim2-tester against axum-portal on $1"
  WORK="$(mktemp -d)"
  PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  BASE="http://127.0.0.1:$PORT"
  DATABASE_URL="$2" PORTAL_SEED=1 PORT="$PORT" RUST_LOG=warn "$BIN" >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 120); do
    curl -fsS "$BASE/scim/v2/ServiceProviderConfig" -o /dev/null 2>/dev/null && break
    if ! kill -0 "$SERVER" 2>/dev/null; then
      echo "FATAL: the server exited; its output:" >&2
      cat "$WORK/server.log" >&2
      return 1
    fi
    sleep 0.5
  done

  local status=0
  TOKEN="$(curl -fsS "$BASE/v1/auth/sign-in" -H 'content-type: application/json' \
    -d '{"email":"ada@acme.example","password":"correct horse battery staple"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["session_token"])')"
  ORG="$(curl -fsS "$BASE/v1/orgs" -H "Authorization: Bearer $TOKEN" |
    python3 -c 'import json, sys; print(next(o["org"]["id"] for o in json.load(sys.stdin)["items"] if o["org"]["slug"] == "acme"))')"
  EXPIRES="$(python3 -c 'import datetime; print((datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))')"
  KEY="$(curl -fsS "$BASE/v1/orgs/$ORG/api-keys" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "{\"name\":\"scim2-tester\",\"scopes\":[\"scim provision\"],\"expires_at\":\"$EXPIRES\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')"

  "$VENV/bin/python" .ci/scim_tester.py "$BASE/scim/v2" "$KEY" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "FATAL: scim2-tester found failures on $1 (exit $status); the server's log:" >&2
    tail -n 50 "$WORK/server.log" >&2
  fi
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$WORK"
  return "$status"
}

set +e
SQLITE_DIR="$(mktemp -d)"
check_scim SQLite "sqlite://$SQLITE_DIR/portal.db"
STATUS=$?
rm -rf "$SQLITE_DIR"
if [ -n "${PORTAL_TEST_POSTGRES_URL:-}" ]; then
  # A fresh schema of its own, found through the connection's search_path.
  SCHEMA="portal_test_scim_$$_$RANDOM"
  psql "$PORTAL_TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -q -c "CREATE SCHEMA $SCHEMA"
  SEP='?'
  case "$PORTAL_TEST_POSTGRES_URL" in *\?*) SEP='&' ;; esac
  check_scim Postgres "$PORTAL_TEST_POSTGRES_URL${SEP}options=-c%20search_path%3D$SCHEMA"
  PG_STATUS=$?
  PGOPTIONS='-c client_min_messages=warning' psql "$PORTAL_TEST_POSTGRES_URL" -q -c "DROP SCHEMA $SCHEMA CASCADE"
  if [ "$STATUS" -eq 0 ]; then
    STATUS=$PG_STATUS
  fi
fi
set -e
rm -rf "$BINDIR"
exit "$STATUS"
