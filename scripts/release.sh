#!/usr/bin/env bash
# Builds a release of gourd into target/dist/VERSION/ (docs/releasing.md):
#
#   gourd_ml-VERSION-py3-none-manylinux_*_x86_64.whl  gourd and gourd-step (`pip install`, `uv tool install`)
#   gourd-VERSION-x86_64-unknown-linux-gnu.tar.gz   bin/gourd, man pages, bash/zsh/fish completions
#   SHA256SUMS                                      `sha256sum -c SHA256SUMS` checks them
#
# and the same for aarch64 where a cross toolchain is at hand (the rustup
# target aarch64-unknown-linux-gnu and zig, `pip install ziglang`).
#
#   scripts/release.sh              # from a clean tree
#   scripts/release.sh --check      # then install the wheel and run the quickstart and the pumpkin pipeline from it
#   scripts/release.sh --allow-dirty
set -euo pipefail
cd "$(dirname "$0")/.."
check=0 dirty=0
for arg in "$@"; do
  case $arg in
    --check) check=1 ;;
    --allow-dirty) dirty=1 ;;
    *) echo "usage: scripts/release.sh [--check] [--allow-dirty]" >&2; exit 2 ;;
  esac
done
if [ "$dirty" = 0 ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "error: the tree has uncommitted changes; commit them, or pass --allow-dirty" >&2
  exit 1
fi
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
OUT=target/dist/$VERSION
rm -rf "$OUT" && mkdir -p "$OUT"
echo "gourd $VERSION at $(git rev-parse --short=12 HEAD) into $OUT"

# The binary archive: gourd, its manual pages and completion scripts.
archive() { # TRIPLE BINARY
  local name="gourd-$VERSION-$1" stage
  stage=$(mktemp -d)
  mkdir -p "$stage/$name/bin" "$stage/$name/share/man/man1" "$stage/$name/share/bash-completion/completions" \
    "$stage/$name/share/zsh/site-functions" "$stage/$name/share/fish/vendor_completions.d"
  cp "$2" "$stage/$name/bin/gourd"
  strip "$stage/$name/bin/gourd" 2>/dev/null || true
  # The pages and scripts come from the host's build (they depend only on
  # the command line, which is the same for every target).
  target/release/gourd man --dir "$stage/$name/share/man/man1" 2>/dev/null
  target/release/gourd completions bash >"$stage/$name/share/bash-completion/completions/gourd"
  target/release/gourd completions zsh >"$stage/$name/share/zsh/site-functions/_gourd"
  target/release/gourd completions fish >"$stage/$name/share/fish/vendor_completions.d/gourd.fish"
  cp README.md "$stage/$name/"
  tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$(git log -1 --format=%ct)" \
    -czf "$OUT/$name.tar.gz" "$name"
  rm -rf "$stage"
}

# x86_64: the wheel's release build also gives the archive's binary.
rm -f target/wheels/gourd_ml-"$VERSION"-*.whl
scripts/build-wheel.sh --strip
cp target/wheels/gourd_ml-"$VERSION"-*x86_64.whl "$OUT/"
target/release/gourd --version | grep -q "features: torch" || { echo "error: target/release/gourd is not the wheel's build" >&2; exit 1; }
archive x86_64-unknown-linux-gnu target/release/gourd

# aarch64, where a cross toolchain is at hand.
AARCH64=aarch64-unknown-linux-gnu
if rustup target list --installed 2>/dev/null | grep -qx "$AARCH64" && python3 -c 'import ziglang' 2>/dev/null; then
  # libtorch for aarch64, from the PyPI torch wheel of that platform.
  if [ ! -f .libtorch-aarch64/torch/lib/libtorch_cpu.so ]; then
    python3 -m pip install --quiet --no-cache-dir --no-deps --no-compile --target .libtorch-aarch64 \
      --platform manylinux_2_28_aarch64 --only-binary :all: torch==2.11.0
  fi
  LIBTORCH="$PWD/.libtorch-aarch64/torch" scripts/build-wheel.sh --strip --target "$AARCH64" --zig
  cp target/wheels/gourd_ml-"$VERSION"-*aarch64.whl "$OUT/"
  archive "$AARCH64" "target/$AARCH64/release/gourd"
else
  echo "aarch64: skipped (needs \`rustup target add $AARCH64\` and \`pip install ziglang\`)"
fi

(cd "$OUT" && sha256sum -- *.whl *.tar.gz >SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
if [ "$check" = 1 ]; then
  tests/packaging/check-wheel.sh "$(ls "$OUT"/gourd_ml-*x86_64.whl)"
fi
echo "release $VERSION:"
(cd "$OUT" && ls -l -- * && cat SHA256SUMS)
