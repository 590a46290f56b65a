"""The policy store's periodic resync, against a real JetStream KV bucket.

The watch delivers each new revision; the resync is the guarantee when the watch missed
one (a NATS restart).  It re-reads the bucket only when the bucket's stream moved since the
last re-read, so that listing keys (an ephemeral consumer on the server) is not a periodic
cost on the decision path.
"""

from __future__ import annotations

import json
from typing import Any

from kubetrade.messaging import kv
from kubetrade.risk import policies


def _doc(max_position_pct: float) -> bytes:
    return json.dumps(
        {"namespace": "default", "name": "p", "spec": {"strategyLimits": {"maxPositionPct": max_position_pct}}}
    ).encode()


async def test_resync_reads_what_the_watch_missed_and_only_when_the_bucket_moved(nc: Any) -> None:
    js = nc.jetstream()
    bucket = await kv.policy_bucket(js)
    await bucket.put(kv.policy_key("default", "p"), _doc(0.2))
    store = policies.PolicyStore()
    await store.start(js)
    await store.stop()  # from here on the watch misses everything: only the resync can see changes
    assert store.get("default", "p").spec.strategy_limits.max_position_pct == 0.2

    await bucket.put(kv.policy_key("default", "p"), _doc(0.1))
    await bucket.put(kv.policy_key("default", "q"), b"{not json")
    await store.resync(js)
    assert store.get("default", "p").spec.strategy_limits.max_position_pct == 0.1
    assert "default.q" in store.refused  # refused, and the previous state (none) stays

    # nothing written since: the resync does not re-read (a refused value is not refused again)
    store.refused.clear()
    await store.resync(js)
    assert store.refused == {}

    # a deletion is a write too
    await bucket.delete(kv.policy_key("default", "p"))
    await store.resync(js)
    assert store.get("default", "p") is None
    assert "default.q" in store.refused


class _ListingFails:
    """The real JetStream context, except that listing the bucket's keys fails once (as a busy server's
    timeout would): fault injection around the real client, not a stand-in for it."""

    def __init__(self, js: Any) -> None:
        self.js = js

    def __getattr__(self, name: str) -> Any:
        return getattr(self.js, name)

    async def key_value(self, bucket: str) -> Any:
        import nats.errors

        kv = await self.js.key_value(bucket)

        async def keys(*_: Any, **__: Any) -> list[str]:
            raise nats.errors.TimeoutError

        kv.keys = keys
        return kv


async def test_a_failed_listing_keeps_the_policies_in_force_and_is_read_again(nc: Any) -> None:
    """Before, any failure to list the keys was taken for an empty bucket: every policy was removed,
    the bucket's sequence recorded as read, and trading refused ("no policy") until the next write."""
    import nats.errors
    import pytest

    js = nc.jetstream()
    bucket = await kv.policy_bucket(js)
    await bucket.put(kv.policy_key("default", "p"), _doc(0.2))
    store = policies.PolicyStore()
    await store.start(js)
    await store.stop()
    await bucket.put(kv.policy_key("default", "p"), _doc(0.1))  # the bucket moved: the resync will list it

    with pytest.raises(nats.errors.TimeoutError):  # the caller logs it and carries on
        await store.resync(_ListingFails(js))
    assert store.get("default", "p").spec.strategy_limits.max_position_pct == 0.2  # still in force

    await store.resync(js)  # not skipped: the failed one recorded nothing as read
    assert store.get("default", "p").spec.strategy_limits.max_position_pct == 0.1

    # an empty bucket (nats-py's NoKeysError) is still every policy deleted
    await bucket.delete(kv.policy_key("default", "p"))
    await store.resync(js)
    assert store.get("default", "p") is None
