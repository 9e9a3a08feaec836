#!/usr/bin/env bash
# Offline validation of the Kubernetes assets in deploy/kubernetes (`make check-deploy`; the
# test command runs it too). No cluster needed: kubectl kustomize builds every
# kustomization, the objects are checked against the Kubernetes schemas (PyPI
# kubernetes-validate) and the CRDs in ../shared/crds (KVROUTE_CRDS_DIR overrides), promtool
# checks the alert rules, and the EnvoyFilter must be what deploy/envoy/envoy-epp.yaml
# generates. scripts/check_deploy.py says more; its subcommands pass through:
#   scripts/check-deploy.sh                          everything (exit 1 naming each problem)
#   scripts/check-deploy.sh validate FILE...         schema-check some manifests
#   scripts/check-deploy.sh envoyfilter --write      regenerate the EnvoyFilter
# Exit 3: the Python packages are missing (scripts/install-test-tools.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.tools/venv/bin/python
if ! [ -x "$py" ] || ! "$py" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
    echo "check-deploy: $py lacks kubernetes-validate, jsonschema or PyYAML; run scripts/install-test-tools.sh" >&2
    exit 3
fi
export PATH="$PWD/.tools/venv/bin:$PATH"
exec "$py" scripts/check_deploy.py "$@"
