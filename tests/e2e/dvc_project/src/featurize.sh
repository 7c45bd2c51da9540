# featurize.sh PREPARED OUTDIR LANG MAX_FEATURES: word counts of one language's rows, capped.
set -eu
mkdir -p "$2"
grep "Lang=\"$3\"" "$1/train.xml" | awk -v m="$4" -F'Body="' '{ split($2, b, "\""); n = split(b[1], w, " "); print (n > m ? m : n) }' > "$2/features.txt"
