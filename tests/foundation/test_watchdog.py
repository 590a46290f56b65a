"""Embedded servers do not outlive a parent that is killed: the watchdog stops them.

Each test runs a real parent process that starts a real server (nats-server, PostgreSQL)
through :class:`~kubetrade.localstack.servers.processes.ManagedProcess`, kills that parent with
SIGKILL (no ``finally`` runs, no ``atexit``), and checks that the server is gone - stopped
with its own clean-stop signal, not killed - that a scratch folder went with it, and that
the watchdog exited.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PARENT = r"""
import json, sys, time
from pathlib import Path
from kubetrade.localstack.servers import NatsServer, PostgresServer
from kubetrade.localstack.servers.processes import Watchdog
kind, root, clean = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "clean"
if kind == "nats":
    server = NatsServer(root)
elif kind == "nats-scratch":
    server = NatsServer()  # a store folder of its own: scratch
else:
    server = PostgresServer(root / "pg")
server.start()
proc = server.process
info = {"pid": proc.proc.pid, "watchdog": Watchdog.get().proc.pid, "log": str(proc.log_path)}
info["folder"] = str(getattr(server, "store_dir", None) or server.root)
print(json.dumps(info), flush=True)
if clean:
    server.stop()
    print("stopped", flush=True)
    sys.exit(0)
time.sleep(3600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead but not yet reaped by its (new) parent
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def _parent(kind: str, root: Path, clean: bool = False) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, kind, str(root), "clean" if clean else "keep"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line, f"the parent did not start its {kind} server (exit {parent.poll()})"
    info = json.loads(line)
    if clean:
        assert parent.stdout.readline().strip() == "stopped"
    return parent, info


def test_nats_server_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent, info = _parent("nats", tmp_path)
    try:
        assert _alive(info["pid"]) and _alive(info["watchdog"])
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _gone(info["pid"], 25), "nats-server outlived its killed parent"
        assert _gone(info["watchdog"], 5), "the watchdog did not exit after its work"
        # stopped by its clean-stop signal (SIGTERM), so it said so in its log
        log = Path(info["log"]).read_text()
        assert "Server Exiting" in log or "Initiating Shutdown" in log, log[-2000:]
    finally:
        for pid in (info["pid"], info["watchdog"]):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_postgres_gets_a_fast_shutdown_when_its_parent_is_killed() -> None:
    root = Path(tempfile.mkdtemp(prefix="kubetrade-watchdog-"))
    root.chmod(0o755)  # PostgreSQL runs as its service user, who must reach the folder
    parent, info = _parent("postgres", root)
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _gone(info["pid"], 25), "postgres outlived its killed parent"
        log = Path(info["log"]).read_text()
        assert "fast shutdown request" in log, log[-2000:]
        assert "database system is shut down" in log, log[-2000:]
        assert Path(info["folder"]).exists(), "a data folder the caller chose is not scratch"
    finally:
        if _alive(info["pid"]):
            os.killpg(info["pid"], signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def test_a_scratch_folder_is_removed_once_its_server_has_stopped() -> None:
    parent, info = _parent("nats-scratch", Path("/nonexistent"))
    folder = Path(info["folder"])
    try:
        assert folder.is_dir()
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _gone(info["pid"], 25)
        deadline = time.monotonic() + 10
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not folder.exists(), f"{folder} (the server's own folder) was left behind"
    finally:
        if _alive(info["pid"]):
            os.killpg(info["pid"], signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_parent_that_stops_its_server_and_exits_leaves_nothing_behind(tmp_path: Path) -> None:
    parent, info = _parent("nats", tmp_path, clean=True)
    assert parent.wait(10) == 0
    assert not _alive(info["pid"])
    assert _gone(info["watchdog"], 5), "the watchdog outlived a parent that exited normally"


def test_a_terminated_watchdog_still_stops_the_server_when_the_parent_dies(tmp_path: Path) -> None:
    """``pkill -f`` of the project's Python reaches the watchdog as well as its parent: it ignores
    SIGTERM, and does its work once the parent is gone."""
    parent, info = _parent("nats", tmp_path)
    try:
        os.kill(info["watchdog"], signal.SIGTERM)
        time.sleep(0.5)
        assert _alive(info["watchdog"]), "the watchdog gave up its watch on SIGTERM"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _gone(info["pid"], 25), "nats-server outlived its killed parent"
        assert _gone(info["watchdog"], 5)
    finally:
        for pid in (info["pid"], info["watchdog"]):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
