#!/usr/bin/env python3
"""The Istio EnvoyFilter (deploy/kubernetes/istio/envoyfilter-kvroute.yaml) generated from
envoy-epp.yaml beside this file, the Envoy configuration the real-Envoy tests run: the
picker's path (its cluster, the Lua and ext_proc filters, the picked-endpoint route and the
connection manager's internal-peer settings) as patches to the Istio gateway's Envoy.

  deploy/envoy/envoyfilter.py            fail (exit 1) if the committed EnvoyFilter differs
  deploy/envoy/envoyfilter.py --write    regenerate it

scripts/check-deploy.sh runs the same (`envoyfilter [--write]`) with the tools' Python (PyYAML).
"""

import copy
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# KVROUTE_ENVOY_TEMPLATE lets a test show that a changed template is noticed.
ENVOY_TEMPLATE = os.environ.get("KVROUTE_ENVOY_TEMPLATE") or os.path.join(ROOT, "deploy", "envoy", "envoy-epp.yaml")
ENVOYFILTER = os.path.join(ROOT, "deploy", "kubernetes", "istio", "envoyfilter-kvroute.yaml")

# Where the generated EnvoyFilter finds the picker; the overlays' replacements rewrite the
# namespace part (and scripts/deploy_checks/envoyfilter_checks.py checks they did).
EPP_SERVICE = "kvroute-epp"
EPP_NAMESPACE = "llm-d"
EPP_PORT = 9002
EPP_HEALTH_PORT = 9003
GATEWAY_NAME = "llm-d-infra-inference-gateway"


def rel(path):
    return os.path.relpath(path, ROOT) if os.path.isabs(path) else path


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


def main(argv):
    if argv == ["--write"]:
        with open(ENVOYFILTER, "w") as f:
            f.write(generate_envoyfilter())
        print(f"wrote {rel(ENVOYFILTER)}")
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    errors = []
    if check_envoyfilter_generated(errors):
        print(f"{rel(ENVOYFILTER)}: matches {rel(ENVOY_TEMPLATE)}")
        return 0
    for e in errors:
        print(f"check-deploy: {e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
