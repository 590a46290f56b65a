"""The risk manager's, the executors' and the goal manager's probes answer from their real dependencies.

Real processes (``kubetrade risk-manager``, ``kubetrade executor``, ``kubetrade goal-manager``) with the port the chart
gives them (``KUBETRADE_METRICS_PORT``): ``/readyz`` says 200 only when NATS, the database
and (executor) the lease are there, and names what is missing otherwise; ``/healthz`` is
200 while the process's main loop turns; unknown paths are 404 (the old endpoint answered
anything, so a probe of it proved nothing).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

from kubetrade.localstack.servers import NatsServer
from kubetrade.localstack.servers.processes import ManagedProcess, free_port
from kubetrade.localstack.services import _env, kubetrade_argv


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _until(port: int, path: str, status: int, within: float = 90.0, saying: str = "") -> str:
    deadline = time.monotonic() + within
    last: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        try:
            last = _get(port, path)
        except OSError:
            last = (0, "no answer")
        if last[0] == status and saying in last[1]:
            return last[1]
        time.sleep(0.3)
    raise AssertionError(f"{path} on {port} never answered {status}; last {last}")


def _start(role: list[str], nats_url: str, dsn: str, log: Path, identity: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    env = _env(nats_url, dsn, identity, {"KUBETRADE_METRICS_PORT": str(port)})
    proc = ManagedProcess(role[0], kubetrade_argv(*role), log, env=env)
    proc.start()
    return proc, port


def test_executor_ready_only_with_the_lease_and_nats(nats_url: str, pg_dsn: str, tmp_path: Path) -> None:
    first, p1 = _start(["executor", "--environment", "paper"], nats_url, pg_dsn, tmp_path / "ex1.log",
                       "executor-paper")
    second = None
    try:
        _until(p1, "/readyz", 200)
        assert _get(p1, "/healthz") == (200, "ok\n")
        assert _get(p1, "/no-such-path")[0] == 404
        assert 'kubetrade_build_info{' in _get(p1, "/metrics")[1]
        # a second paper executor is alive but not ready: the first holds the lease
        second, p2 = _start(["executor", "--environment", "paper"], nats_url, pg_dsn, tmp_path / "ex2.log",
                            "executor-paper")
        body = _until(p2, "/readyz", 503, saying="lease:")
        assert body == "lease: another paper executor holds it (waiting)\n", body
        assert _get(p2, "/healthz")[0] == 200
        # the first one goes: the second takes the lease and becomes ready
        first.stop()
        _until(p2, "/readyz", 200)
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_risk_manager_not_ready_without_nats(pg_dsn: str, tmp_path: Path) -> None:
    nats = NatsServer(tmp_path / "nats")
    nats.start()
    proc, port = _start(["risk-manager", "--refresh-seconds", "0.5"], nats.url, pg_dsn, tmp_path / "rm.log",
                         "risk-manager")
    try:
        _until(port, "/readyz", 200)
        nats.stop()
        body = _until(port, "/readyz", 503)
        assert body == "nats: not connected\n", body
        assert _get(port, "/healthz")[0] == 200  # alive: it waits for NATS, nothing to restart for
    finally:
        proc.stop()
        nats.cleanup()


def test_goal_manager_ready_after_a_round_and_not_without_nats(pg_dsn: str, tmp_path: Path) -> None:
    """Ready once it has read every Goal and published their figures (here from the local store, as
    without a cluster), not ready when NATS goes, while its loop keeps turning (alive)."""
    nats = NatsServer(tmp_path / "nats")
    nats.start()
    port = free_port()
    env = {k: v for k, v in _env(nats.url, pg_dsn, "goal-manager", {"KUBETRADE_METRICS_PORT": str(port)}).items()
           if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}  # no cluster: the local store
    proc = ManagedProcess("goal-manager", kubetrade_argv("goal-manager", "--interval", "0.5",
                                                         "--database-url", pg_dsn), tmp_path / "gm.log", env=env)
    proc.start()
    try:
        assert _until(port, "/readyz", 200) == "ok\n"
        assert _get(port, "/healthz") == (200, "ok\n")
        assert "kubetrade_build_info{" in _get(port, "/metrics")[1]
        nats.stop()
        body = _until(port, "/readyz", 503, saying="nats:")
        assert body.startswith("nats: not connected\n"), body
        assert _get(port, "/healthz")[0] == 200
    finally:
        proc.stop()
        nats.cleanup()
