#!/usr/bin/env bash
# Soak: kvroute gateway, and kvroute epp behind Envoy, under a steady load of concurrent
# chat completions (streaming and not) against simulated engines whose faults change at
# random, for DURATION seconds. Prints requests sent / answered / failed per front door, and
# the RSS and open file descriptors of every process at the start and the end.
#
#   scripts/bench/soak.sh                 # 10 minutes
#   DURATION=120 scripts/bench/soak.sh    # 2 minutes
#
# Environment: DURATION (s, 600), CONCURRENCY (streams in flight, 64, split between the
# gateway and Envoy), FAULT_INTERVAL (s between fault changes, 5), TIME_SCALE (engine time
# scale, 0.2), GATEWAY_TIMEOUT (s, --upstream-idle-timeout-s, 5), KVROUTE (binary,
# .build/debug/kvroute), ENVOY (binary, .tools/venv/bin/envoy), PYTHON (python3),
# SEED (fault schedule, random), KEEP_LOGS=1 (keep the work folder).
# Exit status: 0 when every process is still running at the end and no request timed out.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-600}
CONCURRENCY=${CONCURRENCY:-64}
FAULT_INTERVAL=${FAULT_INTERVAL:-5}
TIME_SCALE=${TIME_SCALE:-0.2}
GATEWAY_TIMEOUT=${GATEWAY_TIMEOUT:-5}
KVROUTE=${KVROUTE:-$root/.build/debug/kvroute}
ENVOY=${ENVOY:-$root/.tools/venv/bin/envoy}
PYTHON=${PYTHON:-python3}
SEED=${SEED:-$RANDOM}
ENGINES=3

[ -x "$KVROUTE" ] || { echo "soak: $KVROUTE not found; run swift build first" >&2; exit 2; }
[ -x "$ENVOY" ] || { echo "soak: $ENVOY not found; run scripts/install-test-tools.sh" >&2; exit 2; }

work=$(mktemp -d /tmp/kvroute-soak.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    left=0; for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ $left = 0 ] && break; sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "soak: $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-60) did not exit within 5 s of SIGTERM; killed" >&2
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "soak: logs in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Free loopback ports: ENGINES consecutive ones for the sim, then one each for the rest.
read -r sim_port gw_port grpc_port health_port metrics_port envoy_port admin_port < <("$PYTHON" - "$ENGINES" <<'EOF'
import socket, sys
n = int(sys.argv[1])
def free():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def run_free(k):
    while True:
        base = free()
        ok = True
        for p in range(base, base + k):
            s = socket.socket()
            try: s.bind(("127.0.0.1", p))
            except OSError: ok = False
            finally: s.close()
        if ok and base + k < 65535: return base
print(run_free(n), *(free() for _ in range(6)))
EOF
)
engines=""
for i in $(seq 0 $((ENGINES - 1))); do engines+="${engines:+,}http://127.0.0.1:$((sim_port + i))"; done

wait_ok() { # URL NAME
  for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "soak: $2 did not come up ($1)" >&2; tail -20 "$work/$2.log" >&2; exit 1
}

"$KVROUTE" sim --enable-prompt-tokens-details --engines "$ENGINES" --port "$sim_port" --time-scale "$TIME_SCALE" --num-gpu-blocks 2048 \
  --max-model-len 32768 --hash-seed 0 --log-level error >"$work/sim.log" 2>&1 &
sim_pid=$!; pids+=("$sim_pid")
for i in $(seq 0 $((ENGINES - 1))); do wait_ok "http://127.0.0.1:$((sim_port + i))/health" sim; done

"$KVROUTE" gateway --port "$gw_port" --endpoints "$engines" --upstream-idle-timeout-s "$GATEWAY_TIMEOUT" --upstream-timeout-s 60 \
  --log-level error >"$work/gateway.log" 2>&1 &
gw_pid=$!; pids+=("$gw_pid")
wait_ok "http://127.0.0.1:$gw_port/health" gateway

"$KVROUTE" epp --host 127.0.0.1 --grpc-port "$grpc_port" --health-port "$health_port" --metrics-port "$metrics_port" \
  --endpoints "$engines" --log-level error >"$work/epp.log" 2>&1 &
epp_pid=$!; pids+=("$epp_pid")
wait_ok "http://127.0.0.1:$metrics_port/metrics" epp

"$root/deploy/envoy/render.sh" "$root/deploy/envoy/envoy-epp.yaml" "$envoy_port" "$admin_port" \
  "127.0.0.1:$grpc_port" "$health_port" "$engines" >"$work/envoy.yaml"
"$ENVOY" -c "$work/envoy.yaml" --disable-hot-restart --log-level error --concurrency 2 >"$work/envoy.log" 2>&1 &
envoy_pid=$!; pids+=("$envoy_pid")
wait_ok "http://127.0.0.1:$admin_port/ready" envoy

