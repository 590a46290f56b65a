"""The images the chart bundles for the test node, run with runc the way the chart runs them.

NATS: the chart's arguments (--config /etc/nats/nats.conf from a ConfigMap), uid 1000, a volume at
/data, read-only root; a real client publishes through JetStream and the chart's probe path
answers.  PostgreSQL: what the chart gives the official TimescaleDB image (POSTGRES_USER,
POSTGRES_PASSWORD, POSTGRES_DB, PGDATA under the volume, emptyDirs at /var/run/postgresql and
/tmp), uid 70, read-only root; a password login over TCP, kubetrade's migrations applied from the
kubetrade image itself (plain PostgreSQL: the storage layer's fallback without TimescaleDB), the
chart's pg_isready probe, and the data still there after the container is replaced.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import psycopg
import pytest

from kubetrade.localstack.servers.processes import free_port
from kubetrade_testbed.images import ImageArchive, OciImage, RuncContainer, wait_for

Image = tuple[ImageArchive, OciImage, Path]

pytestmark = pytest.mark.slow


def _owned(path: Path, uid: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, uid)
    return path


# --- NATS -------------------------------------------------------------------------------------


def test_nats_config(nats_image: Image) -> None:
    built, image, root = nats_image
    assert built.reference.startswith("localhost/kubetrade-nats:")
    assert image.runtime["User"] == "1000:1000"  # the chart's runAsUser for NATS
    assert image.runtime["Entrypoint"] == ["/usr/local/bin/nats-server"]
    # an empty root but for the server: no shell, no package manager
    assert not (root / "bin").exists() and not (root / "usr/bin").exists()
    assert (root / "usr/local/bin/nats-server").stat().st_mode & 0o111


def test_nats_serves_jetstream_with_the_charts_arguments(nats_image: Image, tmp_path: Path) -> None:
    _, image, root = nats_image
    port, monitor = free_port(), free_port()
    conf = _owned(tmp_path / "conf", 0)
    # the chart's nats.conf (templates/_nats.tpl) on loopback ports of this host
    (conf / "nats.conf").write_text(
        f"server_name: $POD_NAME\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\nmax_payload: 8MB\n"
        "jetstream {\n  store_dir: /data/jetstream\n  max_file_store: 1G\n}\n"
    )
    data = _owned(tmp_path / "data", 1000)
    container = RuncContainer(
        root,
        image,
        args=["--config", "/etc/nats/nats.conf"],
        env={"POD_NAME": "kubetrade-nats-0", "GOMEMLIMIT": "900MiB"},
        binds={conf: "/etc/nats", data: "/data"},
        tmpfs=(),
    )
    with container:
        health = wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true", timeout=2),
            timeout=60,
            what="NATS healthz",
        )
        assert health.status_code == 200, container.output()

        async def roundtrip() -> tuple[bytes, int]:
            import nats

            nc = await nats.connect(f"nats://127.0.0.1:{port}")
            js = nc.jetstream()
            await js.add_stream(name="IMAGETEST", subjects=["imagetest.>"])
            ack = await js.publish("imagetest.one", b"through the container")
            sub = await js.pull_subscribe("imagetest.>", durable="reader")
            msgs = await sub.fetch(1, timeout=5)
            await msgs[0].ack()
            await nc.drain()
            return msgs[0].data, ack.seq

        body, seq = asyncio.run(roundtrip())
        assert (body, seq) == (b"through the container", 1)
        varz = httpx.get(f"http://127.0.0.1:{monitor}/varz", timeout=5).json()
        assert varz["server_name"] == "kubetrade-nats-0"  # $POD_NAME from the environment, as in the chart
    # JetStream wrote to the volume, as uid 1000
    stored = [p for p in (data / "jetstream").rglob("*") if p.is_file()]
    assert stored and all(p.stat().st_uid == 1000 for p in stored)


# --- PostgreSQL -------------------------------------------------------------------------------


def _postgres(image: OciImage, root: Path, volume: Path, port: int, env: dict[str, str]) -> RuncContainer:
    return RuncContainer(
        root,
        image,
        args=["-c", f"port={port}", "-c", "listen_addresses=127.0.0.1"],
        env=env,
        binds={volume: "/var/lib/postgresql/data"},
        tmpfs=("/var/run/postgresql", "/tmp"),  # the chart's emptyDirs
    )


CHART_ENV = {
    "POSTGRES_DB": "kubetrade",
    "POSTGRES_USER": "kubetrade",
    "POSTGRES_PASSWORD": "image-test-password",
    "PGDATA": "/var/lib/postgresql/data/pgdata",
    "TIMESCALEDB_TELEMETRY": "off",
    "NO_TS_TUNE": "true",
}


def test_postgres_config(postgres_image: Image) -> None:
    built, image, root = postgres_image
    assert built.reference.startswith("localhost/kubetrade-postgres:")
    assert image.runtime["User"] == "70:70"  # the chart's runAsUser for the bundled database
    assert image.env["PATH"].startswith("/usr/lib/postgresql/15/bin:")
    assert (root / "usr/lib/postgresql/15/bin/pg_isready").exists()
    assert not (root / "etc/ssl/private/ssl-cert-snakeoil.key").exists()
    assert not list((root / "var/lib/postgresql").glob("15/main"))  # no cluster baked in


def test_postgres_takes_the_charts_environment(postgres_image: Image, kubetrade_image: Image, tmp_path: Path) -> None:
    _, image, root = postgres_image
    volume = _owned(tmp_path / "volume", 70)
    port = free_port()
    dsn = f"postgresql://kubetrade:{CHART_ENV['POSTGRES_PASSWORD']}@127.0.0.1:{port}/kubetrade"
    with _postgres(image, root, volume, port, CHART_ENV) as pg:
        wait_for(lambda: psycopg.connect(dsn, connect_timeout=2).close() or True, timeout=120, what="PostgreSQL")
        with psycopg.connect(dsn) as conn:
            user, db, version = conn.execute("select current_user, current_database(), version()").fetchone()  # type: ignore[misc]
            assert (user, db) == ("kubetrade", "kubetrade") and "PostgreSQL 15" in version
            assert not conn.execute("select 1 from pg_available_extensions where name = 'timescaledb'").fetchone()
        # a wrong password is refused over TCP (scram-sha-256), not trusted
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(dsn.replace("image-test-password", "wrong"), connect_timeout=5)
        # the chart's readiness probe, inside the container
        probe = pg.exec("pg_isready", "-U", "kubetrade", "-h", "127.0.0.1", "-p", str(port))
        assert probe.returncode == 0 and "accepting connections" in probe.stdout, probe
        # kubetrade's migrations, from the kubetrade image, on plain PostgreSQL
        _, kt_image, kt_root = kubetrade_image
        script = (
            "import sys\nfrom kubetrade.storage import migrate\n"
            "applied = migrate.apply(sys.argv[1])\nprint('applied', len(applied))\n"
        )
        code, out = RuncContainer(kt_root, kt_image, entrypoint=["python3", "-c", script, dsn]).run(timeout=300)
        assert code == 0, out
        assert "applied" in out and int(out.split("applied")[-1].split()[0]) > 0, out
        with psycopg.connect(dsn) as conn:
            conn.execute("create table image_test (v text)")
            conn.execute("insert into image_test values ('kept')")
            conn.commit()
        assert volume.joinpath("pgdata", "PG_VERSION").read_text().strip() == "15"
        assert volume.joinpath("pgdata").stat().st_uid == 70
    # a new container on the same volume: no second initdb, the rows are there
    with _postgres(image, root, volume, port, CHART_ENV) as pg:
        wait_for(
            lambda: psycopg.connect(dsn, connect_timeout=2).close() or True, timeout=120, what="PostgreSQL restart"
        )
        with psycopg.connect(dsn) as conn:
            assert conn.execute("select v from image_test").fetchall() == [("kept",)]
            assert conn.execute("select count(*) from kubetrade_migrations").fetchone()[0] > 0  # type: ignore[index]
        assert "cluster made" not in pg.output()


def test_postgres_without_a_password_says_why(postgres_image: Image, tmp_path: Path) -> None:
    _, image, root = postgres_image
    volume = _owned(tmp_path / "volume", 70)
    env = {k: v for k, v in CHART_ENV.items() if k != "POSTGRES_PASSWORD"}
    code, out = _postgres(image, root, volume, free_port(), env).run(timeout=60)
    assert code != 0
    assert "POSTGRES_PASSWORD is not set" in out, out
    assert not volume.joinpath("pgdata").exists()  # nothing half made
