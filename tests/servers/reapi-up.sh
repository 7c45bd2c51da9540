#!/usr/bin/env bash
# A Remote Execution API server for the remote-execution tests: BuildGrid
# (PyPI, the last release for Python 3.11) on PostgreSQL, with gourd's test
# worker (reapi_bot.py), all on loopback, everything under target/. Prints
# the variables the tests read; `tests/servers/reapi-down.sh` stops it.
#
#   eval "$(tests/servers/reapi-up.sh)"
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
W=${W:-$ROOT/target/test-servers/reapi}
PORT=${PORT:-50051}
PGPORT=${PGPORT:-55432}
# Outside the checkout: the postgres user must be able to reach it.
PG=${TMPDIR:-/tmp}/gourd-reapi-pg-$PGPORT
mkdir -p "$W"
log() { echo "reapi-up: $*" >&2; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "cd /tmp && $*"; else sh -c "cd /tmp && $*"; fi
}

# PostgreSQL from PATH (e.g. `nix develop`), else Debian's, installed if need be.
pgbin() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"
  else ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; fi
}
if [ -z "$(pgbin)" ]; then
  log "installing PostgreSQL"
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(pgbin)
if [ ! -x "$W/venv/bin/bgd" ]; then
  log "installing BuildGrid"
  python3 -m venv "$W/venv" >&2
  "$W/venv/bin/pip" install -q buildgrid==0.4.4 psycopg2-binary >&2
fi

# Anything left from an earlier start goes first.
tests/servers/reapi-down.sh

if [ "$(id -u)" = 0 ]; then install -d -o postgres -g postgres "$PG"; else mkdir -p "$PG"; fi
[ -f "$PG/data/PG_VERSION" ] || as_postgres "$PGBIN/initdb -D $PG/data -A trust -U postgres" >/dev/null
as_postgres "$PGBIN/pg_ctl -D $PG/data -o '-c listen_addresses=127.0.0.1 -p $PGPORT -k $PG' -l $PG/server.log -w start" >/dev/null
psql() { command psql -qh 127.0.0.1 -p "$PGPORT" -U postgres "$@"; }
psql -tc "select 1 from pg_roles where rolname='bgd'" | grep -q 1 || psql -c "create user bgd password 'insecure'"
# Fresh databases at every start: stale bot sessions would otherwise get leases.
for db in bgd bgd_spare bgd_evict; do
  psql -c "drop database if exists $db" -c "create database $db owner bgd" 2>/dev/null
  "$W/venv/bin/bgd" migrate apply "postgresql+psycopg2://bgd:insecure@127.0.0.1:$PGPORT/$db" >/dev/null 2>&1
done

config() { # PORT DB
  cat <<YML
server:
  - !channel
    address: "127.0.0.1:$1"
    insecure-mode: true
authorization:
  method: none
connections:
  - !sql-connection &sql
    connection-string: postgresql+psycopg2://bgd:insecure@127.0.0.1:$PGPORT/$2
    pool-size: 5
    max-overflow: 5
storages:
  - !lru-storage &cas
    size: 512MB
caches:
  - !lru-action-cache &ac
    storage: *cas
    max-cached-refs: 10000
    allow-updates: true
    cache-failed-actions: false
schedulers:
  - !sql-scheduler &sched
    sql: *sql
    storage: *cas
    action-cache: *ac
    bot-session-keepalive-timeout: 30
    property-set: !dynamic-property-set
      wildcard-property-keys: [cpu_count, gpu_count]
instances:
  - name: ""
    services:
      - !action-cache
        cache: *ac
      - !execution
        scheduler: *sched
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
thread-pool-size: 20
YML
}
config "$PORT" bgd > "$W/server.yml"
# A second server, for tests that kill one: they fill in the port (and may
# point it at `bgd_evict`, so that its jobs are not the others').
config @PORT@ bgd_spare > "$W/server-spare.yml"

"$W/venv/bin/bgd" server start "$W/server.yml" > "$W/server.log" 2>&1 &
echo $! > "$W/server.pid"
"$W/venv/bin/python" - "$PORT" <<'PY' || { log "BuildGrid did not come up; see $W/server.log"; exit 1; }
import sys, time, grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re, remote_execution_pb2_grpc as g
stub = g.CapabilitiesStub(grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}"))
for _ in range(600):
    try:
        stub.GetCapabilities(re.GetCapabilitiesRequest(), timeout=1)
        break
    except grpc.RpcError:
        time.sleep(0.1)
else:
    sys.exit(1)
PY
# Two workers, so that remote stages can run side by side.
for n in 1 2; do
  "$W/venv/bin/python" tests/servers/reapi_bot.py "127.0.0.1:$PORT" "" "gourd-test-bot-$n" > "$W/bot-$n.log" 2>&1 &
  echo $! > "$W/bot-$n.pid"
done
log "BuildGrid at grpc://127.0.0.1:$PORT, PostgreSQL at 127.0.0.1:$PGPORT"
echo "export GOURD_TEST_REAPI=grpc://127.0.0.1:$PORT GOURD_TEST_REAPI_PYTHON=$W/venv/bin/python GOURD_TEST_REAPI_BGD=$W/venv/bin/bgd GOURD_TEST_REAPI_BOT=$ROOT/tests/servers/reapi_bot.py GOURD_TEST_REAPI_SPARE=$W/server-spare.yml"
