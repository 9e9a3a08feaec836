#!/usr/bin/env bash
# Latency the gateway adds over calling a simulated engine directly, and gateway
# requests/s, with wrk in release mode. Three engines run with --time-scale 0 (no modelled
# GPU time), so the difference is the router's own cost: parse, decide, proxy, stream.
# Usage: scripts/bench/gateway-overhead.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 2; }
if [ -z "${KVROUTE_BIN:-}" ]; then swift build -c release --product kvroute >/dev/null; fi
base=$((20000 + RANDOM % 20000)); gw=$((base + 10))
bin=${KVROUTE_BIN:-.build/release/kvroute}
$bin sim --enable-prompt-tokens-details --engines 3 --port "$base" --time-scale 0 --log-level error & sim=$!
$bin gateway --port "$gw" --endpoints "http://127.0.0.1:$base,http://127.0.0.1:$((base+1)),http://127.0.0.1:$((base+2))" --log-level error & gwpid=$!
trap 'kill $sim $gwpid 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf "localhost:$gw/health" >/dev/null && break; sleep 0.1; done
run() { # label url conns stream
  local out; out=$(STREAM=$4 wrk -t$(( $3 > 1 ? 2 : 1 )) -c"$3" -d"${secs}s" --latency -s scripts/bench/chat.lua "$2")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-34s %6s conns  %10s req/s  p50 %-9s p99 %-9s\n' "$1" "$3" "$rps" "$p50" "$p99"
}
echo "~1,000-token chat prompt, max_tokens 16, ${secs}s per row"
for stream in 0 1; do
  mode=$([ $stream = 1 ] && echo "SSE" || echo "JSON")
  for c in 1 64; do
    run "direct to one engine ($mode)" "http://127.0.0.1:$base" $c $stream
    run "through kvroute gateway ($mode)" "http://127.0.0.1:$gw" $c $stream
  done
done
