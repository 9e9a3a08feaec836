#!/usr/bin/env bash
# Longer fuzz runs of kvroute's parsers of outside input (OpenAI bodies, EndpointPickerConfig
# YAML, ext_proc messages, engine /metrics pages, SSE streams, Prometheus replies, Mooncake
# traces, the simulator's request bodies): the fuzz corpus suites, run again and again with
# fresh random seeds and more cases, until a time budget or a number of rounds is spent.
#
#   scripts/fuzz.sh                      # 10 minutes, 20000 cases per suite per round
#   scripts/fuzz.sh --minutes 60 --iterations 100000
#   scripts/fuzz.sh --rounds 3 --seed 42 # reproducible: seeds 42, 43, 44
#   scripts/fuzz.sh --filter FuzzTraceTests
#
# Every round prints its seed. On a failure, trap or hang the script stops and prints the
# seed and, per suite, the input of the last case it started (in .build/fuzz/); rerun one
# case with
#   KVROUTE_FUZZ_SEED=<seed> KVROUTE_FUZZ_CASE=<n> swift test --skip-build --filter <Suite>
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10
rounds=0
iterations=20000
seed=""
filter='Fuzz[A-Za-z]*Tests'
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --iterations) iterations="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --filter) filter="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

swift build --build-tests 2>&1 | grep -E "error|Compiling|Build" | tail -5

crash_dir="$PWD/.build/fuzz"
mkdir -p "$crash_dir"
deadline=$(( $(date +%s) + minutes * 60 ))
# A round may take long with many cases, but never forever: a hang is a failure.
round_limit=$(( 600 + iterations / 20 ))
round=0
while :; do
    round=$(( round + 1 ))
    if [ -n "$seed" ]; then
        s=$(( seed + round - 1 ))
    else
        s=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    fi
    rm -f "$crash_dir"/*.input
    echo "== round $round: KVROUTE_FUZZ_SEED=$s KVROUTE_FUZZ_ITERATIONS=$iterations"
    log="$crash_dir/round.log"
    status=0
    KVROUTE_FUZZ_SEED="$s" KVROUTE_FUZZ_ITERATIONS="$iterations" KVROUTE_FUZZ_CRASH_DIR="$crash_dir" \
        timeout --kill-after=10 "$round_limit" swift test --skip-build --filter "$filter" >"$log" 2>&1 || status=$?
    grep -E "^fuzz |passed after|failed after" "$log" | sed 's/^/   /' || true
    if [ "$status" -ne 0 ]; then
        echo "FAILED (exit $status$([ "$status" -eq 124 ] && echo ', timed out: a hang')) with KVROUTE_FUZZ_SEED=$s; the log is $log"
        grep -E "error|Fatal|crash|signal|Expectation failed|issue" "$log" | head -20 || true
        for f in "$crash_dir"/*.input; do
            [ -e "$f" ] || continue
            echo "-- last input started by $(basename "$f" .input) ($(wc -c <"$f") bytes): $f"
            head -c 600 "$f" | cat -v
            echo
        done
        exit 1
    fi
    if [ "$rounds" -gt 0 ] && [ "$round" -ge "$rounds" ]; then break; fi
    if [ "$rounds" -eq 0 ] && [ "$(date +%s)" -ge "$deadline" ]; then break; fi
done
echo "no failure in $round round(s)"
