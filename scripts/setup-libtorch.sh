#!/usr/bin/env bash
# Fetches libtorch for gourd's `torch` feature from the PyPI `torch` wheel
# (a complete libtorch) into .libtorch/, where .cargo/config.toml points
# LIBTORCH. tch 0.24 pairs with torch 2.11. Skips the ~2 GB of CUDA wheels: a
# CPU build links only libtorch_cpu and libc10, which need libcudart and
# libcupti from the two small nvidia wheels below.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.libtorch
if [ -f "$DIR/torch/lib/libtorch_cpu.so" ]; then
  echo "libtorch is in $DIR/torch"
  exit 0
fi
python3 -m pip install --quiet --no-cache-dir --no-deps --no-compile --target "$DIR" \
  torch==2.11.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
echo "libtorch is in $DIR/torch"
