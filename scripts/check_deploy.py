#!/usr/bin/env python3
"""Offline checks of kvroute's Kubernetes assets (deploy/kubernetes), run by
scripts/check-deploy.sh and `make check-deploy`.

  check_deploy.py check                 everything below; exit 1 naming each problem
  check_deploy.py validate FILE...      schema-check manifests (a file, or - for stdin)
  check_deploy.py json PATH...           the objects a kustomization (folder) or manifest (file)
                                        holds, as one JSON array (for the Swift tests)
  check_deploy.py envoyfilter [--write] regenerate deploy/kubernetes/istio/envoyfilter-kvroute.yaml
                                        from deploy/envoy/envoy-epp.yaml (without --write:
                                        fail if the committed file differs); the generator is
                                        deploy/envoy/envoyfilter.py

`check` builds every kustomization under deploy/kubernetes with `kubectl kustomize` and
validates every object it renders, plus manifests no kustomization includes (the Tekton
runs): core kinds against the Kubernetes OpenAPI schemas that PyPI `kubernetes-validate`
ships (strict: unknown fields are errors, as `kubectl apply` rejects them), custom resources
against the openAPIV3Schema of their CRD from ../shared/crds (KVROUTE_CRDS_DIR overrides).
It also runs `promtool check rules` on every PrometheusRule's groups, checks that the
EnvoyFilter is what deploy/envoy/envoy-epp.yaml generates, that it names the picker in the
namespace it is deployed to, and, with Envoy installed, that Envoy accepts the configuration
the EnvoyFilter's patches amount to.

The checks live in scripts/deploy_checks/ (schemas, envoyfilter_checks, prometheus_rules,
manifests); this file runs them.
"""

import json
import os
import sys

import yaml

from deploy_checks.common import K8S_VERSION, crds_dir, rel  # (the package puts deploy/envoy on the import path)
from deploy_checks.envoyfilter_checks import check_envoyfilter_namespace, check_envoyfilter_with_envoy
from deploy_checks.manifests import is_component, kustomization_dirs, standalone_manifests
from deploy_checks.prometheus_rules import check_prometheus_rules
from deploy_checks.schemas import Validator, kustomize_build, objects_in
from envoyfilter import ENVOY_TEMPLATE, ENVOYFILTER, check_envoyfilter_generated, generate_envoyfilter


def validate_objects(validator, objects, where, errors):
    counts = {"core": 0, "custom": 0}
    for obj in objects:
        kind, problems = validator.validate(obj)
        if kind in counts:
            counts[kind] += 1
        for p in problems:
            errors.append(f"{where}: {validator.describe(obj)}: {p}")
    return counts


def cmd_validate(paths):
    validator = Validator()
    errors = []
    for path in paths:
        try:
            objects = objects_in(sys.stdin.read(), is_text=True) if path == "-" else objects_in(path)
        except yaml.YAMLError as e:
            errors.append(f"{rel(path)}: not YAML: {e}")
            continue
        counts = validate_objects(validator, objects, rel(path), errors)
        print(f"{rel(path)}: {counts['core']} core, {counts['custom']} custom objects")
        # The CRD leaves Envoy's configuration in an EnvoyFilter unchecked; Envoy checks it.
        check_envoyfilter_with_envoy(objects, rel(path), errors)
    return report(errors)


def cmd_check():
    validator = Validator()
    errors = []
    print(f"CRDs: {crds_dir()} ({len(validator.crds)} kinds/versions); Kubernetes schemas: {K8S_VERSION} (strict)")
    if check_envoyfilter_generated(errors):
        print(f"{rel(ENVOYFILTER)}: matches {rel(ENVOY_TEMPLATE)}")
    seen_rules = set()
    dirs = kustomization_dirs()
    for d in dirs:
        where = rel(d)
        if is_component(d):
            print(f"{where}: component, built and validated in the overlays that use it")
            continue
        text, err = kustomize_build(d)
        if err:
            errors.append(f"{where}: kubectl kustomize failed: {err}")
            continue
        objects = objects_in(text, is_text=True)
        counts = validate_objects(validator, objects, where, errors)
        kinds = {}
        for o in objects:
            kinds[o.get("kind")] = kinds.get(o.get("kind"), 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        print(f"{where}: {len(objects)} objects ({counts['core']} core, {counts['custom']} custom): {summary}")
        check_envoyfilter_namespace(objects, where, errors)
        check_prometheus_rules(objects, where, errors, seen_rules)
        if where.endswith(os.path.join("overlays", "sim")):
            check_envoyfilter_with_envoy(objects, where, errors)
    for path in standalone_manifests(dirs):
        try:
            objects = objects_in(path)
        except yaml.YAMLError as e:
            errors.append(f"{rel(path)}: not YAML: {e}")
            continue
        counts = validate_objects(validator, objects, rel(path), errors)
        print(f"{rel(path)}: {len(objects)} objects ({counts['core']} core, {counts['custom']} custom)")
        check_prometheus_rules(objects, rel(path), errors, seen_rules)
    return report(errors)


def report(errors):
    if errors:
        for e in errors:
            print(f"check-deploy: {e}", file=sys.stderr)
        print(f"check-deploy: FAILED ({len(errors)} problems)", file=sys.stderr)
        return 1
    print("check-deploy: OK")
    return 0


def main(argv):
    if not argv or argv[0] == "check":
        return cmd_check()
    if argv[0] == "validate" and len(argv) > 1:
        return cmd_validate(argv[1:])
    if argv[0] == "json" and len(argv) > 1:
        objects = []
        for path in argv[1:]:
            if os.path.isdir(path):
                text, err = kustomize_build(path)
                if err:
                    print(f"check-deploy: {rel(path)}: kubectl kustomize failed: {err}", file=sys.stderr)
                    return 1
                objects += objects_in(text, is_text=True)
            else:
                objects += objects_in(path)
        json.dump(objects, sys.stdout, indent=1)
        print()
        return 0
    if argv[0] == "envoyfilter":
        if argv[1:] == ["--write"]:
            with open(ENVOYFILTER, "w") as f:
                f.write(generate_envoyfilter())
            print(f"wrote {rel(ENVOYFILTER)}")
            return 0
        errors = []
        check_envoyfilter_generated(errors)
        return report(errors)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
