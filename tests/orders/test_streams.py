"""The order path's streams, as one module declares them, converge from whatever an older version created."""

from __future__ import annotations

from typing import Any

from kubetrade.messaging import streams, subjects
from kubetrade.messaging.streams import ensure_order_streams as ensure_streams


async def test_streams_converge_to_the_declared_subjects_and_age_limits(nc: Any) -> None:
    from nats.js.api import StreamConfig

    js = nc.jetstream()
    # as an older version made them: EVENTS capturing every order event, ORDERS kept for good
    await js.add_stream(StreamConfig(name="EVENTS", subjects=["events.>"], duplicate_window=3600.0))
    await js.add_stream(StreamConfig(name="ORDERS", subjects=["orders.>"], duplicate_window=3600.0))
    await js.publish("events.orders.paper.alpha", b"{}")
    await ensure_streams(js)

    orders = (await js.stream_info("ORDERS")).config
    assert orders.max_age == streams.MAX_AGE_SECONDS["ORDERS"] == 86_400.0
    events = (await js.stream_info("EVENTS")).config
    assert sorted(events.subjects) == sorted(subjects.STREAMS["EVENTS"])
    assert events.max_age == 30 * 86_400.0
    dlq = (await js.stream_info("DLQ")).config
    assert dlq.subjects == ["dlq.>"] and dlq.duplicate_window == streams.DUPLICATE_WINDOW_SECONDS

    # order events are no longer stored; alerts still are
    before = (await js.stream_info("EVENTS")).state.messages
    await nc.publish(subjects.order_events("paper", "alpha"), b"{}")
    await js.publish(subjects.alerts("critical"), b"{}")
    after = (await js.stream_info("EVENTS")).state.messages
    assert after == before + 1

    # idempotent: a second call changes nothing
    await ensure_streams(js)
    assert (await js.stream_info("ORDERS")).config.max_age == 86_400.0
