#!/usr/bin/env bash
# Renders gourd's HTML report of the quickstart pipeline in headless Chromium
# and checks that it loads with no console errors and shows the DAG, the
# metrics table and the metrics plot. Leaves a screenshot for a person to look
# at: $OUT/report.png.
#
#   tests/report/check-report.sh            (after `cargo build`)
#   GOURD=path/to/gourd OUT=dir tests/report/check-report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
GOURD=${GOURD:-$ROOT/target/debug/gourd}
OUT=${OUT:-$ROOT/target/report-check}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[ -n "$CHROMIUM" ] || { echo "error: chromium is not installed (apt-get install chromium)" >&2; exit 2; }

rm -rf "$OUT" && mkdir -p "$OUT/ws"
cp -r examples/quickstart/. "$OUT/ws/"
cd "$OUT/ws"
git init -q -b main
git -c user.name=gourd -c user.email=gourd@localhost add -A
git -c user.name=gourd -c user.email=gourd@localhost commit -qm quickstart
"$GOURD" run >/dev/null
sed -i 's/top_words = 12/top_words = 2/' gourd.ncl
"$GOURD" run >/dev/null
"$GOURD" report -o "$OUT/report.html" 2>/dev/null

browse() {
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" \
    --enable-logging=stderr --v=0 "$@"
}

# The checker itself must be able to fail: a page with a console error is caught.
printf '<!doctype html><script>console.error("planted error")</script>' > "$OUT/planted.html"
browse --dump-dom "file://$OUT/planted.html" > /dev/null 2> "$OUT/planted.log" || true
grep -q 'CONSOLE.*planted error' "$OUT/planted.log" || { echo "error: console messages are not captured" >&2; exit 1; }

browse --dump-dom "file://$OUT/report.html" > "$OUT/dom.html" 2> "$OUT/console.log" || true
fail=0
if grep -E 'CONSOLE|Uncaught' "$OUT/console.log"; then echo "FAIL: console messages above" >&2; fail=1; fi
for needle in 'id="dag-svg"' 'class="node' '<table id="metrics">' 'class="plot"' '<polyline'; do
  grep -q "$needle" "$OUT/dom.html" || { echo "FAIL: the rendered page lacks $needle" >&2; fail=1; }
done
nodes=$(grep -o '<g class="node' "$OUT/dom.html" | wc -l)
[ "$nodes" -eq 5 ] || { echo "FAIL: expected 5 stages in the DAG, found $nodes" >&2; fail=1; }

browse --screenshot="$OUT/report.png" --window-size=1280,1800 "file://$OUT/report.html" >/dev/null 2>&1 || true
[ -s "$OUT/report.png" ] || { echo "FAIL: no screenshot" >&2; fail=1; }
[ $fail -eq 0 ] && echo "report OK: DAG with $nodes stages, metrics table and plot; screenshot at $OUT/report.png"
exit $fail
