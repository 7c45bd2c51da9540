#!/usr/bin/env bash
# Stops the server tests/servers/s3-up.sh started.
W=${W:-$(cd "$(dirname "$0")/../.." && pwd)/target/test-servers/s3}
[ -f "$W/moto.pid" ] && kill "$(cat "$W/moto.pid")" 2>/dev/null
rm -f "$W/moto.pid"
