"""Session-wide real infrastructure for the tests: NATS, PostgreSQL, a Kubernetes control plane.

Nothing is mocked.  Each fixture starts the real server on a free loopback port, once
per test session, and stops it at the end.  A component that cannot be started is a
failure, never a skip.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kubetrade.localstack.servers import NatsServer, PostgresServer
from kubetrade.storage import migrate
from kubetrade_testbed.kube import KubeControlPlane

REPO = Path(__file__).resolve().parents[1]


TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def market_data() -> Path:
    """Real candles shipped with the tests (MIT-licensed, see tests/data/README.md)."""
    return TEST_DATA


# --- NATS ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
async def nats_client(nats_url: str) -> AsyncIterator[object]:
    import nats

    nc = await nats.connect(nats_url)
    yield nc
    await nc.drain()


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer(durable=False)  # its own temp folder, reachable by the postgres service user
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def pg_dsn(pg_server: PostgresServer) -> str:
    """A fresh database for this test session with every migration applied."""
    dsn = pg_server.create_database(f"kubetrade_test_{uuid.uuid4().hex[:8]}")
    migrate.apply(dsn)
    return dsn


@pytest.fixture
def fresh_db(pg_server: PostgresServer) -> str:
    """An empty database of its own, for tests that need a blank slate (no migrations)."""
    return pg_server.create_database(f"kubetrade_blank_{uuid.uuid4().hex[:8]}")


# --- Kubernetes ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeControlPlane]:
    """etcd + kube-apiserver + controller manager + scheduler + kwok nodes, with the CRDs installed."""
    plane = KubeControlPlane(tmp_path_factory.mktemp("kube"))
    plane.start()
    try:
        plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        for crd in sorted((REPO / "crds").glob("*.yaml")):
            name = crd.name.split("_", 1)[1].removesuffix(".yaml") + ".kubetrade.io"
            plane.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
        yield plane
    finally:
        plane.cleanup()


@pytest.fixture
def namespace(kube: KubeControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


# --- Helm ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory):
    """A real Helm (built from the Go module proxy by scripts/testbed/build-helm.sh, cached)."""
    from tests.chart.conftest import make_helm

    return make_helm(tmp_path_factory.mktemp("helm-home"))
