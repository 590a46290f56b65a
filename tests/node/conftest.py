"""Fixtures of the node tests: a real cluster (control plane + one real node + CoreDNS) and,
on it, one ``helm install`` of kubetrade with the built images, shared by the tests whose
meaning allows it (each install costs minutes on two cores).

The images come from ``kubetrade_testbed.images.build_images`` (scripts/image/build.sh,
cached); the node's own (pause, busybox, CoreDNS) from ``kubetrade_testbed.node.images``.
Nothing is pulled: every image is imported into the node's containerd first.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from kubetrade_testbed.node.cluster import RealCluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubetrade"


def _helm_binary() -> Path:
    value = os.environ.get("KUBETRADE_HELM_BIN")
    if not value:
        value = subprocess.run(["bash", str(REPO / "scripts" / "testbed" / "build-helm.sh")], check=True,
                               capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return Path(value) / "helm"


@pytest.fixture(scope="session")
def images() -> dict[str, Any]:
    """The kubetrade, training, NATS and PostgreSQL images (built, or found in the build's cache).

    ``KUBETRADE_TEST_IMAGES`` may name a JSON file of already built archives (the build
    script's output: name -> reference, repository, tag, archive), to test images built
    elsewhere."""
    listed = os.environ.get("KUBETRADE_TEST_IMAGES")
    if listed:
        return {name: SimpleNamespace(**{**d, "archive": Path(d["archive"])})
                for name, d in json.loads(Path(listed).read_text()).items()}
    from kubetrade_testbed.images import build_images

    return dict(build_images())


@pytest.fixture(scope="session")
def cluster(images: dict[str, Any]) -> Iterator[RealCluster]:
    c = RealCluster(archives=[a.archive for a in images.values()])
    c.start()
    try:
        yield c
    finally:
        c.cleanup()


class Helm:
    def __init__(self, binary: Path, home: Path, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data")}

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.binary), *args, f"--kubeconfig={self.kubeconfig}"], capture_output=True,
                              text=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc


@dataclass
class Platform:
    """The installed release: where it is and how it was installed."""

    cluster: RealCluster
    helm: Helm
    release: str
    namespace: str
    values: list[str]
    install_seconds: float

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.namespace, *args, check=check, input=input, timeout=timeout)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def psql(self, sql: str) -> list[list[str]]:
        """A query in the bundled database, as a user would run it (kubectl exec ... psql)."""
        out = self.kubectl("exec", f"statefulset/{self.release}-timescaledb", "--", "psql", "-U", "kubetrade",
                           "-d", "kubetrade", "-X", "-A", "-t", "-F", "\t", "-c", sql).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def pods(self, component: str) -> list[dict[str, Any]]:
        return list(self.get("pods", "-l", f"app.kubernetes.io/component={component}")["items"])


def image_values(images: dict[str, Any]) -> list[str]:
    k, t, n, p = images["kubetrade"], images["train"], images["nats"], images["postgres"]
    return [f"image.repository={k.repository}", f"image.tag={k.tag}", "image.pullPolicy=Never",
            f"image.train.repository={t.repository}", f"image.train.tag={t.tag}",
            f"nats.image={n.reference}", f"database.image={p.reference}"]


def persistent_volumes(cluster: RealCluster, root: Path, sizes: list[str]) -> list[str]:
    """Volumes for the StatefulSets' claims (the node has no provisioner): host folders the
    node's kubelet can mount, writable by the images' non-root users."""
    names = []
    docs = []
    for size in sizes:
        name = f"kt-pv-{uuid.uuid4().hex[:8]}"
        folder = root / name
        folder.mkdir(parents=True)
        folder.chmod(0o777)
        names.append(name)
        docs.append({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                     "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                              "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(folder)}}})
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in docs))
    return names


@pytest.fixture(scope="session")
def platform(cluster: RealCluster, images: dict[str, Any],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """``helm install`` of the chart, bundled NATS and PostgreSQL, into a namespace that
    enforces the restricted Pod Security standard, waited for with ``--wait``."""
    namespace = "kubetrade"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/enforce-version=latest")
    persistent_volumes(cluster, tmp_path_factory.mktemp("pv"), ["10Gi", "20Gi"])
    helm = Helm(_helm_binary(), tmp_path_factory.mktemp("helm-home"), cluster.kubeconfig)
    values = [*image_values(images), "executors.live.enabled=false", "logLevel=info"]
    release = "kt"
    args = ["install", release, str(CHART), "--namespace", namespace, "--wait", "--timeout", "600s"]
    for v in values:
        args += ["--set", v]
    started = time.monotonic()
    try:
        helm.run(*args, timeout=700)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{cluster.diagnostics()}") from exc
    p = Platform(cluster, helm, release, namespace, values, time.monotonic() - started)
    yield p
