"""What the deploy checks share: where the repository is, how paths are shown, where the
tools are, and which Kubernetes version the schemas are."""

import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBE_DIR = os.path.join(ROOT, "deploy", "kubernetes")
K8S_VERSION = os.environ.get("KVROUTE_K8S_VERSION", "1.32")
REQUIRE_PEERS = os.environ.get("KVROUTE_REQUIRE_PEERS") == "1"


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
