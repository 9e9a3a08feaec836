#!/usr/bin/env bash
# What kvroute epp costs behind real Envoy, with wrk in release mode: requests/s (each one an
# ext_proc decision) and latency for
#   - Envoy alone: deploy/envoy/envoy-epp.yaml without its ext_proc filter (the ring hash on
#     x-session-id, the mesh fallback when the picker is down);
#   - Envoy + kvroute epp, headers only (request_body_mode: NONE, as the deployed EnvoyFilter);
#   - Envoy + kvroute epp, full duplex (deploy/envoy/envoy-epp-full-duplex.yaml: the body and
#     the response go through the picker).
# Three engines run with --time-scale 0 (no modelled GPU time), so differences are Envoy's
# and the picker's own cost. Rows without a session id make the picker decide by load
# instead of hashing the session.
# Usage: scripts/bench/envoy-overhead.sh [seconds]   (envoy from PATH or .tools/venv/bin)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 2; }
envoy=$(command -v envoy || echo .tools/venv/bin/envoy)
[ -x "$envoy" ] || { echo "envoy is not installed (scripts/install-test-tools.sh installs it)"; exit 2; }
if [ -z "${KVROUTE_BIN:-}" ]; then swift build -c release --product kvroute >/dev/null; fi
bin=${KVROUTE_BIN:-.build/release/kvroute}
base=$((20000 + RANDOM % 20000))
engines="127.0.0.1:$base,127.0.0.1:$((base+1)),127.0.0.1:$((base+2))"
grpc=$((base + 10)) health=$((base + 11)) metrics=$((base + 12))
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; [ -n "${KEEP_LOGS:-}" ] && cp "$tmp"/*.log /tmp/; rm -rf "$tmp"' EXIT
$bin sim --enable-prompt-tokens-details --engines 3 --port "$base" --time-scale 0 --log-level error & pids+=($!)
$bin epp --grpc-port "$grpc" --health-port "$health" --metrics-port "$metrics" --host 127.0.0.1 \
  --endpoints "http://${engines//,/,http://}" --log-level error & pids+=($!)

# One Envoy per configuration, each on its own ports (listen, listen + 1 for admin).
start_envoy() { # name template mode strip-ext-proc listen-port
  local listen=$5 cfg="$tmp/$1.yaml"
  deploy/envoy/render.sh "$2" "$listen" $((listen + 1)) "127.0.0.1:$grpc" "$health" "$engines" "$3" > "$cfg"
  if [ "$4" = strip ]; then
    awk '/- name: envoy.filters.http.ext_proc/ {skip=1} /- name: envoy.filters.http.router/ {skip=0} !skip' "$cfg" > "$cfg.x" && mv "$cfg.x" "$cfg"
  fi
  "$envoy" -c "$cfg" --disable-hot-restart --log-level ${ENVOY_LOG_LEVEL:-error} --concurrency 2 >"$tmp/$1.log" 2>&1 & pids+=($!)
}
alone=$((base + 20)) headers=$((base + 22)) duplex=$((base + 24))
start_envoy alone deploy/envoy/envoy-epp.yaml NONE strip $alone
start_envoy headers deploy/envoy/envoy-epp.yaml NONE keep $headers
start_envoy duplex deploy/envoy/envoy-epp-full-duplex.yaml NONE keep $duplex
for port in $alone $headers $duplex; do
  for _ in $(seq 100); do curl -sf "localhost:$((port + 1))/ready" >/dev/null && break; sleep 0.1; done
done
for _ in $(seq 100); do curl -sf "localhost:$metrics/metrics" >/dev/null && break; sleep 0.1; done

run() { # label port conns session
  local out rps p50 p99
  out=$(SESSION=$4 wrk -t$(( $3 > 1 ? 2 : 1 )) -c"$3" -d"${secs}s" --latency -s scripts/bench/chat.lua "http://127.0.0.1:$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  local non2xx; non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-44s %4s conns  %10s req/s  p50 %-9s p99 %-9s%s\n' "$1" "$3" "$rps" "$p50" "$p99" "${non2xx:+  non-2xx $non2xx}"
}
echo "~1,000-token chat prompt, max_tokens 16, JSON answers, ${secs}s per row"
for c in ${CONNS:-1 64}; do
  run "Envoy alone (ring hash on x-session-id)" "$alone" $c 1
  run "Envoy + kvroute epp, headers only, session" "$headers" $c 1
  run "Envoy + kvroute epp, headers only, no session" "$headers" $c 0
  run "Envoy + kvroute epp, full duplex" "$duplex" $c 1
done
echo "picker: $(curl -s "localhost:$metrics/metrics" | awk '/^kvroute_epp_streams_total/ {s+=$NF} END {print s+0}') ext_proc streams"
for name in headers duplex; do
  port=$(eval echo "\$$name")
  echo "envoy ($name): $(curl -s "localhost:$((port + 1))/stats" | grep -E 'picked_endpoint.upstream_rq_total|ext_proc.(streams_started|failure_mode_allowed)|kvroute_epp.health_check.(success|failure)' | tr '\n' ' ')"
done
