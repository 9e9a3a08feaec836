#!/usr/bin/env bash
# Prints one of the kustomizations in this folder, rendered into another namespace and
# optionally with another kvroute image:
#   deploy/kubernetes/render.sh DIR [NAMESPACE] [IMAGE] | kubectl apply -f -
#   deploy/kubernetes/render.sh overlays/sim team-a registry.example/kvroute:dev
# DIR is relative to this folder (overlays/sim, overlays/vllm, tekton, monitoring);
# NAMESPACE defaults to llm-d. A kustomization in a scratch folder here wraps DIR, sets the
# namespace, and re-points the EnvoyFilter at the picker in that namespace.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] && [ -d "$here/$1" ] || { sed -n '2,8p' "$0" >&2; exit 2; }
dir=${1%/} namespace=${2:-llm-d} image=${3:-}
kubectl=${KUBECTL:-kubectl}

work=$(mktemp -d "$here/.render.XXXXXX")
trap 'rm -rf "$work"' EXIT
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "namespace: $namespace"
  echo "resources: [../$dir]"
  # The wrapper's own images transformer needs to know where Tekton keeps step images.
  echo "configurations: [kustomizeconfig.yaml]"
  if [ -n "$image" ]; then
    # NAME[:TAG][@DIGEST]; a registry's :port is part of the name.
    name=$image tag="" digest=""
    case $name in *@*) digest=${name#*@} name=${name%@*} ;; esac
    case ${name##*/} in *:*) tag=${name##*:} name=${name%:*} ;; esac
    echo "images: [{name: ghcr.io/kvroute/kvroute, newName: \"$name\"${tag:+, newTag: \"$tag\"}${digest:+, digest: \"$digest\"}}]"
  fi
} > "$work/kustomization.yaml"
cp "$here/tekton/kustomizeconfig.yaml" "$work/kustomizeconfig.yaml"
if "$kubectl" kustomize "$here/$dir" | grep -q '^kind: EnvoyFilter$'; then
  # As in the overlays: the picker's DNS name in the EnvoyFilter follows the namespace.
  cat >> "$work/kustomization.yaml" <<'YAML'
replacements:
- source: {kind: Service, name: kvroute-epp, fieldPath: metadata.namespace}
  targets:
  - select: {kind: EnvoyFilter, name: kvroute-epp}
    fieldPaths:
    - spec.configPatches.0.patch.value.load_assignment.endpoints.0.lb_endpoints.0.endpoint.address.socket_address.address
    options: {delimiter: ".", index: 1}
YAML
fi
"$kubectl" kustomize "$work"
