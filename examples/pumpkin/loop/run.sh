#!/usr/bin/env bash
# The life cycle's loop in one command: builds gourd with the `torch` feature
# and the photo generator, sets the example up in its own git repository
# (default /tmp/pumpkin-loop: each delivery is a commit there), draws the
# farm's photos and a frozen holdout, then delivers three batches (two from
# the farm, one from another farm), running the pipeline after each.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/../../.."
dir="${1:-/tmp/pumpkin-loop}"
"$repo/scripts/setup-libtorch.sh"
(cd "$repo" && cargo build --release -p gourd-cli -p pumpkin-photos --features gourd-cli/torch)
export PATH="$repo/target/release:$PATH"
mkdir -p "$dir" && cd "$dir"
[ -d .git ] || git init -q
cp "$here/gourd.ncl" .
[ -d photos ] || pumpkin-photos photos --batch home --seed 2026 --per-class 60
[ -d holdout ] || { pumpkin-photos holdout --batch home --seed 900 --per-class 15 && pumpkin-photos holdout --batch other --seed 901 --per-class 15; }
deliver() {
  [ -d "incoming/$1" ] || pumpkin-photos "incoming/$1" --batch "$2" --seed "$3"
  git add -A && git commit -q -m "delivery $1" || true
  gourd run
  echo "== after delivery $1: drift $(grep -m1 '"drift"' metrics/drift.json | tr -d ' ,'), prod holds $(gourd registry resolve pumpkin@prod | cut -d' ' -f1)"
}
deliver d1 home 501
deliver d2 home 502
deliver d3 other 503
