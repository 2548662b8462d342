#!/usr/bin/env bash
# fuzz-run.sh BUILD_DIR SECONDS: runs every libFuzzer harness of
# tests/fuzz/fuzz_NAME.c (built as BUILD_DIR/fuzz_NAME by `make fuzz-build`)
# for an equal share of SECONDS, one after the other, each from a temporary
# copy of its seed corpus tests/fuzz/corpus/NAME/ (the repository's corpus is
# never written) with tests/fuzz/corpus/NAME.dict if present.
# Prints libFuzzer's progress lines (INITED, pulse, DONE) and any report, then
# one summary line. Exits 1 if a harness finds a crash, leak, timeout or OOM
# (the input is hex-dumped and kept in BUILD_DIR/fuzz-findings/), 2 on usage
# or setup errors.
set -euo pipefail

usage() {
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
}
[ $# -eq 2 ] || usage
build=$1
secs=$2
[[ $secs =~ ^[0-9]+$ ]] && [ "$secs" -ge 1 ] || usage
here=$(cd "$(dirname "$0")/.." && pwd)

names=()
for src in "$here"/tests/fuzz/fuzz_*.c; do
    [ -e "$src" ] || continue
    n=${src##*/fuzz_}
    names+=("${n%.c}")
done
[ ${#names[@]} -gt 0 ] || { echo "fuzz: no harnesses in tests/fuzz" >&2; exit 2; }
each=$((secs / ${#names[@]}))
[ "$each" -ge 1 ] || each=1

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

hexdump_file() {
    if command -v xxd >/dev/null; then
        xxd "$1" | head -n 32
    else
        od -A x -t x1z "$1" | head -n 32
    fi
}

summary=()
found=0
for name in "${names[@]}"; do
    bin=$build/fuzz_$name
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin is not built (make fuzz-build)" >&2
        exit 2
    fi
    corpus=$work/$name/corpus
    artifacts=$work/$name/artifacts
    log=$work/$name/log
    mkdir -p "$corpus" "$artifacts"
    seeds=$here/tests/fuzz/corpus/$name
    if [ -d "$seeds" ]; then
        cp -- "$seeds"/* "$corpus"/ 2>/dev/null || true
    fi
    opts=(-max_total_time="$each" -timeout=5 -rss_limit_mb=2048 -max_len=4096
          -print_final_stats=1 -artifact_prefix="$artifacts/")
    dict=$here/tests/fuzz/corpus/$name.dict
    [ -f "$dict" ] && opts+=(-dict="$dict")
    echo "fuzz: $name for ${each}s from $(ls "$corpus" | wc -l) seeds"

    # The full log goes to a file; the terminal sees progress and reports.
    set +e
    "$bin" "${opts[@]}" "$corpus" 2>&1 | tee "$log" |
        grep --line-buffered -E \
            '^#[0-9]+[[:space:]]+(INITED|pulse|DONE)|ERROR|SUMMARY|WARNING|invariant failed' |
        sed -u "s/^/  [$name] /"
    rc=${PIPESTATUS[0]}
    set -e

    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    summary+=("$name ${runs:-0} runs")

    hits=0
    for f in "$artifacts"/*; do
        [ -e "$f" ] || continue
        case ${f##*/} in slow-unit-*) continue ;; esac
        hits=$((hits + 1))
        mkdir -p "$build/fuzz-findings"
        cp -- "$f" "$build/fuzz-findings/"
        echo "fuzz: $name FINDING ${f##*/} ($(wc -c <"$f") bytes), kept as" \
            "$build/fuzz-findings/${f##*/}; reproduce: $bin $build/fuzz-findings/${f##*/}"
        hexdump_file "$f"
    done
    if [ "$hits" -gt 0 ]; then
        found=1
        echo "fuzz: $name report (from the full log):"
        grep -E -A 12 '^==[0-9]+==ERROR|invariant failed|runtime error' "$log" | head -n 40 || true
    elif [ "$rc" -ne 0 ]; then
        found=1
        echo "fuzz: $name exited with status $rc and left no artifact; last lines:"
        tail -n 20 "$log"
    fi
done

line=$(IFS=,; echo "${summary[*]}" | sed 's/,/, /g')
if [ "$found" -ne 0 ]; then
    echo "fuzz: $line, FINDINGS (see above)"
    exit 1
fi
echo "fuzz: $line, no findings"