names=(gateway epp envoy sim)
procs=("$gw_pid" "$epp_pid" "$envoy_pid" "$sim_pid")
snapshot() { # LABEL
  printf '%-8s' "$1"
  for i in "${!procs[@]}"; do
    pid=${procs[$i]}
    if [ -d "/proc/$pid" ]; then
      rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
      fds=$(ls "/proc/$pid/fd" | wc -l)
      printf '  %-7s rss %6d MiB fds %5d' "${names[$i]}" $((rss / 1024)) "$fds"
    else
      printf '  %-7s DEAD                    ' "${names[$i]}"
    fi
  done
  echo
}

# Faults: every FAULT_INTERVAL seconds one random engine gets one random fault, which the
# next round clears. Stalls are finite (longer than the gateway's timeout) so a soak does
# not pile up connections on purpose.
clear='{"fail_rate":0,"stall_rate":0,"invalid_json_rate":0,"truncate_rate":0,"drop_rate":0,"garbage_metrics":"off","slowdown":1,"extra_latency_ms":0,"healthy":true}'
faults=(
  '{"fail_rate":0.3,"fail_status":503}'
  '{"fail_rate":0.3,"fail_status":500}'
  "{\"stall_rate\":0.2,\"stall_ms\":$((GATEWAY_TIMEOUT * 2000))}"
  '{"invalid_json_rate":0.2}'
  '{"truncate_rate":0.2}'
  '{"drop_rate":0.2}'
  '{"garbage_metrics":"mixed"}'
  '{"garbage_metrics":"nan"}'
  '{"slowdown":6}'
  '{"extra_latency_ms":800}'
  '{"healthy":false}'
  reset
)
(
  RANDOM=$SEED
  changes=0
  while :; do
    e=$((RANDOM % ENGINES)); f=${faults[$((RANDOM % ${#faults[@]}))]}
    url="http://127.0.0.1:$((sim_port + e))"
    if [ "$f" = reset ]; then
      code=$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$url/reset_prefix_cache" || true)
    else
      code=$(curl -s -o /dev/null -w '%{http_code}' -XPOST -H "content-type: application/json" "$url/admin/faults" -d "$f" || true)
    fi
    echo "$(date +%T) engine $e $f -> $code" >>"$work/faults.log"
    changes=$((changes + 1)); echo "$changes" >"$work/fault-changes"
    sleep "$FAULT_INTERVAL"
    curl -s -o /dev/null -XPOST -H "content-type: application/json" "$url/admin/faults" -d "$clear" || true
  done
) &
toggler=$!; pids+=("$toggler")

echo "soak: ${DURATION}s, $CONCURRENCY streams (gateway :$gw_port, envoy :$envoy_port → epp :$grpc_port), engines $engines, fault seed $SEED"
# A short warm-up so the start figures include loaded connection pools.
"$PYTHON" "$root/scripts/bench/soak_load.py" --duration 3 --concurrency 8 \
  --target "gateway=http://127.0.0.1:$gw_port" --target "envoy=http://127.0.0.1:$envoy_port" >/dev/null
snapshot start | tee "$work/snapshots"
"$PYTHON" "$root/scripts/bench/soak_load.py" --duration "$DURATION" --concurrency "$CONCURRENCY" \
  --timeout $((GATEWAY_TIMEOUT * 6 + 30)) \
  --target "gateway=http://127.0.0.1:$gw_port" --target "envoy=http://127.0.0.1:$envoy_port" | tee "$work/load.txt" &
load=$!
# Middle snapshots, one a minute, for long runs.
elapsed=0
while kill -0 "$load" 2>/dev/null; do
  sleep 5; elapsed=$((elapsed + 5))
  if [ $((elapsed % 60)) -eq 0 ] && [ "$elapsed" -lt "${DURATION%.*}" ]; then snapshot "${elapsed}s" | tee -a "$work/snapshots"; fi
done
wait "$load" || true
kill "$toggler" 2>/dev/null || true
for e in $(seq 0 $((ENGINES - 1))); do curl -s -o /dev/null -XPOST -H "content-type: application/json" "http://127.0.0.1:$((sim_port + e))/admin/faults" -d "$clear" || true; done
sleep 5  # let stalled and cut exchanges settle
snapshot end | tee -a "$work/snapshots"
echo "fault changes: $(cat "$work/fault-changes" 2>/dev/null || echo 0)"

alive=1
for i in "${!procs[@]}"; do
  if ! kill -0 "${procs[$i]}" 2>/dev/null; then alive=0; echo "soak: ${names[$i]} died; log tail:"; tail -20 "$work/${names[$i]}.log"; fi
done
timeouts=$(awk '/^total/ {for (i = 1; i <= NF; i++) if ($i == "timeout") print $(i + 1)}' "$work/load.txt")
echo "processes alive: $([ $alive = 1 ] && echo yes || echo NO)"
[ $alive = 1 ] && [ "${timeouts:-1}" = 0 ]
