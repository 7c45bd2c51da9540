#!/usr/bin/env bash
# GTO (PyPI `gto`, iterative's registry in git tags) in a virtual environment
# under target/, for the tests that check GTO reads gourd's registry and
# gourd reads GTO's. Prints the variable those tests read:
#
#   gto_env=$(scripts/setup-gto.sh) && eval "$gto_env"
#   cargo test -p gourd-cli --test registry -- --ignored gto
#
# Needs only python3 (with its venv module) and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${W:-$PWD/target/test-servers/gto}
VERSION=${GTO_VERSION:-1.10.1}
if [ ! -x "$W/venv/bin/gto" ]; then
  mkdir -p "$W"
  python3 -m venv "$W/venv" >&2
  "$W/venv/bin/pip" install -q "gto==$VERSION" >&2
fi
"$W/venv/bin/gto" --version >&2
printf 'export GOURD_TEST_GTO=%q\n' "$W/venv/bin/gto"
