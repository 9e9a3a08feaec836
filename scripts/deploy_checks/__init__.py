"""The focused checks scripts/check_deploy.py runs over deploy/: Kubernetes schemas
(schemas), the EnvoyFilter in the Istio gateway (envoyfilter_checks; the generator lives
beside the Envoy configurations it renders, deploy/envoy/envoyfilter.py), PrometheusRules
(prometheus_rules) and which manifests exist (manifests)."""

import os
import sys

# deploy/envoy/envoyfilter.py, the EnvoyFilter generator, imports as `envoyfilter`.
_ENVOY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "deploy", "envoy")
if _ENVOY_DIR not in sys.path:
    sys.path.insert(0, _ENVOY_DIR)
