"""Subject names: data values become safe tokens, wildcards stay wildcards."""

from __future__ import annotations

import asyncio

import pytest

from kubetrade.messaging import subjects


async def test_order_event_wildcards_match_what_the_executor_publishes(nats_client) -> None:
    """A subscription built with wildcards receives the events the executor publishes (on a real server)."""
    published = subjects.order_events("paper", "my.strategy*")
    assert published == "events.orders.paper.my_strategy_"  # a data value never widens a subject
    got: dict[str, list[str]] = {}
    for pattern in (subjects.order_events("*", ">"), subjects.order_events("paper", ">"), subjects.order_events("*")):

        async def keep(msg, pattern=pattern) -> None:
            got.setdefault(pattern, []).append(msg.subject)

        await nats_client.subscribe(pattern, cb=keep)
    await nats_client.publish(published, b"{}")
    await nats_client.publish(subjects.order_events("live", "beta"), b"{}")
    await nats_client.flush()
    for _ in range(50):
        if sum(len(v) for v in got.values()) == 5:
            break
        await asyncio.sleep(0.02)
    assert {k: len(v) for k, v in got.items()} == {
        "events.orders.*.>": 2,
        "events.orders.paper.>": 1,
        "events.orders.*.*": 2,
    }
    with pytest.raises(ValueError):
        subjects.order_events(">")
    assert subjects.exchange_errors("*") == "events.exchange-errors.*"
    assert subjects.exchange_errors("live") == "events.exchange-errors.live"
