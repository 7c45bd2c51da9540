#!/usr/bin/env bash
# Stops what tests/servers/reapi-up.sh started.
cd "$(dirname "$0")/../.."
W=${W:-$PWD/target/test-servers/reapi}
PGPORT=${PGPORT:-55432}
PG=${TMPDIR:-/tmp}/gourd-reapi-pg-$PGPORT
for pid in bot bot-1 bot-2 server; do
  [ -f "$W/$pid.pid" ] && kill "$(cat "$W/$pid.pid")" 2>/dev/null
  rm -f "$W/$pid.pid"
done
if command -v pg_ctl >/dev/null 2>&1; then PGBIN=$(dirname "$(command -v pg_ctl)")
else PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1); fi
if [ -n "$PGBIN" ] && [ -f "$PG/data/postmaster.pid" ]; then
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "cd /tmp && $PGBIN/pg_ctl -D $PG/data -m fast -w stop" >/dev/null 2>&1
  else
    "$PGBIN/pg_ctl" -D "$PG/data" -m fast -w stop >/dev/null 2>&1
  fi
fi
true
