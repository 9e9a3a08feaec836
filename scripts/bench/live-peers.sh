#!/usr/bin/env bash
# Live comparison on the same simulated engines, in one table: kvroute gateway (its default
# profile, and --policy precise following the engines' KV events), SGLang's router (PyPI
# sglang-router, cache_aware), vLLM's router (PyPI vllm-router: cache_aware, kv_aware following
# the same KV events, and round_robin as a cache-blind baseline). kvroute bench --mode live
# sends the same workload through each in turn (engines' prefix caches reset between them) and
# attributes answers by x-upstream-host, else x-inference-pod, else the engines' own request
# counters.
# The engines publish vLLM KV events (vLLM 0.32's layout, integer block hashes) on the empty
# topic, vLLM's default: vllm-router's --kv-event-source reads only that topic and drops
# batches sent under any other (llm-d's kv@<pod>@<model>, for one) without a word.
# Usage: scripts/bench/live-peers.sh [workload] [extra kvroute bench flags...]
#   KVROUTE_BIN=path (default .build/release/kvroute if built, else .build/debug/kvroute)
#   TOKENIZER=llama3|bytes4 (the engines' tokenizer, default llama3)
#   SIZE=0.3 (the workload's size)
#   PEERS="kvroute kvroute-precise ..." (which rows to run, default all of: kvroute
#     kvroute-precise sglang-router-cache_aware vllm-router-cache_aware vllm-router-kv_aware
#     vllm-router-round_robin)
set -euo pipefail
cd "$(dirname "$0")/../.."
workload=${1:-agentic}; shift || true
venv=.tools/venv
all_peers="kvroute kvroute-precise sglang-router-cache_aware vllm-router-cache_aware vllm-router-kv_aware vllm-router-round_robin"
peers=" ${PEERS:-$all_peers} "
for tool in sglang-router vllm-router; do
  [ -x "$venv/bin/$tool" ] || { echo "missing $venv/bin/$tool: $venv/bin/pip install sglang-router vllm-router" >&2; exit 1; }
done
bin=${KVROUTE_BIN:-}
if [ -z "$bin" ]; then
  if [ -x .build/release/kvroute ]; then bin=.build/release/kvroute; else swift build --product kvroute >/dev/null 2>&1; bin=.build/debug/kvroute; fi
fi
echo "kvroute binary: $bin ($("$bin" bench --help >/dev/null 2>&1 && echo ok))"
tokenizer=${TOKENIZER:-llama3}
model=meta-llama/Llama-3.2-3B-Instruct # kvroute bench's model
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Ports from base: engines +0..2, routers +10..15, router metrics +21..26, KV events +30..32,
# KV event replay +33..35.
for _ in $(seq 20); do
  base=$((20000 + RANDOM % 20000)); busy=0
  for p in $(seq "$base" $((base + 35))); do if in_use "$p"; then busy=1; break; fi; done
  [ "$busy" = 0 ] && break
done
declare -A port=(
  [kvroute]=$((base + 10)) [kvroute-precise]=$((base + 11)) [sglang-router-cache_aware]=$((base + 12))
  [vllm-router-cache_aware]=$((base + 13)) [vllm-router-kv_aware]=$((base + 14)) [vllm-router-round_robin]=$((base + 15))
)
urls=(); events=(); replays=()
for i in 0 1 2; do
  urls+=("http://127.0.0.1:$((base + i))"); events+=("tcp://127.0.0.1:$((base + 30 + i))"); replays+=("tcp://127.0.0.1:$((base + 33 + i))")
done
engines=$(IFS=,; echo "${urls[*]}")
logs=$(mktemp -d /tmp/kvroute-live-peers.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_up() { for _ in $(seq 300); do curl -sf "localhost:$1/health" >/dev/null && return 0; sleep 0.1; done; echo "port $1 did not come up (logs in $logs)" >&2; return 1; }
wanted() { [[ "$peers" == *" $1 "* ]]; }
# Three engines with vLLM's H100 defaults for the 3B model, in real time, publishing KV events
# (engine i on the endpoint's port + i, replay likewise).
kv="{\"enable_kv_cache_events\":true,\"publisher\":\"zmq\",\"endpoint\":\"tcp://*:$((base + 30))\",\"replay_endpoint\":\"tcp://*:$((base + 33))\"}"
# Answers report cached tokens (vLLM's --enable-prompt-tokens-details) where the sim has the flag.
details=(); [[ "$("$bin" sim --help 2>/dev/null)" == *--enable-prompt-tokens-details* ]] && details=(--enable-prompt-tokens-details)
$bin sim --engines 3 --port "$base" --model "$model" --max-num-seqs 1024 --tokenizer "$tokenizer" --hash-seed 0 --kv-events-config "$kv" \
  "${details[@]}" --log-level error >"$logs/sim.log" 2>&1 & pids+=($!)
for p in $base $((base+1)) $((base+2)); do wait_up "$p"; done
vllm_router() { # label policy [flags...]
  local label=$1 policy=$2; shift 2
  "$venv/bin/vllm-router" --host 127.0.0.1 --port "${port[$label]}" --worker-urls "${urls[@]}" --policy "$policy" \
    --prometheus-port $((port[$label] + 11)) "$@" >"$logs/$label.log" 2>&1 & pids+=($!)
}
gateways=()
if wanted kvroute; then
  $bin gateway --port "${port[kvroute]}" --endpoints "$engines" --log-level error >"$logs/kvroute.log" 2>&1 & pids+=($!)
fi
if wanted kvroute-precise; then
  $bin gateway --port "${port[kvroute-precise]}" --endpoints "$engines" --policy precise --tokenizer "$tokenizer" \
    --kv-events-endpoints "$(IFS=,; echo "${events[*]}")" --kv-events-replay-port-offset 33 \
    --log-level error >"$logs/kvroute-precise.log" 2>&1 & pids+=($!)
fi
if wanted sglang-router-cache_aware; then
  "$venv/bin/sglang-router" launch --host 127.0.0.1 --port "${port[sglang-router-cache_aware]}" --worker-urls "${urls[@]}" \
    --policy cache_aware --prometheus-port $((port[sglang-router-cache_aware] + 11)) >"$logs/sglang-router.log" 2>&1 & pids+=($!)
fi
wanted vllm-router-cache_aware && vllm_router vllm-router-cache_aware cache_aware
if wanted vllm-router-kv_aware; then
  sources=()
  for i in 0 1 2; do sources+=(--kv-event-source "${urls[$i]}=${events[$i]}" --kv-event-replay-source "${urls[$i]}=${replays[$i]}"); done
  vllm_router vllm-router-kv_aware kv_aware "${sources[@]}" --kv-event-block-size 16 \
    --kv-event-model "$model"
fi
wanted vllm-router-round_robin && vllm_router vllm-router-round_robin round_robin
for label in $all_peers; do
  wanted "$label" || continue
  wait_up "${port[$label]}"
  gateways+=(--gateway-url "$label=http://127.0.0.1:${port[$label]}")
done
[ ${#gateways[@]} -gt 0 ] || { echo "PEERS names none of: $all_peers" >&2; exit 1; }
# The KV-event subscribers connect once their router is up; give ZMQ a moment to join.
sleep 1
echo "logs in $logs"
$bin bench --mode live --workload "$workload" --size "${SIZE:-0.3}" --engine-urls "$engines" "${gateways[@]}" "$@"
