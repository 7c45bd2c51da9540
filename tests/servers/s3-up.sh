#!/usr/bin/env bash
# A local S3-compatible server for the remote-cache tests: moto (PyPI), on
# loopback, in a virtual environment under target/. Prints the variables the
# tests read; `tests/servers/s3-down.sh` stops it.
#
#   eval "$(tests/servers/s3-up.sh)"
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${W:-$PWD/target/test-servers/s3}
PORT=${PORT:-5055}
mkdir -p "$W"
if [ ! -x "$W/venv/bin/moto_server" ]; then
  python3 -m venv "$W/venv" >&2
  "$W/venv/bin/pip" install -q 'moto[s3]==5.2.5' flask flask-cors >&2
fi
if ! curl -sf -o /dev/null "http://127.0.0.1:$PORT/"; then
  "$W/venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" > "$W/moto.log" 2>&1 &
  echo $! > "$W/moto.pid"
  for _ in $(seq 1 150); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.2; done
fi
curl -sf -o /dev/null "http://127.0.0.1:$PORT/" || { echo "moto did not start; see $W/moto.log" >&2; exit 1; }
# GOURD_TEST_S3_PYTHON has boto3, for tests that tamper with objects.
echo "export GOURD_TEST_S3=http://127.0.0.1:$PORT GOURD_TEST_S3_PYTHON=$W/venv/bin/python AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1"
