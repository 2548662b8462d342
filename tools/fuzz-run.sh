#!/bin/sh
# fuzz-run.sh BUILD_DIR SECONDS: runs every libFuzzer harness built in
# BUILD_DIR for SECONDS/2 seconds each, starting from a copy of the seed corpus
# in tests/fuzz/corpus/NAME (the repository's corpus is never modified).
# Exits non-zero, printing the input, if any harness finds a crash, a leak or
# a timeout.
set -eu
build=${1:?usage: fuzz-run.sh BUILD_DIR SECONDS}
seconds=${2:?usage: fuzz-run.sh BUILD_DIR SECONDS}
here=$(cd "$(dirname "$0")/.." && pwd)
each=$(( seconds / 2 ))
[ "$each" -ge 1 ] || each=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary=""
status=0
for name in http_parse normalize; do
    bin="$build/fuzz_$name"
    [ -x "$bin" ] || { echo "fuzz: $bin is not built (make fuzz-build)"; exit 2; }
    mkdir -p "$work/$name/corpus" "$work/$name/artifacts"
    cp "$here/tests/fuzz/corpus/$name/"* "$work/$name/corpus/"
    echo "fuzz: $name for ${each}s ..."
    if ! "$bin" -max_total_time="$each" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$work/$name/artifacts/" "$work/$name/corpus" \
            > "$work/$name/log" 2>&1; then
        status=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name/log" | tail -n 1)
    grep -E '^#[0-9]+ +(DONE|pulse)' "$work/$name/log" | tail -n 2 || true
    for f in "$work/$name/artifacts/"*; do
        [ -e "$f" ] || continue
        status=1
        echo "fuzz: $name FOUND $(basename "$f"):"
        od -c "$f" | head -n 20
        grep -E 'ERROR|SUMMARY' "$work/$name/log" | head -n 5
    done
    summary="$summary $name ${runs:-0} runs,"
done
if [ "$status" -ne 0 ]; then
    echo "fuzz:$summary FINDINGS (see above)"
    exit 1
fi
echo "fuzz:$summary no findings"
