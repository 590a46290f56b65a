"""One active operator replica, by a coordination.k8s.io Lease.

kopf's own peering pauses operators that see each other; a Lease is the Kubernetes
convention (controller-manager and scheduler use it) and survives a crashed holder: a
replica takes over once the holder has not renewed for ``duration`` seconds.  A leader
that cannot renew in time stops itself, so two replicas never act at once for longer than
the renew deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetrade_operator import kube
from kubetrade_operator.metrics import LEADER

log = logging.getLogger("kubetrade.operator.leader")


def _now() -> datetime:
    return datetime.now(UTC)


class LeaseElector:
    def __init__(self, namespace: str, name: str, duration: int = 15, identity: str | None = None) -> None:
        self.namespace = namespace
        self.name = name
        self.duration = duration
        self.identity = identity or f"{os.environ.get('POD_NAME') or socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self.api = client.CoordinationV1Api(kube.api_client())

    def _spec(self, transitions: int, acquired: datetime) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.duration,
            acquire_time=acquired,
            renew_time=_now(),
            lease_transitions=transitions,
        )

    def try_acquire(self) -> bool:
        """One attempt to take or renew the lease (optimistic concurrency on resourceVersion)."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=self._spec(0, _now()),
            )
            try:
                self.api.create_namespaced_lease(self.namespace, body)
                return True
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
        spec = lease.spec or client.V1LeaseSpec()
        mine = spec.holder_identity == self.identity
        renewed = spec.renew_time or spec.acquire_time or _now() - timedelta(days=1)
        expired = renewed + timedelta(seconds=spec.lease_duration_seconds or self.duration) < _now()
        if not (mine or expired or not spec.holder_identity):
            return False
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        lease.spec = self._spec(transitions, spec.acquire_time if mine and spec.acquire_time else _now())
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
            return True
        except ApiException as exc:
            if exc.status == 409:  # someone else wrote it first
                return False
            raise

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica leads (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            try:
                if await asyncio.to_thread(self.try_acquire):
                    LEADER.set(1)
                    log.info("leader lease acquired", extra={"identity": self.identity})
                    return True
            except Exception as exc:
                log.warning("lease attempt failed", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.duration / 3)
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew until ``stop``; return (lost) if renewal fails past the deadline."""
        last_ok = _now()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.duration / 3)
                break
            except TimeoutError:
                pass
            try:
                ok = await asyncio.to_thread(self.try_acquire)
            except Exception as exc:
                log.warning("lease renewal failed", extra={"error": repr(exc)})
                ok = False
            if ok:
                last_ok = _now()
            elif (_now() - last_ok).total_seconds() > self.duration * 2 / 3:
                LEADER.set(0)
                log.error("leader lease lost", extra={"identity": self.identity})
                return
        LEADER.set(0)

    def release(self) -> None:
        """Give the lease up on a clean shutdown so a successor does not wait for expiry."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except Exception as exc:
            log.warning("lease release failed", extra={"error": repr(exc)})
