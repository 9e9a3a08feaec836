#!/usr/bin/env python3
"""Offline checks of kvroute's Kubernetes assets (deploy/kubernetes), run by
scripts/check-deploy.sh and `make check-deploy`.

  check_deploy.py check                 everything below; exit 1 naming each problem
  check_deploy.py validate FILE...      schema-check manifests (a file, or - for stdin)
  check_deploy.py json PATH...           the objects a kustomization (folder) or manifest (file)
                                        holds, as one JSON array (for the Swift tests)
  check_deploy.py envoyfilter [--write] regenerate deploy/kubernetes/istio/envoyfilter-kvroute.yaml
                                        from deploy/envoy/envoy-epp.yaml (without --write:
                                        fail if the committed file differs)

`check` builds every kustomization under deploy/kubernetes with `kubectl kustomize` and
validates every object it renders, plus manifests no kustomization includes (the Tekton
runs): core kinds against the Kubernetes OpenAPI schemas that PyPI `kubernetes-validate`
ships (strict: unknown fields are errors, as `kubectl apply` rejects them), custom resources
against the openAPIV3Schema of their CRD from ../shared/crds (KVROUTE_CRDS_DIR overrides).
It also runs `promtool check rules` on every PrometheusRule's groups, checks that the
EnvoyFilter is what deploy/envoy/envoy-epp.yaml generates, that it names the picker in the
namespace it is deployed to, and, with Envoy installed, that Envoy accepts the configuration
the EnvoyFilter's patches amount to.
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KUBE_DIR = os.path.join(ROOT, "deploy", "kubernetes")
# KVROUTE_ENVOY_TEMPLATE lets a test show that a changed template is noticed.
ENVOY_TEMPLATE = os.environ.get("KVROUTE_ENVOY_TEMPLATE") or os.path.join(ROOT, "deploy", "envoy", "envoy-epp.yaml")
ENVOYFILTER = os.path.join(KUBE_DIR, "istio", "envoyfilter-kvroute.yaml")
K8S_VERSION = os.environ.get("KVROUTE_K8S_VERSION", "1.32")
REQUIRE_PEERS = os.environ.get("KVROUTE_REQUIRE_PEERS") == "1"

# Where the generated EnvoyFilter finds the picker; the overlays' replacements rewrite the
# namespace part (and check_envoyfilter_namespace checks they did).
EPP_SERVICE = "kvroute-epp"
EPP_NAMESPACE = "llm-d"
EPP_PORT = 9002
EPP_HEALTH_PORT = 9003
GATEWAY_NAME = "llm-d-infra-inference-gateway"


def crds_dir():
    return os.environ.get("KVROUTE_CRDS_DIR") or os.path.join(os.path.dirname(ROOT), "shared", "crds")


def rel(path):
    return os.path.relpath(path, ROOT) if os.path.isabs(path) else path


def which(name):
    for d in [os.path.join(ROOT, ".tools", "venv", "bin"), os.path.join(ROOT, ".tools", "bin")]:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


# ---------------------------------------------------------------------------------------
# CRD openAPIV3Schema → JSON Schema


def crd_schema_to_json_schema(node, root=False):
    """Converts a CRD's structural schema to a JSON Schema with the API server's semantics.

    - nullable: true admits null;
    - x-kubernetes-int-or-string: an integer or a string;
    - x-kubernetes-preserve-unknown-fields: any further field is kept, so none is rejected;
    - an object schema with `properties` and no additionalProperties otherwise admits only
      those properties: the API server prunes unknown fields and `kubectl apply` (strict
      field validation) reports them, so a misspelt field is an error here too;
    - x-kubernetes-embedded-resource objects and the root also admit apiVersion, kind,
      metadata;
    - allOf/anyOf/oneOf/not only validate values (structural schemas keep the shape at the
      top level), so objects inside them are not closed.
    """
    return _convert(node, root=root, closable=True)


def _convert(node, root=False, closable=True):
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {k: _convert(v) for k, v in value.items()}
        elif key == "items":
            out[key] = _convert(value) if isinstance(value, dict) else [_convert(v) for v in value]
        elif key == "additionalProperties":
            out[key] = _convert(value) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_convert(v, closable=False) for v in value]
        elif key == "not":
            out[key] = _convert(value, closable=False)
        elif key.startswith("x-kubernetes-") or key in ("nullable", "description", "example", "externalDocs"):
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        if "anyOf" not in out:
            out["type"] = ["integer", "string"]
    if root or node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        if root:
            props["metadata"] = OBJECT_META
        else:
            props.setdefault("metadata", {"type": "object"})
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if closable and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if node.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        elif isinstance(t, list) and "null" not in t:
            out["type"] = t + ["null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    return out


STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# The ObjectMeta fields a manifest sets; what the server fills in (uid, resourceVersion, …)
# has no place in a committed manifest.
OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
    },
}


def load_crd_schemas(directory):
    """(apiVersion, kind) → JSON Schema, for every served version of every CRD in directory."""
    schemas = {}
    if not os.path.isdir(directory):
        raise SystemExit(f"check-deploy: no CRDs at {directory} (set KVROUTE_CRDS_DIR)")
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(directory, name)) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    if not version.get("served", True):
                        continue
                    schema = (version.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
                    if schema is None:
                        continue
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schemas[key] = crd_schema_to_json_schema(schema, root=True)
    return schemas


# ---------------------------------------------------------------------------------------
# Validation


class Validator:
    def __init__(self):
        self.crds = load_crd_schemas(crds_dir())
        import kubernetes_validate.utils as kv  # noqa: E402 (imported late: slow import)

        self.kv = kv
        self._validators = {}

    def describe(self, obj):
        meta = obj.get("metadata") or {}
        name = meta.get("name") or meta.get("generateName") or "?"
        return f"{obj.get('kind', '?')}/{name}"

    def validate(self, obj):
        """Returns (kind of check, [error messages])."""
        if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
            return "none", ["not a Kubernetes object (no apiVersion or kind)"]
        key = (obj["apiVersion"], obj["kind"])
        if key in self.crds:
            v = self._validators.get(key)
            if v is None:
                v = self._validators[key] = jsonschema.Draft7Validator(self.crds[key])
            errors = sorted(v.iter_errors(obj), key=lambda e: list(e.absolute_path))
            return "custom", [self._message(e) for e in errors]
        try:
            self.kv.validate(obj, K8S_VERSION, strict=True)
            return "core", []
        except self.kv.SchemaNotFoundError:
            group = obj["apiVersion"].split("/")[0]
            known = any(k[0].split("/")[0] == group for k in self.crds)
            hint = "a CRD version not in " + crds_dir() if known else "no Kubernetes schema and no CRD"
            return "none", [f"unknown kind {obj['kind']} in {obj['apiVersion']} ({hint})"]
        except self.kv.ValidationError as e:
            return "core", [self._message(e)]

    @staticmethod
    def _message(error):
        path = ".".join(str(p) for p in error.absolute_path) or "(object)"
        message = error.message
        if len(message) > 300:
            message = message[:300] + "…"
        return f"{path}: {message}"


def objects_in(path_or_text, is_text=False):
    text = path_or_text if is_text else open(path_or_text).read()
    return [d for d in yaml.safe_load_all(text) if d is not None]


def kustomize_build(directory, extra_args=()):
    kubectl = which("kubectl")
    if kubectl is None:
        raise SystemExit("check-deploy: kubectl is not installed (it runs `kubectl kustomize`)")
    r = subprocess.run([kubectl, "kustomize", *extra_args, directory], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return r.stdout, None


# ---------------------------------------------------------------------------------------
# The EnvoyFilter, generated from the Envoy configuration the real-Envoy tests run


def envoy_template_parts():
    """The parts of deploy/envoy/envoy-epp.yaml that make up the picker's path."""
    with open(ENVOY_TEMPLATE) as f:
        envoy = yaml.safe_load(f)
    listener = envoy["static_resources"]["listeners"][0]
    hcm = next(f for f in listener["filter_chains"][0]["filters"]
               if f["name"] == "envoy.filters.network.http_connection_manager")["typed_config"]
    filters = {f["name"]: f for f in hcm["http_filters"]}
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    picked_route = [r for r in routes if any(h.get("name") == "x-gateway-destination-endpoint"
                                             for h in r["match"].get("headers", []))]
    clusters = {c["name"]: c for c in envoy["static_resources"]["clusters"]}
    ext_proc = filters.get("envoy.filters.http.ext_proc")
    lua = filters.get("envoy.filters.http.lua")
    missing = [n for n, v in [("ext_proc filter", ext_proc), ("lua filter", lua),
                              ("route on x-gateway-destination-endpoint", picked_route[:1])] if not v]
    if missing:
        raise SystemExit(f"check-deploy: {rel(ENVOY_TEMPLATE)} has no {', '.join(missing)}")
    epp_cluster_name = ext_proc["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
    picked_cluster_name = picked_route[0]["route"]["cluster"]
    for name in (epp_cluster_name, picked_cluster_name):
        if name not in clusters:
            raise SystemExit(f"check-deploy: {rel(ENVOY_TEMPLATE)} has no cluster {name}")
    # The HTTP filters in the order the template runs them, up to (not including) the router.
    ordered = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.router"]
    picked_cluster = clusters[picked_cluster_name]
    picked = copy.deepcopy(picked_route[0])
    if picked_cluster.get("type") != "ORIGINAL_DST":
        # The template's picked cluster lists the engines; the Istio gateway has no such list.
        # Retrying, and hashing for a fallback, only make sense where the cluster can walk the
        # picker's fallbacks.
        picked_cluster = istio_picked_cluster(picked_cluster_name)
        for key in ("retry_policy", "hash_policy"):
            picked["route"].pop(key, None)
    return {
        "http_filters": ordered,
        "connection_manager": {k: hcm[k] for k in HCM_SETTINGS if k in hcm},
        "internal_only_headers": hcm["route_config"].get("internal_only_headers", []),
        "picked_route": picked,
        "clusters": [clusters[epp_cluster_name], picked_cluster],
    }


# The connection manager settings that decide which peers count as internal (and so keep
# internal_only_headers): merged into the Istio gateway's own connection manager.
HCM_SETTINGS = ("use_remote_address", "internal_address_config")


def istio_picked_cluster(name):
    """In the Istio gateway the picked route connects to the ip:port the picker's header names
    (the primary; the session Lua filter removed any the client sent). The template's
    override_host cluster, which also walks the picker's fallbacks, needs the engines listed
    in the cluster: Istio configures that itself for an InferencePool."""
    return {"name": name, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "1s",
            "original_dst_lb_config": {"use_http_header": True, "http_header_name": "x-gateway-destination-endpoint"}}


def fill_placeholders(node, values):
    if isinstance(node, dict):
        return {k: fill_placeholders(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [fill_placeholders(v, values) for v in node]
    if isinstance(node, str) and node in values:
        return values[node]
    if isinstance(node, str):
        leftover = re.findall(r"\b(?:LISTEN_PORT|ADMIN_PORT|EPP_HOST|EPP_PORT|EPP_HEALTH_PORT|ENGINE_ENDPOINTS|REQUEST_BODY_MODE)\b", node)
        if leftover:
            raise SystemExit(f"check-deploy: placeholder {leftover[0]} inside {node!r} in {rel(ENVOY_TEMPLATE)}")
    return node


def generate_envoyfilter():
    parts = fill_placeholders(envoy_template_parts(), {
        "EPP_HOST": f"{EPP_SERVICE}.{EPP_NAMESPACE}.svc.cluster.local",
        "EPP_PORT": EPP_PORT,
        "EPP_HEALTH_PORT": EPP_HEALTH_PORT,
        # Headers only, with fail-open (BUFFERED and STREAMED fail open too).
        "REQUEST_BODY_MODE": "NONE",
    })
    before_router = {
        "context": "GATEWAY",
        "listener": {"filterChain": {"filter": {
            "name": "envoy.filters.network.http_connection_manager",
            "subFilter": {"name": "envoy.filters.http.router"}}}},
    }
    patches = []
    for cluster in parts["clusters"]:
        patches.append({"applyTo": "CLUSTER", "match": {"context": "GATEWAY"},
                        "patch": {"operation": "ADD", "value": cluster}})
    # Each INSERT_BEFORE router lands after the previous one: the template's order.
    for f in parts["http_filters"]:
        patches.append({"applyTo": "HTTP_FILTER", "match": before_router,
                        "patch": {"operation": "INSERT_BEFORE", "value": f}})
    if parts["connection_manager"]:
        hcm_name = "envoy.filters.network.http_connection_manager"
        patches.append({"applyTo": "NETWORK_FILTER",
                        "match": {"context": "GATEWAY", "listener": {"filterChain": {"filter": {"name": hcm_name}}}},
                        "patch": {"operation": "MERGE", "value": {"name": hcm_name, "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            **parts["connection_manager"]}}}})
    if parts["internal_only_headers"]:
        patches.append({"applyTo": "ROUTE_CONFIGURATION",
                        "match": {"context": "GATEWAY", "routeConfiguration": {}},
                        "patch": {"operation": "MERGE",
                                  "value": {"internal_only_headers": parts["internal_only_headers"]}}})
    route = {"name": "kvroute-picked-endpoint", **parts["picked_route"]}
    patches.append({"applyTo": "HTTP_ROUTE",
                    "match": {"context": "GATEWAY", "routeConfiguration": {"vhost": {}}},
                    "patch": {"operation": "INSERT_FIRST", "value": route}})
    envoyfilter = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "kvroute-epp"},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": GATEWAY_NAME}],
            "configPatches": patches,
        },
    }
    header = (
        "# GENERATED by `scripts/check-deploy.sh envoyfilter --write` from deploy/envoy/envoy-epp.yaml\n"
        "# (the Envoy configuration the real-Envoy tests run); edit that file and regenerate.\n"
        "# `make check-deploy` fails when this file and the template disagree.\n"
        "#\n"
        "# kvroute epp in the Istio gateway's Envoy, as in the template: the picker's cluster\n"
        "# (HTTP/2, gRPC health checked on 9003) and the ORIGINAL_DST cluster that connects to the\n"
        "# ip:port the picker names; the Lua filter and ext_proc (headers only,\n"
        "# failure_mode_allow: true) before the router; and, first in every virtual host, the\n"
        "# route taken when the picker has set x-gateway-destination-endpoint. Without that\n"
        "# header (picker down) the HTTPRoute's own route serves the request. A client never picks\n"
        "# its own upstream: the Lua filter removes every x-gateway-destination-endpoint* header it\n"
        "# sent and clears the route cache; internal_only_headers strips them too, and the\n"
        "# connection manager counts no peer as internal (use_remote_address, an empty\n"
        "# internal_address_config), whatever the gateway's Envoy version trusts by default.\n"
        "# The overlays rewrite the picker's namespace.\n"
    )
    return header + yaml.dump(envoyfilter, Dumper=_ReadableDumper, sort_keys=False, width=100, default_flow_style=False)


class _ReadableDumper(yaml.SafeDumper):
    """No anchors/aliases (each patch reads on its own), multi-line strings (the Lua code)
    as literal blocks."""

    def ignore_aliases(self, data):
        return True


_ReadableDumper.add_representer(str, lambda dumper, s: dumper.represent_scalar(
    "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def check_envoyfilter_generated(errors):
    expected = generate_envoyfilter()
    try:
        with open(ENVOYFILTER) as f:
            actual = f.read()
    except FileNotFoundError:
        actual = ""
    if actual != expected:
        errors.append(f"{rel(ENVOYFILTER)}: differs from what {rel(ENVOY_TEMPLATE)} generates; "
                      "run scripts/check-deploy.sh envoyfilter --write")
        return False
    return True


def check_envoyfilter_namespace(objects, where, errors):
    """The picker's address in the rendered EnvoyFilter must be in the picker's namespace."""
    services = [o for o in objects if o.get("kind") == "Service" and o["metadata"].get("name") == EPP_SERVICE]
    for ef in (o for o in objects if o.get("kind") == "EnvoyFilter"):
        namespace = ef["metadata"].get("namespace")
        if namespace is None:
            continue  # a base without a namespace: the overlays set it
        for p in ef["spec"].get("configPatches", []):
            value = p.get("patch", {}).get("value", {})
            if p.get("applyTo") != "CLUSTER":
                continue
            for lb in value.get("load_assignment", {}).get("endpoints", []):
                for e in lb.get("lb_endpoints", []):
                    address = e.get("endpoint", {}).get("address", {}).get("socket_address", {}).get("address", "")
                    expected = f"{EPP_SERVICE}.{namespace}.svc.cluster.local"
                    if address.startswith(EPP_SERVICE + ".") and address != expected:
                        errors.append(f"{where}: EnvoyFilter/{ef['metadata']['name']}: cluster {value.get('name')} "
                                      f"points at {address}, not {expected}")
        if services and services[0]["metadata"].get("namespace") != namespace:
            errors.append(f"{where}: EnvoyFilter and Service/{EPP_SERVICE} are in different namespaces")


def envoy_bootstrap_from_envoyfilter(ef):
    """An Envoy bootstrap that applies the EnvoyFilter's patches to a minimal gateway: a
    listener whose only route goes to a stand-in for the engines' Service."""
    patches = ef["spec"]["configPatches"]
    clusters = [copy.deepcopy(p["patch"]["value"]) for p in patches if p["applyTo"] == "CLUSTER"]
    filters = [copy.deepcopy(p["patch"]["value"]) for p in patches if p["applyTo"] == "HTTP_FILTER"]
    route_config = {"name": "http.80", "virtual_hosts": [{"name": "gateway", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "engines", "hash_policy": [{"header": {"header_name": "x-session-id"}}]}}]}]}
    hcm_settings = {}
    for p in patches:
        if p["applyTo"] == "NETWORK_FILTER" and p["patch"]["operation"] == "MERGE":
            hcm_settings.update({k: v for k, v in copy.deepcopy(p["patch"]["value"]["typed_config"]).items() if k != "@type"})
        elif p["applyTo"] == "ROUTE_CONFIGURATION":
            route_config.update(copy.deepcopy(p["patch"]["value"]))
        elif p["applyTo"] == "HTTP_ROUTE" and p["patch"]["operation"] == "INSERT_FIRST":
            route_config["virtual_hosts"][0]["routes"].insert(0, copy.deepcopy(p["patch"]["value"]))
    # DNS names stay as they are: validate mode does not resolve them.
    clusters.append({"name": "engines", "type": "STATIC", "lb_policy": "RING_HASH",
                     "ring_hash_lb_config": {"minimum_ring_size": 4096}, "connect_timeout": "1s",
                     "load_assignment": {"cluster_name": "engines", "endpoints": [{"lb_endpoints": [
                         {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8000}}}}]}]}})
    return {"static_resources": {
        "listeners": [{"name": "gateway", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
                       "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                           "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                           "stat_prefix": "gateway", **hcm_settings, "route_config": route_config,
                           "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {
                               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}],
        "clusters": clusters}}


