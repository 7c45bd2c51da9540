#!/usr/bin/env bash
# The pumpkin pipeline on a CUDA machine, against the CPU; fails unless the
# GPU run really trained on CUDA and both runs reach the accuracy floor.
#
#   tests/gpu/run.sh BIN_DIR
#
# BIN_DIR holds `gourd` and `gourd-step` built elsewhere with
# `--features cuda` (tch 0.24, torch 2.11), and `pumpkin-photos`. The machine needs PyTorch
# 2.11 installed for its `python3` (its libtorch and CUDA libraries are used)
# and no network. Prints the device, the time per epoch and the accuracy of
# the same pipeline on the GPU and on the CPU. ACCURACY_FLOOR (default 0.85,
# what tests/e2e/pumpkin.rs asserts) is the least best test accuracy allowed.
# Then bench/train.py --device cuda compares the train step with the same
# loop in PyTorch on the GPU (its table goes to stdout and $WORK/train-cuda.md).
set -euo pipefail
BIN=$(realpath "${1:?usage: tests/gpu/run.sh BIN_DIR}")
GOURD=$BIN/gourd
PHOTOS=$BIN/pumpkin-photos
HERE=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-$(mktemp -d)}
FLOOR=${ACCURACY_FLOOR:-0.85}
fail() { echo "FAIL: $*" >&2; exit 1; }

TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
NVIDIA_LIBS=$(python3 -c 'import glob, os, site
dirs = [d for p in site.getsitepackages() for d in glob.glob(os.path.join(p, "nvidia", "*", "lib"))]
print(":".join(dirs))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$TORCH_LIB${NVIDIA_LIBS:+:$NVIDIA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
DEVICE=$(python3 -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")')
[ -n "$DEVICE" ] || fail "PyTorch sees no CUDA device"
echo "device: $DEVICE"
SEEN=$("$BIN/gourd-step" --cuda-devices) || fail "gourd-step --cuda-devices failed (built without --features cuda?)"
[[ "$SEEN" =~ ^[0-9]+$ ]] && [ "$SEEN" -ge 1 ] || fail "gourd-step sees '$SEEN' CUDA devices, not at least 1"
echo "gourd-step sees $SEEN CUDA device(s)"
echo "torch:  $(python3 -c 'import torch; print(torch.__version__)')"
unset GOURD_GPUS

run() {  # run NAME EXECUTOR DEVICE: DEVICE is what each training stage must have run on
  local dir="$WORK/$1"
  rm -rf "$dir" && mkdir -p "$dir/inbox"
  cp "$HERE/examples/pumpkin/gourd.ncl" "$HERE/examples/pumpkin/harvest.csv" "$dir/"
  sed -i "s/let training_executor = 'local in/let training_executor = '$2 in/" "$dir/gourd.ncl"
  grep -q "let training_executor = '$2 in" "$dir/gourd.ncl" || fail "$1: could not set the training executor to '$2"
  "$PHOTOS" "$dir/photos" 2>/dev/null
  "$PHOTOS" "$dir/inbox-tmp" --per-class 1 --seed 9 2>/dev/null && for l in good fine bad; do cp "$dir/inbox-tmp/$l/farm-000.png" "$dir/inbox/$l.png"; done
  local start end
  start=$(date +%s.%N)
  (cd "$dir" && "$GOURD" run -j 2 > run.txt 2>&1) || { cat "$dir/run.txt"; fail "$1: gourd run failed"; }
  end=$(date +%s.%N)
  for log in "$dir"/.gourd/logs/train-*.log; do
    grep -qx "train: on $3" "$log" || fail "$1: $(basename "$log" .log) did not train on $3: $(grep -m1 '^train: on' "$log" || echo 'no device line')"
  done
  local epoch acc
  epoch=$(grep -ho '([0-9.]*s)' "$dir/.gourd/logs/train-0.log" | tr -d '()s' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  acc=$(python3 -c "import json; print(max(json.load(open('$dir/metrics/%d.json' % i))['accuracy'] for i in (0, 1)))")
  printf '%-4s  whole run %6.1fs  median epoch %6.3fs  best test accuracy %s\n' "$1" "$(echo "$end - $start" | bc)" "$epoch" "$acc"
  grep -h "epoch 1/" "$dir/.gourd/logs/train-0.log" | head -1 | sed 's/^/      first epoch: /'
  python3 -c "import sys; sys.exit(0 if $acc >= $FLOOR else 1)" || fail "$1: best test accuracy $acc is below $FLOOR"
}

run gpu cuda cuda:0
run cpu local cpu
echo "ok: the GPU run trained on CUDA, and both reached accuracy $FLOOR"

# The built-in train step next to the same loop in PyTorch, both on the GPU
# (bench/train.py): images/s, first step, wall time, peak RSS, accuracy.
# A missed goal (exit 1) is reported, not a failure of this check; a failed
# run or a device either side cannot see (exit 2) is.
echo "train step against PyTorch on CUDA:"
set +e
python3 "$HERE/bench/train.py" --device cuda --quick --threads 1 --bin "$BIN" --python python3 --out "$WORK/train-cuda"
rc=$?
set -e
case $rc in
  0) echo "ok: bench/train.py --device cuda met its goals ($WORK/train-cuda.md)" ;;
  1) echo "note: bench/train.py --device cuda missed a goal (see above; $WORK/train-cuda.md)" ;;
  *) fail "bench/train.py --device cuda failed (exit $rc)" ;;
esac
