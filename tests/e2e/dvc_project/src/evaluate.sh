# evaluate.sh MODEL OUTDIR: metrics and a precision-recall curve from the model.
set -eu
n=$(sed 's/.*n_est=\([0-9]*\).*/\1/' "$1")
awk -v n="$n" 'BEGIN { printf "{\"accuracy\": %.4f, \"n_est\": %d}\n", 1 - 1 / (n + 1), n }' > "$2/metrics.json"
awk -v n="$n" 'BEGIN { printf "["; for (i = 1; i <= 3; i++) printf "%s{\"recall\": %.2f, \"precision\": %.4f}", (i > 1 ? ", " : ""), i / 3, 1 - i / (n + 3); print "]" }' > "$2/prc.json"
echo "weight $(cat "$1")" > "$2/importance.txt"
