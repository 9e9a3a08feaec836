"""PrometheusRules checked with `promtool check rules`."""

import os
import subprocess
import tempfile

import yaml

from .common import REQUIRE_PEERS, which


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
