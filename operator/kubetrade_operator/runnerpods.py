"""What a Strategy's runner pods say about its runner: ready, starting, or why it cannot run (pure).

The kubelet knows why a container does not run - an image it cannot pull, a Secret that is not
there, a process that keeps exiting, a memory limit, no node with room - and says so on the pod
only.  :func:`runner_state` reads the pods of one runner Deployment as the API server returns
them (``Cluster.runner_pods``; ``kubetrade up``'s local cluster has no pods and says nothing: its
runner tasks' trouble is their Deployment's ``RunnerRefused``) and gives one reason and one
message, for the Strategy's ``RunnerReady`` condition (and, for a fault, Ready, Degraded, the
phase's message and a Warning Event):

=================  ==========================================================================
``PodReady``       the pod is Ready
``Starting``       no fault: scheduled, pulling, starting or warming up (not Ready yet)
``NotReady``       it was Ready in this run and is not any more (its probe says why)
``NoPod``          no pod of the runner exists (yet)
``ImageNotFound``  ErrImagePull, ImagePullBackOff, ErrImageNeverPull, InvalidImageName: the image
``SecretMissing``  CreateContainerConfigError on a Secret or a key in it: which, and which env
``ConfigMissing``  the same for a ConfigMap
``CrashLoop``      the container exited (non-zero) and has not been Ready since: exit code and
                   the end of its termination message (the runner writes why it exits)
``OOMKilled``      the same, killed for exceeding its memory limit
``Unschedulable``  the scheduler found no node: its own message
``ContainerError`` the runtime could not create or start the container (CreateContainerError...)
=================  ==========================================================================

The message names what to fix and stays the same while the cause does (no restart counts or
times in it), so a status is written, and an Event posted, when something changes - not at
every restart of a crash loop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FAULTS = frozenset(
    {"ImageNotFound", "SecretMissing", "ConfigMissing", "CrashLoop", "OOMKilled", "Unschedulable", "ContainerError"}
)
"""Reasons that mean the runner cannot run until something is fixed (the others are states)."""

IMAGE_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"})
CONTAINER_WAITING = frozenset({"CreateContainerError", "RunContainerError", "PreCreateHookError", "PreStartHookError"})
MESSAGE_TAIL = 1024
"""How much of a termination message the condition carries (its end: where the reason is)."""

_BACKOFF = re.compile(r'^Back-off pulling image "[^"]*":?\s*(ErrImagePull:\s*)?', re.IGNORECASE)
_SECRET_NOT_FOUND = re.compile(r'secret "([^"]+)" not found', re.IGNORECASE)
_CONFIGMAP_NOT_FOUND = re.compile(r'configmap "([^"]+)" not found', re.IGNORECASE)
_KEY_NOT_FOUND = re.compile(r"couldn't find key (\S+) in (Secret|ConfigMap) ([^/\s]+)/(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class RunnerState:
    reason: str
    message: str
    pod: str | None = None
    """The pod the state was read from."""

    @property
    def ready(self) -> bool:
        return self.reason == "PodReady"

    @property
    def fault(self) -> bool:
        return self.reason in FAULTS


def _condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c  # type: ignore[no-any-return]
    return {}


def _current(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The pod that speaks for the runner: the newest one not being deleted (``Recreate``: one)."""
    alive = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not alive:
        return None
    return max(alive, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))


