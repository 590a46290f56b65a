"""A real kopf operator process against the real control plane, NATS and webhook TLS."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetrade_testbed.operator import OperatorProcess as _OperatorProcess


class OperatorProcess(_OperatorProcess):
    """The operator process against the test control plane (optionally as another user)."""

    def __init__(self, kube, nats_url: str, workdir: Path, name: str = "operator", kubeconfig: Path | None = None,
                 namespaces: tuple[str, ...] = ()):
        super().__init__(kubeconfig or kube.kubeconfig, nats_url, workdir, name=name, namespaces=namespaces)


@pytest.fixture(scope="module")
def operator(kube, nats_url, tmp_path_factory) -> Iterator[OperatorProcess]:
    install_evolution_role(kube)
    op = OperatorProcess(kube, nats_url, tmp_path_factory.mktemp("operator"))
    op.start()
    # The webhook configuration is created by the operator; wait until the API server uses it.
    kube.wait_for(
        lambda: (
            kube.kubectl("get", "validatingwebhookconfiguration", "validate.kubetrade.io", check=False).returncode == 0
        ),
        60,
        "the validating webhook configuration",
    )
    yield op
    op.stop()
    kube.kubectl("delete", "validatingwebhookconfiguration", "validate.kubetrade.io", "--ignore-not-found")


@pytest.fixture
def namespace(namespace: str, kube) -> Iterator[str]:
    """The shared per-test namespace; its Strategies are let go without closing positions when it goes.

    Deleting the namespace deletes its Strategies, and each one's finalizer asks the executor
    to close its positions.  No executor answers in most of these tests, so every such deletion
    would retry every 15 s for the rest of the session, and its close request would reach the
    executor of a later test.
    """
    yield namespace
    kube.kubectl(
        "annotate",
        "strategies",
        "--all",
        "-n",
        namespace,
        "kubetrade.io/skip-close-on-delete=true",
        "--overwrite",
        check=False,
    )


def install_evolution_role(kube) -> None:
    """What the Helm chart installs beside the operator: the ClusterRole evolution jobs are bound to."""
    from kubetrade_operator.rbac import evolution_cluster_role

    kube.kubectl("apply", "-f", "-", input=json.dumps(evolution_cluster_role()))


def wait_status(kube, kind: str, name: str, namespace: str, predicate, timeout: float = 60.0) -> dict:
    last: dict = {}

    def check() -> bool:
        nonlocal last
        last = kube.get_json(kind, name, "-n", namespace)
        return bool(predicate(last.get("status") or {}, last))

    try:
        kube.wait_for(check, timeout, f"{kind}/{name} status")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; last: {json.dumps(last.get('status'), indent=1)}") from None
    return last


def settle(seconds: float) -> None:
    time.sleep(seconds)