def check_envoyfilter_with_envoy(objects, where, errors):
    if not any(o.get("kind") == "EnvoyFilter" for o in objects):
        return
    envoy = which("envoy")
    if envoy is None:
        if REQUIRE_PEERS:
            errors.append("envoy is not installed (scripts/install-test-tools.sh installs it)")
        else:
            print("  skipped: envoy --mode validate (envoy not installed)")
        return
    for ef in (o for o in objects if o.get("kind") == "EnvoyFilter"):
        try:
            bootstrap = envoy_bootstrap_from_envoyfilter(ef)
        except (KeyError, TypeError, AttributeError) as e:
            errors.append(f"{where}: EnvoyFilter/{ef.get('metadata', {}).get('name')}: cannot assemble its patches: {e!r}")
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(bootstrap, f)
        try:
            r = subprocess.run([envoy, "--mode", "validate", "-c", f.name, "-l", "error"],
                               capture_output=True, text=True, timeout=120)
        finally:
            os.unlink(f.name)
        if r.returncode != 0:
            lines = (r.stderr.strip() or r.stdout.strip()).splitlines() or ["(no output)"]
            # Envoy's log prefix ([time][thread][level][logger] [file:line]) says nothing here.
            detail = re.sub(r"^(\[[^\]]*\]\s*)+", "", lines[-1]).replace(f.name, "the assembled bootstrap")
            errors.append(f"{where}: EnvoyFilter/{ef['metadata']['name']}: Envoy rejects its patches: {detail}")
        else:
            print(f"  envoy --mode validate: EnvoyFilter/{ef['metadata']['name']}'s patches on a minimal gateway: OK")


