#!/usr/bin/env bash
# Mutation testing of what a change touches in the engine crates
# (gourd-digest, gourd-spec, gourd-core, gourd-lineage): cargo-mutants
# mutates only the lines the diff from BASE to HEAD adds or changes, and runs
# each mutated crate's own tests. Fails when a mutant is missed (new code
# whose behaviour no test pins down), when the run does not finish in time,
# or when cargo-mutants itself fails. Installs cargo-mutants if missing.
#
#   scripts/mutants-diff.sh [BASE]
#
# BASE defaults to the previous landed commit: `git merge-base HEAD
# origin/main` on a branch, HEAD~1 on main itself or without an origin.
#   TIMEOUT     seconds per mutant's tests (default 60)
#   BUDGET      seconds for the whole run (default 900)
#   JOBS        mutants built and tested at once (default 1)
# Results: target/mutants/diff/mutants.out (missed.txt, caught.txt, ...).
# Mutants that change no behaviour are excluded in .cargo/mutants.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:-}
if [ -z "$base" ]; then
  base=HEAD~1
  if git rev-parse --verify --quiet origin/main >/dev/null; then
    fork=$(git merge-base HEAD origin/main)
    # On main itself (HEAD has landed): the commit before it.
    [ "$fork" = "$(git rev-parse HEAD)" ] || base=$fork
  fi
fi
if ! base_commit=$(git rev-parse --verify --quiet "$base^{commit}"); then
  echo "mutants-diff: no commit \`$base\` to compare with (a shallow clone? fetch more history)" >&2
  exit 1
fi

crates=()
paths=()
for dir in digest spec core lineage; do
  if ! git diff --quiet "$base_commit" HEAD -- "engine/$dir/src"; then
    crates+=(-p "gourd-$dir")
    paths+=("engine/$dir/src")
  fi
done
if [ ${#crates[@]} -eq 0 ]; then
  echo "mutants-diff: nothing under engine/{digest,spec,core,lineage}/src changed since ${base_commit:0:12}"
  exit 0
fi

command -v cargo-mutants >/dev/null 2>&1 || cargo install --locked cargo-mutants
# No debug info in cargo-mutants' own build folders: each mutant links faster.
export CARGO_PROFILE_DEV_DEBUG=0
# mold links each mutant's test binaries several times faster than ld
# (a mutant of gourd-core: ~5 s instead of ~15), where it is installed.
if command -v mold >/dev/null 2>&1; then
  export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-fuse-ld=mold"
fi

out=target/mutants/diff
mkdir -p "$out"
diff_file="$out/changes.diff"
git diff "$base_commit" HEAD -- "${paths[@]}" >"$diff_file"
echo "mutants-diff: mutants in the lines changed since ${base_commit:0:12} in ${paths[*]}"

code=0
timeout --kill-after=30 "${BUDGET:-900}" \
  cargo mutants "${crates[@]}" --in-diff "$diff_file" -j "${JOBS:-1}" \
  --timeout "${TIMEOUT:-60}" --build-timeout 600 -o "$out" || code=$?
case $code in
  0 | 2 | 3) ;;
  124 | 137)
    echo "mutants-diff: not finished within ${BUDGET:-900}s; run it locally with a larger BUDGET" >&2
    exit 1
    ;;
  4) echo "mutants-diff: the tests fail without any mutation" >&2; exit 1 ;;
  5) echo "mutants-diff: the diff does not match the tree (uncommitted changes?)" >&2; exit 1 ;;
  *) echo "mutants-diff: cargo mutants failed (exit $code)" >&2; exit 1 ;;
esac
# Exit 3 (a timeout) hides exit 2 (a miss): the lists say which.
results=$out/mutants.out
if [ -s "$results/missed.txt" ]; then
  echo "mutants-diff: mutants missed (changed code that no test fails on):" >&2
  sed 's/^/  /' "$results/missed.txt" >&2
  exit 1
fi
if [ -s "$results/timeout.txt" ]; then
  # A mutant that makes the tests hang is caught, as in scripts/mutants.sh.
  echo "mutants-diff: caught by a test timeout:"
  sed 's/^/  /' "$results/timeout.txt"
fi
echo "mutants-diff: no mutant missed"
