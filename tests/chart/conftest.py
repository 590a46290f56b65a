"""Fixtures of the chart tests: a real Helm binary and the third-party CRDs.

Both come from the project's own scripts (built from the Go module proxy, cached under
~/.cache/kubetrade); scripts/test.sh runs them first and exports their paths, and a
direct ``pytest tests/chart`` runs the same scripts here (instant once cached).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetrade_testbed.kube import KubeControlPlane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubetrade"


def _script_output(env: str, script: str) -> Path:
    value = os.environ.get(env)
    if not value:
        value = subprocess.run(["bash", str(REPO / "scripts" / "testbed" / script)], check=True,
                               capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return Path(value)


THIRD_PARTY_APIS = ("monitoring.coreos.com/v1", "monitoring.coreos.com/v1alpha1", "cert-manager.io/v1")
"""The APIs of the third-party CRDs the test cluster installs (the Prometheus Operator, cert-manager)."""


class Helm:
    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        # Helm keeps caches/config under $HOME by default: give it its own, so a test run
        # neither reads nor writes the user's repositories.
        self.env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data")}

    def run(self, *args: str, check: bool = True, kubeconfig: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), *args]
        if kubeconfig is not None:
            argv.append(f"--kubeconfig={kubeconfig}")
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def template(self, *sets: str, namespace: str = "kubetrade", release: str = "kubetrade",
                 api_versions: tuple[str, ...] = THIRD_PARTY_APIS) -> list[dict[str, Any]]:
        """``helm template`` as a GitOps tool renders: no cluster, the cluster's API versions given."""
        args = ["template", release, str(CHART), "--namespace", namespace]
        for api in api_versions:
            args += ["--api-versions", api]
        for s in sets:
            args += ["--set", s]
        out = self.run(*args).stdout
        return [d for d in yaml.safe_load_all(out) if d]


def make_helm(home: Path) -> Helm:
    """The project's own Helm build (the ``helm`` fixture in tests/conftest.py calls this)."""
    binary = _script_output("KUBETRADE_HELM_BIN", "build-helm.sh") / "helm"
    assert binary.is_file(), f"helm not built at {binary}"
    return Helm(binary, home)


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's "=" value tag: CRD enums contain a plain "=" (matchType)."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _strip_helm_markers(doc: dict[str, Any]) -> dict[str, Any]:
    """cert-manager's CRD files carry Helm template markers in labels: keep name and spec only."""
    return {"apiVersion": doc["apiVersion"], "kind": doc["kind"], "metadata": {"name": doc["metadata"]["name"]},
            "spec": doc["spec"]}


@pytest.fixture(scope="session")
def third_party_crds(kube: KubeControlPlane) -> Iterator[list[str]]:
    """The Prometheus Operator and cert-manager CRDs, installed into the test kube-apiserver."""
    folder = _script_output("KUBETRADE_THIRD_PARTY_CRDS", "fetch-crds.sh")
    names = []
    docs = []
    for path in sorted(folder.glob("*/*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=_Loader):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                docs.append(_strip_helm_markers(doc))
                names.append(doc["metadata"]["name"])
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                 input="\n---\n".join(yaml.safe_dump(d) for d in docs))
    for name in names:
        kube.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    yield names
