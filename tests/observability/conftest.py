"""Fixtures of the observability tests: an in-memory span exporter, own NATS and database,
and real Prometheus and Alertmanager servers on free loopback ports.

Prometheus and Alertmanager are the Debian packages' binaries
(scripts/testbed/install-monitoring.sh, run by scripts/test.sh).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kubetrade.localstack.servers import NatsServer, PostgresServer
from kubetrade.localstack.servers.processes import ManagedProcess, free_port
from kubetrade.storage import migrate

REPO = Path(__file__).resolve().parents[2]


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        subprocess.run(["bash", str(REPO / "scripts" / "testbed" / "install-monitoring.sh")], check=True)
        path = shutil.which(name)
    assert path, f"{name} is not installed (scripts/testbed/install-monitoring.sh)"
    return path


@pytest.fixture(scope="session")
def span_exporter() -> Any:
    """Every span this test process ends, kept in memory (the global provider's exporter)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kubetrade.observability import tracecontext

    exporter = InMemorySpanExporter()
    tracecontext.configure("tests", exporter=exporter)
    return exporter


@pytest.fixture
def obs_dsn(pg_server: PostgresServer) -> str:
    dsn = pg_server.create_database(f"kt_obs_{uuid.uuid4().hex[:8]}")
    migrate.apply(dsn)
    return dsn


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def obs_nc(own_nats: NatsServer) -> AsyncIterator[Any]:
    import nats

    client = await nats.connect(own_nats.url)
    yield client
    await client.drain()


class WebhookReceiver:
    """A local HTTP endpoint Alertmanager delivers to; keeps every notification it got."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.notifications.append({"path": self.path, **json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alertnames(self, path: str | None = None) -> set[str]:
        with self.lock:
            return {a["labels"]["alertname"] for n in self.notifications if path in (None, n["path"])
                    for a in n["alerts"]}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def http_json(url: str, data: Any = None) -> Any:
    req = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


class Alertmanager:
    def __init__(self, workdir: Path, config: str) -> None:
        self.port = free_port()
        self.cluster_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "alertmanager.yml").write_text(config)
        self.process = ManagedProcess("alertmanager", [
            _binary("prometheus-alertmanager"), f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
            f"--cluster.listen-address=127.0.0.1:{self.cluster_port}", "--cluster.advertise-address=127.0.0.1:0",
        ], workdir / "alertmanager.log")

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready(lambda: http_json(f"{self.url}/api/v2/status") is not None, timeout=60)


class Prometheus:
    def __init__(self, workdir: Path, config: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(config)
        self.process = ManagedProcess("prometheus", [
            _binary("prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
        ], workdir / "prometheus.log")

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready(lambda: http_json(f"{self.url}/api/v1/status/buildinfo") is not None, timeout=60)

    def query(self, expr: str) -> list[dict[str, Any]]:
        from urllib.parse import quote

        result: list[dict[str, Any]] = http_json(f"{self.url}/api/v1/query?query={quote(expr)}")["data"]["result"]
        return result
