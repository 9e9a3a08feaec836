#!/usr/bin/env bash
# Fills an Envoy configuration from this folder with real addresses and prints it:
#   deploy/envoy/render.sh TEMPLATE LISTEN_PORT ADMIN_PORT EPP_HOST:EPP_PORT EPP_HEALTH_PORT \
#       ENGINE_HOST:PORT[,ENGINE_HOST:PORT...] [REQUEST_BODY_MODE]
# REQUEST_BODY_MODE (envoy-epp.yaml only): NONE (default), BUFFERED or STREAMED.
# Example: deploy/envoy/render.sh deploy/envoy/envoy-epp.yaml 8080 9901 127.0.0.1:9002 9003 \
#   127.0.0.1:18001,127.0.0.1:18002,127.0.0.1:18003 > /tmp/envoy.yaml && envoy -c /tmp/envoy.yaml
set -euo pipefail
[ $# -ge 6 ] || { sed -n '2,7p' "$0"; exit 2; }
template=$1 listen=$2 admin=$3 epp=$4 health=$5 engines=$6 mode=${7:-NONE}
list=""
IFS=, read -ra hosts <<<"$engines"
for h in "${hosts[@]}"; do
  h=${h#http://}
  list+="${list:+, }{endpoint: {address: {socket_address: {address: ${h%:*}, port_value: ${h##*:}}}}}"
done
sed -e "s/LISTEN_PORT/$listen/" -e "s/ADMIN_PORT/$admin/" -e "s/EPP_HOST/${epp%:*}/" \
    -e "s/EPP_HEALTH_PORT/$health/" -e "s/EPP_PORT/${epp##*:}/" \
    -e "s/REQUEST_BODY_MODE/$mode/" -e "s|ENGINE_ENDPOINTS|[$list]|g" "$template"
