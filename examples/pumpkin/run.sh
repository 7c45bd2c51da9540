#!/usr/bin/env bash
# The pumpkin pipeline on a fresh machine, in one command: fetches libtorch
# (the PyPI torch wheel), builds gourd with the `torch` feature and the photo
# generator, draws the photos, and runs the pipeline.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup-libtorch.sh
cargo build --release -p gourd-cli -p pumpkin-photos --features gourd-cli/torch
cd examples/pumpkin
[ -d photos ] || ../../target/release/pumpkin-photos photos
if [ ! -d inbox ]; then
  mkdir -p inbox && ../../target/release/pumpkin-photos inbox-tmp --seed 99 --per-class 2 2>/dev/null
  for l in good fine bad; do cp "inbox-tmp/$l/farm-000.png" "inbox/$l-sample.png"; done && rm -rf inbox-tmp
fi
# The registry stage calls `gourd`.
export PATH="$PWD/../../target/release:$PATH"
../../target/release/gourd run "$@"
../../target/release/gourd metrics show
