"""The kubetrade operator as a child process on loopback, with its admission webhook's own TLS.

Tests and the operator benchmark run the real operator this way against the real control
plane (:class:`kubetrade_testbed.kube.KubeControlPlane`): a certificate authority for the
webhook, a serving certificate for 127.0.0.1, free ports for webhook, metrics and health.
"""

from __future__ import annotations

import os
import signal
import sys
import urllib.request
from pathlib import Path

from kubetrade.localstack.servers.processes import ManagedProcess, free_port, port_open
from kubetrade_testbed.pki import CertificateAuthority


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        nats_url: str,
        workdir: Path,
        name: str = "operator",
        webhook: bool = True,
        resync_seconds: float = 5.0,
        log_level: str = "info",
        namespaces: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.webhook = webhook
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        args = ["--metrics-port", str(self.metrics_port), "--health-port", str(free_port()), "--log-level", log_level]
        args += [f"--namespace={ns}" for ns in namespaces]
        if webhook:
            ca = CertificateAuthority(workdir / "webhook-pki", name="kubetrade-webhook-ca")
            cert, key = ca.issue("webhook", "kubetrade-webhook", server=True, hosts=("127.0.0.1", "localhost"))
            args += [
                "--webhook-port", str(self.webhook_port), "--webhook-addr", "127.0.0.1",
                "--webhook-host", "127.0.0.1", "--webhook-cert", str(cert), "--webhook-key", str(key),
                "--webhook-ca", str(ca.cert_path),
            ]  # fmt: skip
        env = dict(
            os.environ,
            KUBECONFIG=str(kubeconfig),
            KUBETRADE_NATS_URL=nats_url,
            KUBETRADE_IMAGE="kubetrade:test",
            KUBETRADE_TRAIN_IMAGE="kubetrade-train:test",
            KUBETRADE_OPERATOR_NAMESPACE="default",
            KUBETRADE_RESYNC_SECONDS=str(resync_seconds),
        ) | (env or {})
        self.process = ManagedProcess(
            name, [sys.executable, "-m", "kubetrade_operator.main", *args], workdir / f"{name}.log", env=env
        )

    @property
    def pid(self) -> int | None:
        return self.process.proc.pid if self.process.proc else None

    def start(self, wait_webhook: bool = True) -> None:
        self.process.start()
        self.process.wait_ready(lambda: port_open(self.metrics_port), 60)
        if self.webhook and wait_webhook:
            self.process.wait_ready(lambda: port_open(self.webhook_port), 60)

    def stop(self) -> None:
        self.process.stop(timeout=30)

    def kill(self) -> None:
        self.process.stop(timeout=10, sig=signal.SIGKILL)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")
