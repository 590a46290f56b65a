"""Where a backtest runs: a Kubernetes Job on a cluster, a task of this process locally."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from kubetrade import cluster
from kubetrade.backtestjobs import store
from kubetrade.backtestjobs.execute import execute

log = logging.getLogger("kubetrade.backtestjobs")


def job_manifest(backtest_id: uuid.UUID, strategy: dict[str, Any], image: str, env_secret: str | None,
                 database_secret: str | None = None) -> dict[str, Any]:
    """The Job that runs ``kubetrade backtest-job <id>``, owned by the Strategy (deleted with it).

    Its pod meets the "restricted" Pod Security Standard and has no Kubernetes token; the
    database DSN comes from ``database_secret`` (key ``url``, the Secret the operator's
    children read too), further environment from ``env_secret``.
    """
    meta = strategy["metadata"]
    env: list[dict[str, Any]] = [{"name": "NUMBA_CACHE_DIR", "value": "/tmp/numba-cache"}]
    if database_secret:
        env.append({"name": "KUBETRADE_DATABASE_URL",
                    "valueFrom": {"secretKeyRef": {"name": database_secret, "key": "url"}}})
    container: dict[str, Any] = {
        "name": "backtest",
        "image": image,
        "args": ["backtest-job", str(backtest_id)],
        "env": env,
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if env_secret:
        container["envFrom"] = [{"secretRef": {"name": env_secret}}]
    labels = {"app.kubernetes.io/name": "kubetrade", "app.kubernetes.io/component": "backtest",
              "kubetrade.io/strategy": meta["name"], "kubetrade.io/backtest": str(backtest_id)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"backtest-{str(backtest_id)[:18]}",
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [{"apiVersion": strategy["apiVersion"], "kind": "Strategy", "name": meta["name"],
                                 "uid": meta["uid"], "blockOwnerDeletion": False}],
        },
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 86_400,
            "activeDeadlineSeconds": 3_600,
            "template": {"metadata": {"labels": labels},
                         "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                                  "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                                      "seccompProfile": {"type": "RuntimeDefault"}},
                                  "containers": [container],
                                  "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]}},
        },
    }


async def launch(app_state: Any, backtest_id: uuid.UUID, strategy: dict[str, Any]) -> str | None:
    """Start the backtest; returns the Job's name on a cluster, None when it runs in this process."""
    settings = app_state.settings
    store_ = cluster.resource_store(app_state.db_pool)
    if isinstance(store_, cluster.KubernetesStore):
        job = await store_.create_job(strategy["metadata"]["namespace"],
                                      job_manifest(backtest_id, strategy, settings.image, settings.job_env_secret,
                                                   settings.database_secret))
        name = str(job["metadata"]["name"])
        async with app_state.db_pool.connection() as conn:
            await store.set_job(conn, backtest_id, name)
        return name
    tasks: set[asyncio.Task[Any]] | None = getattr(app_state, "backtest_tasks", None)
    if tasks is None:
        tasks = app_state.backtest_tasks = set()

    async def run() -> None:
        async with app_state.db_pool.connection() as conn:
            await execute(conn, backtest_id)

    task = asyncio.create_task(run(), name=f"backtest-{backtest_id}")
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return None
