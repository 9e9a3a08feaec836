#!/usr/bin/env bash
# kvroute gateway against SGLang's router (PyPI sglang-router, cache_aware policy), live, on
# the same simulated engines and the same workload, in one report: hit rate, TTFT p50/p99.
# Installs sglang-router into .tools/venv if missing. Everything runs on loopback.
# Usage: scripts/bench/compare-sglang.sh [workload] [extra kvroute bench flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
workload=${1:-shared-prefix}; shift || true
venv=.tools/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import sglang_router' 2>/dev/null || "$venv/bin/python" -m pip install --quiet sglang-router
router="$venv/bin/sglang-router launch"
[ -x "$venv/bin/sglang-router" ] || router="$venv/bin/python -m sglang_router.launch_router"
if [ -z "${KVROUTE_BIN:-}" ]; then swift build -c release --product kvroute >/dev/null; fi
bin=${KVROUTE_BIN:-.build/release/kvroute}
base=$((20000 + RANDOM % 20000)); gw=$((base + 10)); sg=$((base + 11))
engines="http://127.0.0.1:$base,http://127.0.0.1:$((base+1)),http://127.0.0.1:$((base+2))"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# Engines sized so the workload's prefixes fit the cluster's caches but not one engine's.
$bin sim --enable-prompt-tokens-details --engines 3 --port "$base" --num-gpu-blocks 1200 --time-scale 0.2 --log-level error & pids+=($!)
for p in $base $((base+1)) $((base+2)); do for _ in $(seq 100); do curl -sf "localhost:$p/health" >/dev/null && break; sleep 0.1; done; done
$bin gateway --port "$gw" --endpoints "$engines" --log-level error & pids+=($!)
$router --host 127.0.0.1 --port "$sg" --worker-urls ${engines//,/ } --policy cache_aware >/tmp/kvroute-sglang-router.log 2>&1 & pids+=($!)
for p in $gw $sg; do for _ in $(seq 200); do curl -sf "localhost:$p/health" >/dev/null && break; sleep 0.1; done; done
$bin bench --mode live --workload "$workload" --groups 12 --per-group 8 --qps 8 --engines 3 --num-gpu-blocks 1200 \
  --engine-urls "$engines" --gateway-url "kvroute=http://127.0.0.1:$gw" --gateway-url "sglang-cache-aware=http://127.0.0.1:$sg" "$@"

# Added latency: the same three engines with no modelled GPU time (--time-scale 0), called
# directly, through kvroute and through sglang-router, with wrk (p50/p99 and requests/s).
command -v wrk >/dev/null || { echo "(wrk not installed: skipping the added-latency table)"; exit 0; }
cleanup; pids=()
base=$((base + 100)); gw=$((base + 10)); sg=$((base + 11))
engines="http://127.0.0.1:$base,http://127.0.0.1:$((base+1)),http://127.0.0.1:$((base+2))"
$bin sim --enable-prompt-tokens-details --engines 3 --port "$base" --time-scale 0 --log-level error & pids+=($!)
for p in $base $((base+1)) $((base+2)); do for _ in $(seq 100); do curl -sf "localhost:$p/health" >/dev/null && break; sleep 0.1; done; done
$bin gateway --port "$gw" --endpoints "$engines" --log-level error & pids+=($!)
$router --host 127.0.0.1 --port "$sg" --worker-urls ${engines//,/ } --policy cache_aware >/tmp/kvroute-sglang-router.log 2>&1 & pids+=($!)
for p in $gw $sg; do for _ in $(seq 200); do curl -sf "localhost:$p/health" >/dev/null && break; sleep 0.1; done; done
echo
echo "added latency (~1,000-token chat, max_tokens 16, engines with --time-scale 0, 8 s per row):"
for c in 1 64; do
  for target in "direct:$base" "kvroute:$gw" "sglang-cache-aware:$sg"; do
    out=$(wrk -t$(( c > 1 ? 2 : 1 )) -c$c -d8s --latency -s scripts/bench/chat.lua "http://127.0.0.1:${target#*:}")
    printf '  %-20s %3s conns  %9s req/s  p50 %-9s p99 %-9s\n' "${target%%:*}" $c \
      "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
  done
done