def _tail(text: str, limit: int = MESSAGE_TAIL) -> str:
    """The end of a (possibly multi-line) message on one line: a termination message says why last."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    one = " | ".join(lines)
    return one if len(one) <= limit else "..." + one[-(limit - 3):]


def _env_using(pod: Mapping[str, Any], container: str, kind: str, name: str, key: str | None) -> list[str]:
    """The env variables (or envFrom) of ``container`` that read the Secret/ConfigMap ``name``."""
    ref = "secretKeyRef" if kind == "Secret" else "configMapKeyRef"
    source = "secretRef" if kind == "Secret" else "configMapRef"
    found: list[str] = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") != container:
            continue
        for env in c.get("env") or []:
            sel = (env.get("valueFrom") or {}).get(ref) or {}
            if sel.get("name") == name and (key is None or sel.get("key") == key):
                found.append(str(env.get("name")))
        for src in c.get("envFrom") or []:
            if (src.get(source) or {}).get("name") == name:
                found.append(f"envFrom {kind} {name}")
    return found


def _config_error(pod: Mapping[str, Any], container: str, message: str) -> tuple[str, str]:
    namespace = (pod.get("metadata") or {}).get("namespace") or "?"
    key_match = _KEY_NOT_FOUND.search(message)
    if key_match:
        key, kind, ns, name = key_match.groups()
        uses = _env_using(pod, container, kind, name, key)
        why = f"{kind} {ns}/{name} has no key {key!r}"
    else:
        secret, configmap = _SECRET_NOT_FOUND.search(message), _CONFIGMAP_NOT_FOUND.search(message)
        if secret:
            kind, name = "Secret", secret.group(1)
        elif configmap:
            kind, name = "ConfigMap", configmap.group(1)
        else:
            return "ContainerError", f"container {container} cannot be configured: {_tail(message)}"
        uses = _env_using(pod, container, kind, name, None)
        why = f"{kind} {namespace}/{name} not found"
    reason = "SecretMissing" if kind == "Secret" else "ConfigMissing"
    needed = f" (needed by {', '.join(uses)} of container {container})" if uses else f" (container {container})"
    return reason, why + needed


def _memory_limit(pod: Mapping[str, Any], container: str) -> str | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == container:
            return ((c.get("resources") or {}).get("limits") or {}).get("memory")
    return None


def _exited(pod: Mapping[str, Any], container: str, terminated: Mapping[str, Any]) -> tuple[str, str]:
    code = terminated.get("exitCode")
    if terminated.get("reason") == "OOMKilled":
        limit = _memory_limit(pod, container)
        return "OOMKilled", (
            f"container {container} was killed for exceeding its memory limit"
            + (f" of {limit}" if limit else "") + f" (exit code {code})"
        )
    said = _tail(str(terminated.get("message") or ""))
    what = f"container {container} exited with code {code}"
    if said:
        return "CrashLoop", f"{what}: {said}"
    return "CrashLoop", f"{what} ({terminated.get('reason') or 'no message'})"


def _container_fault(pod: Mapping[str, Any], status: Mapping[str, Any], ready_since: str) -> tuple[str, str] | None:
    name = str(status.get("name") or "?")
    state = status.get("state") or {}
    waiting, running, terminated = state.get("waiting"), state.get("running"), state.get("terminated")
    last = (status.get("lastState") or {}).get("terminated")
    if waiting:
        reason, message = str(waiting.get("reason") or ""), str(waiting.get("message") or "")
        if reason in IMAGE_WAITING:
            # ErrImagePull and ImagePullBackOff alternate; the back-off repeats the pull's error after
            # a prefix (kubelet 1.36), so without the prefix both say the same and the status holds still
            detail = _tail(_BACKOFF.sub("", message)) or "retrying with back-off"
            return "ImageNotFound", f"image {status.get('image') or '?'} of container {name} cannot be pulled: {detail}"
        if reason == "CreateContainerConfigError":
            return _config_error(pod, name, message)
        if reason in CONTAINER_WAITING:
            return "ContainerError", f"container {name}: {reason}: {_tail(message)}"
        if last and (last.get("exitCode") or last.get("reason") == "OOMKilled"):
            return _exited(pod, name, last)  # CrashLoopBackOff: waiting to start again after exiting
        return None
    if terminated and (terminated.get("exitCode") or terminated.get("reason") == "OOMKilled"):
        return _exited(pod, name, terminated)
    # Started again after exiting: still in the loop unless it became Ready in this run (the pod's
    # Ready condition has not changed since this run started).
    if (running and last and (last.get("exitCode") or last.get("reason") == "OOMKilled")
            and (not ready_since or ready_since <= str(running.get("startedAt") or ""))):
        return _exited(pod, name, last)
    return None


def runner_state(pods: Sequence[Mapping[str, Any]]) -> RunnerState:
    """The runner's state from the pods of its Deployment (see the module's table)."""
    pod = _current(pods)
    if pod is None:
        return RunnerState("NoPod", "no runner pod yet")
    name = str((pod.get("metadata") or {}).get("name") or "?")
    ready = _condition(pod, "Ready")
    if ready.get("status") == "True":
        return RunnerState("PodReady", f"runner pod {name} is ready", name)
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") == "False":
        if scheduled.get("reason") == "Unschedulable":
            return RunnerState("Unschedulable", f"pod {name} cannot be scheduled: {scheduled.get('message')}", name)
        return RunnerState("Starting", f"pod {name} waiting to be scheduled", name)
    status = pod.get("status") or {}
    ready_since = str(ready.get("lastTransitionTime") or "")
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        fault = _container_fault(pod, cs, ready_since)
        if fault is not None:
            return RunnerState(fault[0], f"pod {name}: {fault[1]}", name)
    running = any((cs.get("state") or {}).get("running") for cs in status.get("containerStatuses") or [])
    if running and ready_since and any(
        ready_since > str(((cs.get("state") or {}).get("running") or {}).get("startedAt") or "~")
        for cs in status.get("containerStatuses") or []
    ):
        return RunnerState("NotReady", f"runner pod {name} is running but no longer ready", name)
    return RunnerState("Starting", f"runner pod {name} is starting (not ready yet)", name)
