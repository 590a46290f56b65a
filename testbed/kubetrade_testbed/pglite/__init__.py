"""PGlite with TimescaleDB: a real TimescaleDB build (WASM, single connection, no COPY) on demand.

There is no TimescaleDB server package on the registries this project may use, but there is
an npm build of PGlite with the timescaledb extension compiled in.  This module installs it
(``npm install`` into a cache folder, once) and drives one in-memory database through a
line protocol (``bridge.mjs``), so that the Timescale DDL of :mod:`kubetrade.storage.timescale`
and the queries of :mod:`kubetrade.storage.history` run against the real extension.  Our SQL
uses psycopg's ``%(name)s`` parameters; :meth:`PGliteTimescale.query` rewrites them to ``$n``.

``python -m kubetrade_testbed.pglite install`` (or ``scripts/testbed/install-pglite.sh``) installs it ahead of time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
_PARAM = re.compile(r"%\((\w+)\)s")


def install_dir() -> Path:
    return Path(os.environ.get("KUBETRADE_PGLITE_DIR") or Path.home() / ".cache" / "kubetrade" / "pglite-timescaledb")


def ensure_installed() -> Path:
    """The folder with ``node_modules`` and the bridge, installing with npm if needed."""
    target = install_dir()
    wanted = (HERE / "package.json").read_text()
    marker = target / "node_modules" / "@unni-craftsman" / "pglite" / "package.json"
    if not marker.is_file() or (target / "package.json").read_text() != wanted:
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed to install PGlite with TimescaleDB (node 20+ and npm)")
        target.mkdir(parents=True, exist_ok=True)
        (target / "package.json").write_text(wanted)
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=target,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm install of PGlite/TimescaleDB failed: {result.stderr.strip()[-2000:]}")
    shutil.copyfile(HERE / "bridge.mjs", target / "bridge.mjs")
    return target


class PGliteError(RuntimeError):
    """An error PostgreSQL (in PGlite) raised for a statement."""


def to_positional(sql: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """``%(name)s`` -> ``$n`` with the values in order (a name used twice reuses its number)."""
    order: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in order:
            order.append(m.group(1))
        return f"${order.index(m.group(1)) + 1}"

    return _PARAM.sub(sub, sql), [params[n] for n in order]


class PGliteTimescale:
    """One in-memory PGlite database with TimescaleDB, in a node child process."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._next = 0

    def start(self) -> PGliteTimescale:
        folder = ensure_installed()
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is needed to run PGlite")
        self._proc = subprocess.Popen(
            [node, "bridge.mjs"],
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
            bufsize=1,
        )
        assert self._proc.stdout is not None
        first = self._proc.stdout.readline()
        if '"ready"' not in first:
            raise RuntimeError(f"PGlite did not start: {first!r}")
        return self

    def _call(self, payload: dict[str, Any]) -> list[list[Any]]:
        if self._proc is None or self._proc.stdin is None or self._proc.stdout is None:
            raise RuntimeError("PGlite is not running")
        self._next += 1
        payload["id"] = self._next
        self._proc.stdin.write(json.dumps(payload, default=str) + "\n")
        self._proc.stdin.flush()
        answer = json.loads(self._proc.stdout.readline() or '{"error": "PGlite exited"}')
        if "error" in answer:
            raise PGliteError(f"{answer['error']} (in: {payload['sql'][:200]})")
        rows: list[list[Any]] = answer["rows"]
        return rows

    def exec(self, sql: str) -> list[list[Any]]:
        """Run one or more statements without parameters; rows of the last one."""
        return self._call({"sql": sql})

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        text, values = to_positional(sql, params or {})
        return self._call({"sql": text, "params": values})

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> PGliteTimescale:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
