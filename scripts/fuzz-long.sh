#!/usr/bin/env bash
# Fuzzing at depth (`make fuzz-long`): every libFuzzer target of tests/fuzz/
# for FUZZ_SECS seconds each, the grown corpora merged back into
# tests/fuzz/corpus/<name>/.
#
# `make test-fuzz` runs each target for 15 s on a throw-away copy of its seeds
# (a CI check); this is the long run whose findings are kept. For each target:
#   1. a fresh work copy of tests/fuzz/corpus/<name>/ in $FUZZ_WORK/<name>/,
#   2. the fuzzer on it for FUZZ_SECS with corpus/<name>.dict when present
#      (the same limits as ctest's run: 10 s per input, 2 GB of memory),
#   3. `-merge=1` of the work corpus into tests/fuzz/corpus/<name>/: only
#      inputs that add coverage the corpus does not have yet are copied (the
#      smallest of those that cover a feature), so the corpus grows by what is
#      new, not by everything tried.
# A crash, sanitizer report, leak, timeout or OOM stops the run: no further
# target is started (those already running finish), nothing of the failed
# target is merged, and the script exits 1 naming the input(s) under
# $FUZZ_WORK/<name>/artifacts/ and the command that replays one.
#
# Environment:
#   FUZZ_SECS     seconds per target (default 3600: one CPU-hour each)
#   FUZZ_JOBS     targets run at once (default 1; each uses one core)
#   FUZZ_TARGETS  names to run, e.g. "http_parser sse" (default: every fuzz_*.c)
#   FUZZ_SEED     libFuzzer -seed (default 0: a random seed per run)
#   FUZZ_BUILD    the build directory (default build-fuzz; configured and built here)
#   FUZZ_WORK     work directories and logs (default $FUZZ_BUILD/fuzz-long)
#   FUZZ_MERGE    0 = do not write tests/fuzz/corpus (default 1)
#   FUZZ_NO_BUILD 1 = use $FUZZ_BUILD as it is (default 0: configure and build it)
# A summary (per target: result, executions, coverage, inputs added) is
# printed at the end and kept in $FUZZ_WORK/summary.txt.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${FUZZ_SECS:-3600}
JOBS=${FUZZ_JOBS:-1}
SEED=${FUZZ_SEED:-0}
BUILD=${FUZZ_BUILD:-build-fuzz}
WORK=${FUZZ_WORK:-$BUILD/fuzz-long}
MERGE=${FUZZ_MERGE:-1}
CORPUS=$ROOT/tests/fuzz/corpus

case "$SECS$JOBS" in *[!0-9]*) echo "fuzz-long: FUZZ_SECS and FUZZ_JOBS are whole numbers" >&2; exit 2 ;; esac
[ "$JOBS" -ge 1 ] || JOBS=1

if [ -n "${FUZZ_TARGETS:-}" ]; then
    TARGETS=$FUZZ_TARGETS
else
    TARGETS=$(cd tests/fuzz && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
fi
for t in $TARGETS; do
    [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz-long: no target '$t' (tests/fuzz/fuzz_$t.c)" >&2; exit 2; }
    [ -d "$CORPUS/$t" ] || { echo "fuzz-long: no seed corpus $CORPUS/$t" >&2; exit 2; }
done

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
    echo "fuzz-long: building $BUILD"
    cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSKULD_FUZZ=ON \
        >/dev/null || exit 1
    cmake --build "$BUILD" -j"$(nproc)" >/dev/null || { cmake --build "$BUILD" -j1; exit 1; }
fi
BUILD=$(cd "$BUILD" && pwd) || exit 1
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
rm -f "$WORK"/*.result

# One target: fuzz, then merge. Writes $WORK/<t>.result (one summary line).
run_target() {
    local t=$1 bin=$BUILD/tests/fuzz/fuzz_$1 w=$WORK/$1
    rm -rf "$w"
    mkdir -p "$w/corpus" "$w/artifacts"
    cp "$CORPUS/$t"/* "$w/corpus/"
    local dict=() before after rc
    [ -f "$CORPUS/$t.dict" ] && dict=(-dict="$CORPUS/$t.dict")
    before=$(ls "$CORPUS/$t" | wc -l)
    "$bin" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -seed="$SEED" \
        -artifact_prefix="$w/artifacts/" -print_final_stats=1 "${dict[@]}" "$w/corpus" \
        >"$w/fuzz.log" 2>&1
    rc=$?
    local execs cov
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/fuzz.log" | tail -1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$w/fuzz.log" | tail -1)
    if [ $rc -ne 0 ]; then
        local found
        found=$(ls "$w"/artifacts/ 2>/dev/null | sed "s|^|$w/artifacts/|" | tr '\n' ' ')
        printf '%-16s FAILED (exit %d) after %s runs; input(s): %s; log: %s; replay: %s <input>\n' \
            "$t" "$rc" "${execs:-?}" "${found:-none}" "$w/fuzz.log" "$bin" >"$WORK/$t.result"
        return 1
    fi
    local added=0
    if [ "$MERGE" = 1 ]; then
        if ! "$bin" -merge=1 -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$w/artifacts/" \
            "${dict[@]}" "$CORPUS/$t" "$w/corpus" >"$w/merge.log" 2>&1; then
            printf '%-16s FAILED merging (see %s)\n' "$t" "$w/merge.log" >"$WORK/$t.result"
            return 1
        fi
        after=$(ls "$CORPUS/$t" | wc -l)
        added=$((after - before))
    fi
    printf '%-16s ok  %12s runs in %ss  %-22s  corpus %d + %d new\n' \
        "$t" "${execs:-?}" "$SECS" "${cov:-}" "$before" "$added" >"$WORK/$t.result"
}

echo "fuzz-long: $(echo $TARGETS | wc -w) target(s), ${SECS}s each, $JOBS at a time, work in $WORK"
failed=0
running=0
for t in $TARGETS; do
    if [ $failed -ne 0 ]; then break; fi
    if [ $running -ge "$JOBS" ]; then
        wait -n || failed=1
        running=$((running - 1))
        [ $failed -ne 0 ] && break
    fi
    echo "fuzz-long: $t ($(date -u +%H:%M:%S))"
    run_target "$t" &
    running=$((running + 1))
done
while [ $running -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done

{
    echo "fuzz-long $(date -u +%Y-%m-%dT%H:%MZ), ${SECS}s per target, seed $SEED, $(git rev-parse --short HEAD 2>/dev/null)"
    for t in $TARGETS; do
        [ -f "$WORK/$t.result" ] && cat "$WORK/$t.result"
    done
} | tee "$WORK/summary.txt"
if [ $failed -ne 0 ]; then
    echo "fuzz-long: FAILED (above); nothing of a failed target was merged" >&2
    exit 1
fi
if [ "$MERGE" = 1 ]; then
    echo "fuzz-long: corpora merged into tests/fuzz/corpus/ ($(du -sh --apparent-size "$CORPUS" | cut -f1) now); review with git status"
fi
