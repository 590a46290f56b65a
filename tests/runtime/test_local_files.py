"""kubetrade up's files: logs that do not pile up across runs, a pepper another shell agrees with."""

from __future__ import annotations

import logging

from kubetrade.api import keys
from kubetrade.localstack import logfiles


def test_each_run_starts_fresh_logs_and_keeps_only_the_last_few(tmp_path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for run in range(1, 7):  # six runs, each writing two logs
        logfiles.rotate(logs, keep=3)
        for name in ("risk-manager", "executor-paper"):
            (logs / f"{name}.log").write_text(f"run {run}\n")
    names = sorted(p.name for p in logs.iterdir())
    assert names == sorted(f"{n}.log{s}" for n in ("risk-manager", "executor-paper") for s in ("", ".1", ".2", ".3"))
    assert (logs / "risk-manager.log").read_text() == "run 6\n"
    assert (logs / "risk-manager.log.1").read_text() == "run 5\n"
    assert (logs / "risk-manager.log.3").read_text() == "run 3\n"
    # a smaller keep prunes what is beyond it
    deleted = logfiles.rotate(logs, keep=1)
    assert {p.name for p in deleted} >= {"risk-manager.log.2", "risk-manager.log.3"}
    assert sorted(p.name for p in logs.iterdir()) == ["executor-paper.log.1", "risk-manager.log.1"]


def test_the_run_s_own_log_rolls_over_within_a_run(tmp_path) -> None:
    handler = logfiles.run_handler(tmp_path / "kubetrade-up.log", max_bytes=2_000, keep=2)
    log = logging.getLogger("test.rollover")
    log.addHandler(handler)
    log.propagate = False
    try:
        for i in range(200):
            log.warning("line %d %s", i, "x" * 50)
    finally:
        log.removeHandler(handler)
        handler.close()
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    assert set(sizes) == {"kubetrade-up.log", "kubetrade-up.log.1", "kubetrade-up.log.2"}
    assert all(size <= 2_100 for size in sizes.values())


def test_the_local_pepper_is_made_once_and_private(tmp_path) -> None:
    path = tmp_path / ".kubetrade" / "api-key-pepper"
    assert keys.local_pepper(path) is None
    made = keys.local_pepper(path, create=True)
    assert made and len(made) == 64 and oct(path.stat().st_mode & 0o777) == "0o600"
    assert keys.local_pepper(path, create=True) == made == keys.local_pepper(path)
