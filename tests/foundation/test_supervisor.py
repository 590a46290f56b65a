"""The local supervisor on real processes: one killed with SIGKILL is started again (a new
process, after the back-off) and counted; one that keeps dying is given up, and says so."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from kubetrade.localstack.servers.processes import ManagedProcess
from kubetrade.localstack.supervisor import Supervisor


def _starter(tmp_path: Path, name: str, code: str):
    def start() -> ManagedProcess:
        proc = ManagedProcess(name, [sys.executable, "-c", code], tmp_path / f"{name}.log")
        proc.start()
        proc.wait_ready(lambda: "up" in proc.log_path.read_text(), timeout=30, interval=0.02)
        return proc

    return start


async def _until(predicate, limit: float = 30.0) -> None:
    for _ in range(int(limit / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


async def test_a_killed_service_is_restarted_and_counted(tmp_path: Path) -> None:
    said: list[str] = []
    sup = Supervisor(said.append, backoff=(0.2,), steady_seconds=60)
    service = await sup.add("sleeper", _starter(tmp_path, "sleeper", "import time; print('up', flush=True); "
                                                                     "time.sleep(600)"))
    sup.watch(every=0.05)
    try:
        first = service.process.proc.pid
        os.killpg(first, signal.SIGKILL)
        await _until(lambda: service.restarts == 1 and service.state == "running")
        assert service.process.running and service.process.proc.pid != first
        assert service.exits == [-signal.SIGKILL]
        assert any("sleeper died (exit -9); restarting in 0.2s" in s for s in said)
        assert sup.line() == "sleeper running (1 restarts)" and sup.failed == []
    finally:
        await sup.stop(5)
    assert service.state == "stopped" and not service.process.running


async def test_a_service_that_keeps_dying_is_given_up(tmp_path: Path) -> None:
    said: list[str] = []
    sup = Supervisor(said.append, backoff=(0.05,), max_restarts=3, steady_seconds=60)
    service = await sup.add("crasher", _starter(tmp_path, "crasher", "import time; print('up', flush=True); "
                                                                     "time.sleep(0.3); raise SystemExit(3)"))
    sup.watch(every=0.05)
    try:
        await _until(lambda: service.state == "failed")
    finally:
        await sup.stop(5)
    assert sup.failed == ["crasher"] and service.state == "failed"
    assert service.exits[0] == 3 and len(service.exits) == 4  # the first death and three restarts, all dead
    assert any("crasher died 4 times in a row (last exit 3); given up" in s for s in said)
    assert sup.record()[0]["state"] == "failed"
