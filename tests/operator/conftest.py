"""A real kopf operator process against the real control plane, NATS and webhook TLS."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetrade.embedded import ManagedProcess, free_port
from kubetrade.embedded.pki import CertificateAuthority
from kubetrade.embedded.process import port_open


class OperatorProcess:
    def __init__(
        self, kube, nats_url: str, workdir: Path, name: str = "operator", kubeconfig: Path | None = None
    ) -> None:
        self.kube = kube
        self.workdir = workdir
        ca = CertificateAuthority(workdir / "webhook-pki", name="kubetrade-webhook-ca")
        cert, key = ca.issue("webhook", "kubetrade-webhook", server=True, hosts=("127.0.0.1", "localhost"))
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(kubeconfig or kube.kubeconfig),
            KUBETRADE_NATS_URL=nats_url,
            KUBETRADE_IMAGE="kubetrade:test",
            KUBETRADE_OPERATOR_NAMESPACE="default",
            KUBETRADE_RESYNC_SECONDS="5",
        )
        self.process = ManagedProcess(
            name,
            [
                sys.executable,
                "-m",
                "kubetrade_operator.main",
                "--metrics-port",
                str(self.metrics_port),
                "--health-port",
                str(free_port()),
                "--webhook-port",
                str(self.webhook_port),
                "--webhook-addr",
                "127.0.0.1",
                "--webhook-host",
                "127.0.0.1",
                "--webhook-cert",
                str(cert),
                "--webhook-key",
                str(key),
                "--webhook-ca",
                str(ca.cert_path),
                "--log-level",
                "info",
            ],
            workdir / f"{name}.log",
            env=env,
        )

    def start(self, wait_webhook: bool = True) -> None:
        self.process.start()
        self.process.wait_ready(lambda: port_open(self.metrics_port), 60)
        if wait_webhook:
            self.process.wait_ready(lambda: port_open(self.webhook_port), 60)

    def stop(self) -> None:
        self.process.stop(timeout=30)

    def kill(self) -> None:
        import signal

        self.process.stop(timeout=10, sig=signal.SIGKILL)

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


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
