"""The EnvoyFilter as deployed: it names the picker in its own namespace, and Envoy accepts
the configuration its patches amount to."""

import copy
import os
import re
import subprocess
import tempfile

import yaml

from envoyfilter import EPP_SERVICE

from .common import REQUIRE_PEERS, which


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
