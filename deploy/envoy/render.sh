#!/usr/bin/env bash
# Renders an Envoy configuration from this folder with real ports:
#   deploy/envoy/render.sh TEMPLATE LISTEN_PORT ADMIN_PORT EPP_HOST:EPP_PORT ENGINE_HOST:PORT,...
set -euo pipefail
template=$1 listen=$2 admin=$3 epp=$4 engines=$5
list=""
IFS=, read -ra hosts <<<"$engines"
for h in "${hosts[@]}"; do
  list+="[{endpoint: {address: {socket_address: {address: ${h%:*}, port_value: ${h##*:}}}}}]"
done
list=${list//\]\[/, }
sed -e "s/LISTEN_PORT/$listen/" -e "s/ADMIN_PORT/$admin/" -e "s/EPP_HOST/${epp%:*}/" -e "s/EPP_PORT/${epp##*:}/" \
    -e "s|ENGINE_ENDPOINTS|$list|" "$template"
