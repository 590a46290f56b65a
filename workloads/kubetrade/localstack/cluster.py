"""``kubetrade up``'s cluster: the operator's reconcilers run against it unchanged.

:class:`LocalCluster` implements the operator's :class:`~kubetrade_operator.cluster.Cluster` seam
over the local resource store (:class:`~kubetrade.cluster.database.DatabaseStore`, what the API
reads) and :class:`RunnerPods`, a child applier that does for a runner Deployment what a node
would: it starts the strategy's runner - in this process, as a task - from the ConfigMap the
reconciler wrote, restarts it with a back-off when it dies, stops it when the Deployment is scaled
to zero, and reports the Deployment's status (available replicas, or why it does not run).

The seam's methods are synchronous (kopf calls reconcilers on worker threads); here they are
called on worker threads too (``asyncio.to_thread``) and reach the store on the stack's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kubetrade.cluster import NotFound
from kubetrade.cluster.database import DatabaseStore
from kubetrade.runner.config import RunnerConfig, RunnerConfigError, parse
from kubetrade.runner.runner import Runner, RunnerOptions

log = logging.getLogger("kubetrade.localstack.cluster")
Objects = list[dict[str, Any]]

OWNER_KIND = "kubetrade.io/owner-kind"
OWNER_NAME = "kubetrade.io/owner-name"
RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before each restart of a runner that died, as the kubelet backs off a crashing container."""
STEADY_SECONDS = 60.0
"""A runner that ran this long without dying starts the back-off from the beginning again."""

Refusal = Callable[[dict[str, Any]], tuple[str, str] | None]
"""What this machine cannot run of a Strategy: (reason, message), or None.  Reason ``NotRunHere``
means the Strategy is fine but not for this machine (live trading); any other is final."""
BeforeStart = Callable[[RunnerConfig], Awaitable[None]]
"""Called with the RunnerConfig before a runner first starts (the local stack allocates its ledger)."""


@dataclass
class Pod:
    """One runner 'pod': the task that runs it and what its Deployment reports."""

    namespace: str
    name: str
    config: dict[str, Any] | None
    """The resolved Strategy the reconciler put in the runner's ConfigMap."""
    runner_config: RunnerConfig | None = None
    runner: Runner | None = None
    task: asyncio.Task[None] | None = None
    restarts: int = 0
    """Restarts since the stack started (the summary shows them)."""
    crashes: int = 0
    """Deaths in a row, each after less than STEADY_SECONDS: the back-off's step."""
    started_at: float = 0.0
    last_error: str | None = None
    refused: tuple[str, str] | None = None
    stopping: bool = False
    waiting: asyncio.Task[None] | None = None
    history: list[str] = field(default_factory=list)

    @property
    def strategy(self) -> str:
        """The Strategy this runner belongs to (the Deployment is named after it, maybe shortened)."""
        return str(((self.config or {}).get("metadata") or {}).get("name") or self.name)

    @property
    def ready(self) -> bool:
        return bool(self.runner is not None and self.task is not None and not self.task.done()
                    and self.runner.started.is_set())


