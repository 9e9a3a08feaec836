#!/usr/bin/env bash
# Live comparison on the same simulated engines, in one table: kvroute gateway, SGLang's router
# (PyPI sglang-router, cache_aware) and vLLM's router (PyPI vllm-router, cache_aware, plus its
# round_robin as a cache-blind baseline). kvroute bench --mode live sends the same workload
# through each in turn (engines' prefix caches reset between them) and attributes answers by
# x-upstream-host, else x-inference-pod, else the engines' own request counters.
# Usage: scripts/bench/live-peers.sh [workload] [extra kvroute bench flags...]
#   KVROUTE_BIN=path (default .build/release/kvroute if built, else .build/debug/kvroute)
#   TOKENIZER=llama3|bytes4 (the engines' tokenizer, default llama3)
set -euo pipefail
cd "$(dirname "$0")/../.."
workload=${1:-agentic}; shift || true
venv=.tools/venv
for tool in sglang-router vllm-router; do
  [ -x "$venv/bin/$tool" ] || { echo "missing $venv/bin/$tool: $venv/bin/pip install sglang-router vllm-router" >&2; exit 1; }
done
bin=${KVROUTE_BIN:-}
if [ -z "$bin" ]; then
  if [ -x .build/release/kvroute ]; then bin=.build/release/kvroute; else swift build --product kvroute >/dev/null 2>&1; bin=.build/debug/kvroute; fi
fi
echo "kvroute binary: $bin ($("$bin" bench --help >/dev/null 2>&1 && echo ok))"
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 20); do
  base=$((20000 + RANDOM % 20000)); busy=0
  for p in $(seq "$base" $((base + 23))); do if in_use "$p"; then busy=1; break; fi; done
  [ "$busy" = 0 ] && break
done
gw=$((base + 10)); sg=$((base + 11)); vr=$((base + 12)); vrr=$((base + 13))
engines="http://127.0.0.1:$base,http://127.0.0.1:$((base+1)),http://127.0.0.1:$((base+2))"
logs=$(mktemp -d /tmp/kvroute-live-peers.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_up() { for _ in $(seq 300); do curl -sf "localhost:$1/health" >/dev/null && return 0; sleep 0.1; done; echo "port $1 did not come up (logs in $logs)" >&2; return 1; }
# Three engines with vLLM's H100 defaults for the 3B model, in real time.
$bin sim --engines 3 --port "$base" --max-num-seqs 1024 --tokenizer "${TOKENIZER:-llama3}" --hash-seed 0 --log-level error >"$logs/sim.log" 2>&1 & pids+=($!)
for p in $base $((base+1)) $((base+2)); do wait_up "$p"; done
$bin gateway --port "$gw" --endpoints "$engines" --log-level error >"$logs/gateway.log" 2>&1 & pids+=($!)
"$venv/bin/sglang-router" launch --host 127.0.0.1 --port "$sg" --worker-urls ${engines//,/ } --policy cache_aware --prometheus-port $((base + 21)) >"$logs/sglang-router.log" 2>&1 & pids+=($!)
"$venv/bin/vllm-router" --host 127.0.0.1 --port "$vr" --worker-urls ${engines//,/ } --policy cache_aware --prometheus-port $((base + 22)) >"$logs/vllm-router.log" 2>&1 & pids+=($!)
"$venv/bin/vllm-router" --host 127.0.0.1 --port "$vrr" --worker-urls ${engines//,/ } --policy round_robin --prometheus-port $((base + 23)) >"$logs/vllm-router-rr.log" 2>&1 & pids+=($!)
for p in $gw $sg $vr $vrr; do wait_up "$p"; done
$bin bench --mode live --workload "$workload" --size "${SIZE:-0.3}" --engine-urls "$engines" \
  --gateway-url "kvroute=http://127.0.0.1:$gw" \
  --gateway-url "sglang-router-cache_aware=http://127.0.0.1:$sg" \
  --gateway-url "vllm-router-cache_aware=http://127.0.0.1:$vr" \
  --gateway-url "vllm-router-round_robin=http://127.0.0.1:$vrr" "$@"
