"""Kubernetes objects checked against schemas: core kinds against the OpenAPI schemas PyPI
`kubernetes-validate` ships (strict), custom resources against their CRD's openAPIV3Schema;
and reading objects from manifests or `kubectl kustomize`."""

import os
import subprocess

import jsonschema
import yaml

from .common import K8S_VERSION, crds_dir, which


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
