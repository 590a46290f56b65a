"""The platform's own processes, started the way their pods would be: one CLI each.

``kubetrade up`` and the end-to-end tests both use these helpers, so what a test proves
is what a user runs: the risk manager and the paper executor as separate processes
(``kubetrade risk-manager``, ``kubetrade executor --environment paper``), the RiskPolicy
published to the NATS KV bucket the risk manager watches (the operator's job in a cluster),
and each strategy's ledger allocated.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from kubetrade.localstack.servers.processes import ManagedProcess
from kubetrade.messaging import auth, codec, kv, subjects
from kubetrade.messaging.schemas import RiskControlReply, RiskControlRequest
from kubetrade.messaging.streams import ensure_streams
from kubetrade.resources.riskpolicy import RiskPolicySpec

READY_TIMEOUT = 120.0


def kubetrade_argv(*args: str) -> list[str]:
    """The ``kubetrade`` CLI of this installation (next to the running interpreter)."""
    exe = Path(sys.executable).with_name("kubetrade")
    if exe.is_file():
        return [str(exe), *args]
    found = shutil.which("kubetrade")
    return [found, *args] if found else [sys.executable, "-m", "kubetrade.cli", *args]


def _env(nats_url: str, dsn: str, role: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A service's environment: connections, and its role's NATS identity (as its pod would have it)."""
    env = dict(os.environ)
    env.update({"KUBETRADE_NATS_URL": nats_url, "KUBETRADE_DATABASE_URL": dsn})
    creds = auth.credentials(role)
    if creds:
        env.update({auth.USER_ENV: creds["user"], auth.PASSWORD_ENV: creds["password"]})
    env.update(extra or {})
    return env


def _logged(path: Path, text: str) -> bool:
    try:
        return text in path.read_text(errors="replace")
    except OSError:
        return False


def start_risk_manager(nats_url: str, dsn: str, log_dir: Path, refresh_seconds: float = 1.0) -> ManagedProcess:
    proc = ManagedProcess("risk-manager", kubetrade_argv("risk-manager", "--refresh-seconds", str(refresh_seconds)),
                          log_dir / "risk-manager.log", env=_env(nats_url, dsn, "risk-manager"))
    proc.start()
    proc.wait_ready(lambda: _logged(proc.log_path, "risk manager ready"), READY_TIMEOUT, 0.2)
    return proc


def start_executor(nats_url: str, dsn: str, log_dir: Path, environment: str = "paper",
                   sync_seconds: float = 2.0) -> ManagedProcess:
    proc = ManagedProcess(f"executor-{environment}",
                          kubetrade_argv("executor", "--environment", environment, "--sync-seconds", str(sync_seconds)),
                          log_dir / f"executor-{environment}.log",
                          env=_env(nats_url, dsn, f"executor-{environment}"))
    proc.start()
    proc.wait_ready(lambda: _logged(proc.log_path, "accepting orders"), READY_TIMEOUT, 0.2)
    return proc


async def publish_policy(nc: Any, namespace: str, name: str, spec: RiskPolicySpec | dict[str, Any],
                         generation: int = 1) -> int:
    """Put a RiskPolicy spec where the risk manager reads it (the operator does this in a cluster)."""
    if isinstance(spec, dict):
        spec = RiskPolicySpec.model_validate(spec)
    js = nc.jetstream()
    await ensure_streams(js)
    bucket = await kv.policy_bucket(js)
    entry = kv.PolicyEntry(namespace=namespace, name=name, generation=generation, spec=spec)
    revision: int = await bucket.put(kv.policy_key(namespace, name), kv.encode(entry))
    return revision


async def publish_goal_multiplier(nc: Any, namespace: str, goal: str, multiplier: float, detail: str = "") -> None:
    """The goal's sizing multiplier, where runners read it (KV ``goal-sizing``, key ``<namespace>.<goal>``)."""
    bucket = await kv.goal_sizing_bucket(nc.jetstream())
    entry = kv.GoalSizingEntry(multiplier=multiplier, detail=detail)
    await bucket.put(kv.goal_sizing_key(namespace, goal), kv.encode(entry))


async def risk_metrics(nc: Any, deadline: float = 5.0) -> Any:
    """The risk manager's view of every portfolio (``control.risk`` metrics request)."""
    msg = await nc.request(subjects.RISK_CONTROL, codec.encode(RiskControlRequest(action="metrics")), timeout=deadline)
    return codec.decode(RiskControlReply, msg.data)


def run_sync(coro: Any) -> Any:
    return asyncio.run(coro)
