# train.sh FEATURES MODEL N_EST: a "model" that sums the features, weighted by N_EST.
set -eu
cat "$1"/*/features.txt | awk -v n="$3" -v ms="$GOURD_PARAM_TRAIN_MIN_SPLIT" '{ s += $1 } END { printf "n_est=%d min_split=%d weight=%d\n", n, ms, s * n }' > "$2"
