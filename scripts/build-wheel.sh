#!/usr/bin/env bash
# Builds gourd's wheel into target/wheels/: the `gourd` and `gourd-step`
# binaries (maturin, `bindings = "bin"`, pyproject.toml). `gourd-step` is
# linked against libtorch from the PyPI torch wheel (scripts/setup-libtorch.sh)
# but carries no copy of it: installed, it loads the one of the `torch`
# package that `pip install "gourd-ml[torch]"` puts beside it.
#
#   scripts/build-wheel.sh                    # release build, this machine's target
#   scripts/build-wheel.sh --profile dev      # reuses a debug build (CI)
#   scripts/build-wheel.sh --target aarch64-unknown-linux-gnu --zig   # where a cross toolchain is at hand
#
# Arguments go to `maturin build`. MATURIN names the maturin to use; else the
# one on PATH, else one pinned in target/maturin-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
MATURIN_VERSION=1.16.0

if [ -z "${MATURIN:-}" ]; then
  if command -v maturin >/dev/null 2>&1; then
    MATURIN=$(command -v maturin)
  else
    if [ ! -x target/maturin-venv/bin/maturin ]; then
      python3 -m venv target/maturin-venv
      target/maturin-venv/bin/pip install --quiet "maturin==$MATURIN_VERSION"
    fi
    MATURIN=target/maturin-venv/bin/maturin
  fi
fi

scripts/setup-libtorch.sh >/dev/null
# A release build unless a profile is asked for.
case " $* " in *" --profile "* | *" --profile="*) ;; *) set -- --release "$@" ;; esac

# rpaths into the Python environment's `torch` package (engine/cli/build.rs).
export GOURD_TORCH_FROM_PYTHON=1
# libtorch_cpu.so and libc10.so come from the `torch` package at run time:
# they are not in the manylinux policy, and must not be copied in.
log=$(mktemp)
trap 'rm -rf "$log" "$log.d"' EXIT
"$MATURIN" build --locked --auditwheel warn --out target/wheels "$@" 2>&1 | tee "$log"
wheel=$(sed -n 's/.*Built wheel to //p' "$log" | tail -1)

# What went in is what was meant to (another cargo build in the same target
# folder between maturin's two builds would have replaced a binary).
python3 -m zipfile -e "$wheel" "$log.d"
gourd=$(echo "$log.d"/*.data/scripts/gourd)
chmod +x "$gourd"
case $("$gourd" --version) in
  *"features: torch"*) ;;
  *) echo "error: the wheel's gourd is not the torch build: $("$gourd" --version)" >&2; rm -f "$wheel"; exit 1 ;;
esac
if ! readelf -d "$log.d"/*.data/scripts/gourd-step | grep -q 'R.*PATH.*\[\$ORIGIN/../lib/python'; then
  echo "error: the wheel's gourd-step does not look for torch in its Python environment" >&2
  rm -f "$wheel"
  exit 1
fi
echo "$wheel"
