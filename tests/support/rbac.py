"""Running a component as a ServiceAccount bound to the chart's own RBAC, against the real API server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.chart.conftest import CHART


def chart_rbac(helm, release: str, namespace: str, watch: list[str] = ()) -> list[dict[str, Any]]:
    """The RBAC objects ``helm template`` renders for this release (templates/rbac.yaml)."""
    args = ["template", release, str(CHART), "--namespace", namespace, "--show-only", "templates/rbac.yaml"]
    if watch:
        args += ["--set", f"operator.watchNamespaces={{{','.join(watch)}}}"]
    return [d for d in yaml.safe_load_all(helm.run(*args).stdout) if d]


def as_service_account(kube, name: str, namespace: str, path: Path) -> Path:
    """Create the ServiceAccount and a kubeconfig that authenticates as it (a bound token)."""
    kube.kubectl("create", "serviceaccount", name, "-n", namespace, check=False)
    token = kube.kubectl("create", "token", name, "-n", namespace, "--duration=2h").stdout.strip()
    config = json.loads(kube.kubeconfig.read_text())
    config["users"] = [{"name": name, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = name
    path.write_text(json.dumps(config))
    return path


def can_i(kube, kubeconfig: Path, *args: str) -> bool:
    return kube.kubectl("auth", "can-i", *args, f"--kubeconfig={kubeconfig}", check=False).stdout.strip() == "yes"
