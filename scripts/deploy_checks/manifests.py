"""Which manifests deploy/kubernetes holds: the kustomizations, and the files none of them
includes."""

import os

import yaml

from .common import KUBE_DIR


def kustomization_dirs():
    dirs = []
    for d, subdirs, files in os.walk(KUBE_DIR):
        subdirs.sort()
        if "kustomization.yaml" in files or "kustomization.yml" in files:
            dirs.append(d)
    return dirs


def is_component(d):
    """A kustomize Component (kind: Component) is built only by the overlays that use it."""
    for name in ("kustomization.yaml", "kustomization.yml"):
        path = os.path.join(d, name)
        if os.path.exists(path):
            with open(path) as f:
                return (yaml.safe_load(f) or {}).get("kind") == "Component"
    return False


def files_used_by_kustomizations(dirs):
    used = set()
    for d in dirs:
        name = "kustomization.yaml" if os.path.exists(os.path.join(d, "kustomization.yaml")) else "kustomization.yml"
        with open(os.path.join(d, name)) as f:
            k = yaml.safe_load(f) or {}
        entries = [e for key in ("resources", "components", "configurations", "crds", "transformers", "generators")
                   for e in k.get(key, []) if isinstance(e, str)]
        entries += [p["path"] for p in k.get("patches", []) if isinstance(p, dict) and "path" in p]
        entries += [r["path"] for r in k.get("replacements", []) if isinstance(r, dict) and "path" in r]
        for gen in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
            entries += [e.split("=", 1)[-1] for e in gen.get("files", [])]
        for e in entries:
            used.add(os.path.normpath(os.path.join(d, e)))
    return used


def standalone_manifests(dirs):
    """YAML files under deploy/kubernetes that no kustomization includes (e.g. the Tekton
    runs, created with `kubectl create` because they use generateName)."""
    used = files_used_by_kustomizations(dirs)
    found = []
    for d, subdirs, files in os.walk(KUBE_DIR):
        subdirs.sort()
        for name in sorted(files):
            path = os.path.normpath(os.path.join(d, name))
            if not name.endswith((".yaml", ".yml")) or name.startswith("kustomization.") or path in used:
                continue
            # promtool unit tests of the alert rules (run by Tests/KVRouteDeployTests), not manifests.
            if name.endswith("_test.yaml"):
                continue
            found.append(path)
    return found
