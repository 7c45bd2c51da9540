#!/usr/bin/env bash
# The tests of gourd's built-in ML steps, against a real libtorch: fetches it
# if needed, then runs the torch crate's tests and the end-to-end tests with
# the `torch` feature (the pumpkin pipeline among them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-libtorch.sh
cargo test -p gourd-torch -p gourd-cli --features gourd-cli/torch