class RunnerPods:
    """Runner Deployments made real as tasks on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, nats_url: str, dsn: str, refusal: Refusal,
                 before_start: BeforeStart | None = None,
                 options: RunnerOptions | None = None,
                 on_restart: Callable[[Pod, str], None] | None = None) -> None:
        self.loop = loop
        self.nats_url = nats_url
        self.dsn = dsn
        self.refusal = refusal
        self.before_start = before_start
        self.options = options or RunnerOptions(probe_port=None, status_interval=5.0, status_min_interval=1.0)
        self.on_restart = on_restart
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.closed = False

    # --- the applier (worker threads) ------------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind, meta = obj["kind"], obj["metadata"]
        key = (meta.get("namespace") or "default", meta["name"])
        if kind == "ConfigMap":
            self.configmaps[key] = copy.deepcopy(obj)
            return obj
        if kind == "Deployment" and (meta.get("labels") or {}).get(OWNER_KIND) == "Strategy":
            return self._deployment(key, obj)
        self.objects[(kind, *key)] = copy.deepcopy(obj)  # a CronJob, ServiceAccount, ...: kept, not run
        return obj

    def _deployment(self, key: tuple[str, str], obj: dict[str, Any]) -> dict[str, Any]:
        previous = self.objects.get(("Deployment", *key))
        desired = copy.deepcopy(obj)
        if previous is not None and "template" not in (obj.get("spec") or {}):
            # a scale (the reconciler stops a runner whose spec no longer runs): only the replicas change
            merged = copy.deepcopy(previous)
            merged["spec"]["replicas"] = obj["spec"].get("replicas", 0)
            desired = merged
        self.objects[("Deployment", *key)] = desired
        replicas = int((desired.get("spec") or {}).get("replicas", 1))
        if replicas >= 1:
            doc = self._resolved(key)
            asyncio.run_coroutine_threadsafe(self._ensure(key, doc), self.loop).result(30)
        else:
            asyncio.run_coroutine_threadsafe(self._stop(key), self.loop).result(90)
        return self.observed(*key) or desired

    def _resolved(self, key: tuple[str, str]) -> dict[str, Any] | None:
        cm = self.configmaps.get(key)
        if cm is None:
            return None
        data = cm.get("data") or {}
        raw = data.get("strategy.json")
        return json.loads(raw) if raw else None

    def observed(self, namespace: str, name: str) -> dict[str, Any] | None:
        desired = self.objects.get(("Deployment", namespace, name))
        if desired is None:
            return None
        pod = self.pods.get((namespace, name))
        out = copy.deepcopy(desired)
        replicas = int((desired.get("spec") or {}).get("replicas", 1))
        ready = 1 if pod is not None and pod.ready and replicas >= 1 else 0
        status: dict[str, Any] = {"replicas": replicas, "availableReplicas": ready, "updatedReplicas": ready,
                                  "readyReplicas": ready}
        if pod is not None and pod.refused is not None and replicas >= 1:
            reason, message = pod.refused
            status["conditions"] = [{"type": "RunnerRefused", "status": "True", "reason": reason,
                                     "message": message}]
        out["status"] = status
        return out

    # --- the 'node' (the loop) ------------------------------------------------------------------

    async def _ensure(self, key: tuple[str, str], doc: dict[str, Any] | None) -> None:
        pod = self.pods.get(key)
        if doc is None:
            self.pods[key] = Pod(*key, None, refused=("NoConfig", "the runner's ConfigMap is missing"))
            return
        if pod is not None and pod.config is not None and pod.config == doc and pod.refused is None:
            return  # up to date: running, or restarting after a failure
        if pod is not None and pod.config == doc and pod.refused is not None:
            return
        if pod is not None:
            await self._stop(key)  # Recreate: the old runner is gone before the new one starts
        pod = Pod(*key, doc)
        self.pods[key] = pod
        refused = self.refusal(doc)
        if refused is None:
            try:
                pod.runner_config = parse(doc, f"Strategy/{key[1]}")
            except RunnerConfigError as exc:
                refused = ("InvalidConfig", str(exc))
        if refused is not None or pod.runner_config is None:
            pod.refused = refused or ("InvalidConfig", "no runner configuration")
            return
        pod.waiting = asyncio.create_task(self._boot(pod), name=f"boot-{pod.strategy}")

    async def _boot(self, pod: Pod) -> None:
        """What a pod does before its container runs (here: the ledger allocated), then the runner."""
        if self.before_start is not None and pod.runner_config is not None:
            try:
                await self.before_start(pod.runner_config)
            except Exception as exc:  # the runner allocates its own ledger too; start it anyway
                log.warning("before-start step failed", extra={"strategy": pod.strategy, "error": repr(exc)[:300]})
        self._start(pod)

    def _start(self, pod: Pod) -> None:
        if self.closed or pod.stopping or pod.runner_config is None:
            return
        pod.runner = Runner(pod.runner_config, self.nats_url, self.dsn, self.options)
        pod.started_at = time.monotonic()
        pod.task = asyncio.create_task(pod.runner.run(), name=f"runner-{pod.strategy}")
        pod.task.add_done_callback(functools.partial(self._exited, pod))

    def _exited(self, pod: Pod, task: asyncio.Task[None]) -> None:
        if pod.stopping or self.closed or self.pods.get((pod.namespace, pod.name)) is not pod:
            return
        error = "exited" if task.cancelled() or task.exception() is None else repr(task.exception())[:300]
        if time.monotonic() - pod.started_at >= STEADY_SECONDS:
            pod.crashes = 0
        delay = RESTART_BACKOFF[min(pod.crashes, len(RESTART_BACKOFF) - 1)]
        pod.crashes += 1
        pod.restarts += 1
        pod.last_error = error
        pod.history.append(f"runner {pod.strategy} died ({error}); restart {pod.restarts} in {delay:g}s")
        log.warning("runner died; restarting", extra={"strategy": pod.strategy, "error": error, "in": delay})
        if self.on_restart is not None:
            self.on_restart(pod, error)

        async def later() -> None:
            await asyncio.sleep(delay)
            self._start(pod)

        pod.waiting = asyncio.create_task(later())

    async def _stop(self, key: tuple[str, str]) -> None:
        pod = self.pods.get(key)
        if pod is None:
            return
        pod.stopping = True
        if pod.waiting is not None:
            pod.waiting.cancel()
        if pod.runner is not None and pod.task is not None and not pod.task.done():
            pod.runner.stopping.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(pod.task), 60)
        if pod.task is not None and not pod.task.done():
            pod.task.cancel()
        del self.pods[key]

    async def stop_all(self, grace: float = 60.0) -> list[str]:
        """Every runner asked to stop at once (they finish the order in flight); returns the failures."""
        self.closed = True
        failures = []
        for pod in self.pods.values():
            pod.stopping = True
            if pod.waiting is not None:
                pod.waiting.cancel()
            if pod.runner is not None:
                pod.runner.stopping.set()
        tasks = [p.task for p in self.pods.values() if p.task is not None and not p.task.done()]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=grace)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    failures.append(f"{t.get_name()} failed: {t.exception()!r}")
            for t in pending:
                t.cancel()
                failures.append(f"{t.get_name()} did not stop within {grace:.0f}s")
        return failures


class LocalCluster:
    """The operator's :class:`~kubetrade_operator.cluster.Cluster` over the local store and :class:`RunnerPods`."""

    def __init__(self, store: DatabaseStore, pods: RunnerPods, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.pods = pods
        self.loop = loop
        self.events: list[dict[str, str]] = []

    def _run(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self._run(self.store.get(plural, namespace, name))
            return obj
        except NotFound:
            return None

    def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._run(self.store.list(plural, namespace))
        return items

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        with contextlib.suppress(NotFound):
            self._run(self.store.patch_status(plural, namespace, name, status))

    def patch_spec(self, plural: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        current = self._run(self.store.get(plural, namespace, name))
        self._run(self.store.replace(plural, namespace, name, _merge(current, patch)))

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.pods.apply(obj)

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pods.observed(namespace, name)

    def ensure_namespace(self, namespace: str, objects: Objects) -> None:
        """Nothing to do: no service accounts or role bindings without Kubernetes."""

    def riskpolicy(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("riskpolicies", namespace, name)

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        self.events.append({"kind": str(obj.get("kind") or ""), "name": str(meta.get("name") or ""),
                            "type": type_, "reason": reason, "message": message})
        log.info("event", extra={"object": f"{obj.get('kind')}/{meta.get('name')}", "type": type_,
                                 "reason": reason, "note": message})


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386): what ``kubectl patch --type merge`` does to the object."""
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
