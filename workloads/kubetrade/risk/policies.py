"""RiskPolicy specs as the operator publishes them in the NATS KV bucket ``risk-policies``.

Hot reload: a watcher replaces a policy the moment a new revision is written; decisions
after that use it (each decision names the revision it used).  A value that does not
parse is refused and the previous revision stays in force - a typo must never loosen or
drop limits.  A deleted policy is gone: its strategies are rejected until one is published
(no policy, no trading).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from kubetrade.messaging import codec
from kubetrade.messaging.kv import RISK_POLICY_BUCKET, PolicyEntry, policy_bucket, policy_key
from kubetrade.resources.riskpolicy import RiskPolicySpec

log = logging.getLogger("kubetrade.risk.policies")


@dataclass(frozen=True)
class Published:
    namespace: str
    name: str
    spec: RiskPolicySpec
    revision: int
    generation: int | None = None


def parse(entry_key: str, value: bytes, revision: int) -> Published:
    """A KV value (:class:`~kubetrade.messaging.kv.PolicyEntry`) -> Published; raises ValueError
    with the reason when it is not a valid policy."""
    try:
        entry = codec.decode(PolicyEntry, value)
    except codec.BadMessage as exc:
        raise ValueError(f"policy {entry_key} revision {revision}: {str(exc)[:300]}") from exc
    ns, _, name = entry_key.partition(".")
    return Published(entry.namespace or ns, entry.name or name, entry.spec, revision, entry.generation)


class PolicyStore:
    def __init__(self) -> None:
        self.policies: dict[str, Published] = {}
        self.refused: dict[str, str] = {}
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resynced_seq: int | None = None
        """The bucket stream's last sequence at the last full re-read (None: never re-read)."""

    def get(self, namespace: str, name: str) -> Published | None:
        return self.policies.get(policy_key(namespace, name))

    def on_entry(self, entry_key: str, value: bytes | None, revision: int, operation: str | None) -> None:
        if operation in ("DEL", "PURGE") or value is None:
            self.policies.pop(entry_key, None)
            log.warning("policy removed", extra={"policy": entry_key})
        else:
            try:
                self.policies[entry_key] = parse(entry_key, value, revision)
                self.refused.pop(entry_key, None)
                log.info("policy loaded", extra={"policy": entry_key, "revision": revision})
            except ValueError as exc:
                self.refused[entry_key] = str(exc)
                log.error("policy refused; previous revision stays", extra={"error": str(exc)})
        self.changed.set()

    async def start(self, js: Any) -> None:
        kv = await policy_bucket(js)
        watcher = await kv.watchall()
        first = True

        async def loop() -> None:
            async for entry in watcher:
                if entry is None:
                    continue
                self.on_entry(entry.key, entry.value, entry.revision, getattr(entry, "operation", None))

        # the initial values arrive first, then a None marker; wait for them before serving
        while first:
            entry = await watcher.updates(timeout=5)
            if entry is None:
                first = False
            else:
                self.on_entry(entry.key, entry.value, entry.revision, getattr(entry, "operation", None))
        self._task = asyncio.create_task(loop())

    async def resync(self, js: Any) -> None:
        """Re-read the whole bucket: the watch is a convenience, this is the guarantee (e.g. after a NATS restart).

        One request tells whether anything was written (or the stream replaced) since the last
        re-read: the bucket stream's last sequence.  Listing the keys costs the server an
        ephemeral consumer and a round trip per key, which every few seconds beside a thousand
        decisions a second is a visible stall; it is done only when that sequence moved.
        """
        from nats.js.errors import KeyDeletedError, KeyNotFoundError, NoKeysError

        kv = await policy_bucket(js)
        info = await js.stream_info(f"KV_{RISK_POLICY_BUCKET}")
        last_seq = int(info.state.last_seq)
        if last_seq == self._resynced_seq:
            return
        try:
            keys = await kv.keys()
        except NoKeysError:  # nats-py's answer for an empty bucket: every policy was deleted
            keys = []
        # any other failure (a timeout on a busy server) raises: the policies in force stay in force,
        # and the next resync reads again - treated as "no keys", it had removed every policy for good
        for k in keys:
            try:
                entry = await kv.get(k)
            except (KeyNotFoundError, KeyDeletedError):  # deleted since the listing: the next resync sees it
                continue
            held = self.policies.get(k)
            if held is None or held.revision != entry.revision:
                self.on_entry(k, entry.value, entry.revision, None)
        for k in set(self.policies) - set(keys):
            self.on_entry(k, None, 0, "DEL")
        self._resynced_seq = last_seq  # read before the keys: a write in between is read at the next resync

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
