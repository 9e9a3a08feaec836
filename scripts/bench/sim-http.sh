#!/usr/bin/env bash
# HTTP requests/s of one simulated engine at 64 concurrent clients (wrk), in release mode.
# The engine runs with --time-scale 0 so the figure is the HTTP + engine-model cost, not
# the modelled GPU time. Usage: scripts/bench/sim-http.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}; conns=${2:-64}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 2; }
if [ -z "${KVROUTE_BIN:-}" ]; then swift build -c release --product kvroute >/dev/null; fi
port=$((20000 + RANDOM % 20000))
"${KVROUTE_BIN:-.build/release/kvroute}" sim --enable-prompt-tokens-details --port "$port" --time-scale 0 --log-level error &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf "localhost:$port/health" >/dev/null && break; sleep 0.1; done
echo "one sim engine, $conns connections, ${secs}s, max_tokens 16, ~1,000-token prompt:"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s scripts/bench/chat.lua "http://127.0.0.1:$port"