# ---------------------------------------------------------------------------------------
# promtool


def check_prometheus_rules(objects, where, errors, seen):
    promtool = which("promtool")
    for rule in (o for o in objects if o.get("kind") == "PrometheusRule"):
        groups = (rule.get("spec") or {}).get("groups") or []
        text = yaml.safe_dump({"groups": groups}, sort_keys=False)
        if text in seen:
            continue
        seen.add(text)
        if promtool is None:
            if REQUIRE_PEERS:
                errors.append("promtool is not installed (scripts/install-test-tools.sh installs it)")
            else:
                print("  skipped: promtool check rules (promtool not installed)")
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".rules.yaml", delete=False) as f:
            f.write(text)
        try:
            r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True, timeout=120)
        finally:
            os.unlink(f.name)
        name = f"PrometheusRule/{rule['metadata'].get('name')}"
        if r.returncode != 0:
            detail = (r.stderr.strip() or r.stdout.strip()).replace(f.name, name)
            errors.append(f"{where}: {name}: promtool check rules: {detail}")
        else:
            count = sum(len(g.get("rules") or []) for g in groups)
            print(f"  promtool check rules: {name} ({len(groups)} groups, {count} rules) SUCCESS")


# ---------------------------------------------------------------------------------------
# Which manifests exist


def kustomization_dirs():
    dirs = []
    for d, subdirs, files in os.walk(KUBE_DIR):
        subdirs.sort()
        if "kustomization.yaml" in files or "kustomization.yml" in files:
            dirs.append(d)
    return dirs


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


# ---------------------------------------------------------------------------------------
# Commands


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
