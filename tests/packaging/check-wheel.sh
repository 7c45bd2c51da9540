#!/usr/bin/env bash
# gourd as a pip user gets it: installs the wheel into a fresh virtual
# environment and runs the quickstart from it; checks the errors of a missing
# and of a different torch; then installs the `torch` extra (the PyPI torch
# wheel, with its dependencies, as `pip install "gourd-ml[torch]"` would) and runs
# the pumpkin pipeline with the `gourd-step` of the wheel on that torch. The
# wheel also installs as a uv tool (uv from PyPI).
#
#   tests/packaging/check-wheel.sh [WHEEL]    (after scripts/build-wheel.sh)
#   TORCH=0 tests/packaging/check-wheel.sh    (without the torch extra: ~4 GB, ~1 min)
#   TORCH_EXTRA=full|lean                     (the whole extra, or without the
#                                              CUDA-only packages; by default
#                                              lean below 16 GB free)
#
# The photos of the pumpkin example come from its generator (cargo).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WHEEL=${1:-$(ls -t target/wheels/gourd_ml-*.whl 2>/dev/null | head -1)}
[ -f "$WHEEL" ] || { echo "error: no wheel (run scripts/build-wheel.sh)" >&2; exit 2; }
WHEEL=$(realpath "$WHEEL")
TORCH=${TORCH:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gourd-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
passed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*" >&2; exit 1; }
# No development environment leaks in: no LIBTORCH, no loader path, no cargo
# binaries on PATH.
unset LIBTORCH LD_LIBRARY_PATH GOURD_STEP
CARGO=$(command -v cargo || true)
export PATH="$WORK/venv/bin:/usr/local/bin:/usr/bin:/bin"
git_commit() { git -c user.name=gourd -c user.email=gourd@localhost "$@"; }
workspace() { # a copy of an example, committed
  cp -r "$ROOT/examples/$1" "$WORK/$1"
  (cd "$WORK/$1" && git init -q -b main && git_commit add -A && git_commit commit -qm "$1")
}

python3 -m venv "$WORK/venv"
pip install --quiet --no-cache-dir "$WHEEL"
[ "$(command -v gourd)" = "$WORK/venv/bin/gourd" ] || fail "gourd is not the wheel's"
gourd --version | grep -Eq '^gourd [0-9.]+ \(commit [0-9a-f]{12}; features: torch\)$' ||
  fail "gourd --version: $(gourd --version)"
ok "pip install of the wheel: $(gourd --version)"

# The quickstart, twice: the second run executes nothing.
workspace quickstart
(
  cd "$WORK/quickstart"
  gourd run >/dev/null 2>&1 || fail "the quickstart failed: $(gourd run 2>&1)"
  again=$(gourd run --json)
  echo "$again" | tail -1 | grep -q '"ran":0' || fail "a second run executed stages: $again"
  gourd status --exit-code >/dev/null || fail "gourd status --exit-code after a run"
)
ok "the quickstart runs from the wheel, and a second run executes nothing"

# The pumpkin pipeline's steps need torch: without it, gourd says which one.
workspace pumpkin
cd "$WORK/pumpkin"
set +e
out=$(gourd check 2>&1)
code=$?
set -e
[ "$code" = 2 ] || fail "without torch, gourd check exited $code: $out"
for text in "needs PyTorch 2.11" "$WORK/venv" 'pip install "gourd-ml[torch]"'; do
  grep -qF "$text" <<<"$out" || fail "without torch, the error does not say '$text': $out"
done
ok "without torch: $(head -1 <<<"$out")"

# A torch of another minor release: gourd names both versions.
site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site/torch/lib"
: >"$site/torch/lib/libtorch_cpu.so"
echo "__version__ = '2.9.1+cpu'" >"$site/torch/version.py"
set +e
out=$(gourd check 2>&1)
code=$?
set -e
rm -rf "$site/torch"
[ "$code" = 2 ] || fail "with torch 2.9, gourd check exited $code: $out"
for text in "needs PyTorch 2.11" "\`$(realpath "$site/torch")\` holds torch 2.9.1+cpu" 'pip install "torch==2.11.*"'; do
  grep -qF "$text" <<<"$out" || fail "with torch 2.9, the error does not say '$text': $out"
done
ok "with another torch: $(head -1 <<<"$out")"

# The same wheel as a uv tool: `gourd` on PATH through a link into the tool's
# own environment, where gourd-step looks for torch.
pip install --quiet --no-cache-dir uv
export UV_TOOL_DIR="$WORK/uv/tools" UV_TOOL_BIN_DIR="$WORK/uv/bin" UV_CACHE_DIR="$WORK/uv/cache"
uv tool install --quiet "$WHEEL"
set +e
out=$("$WORK/uv/bin/gourd" check 2>&1)
code=$?
set -e
[ "$code" = 2 ] || fail "as a uv tool without torch, gourd check exited $code: $out"
for text in "needs PyTorch 2.11" "$WORK/uv/tools/gourd-ml" 'uv tool install "gourd-ml[torch]"'; do
  grep -qF "$text" <<<"$out" || fail "as a uv tool without torch, the error does not say '$text': $out"
done
ok "uv tool install of the wheel: $("$WORK/uv/bin/gourd" --version); without torch: $(head -1 <<<"$out" | sed 's/.*, which/which/')"

if [ "$TORCH" = 1 ]; then
  start=$SECONDS
  # What the extra resolves to, from the index's metadata alone (no wheels).
  pip install --quiet --no-cache-dir --dry-run --report "$WORK/extra.json" \
    --find-links "$(dirname "$WHEEL")" "gourd-ml[torch]"
  resolved=$(python3 -c '
import json, sys
names = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
print(names.get("torch", "none"), len(names))' "$WORK/extra.json")
  case "$resolved" in 2.11.*) ;; *) fail "\"gourd-ml[torch]\" resolves to torch ${resolved% *}, not 2.11" ;; esac
  # The whole extra with torch's CUDA libraries takes ~10 GB while pip
  # installs it. Where the disk has less free, install what the extra
  # resolved to without the CUDA-only packages, which gourd-step never loads
  # (it links libtorch_cpu, libc10, libcudart and libcupti, as
  # scripts/setup-libtorch.sh fetches them): the same torch package, in the
  # same environment, from the same index.
  free_gb=$(df -Pk "$WORK" | awk 'NR == 2 { print int($4 / 1048576) }')
  mode=${TORCH_EXTRA:-$([ "$free_gb" -ge 16 ] && echo full || echo lean)}
  if [ "$mode" = full ]; then
    pip install --quiet --no-cache-dir --find-links "$(dirname "$WHEEL")" "gourd-ml[torch]"
    how="the whole extra"
  else
    mapfile -t pins < <(python3 -c '
import json, sys
keep = {"nvidia-cuda-runtime", "nvidia-cuda-cupti"}
for i in json.load(open(sys.argv[1]))["install"]:
    name = i["metadata"]["name"].lower()
    if name == "gourd-ml" or name == "triton" or name.startswith("cuda-"):
        continue
    if name.startswith("nvidia-") and name not in keep:
        continue
    print(name + "==" + i["metadata"]["version"])' "$WORK/extra.json")
    pip install --quiet --no-cache-dir --no-deps "${pins[@]}"
    how="${#pins[@]} of its ${resolved#* } packages, without the CUDA-only ones (${free_gb} GB free)"
  fi
  version=$(python3 -c 'import importlib.metadata as m; print(m.version("torch"))')
  ok "pip install \"gourd-ml[torch]\" ($((SECONDS - start)) s; $how): torch $version"
  lib=$(ldd "$WORK/venv/bin/gourd-step" | awk '/libtorch_cpu.so/ { print $3 }')
  [ "$(realpath "$lib")" = "$(realpath "$site/torch/lib/libtorch_cpu.so")" ] ||
    fail "gourd-step loads libtorch from '$lib', not from the environment's torch"
  ok "gourd-step loads the torch package's libtorch: $lib"

  (cd "$ROOT" && "${CARGO:?cargo builds the photo generator}" build --quiet -p pumpkin-photos)
  "$ROOT/target/debug/pumpkin-photos" photos >/dev/null
  mkdir -p inbox && "$ROOT/target/debug/pumpkin-photos" inbox-tmp --seed 99 --per-class 2 >/dev/null 2>&1
  for l in good fine bad; do cp "inbox-tmp/$l/farm-000.png" "inbox/$l-sample.png"; done
  rm -rf inbox-tmp
  gourd run >"$WORK/pumpkin.log" 2>&1 || { cat "$WORK/pumpkin.log"; fail "the pumpkin pipeline failed"; }
  best=$(python3 -c 'import json; print(max(json.load(open(f"metrics/{i}.json"))["accuracy"] for i in (0, 1)))')
  python3 -c "import sys; sys.exit(0 if $best >= 0.85 else 1)" || fail "best accuracy $best < 0.85"
  gourd registry resolve pumpkin@prod >/dev/null || fail "no pumpkin model in prod"
  ok "the pumpkin pipeline runs from the wheel on the torch package (best accuracy $best, promoted to prod)"
fi
echo "$passed passed, 0 failed"
