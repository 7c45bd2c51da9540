# prepare.sh INPUT OUTDIR SPLIT: the last SPLIT of the rows are the test set.
set -eu
mkdir -p "$2"
total=$(wc -l < "$1")
test_rows=$(awk -v n="$total" -v s="$3" 'BEGIN { printf "%d", n * s + 0.5 }')
head -n $((total - test_rows)) "$1" > "$2/train.xml"
tail -n "$test_rows" "$1" > "$2/test.xml"
